"""What the sweep should run next, derived from the instance and the data directory.

Shared by the sensor (which launches the runs) and ``topic-pipeline demo`` (which executes them in
order), so both take the same path through the assets.
"""

from __future__ import annotations

import dataclasses

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from topic_pipeline.defs.assets.trials import TRIALS_PER_RUN
from topic_pipeline.defs.partitions import trial_partitions
from topic_pipeline.inputs.embeddings import EmbeddingCache
from topic_pipeline.inputs.grid import EmbeddingSet
from topic_pipeline.storage.paths import DataPaths
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.storage.results import ResultStore, results_digest
from topic_pipeline.search.coarse_to_fine import SearchState
from topic_pipeline.storage.files import read_json

IN_FLIGHT = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    job_name: str
    run_key: str
    partition_key: str | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)


def _latest_hash(instance: dg.DagsterInstance, asset: str) -> str | None:
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get("content_hash")
    return None if value is None else str(value.value)


def contiguous_ranges(ordered_keys: list[str], wanted: set[str], max_length: int) -> list[tuple[str, str]]:
    """Split the wanted keys into ranges of the partition order that contain no unwanted key."""
    ranges: list[tuple[str, str]] = []
    current: list[str] = []
    for key in ordered_keys:
        if key in wanted:
            current.append(key)
            if len(current) == max_length:
                ranges.append((current[0], current[-1]))
                current = []
        elif current:
            ranges.append((current[0], current[-1]))
            current = []
    if current:
        ranges.append((current[0], current[-1]))
    return ranges


def run_partition_keys(run: dg.DagsterRun, ordered_keys: list[str]) -> list[str]:
    position = {key: index for index, key in enumerate(ordered_keys)}
    start = run.tags.get(ASSET_PARTITION_RANGE_START_TAG)
    end = run.tags.get(ASSET_PARTITION_RANGE_END_TAG)
    single = run.tags.get("dagster/partition")
    if start in position and end in position:
        return ordered_keys[position[start] : position[end] + 1]
    return [single] if single else []


def _keys_in_flight(instance: dg.DagsterInstance, ordered_keys: list[str]) -> set[str]:
    busy: set[str] = set()
    for run in instance.get_runs(dg.RunsFilter(statuses=IN_FLIGHT)):
        # Sensor runs are trials_job runs; a backfill launched from the UI runs as an asset job of its own.
        if run.job_name == "trials_job" or dg.AssetKey("grid_trials") in (run.asset_selection or ()):
            busy.update(run_partition_keys(run, ordered_keys))
    return busy


def plan_next_runs(instance: dg.DagsterInstance, settings: PipelineSettings) -> list[PlannedRun]:
    paths = settings.paths
    corpus_hash = _latest_hash(instance, "documents")
    labels_hash = _latest_hash(instance, "ground_truth")
    if corpus_hash is None or labels_hash is None or not paths.current_grid.exists():
        return []
    manifest = read_json(paths.current_grid)
    cache = EmbeddingCache(paths.embeddings)
    ready_sets: set[str] = set()
    plans: list[PlannedRun] = []
    for set_key, values in manifest["embedding_sets"].items():
        cache_key = cache.key(EmbeddingSet(**values), corpus_hash, settings.stopwords_language)
        if cache.path(cache_key).exists():
            ready_sets.add(set_key)
        else:
            plans.append(PlannedRun("embeddings_job", f"embeddings:{set_key}:{corpus_hash}", partition_key=set_key))

    fingerprint = settings.inputs_fingerprint(corpus_hash, labels_hash)
    store = ResultStore(paths.results)
    results = {key: store.current(key, fingerprint, params) for key, params in manifest["trials"].items()}
    pending = {key for key, result in results.items() if result is None}
    ordered = instance.get_dynamic_partitions(trial_partitions.name)
    in_flight = _keys_in_flight(instance, ordered)
    runnable = {
        key for key in pending - in_flight
        if EmbeddingSet(manifest["trials"][key]["embedding_model"], manifest["trials"][key]["remove_stopwords"]).key in ready_sets
    }
    for start, end in contiguous_ranges(ordered, runnable, TRIALS_PER_RUN):
        plans.append(
            PlannedRun(
                "trials_job",
                f"trials:{fingerprint}:{start}:{end}",
                tags={ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end},
            )
        )
    if not pending and not plans:
        digest = results_digest(manifest["grid_fingerprint"], fingerprint, results)
        latest = instance.get_latest_materialization_event(dg.AssetKey("leaderboard"))
        ranked = latest.asset_materialization.metadata.get("results_digest") if latest and latest.asset_materialization else None
        if ranked is None or ranked.value != digest:
            plans.append(PlannedRun("leaderboard_job", f"leaderboard:{digest}"))
        elif _search_continues(paths, manifest, fingerprint):
            # The leaderboard ranks the whole round: time to close it and propose the next.
            plans.append(PlannedRun("search_job", f"search:{digest}"))
    return plans


def _search_continues(paths: DataPaths, manifest: dict, fingerprint: str) -> bool:
    state = SearchState.load(paths.search_state) if manifest["grid"].get("search") == "auto" else None
    return state is not None and not state.finished and state.inputs_fingerprint == fingerprint

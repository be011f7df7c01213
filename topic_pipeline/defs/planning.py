"""What the sweep should run next, derived from the instance and the data directory.

Shared by the sweep sensor (which launches the runs) and the command line (which executes them in
order), so both take the same path through the assets. The plan also names the partitions a new grid
or search round needs: the sensor hands them to Dagster in its ``SensorResult``, the command line adds
them through the instance (``plan_next_runs``). Assets register none themselves.

Why a planner rather than declarative automation (``AutomationCondition``): the decisions it makes
rest on what conditions cannot see.

* Staleness is a content hash. A trial is due when no stored result matches its parameters and the
  inputs' fingerprint (the corpus and labels content hashes, the UMAP seed, the stop-word language, the
  held-out split);
  an embedding set when no cache file matches the corpus hash. Conditions follow materialisation
  events and data versions: ``any_deps_updated`` fires on a re-export of identical texts, and neither
  it nor ``data_version_changed`` sees the seed or the language, which are settings, not assets.
* The sweep is a subset of the partitions. Trial partitions outlive their grid (history stays
  browsable); which ones the current sweep holds is in the grid manifest on disk. A condition on the
  leaderboard over its ``grid_trials`` dependency would wait for every partition ever registered.
* A trial needs one embedding set, named in its parameters. No public partition mapping leads from a
  trial key to its set's key, and through ``AllPartitionMapping`` a condition would hold every trial
  until every set is embedded; the planner starts a set's trials as soon as that set is cached.
* Search rounds: ``search_job`` is due when the leaderboard ranks exactly the round's current results
  (its ``results_digest``) and the search state on disk says the search goes on, on these inputs.
  Neither is an asset event.
* The command line runs a sweep without the daemon, which is what evaluates conditions.

Dagster keeps what it does well here: runs in flight come from its run statuses, a range of trials
runs as one run through its partition-range tags, and UI backfills are split by ``grid_trials``'s
``BackfillPolicy``.
"""

from __future__ import annotations

import dataclasses

import dagster as dg

from topic_pipeline._compat.dagster import run_partition_tags
from topic_pipeline.defs.assets.trials import TRIALS_PER_RUN, trial_metadata
from topic_pipeline.defs.partitions import embedding_set_partitions, trial_partitions
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.domain.results import TrialResult, results_digest
from topic_pipeline.storage.files import read_json
from topic_pipeline.storage.paths import DataPaths
from topic_pipeline.workflow.search_round import search_continues
from topic_pipeline.workflow.trials import GridStatus, grid_status

# Checked when this module loads: a Dagster that renamed them is refused before any run is planned.
PARTITION_TAG, PARTITION_RANGE_START_TAG, PARTITION_RANGE_END_TAG = run_partition_tags()

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


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """The partitions to add before the runs, the runs, and materialisations to record without a run: those
    of new partitions whose trial already has a current result in the data directory (stored before this
    Dagster instance knew the partition), so the UI shows them materialised rather than missing."""

    partitions: list[dg.AddDynamicPartitionsRequest]
    runs: list[PlannedRun]
    asset_events: list[dg.AssetMaterialization] = dataclasses.field(default_factory=list)
    # Trial partitions no grid registered (one added by hand in the UI, say): never run, only named here.
    unplanned: list[str] = dataclasses.field(default_factory=list)

    def unplanned_note(self) -> str | None:
        """One line naming the trial partitions no grid planned, or None."""
        if not self.unplanned:
            return None
        named = ", ".join(f"'{key}'" for key in self.unplanned[:5]) + (" and more" if len(self.unplanned) > 5 else "")
        return (
            f"{len(self.unplanned)} grid_trials partition(s) were not planned by any grid ({named}): left alone, never "
            "run; delete them from the asset's Partitions tab if they were added by mistake"
        )


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
    start = run.tags.get(PARTITION_RANGE_START_TAG)
    end = run.tags.get(PARTITION_RANGE_END_TAG)
    single = run.tags.get(PARTITION_TAG)
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


def _new_partitions(
    instance: dg.DagsterInstance, manifest: dict
) -> tuple[list[dg.AddDynamicPartitionsRequest], list[str], list[str]]:
    """The requests adding the grid's new embedding sets and trials, the trial partitions Dagster holds and
    the new trial keys. Existing partitions are kept, whatever the grid: earlier sweeps' trials stay browsable."""
    known_sets = set(instance.get_dynamic_partitions(embedding_set_partitions.name))
    known_trials = instance.get_dynamic_partitions(trial_partitions.name)
    registered = set(known_trials)
    new_sets = [key for key in manifest["embedding_sets"] if key not in known_sets]
    new_trials = [key for key in manifest["trials"] if key not in registered]
    partitions = [
        definition.build_add_request(keys)
        for definition, keys in ((embedding_set_partitions, new_sets), (trial_partitions, new_trials))
        if keys
    ]
    return partitions, known_trials, new_trials


def _trials_runs(ordered: list[str], runnable: set[str], fingerprint: str) -> list[PlannedRun]:
    """One run per contiguous range of the runnable trials in the partition order."""
    return [
        PlannedRun(
            "trials_job",
            f"trials:{fingerprint}:{start}:{end}",
            tags={PARTITION_RANGE_START_TAG: start, PARTITION_RANGE_END_TAG: end},
        )
        for start, end in contiguous_ranges(ordered, runnable, TRIALS_PER_RUN)
    ]


def _in_flight(instance: dg.DagsterInstance, job_name: str) -> bool:
    """Whether a run of ``job_name`` is queued or running."""
    statuses = [
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
    ]
    return bool(instance.get_run_ids(dg.RunsFilter(job_name=job_name, statuses=statuses), limit=1))


def _closing_run(instance: dg.DagsterInstance, paths: DataPaths, status: GridStatus) -> PlannedRun | None:
    """Once every trial has a current result: the leaderboard, unless it ranks exactly these results; then,
    for a search that goes on, the run that closes its round and proposes the next."""
    digest = results_digest(status.manifest["grid_fingerprint"], status.fingerprint, status.results)
    latest = instance.get_latest_materialization_event(dg.AssetKey("leaderboard"))
    ranked = (
        latest.asset_materialization.metadata.get("results_digest") if latest and latest.asset_materialization else None
    )
    if ranked is None or ranked.value != digest:
        return PlannedRun("leaderboard_job", f"leaderboard:{digest}")
    report = instance.get_latest_materialization_event(dg.AssetKey("sweep_report"))
    if (report is None or report.timestamp < latest.timestamp) and not _in_flight(instance, "leaderboard_job"):
        # The run that ranked stopped before its report: the report alone.
        return PlannedRun("report_job", f"report:{latest.timestamp}")
    if search_continues(paths, status.manifest, status.fingerprint):
        # The leaderboard ranks the whole round: time to close it and propose the next.
        return PlannedRun("search_job", f"search:{digest}")
    return None


def plan_sweep(instance: dg.DagsterInstance, settings: PipelineSettings) -> SweepPlan:
    """What the sweep needs next; reads the instance and the data directory, changes neither."""
    paths = settings.paths
    corpus_hash = _latest_hash(instance, "documents")
    labels_hash = _latest_hash(instance, "ground_truth")
    if corpus_hash is None or labels_hash is None or not paths.current_grid.exists():
        return SweepPlan([], [])
    manifest = read_json(paths.current_grid)
    partitions, known_trials, new_trials = _new_partitions(instance, manifest)
    status = grid_status(settings.sweep_config(), manifest, corpus_hash, labels_hash)
    plans = [
        PlannedRun("embeddings_job", f"embeddings:{set_key}:{corpus_hash}", partition_key=set_key)
        for set_key in status.unready_sets
    ]
    # The order Dagster will hold once the new keys are added (appended, in the request's order).
    ordered = [*known_trials, *new_trials]
    in_flight = _keys_in_flight(instance, ordered)
    asset_events = [
        _materialisation_of_stored_result(key, status.results[key])
        for key in new_trials
        if status.results[key] is not None and key not in in_flight
    ]
    plans += _trials_runs(ordered, status.runnable(in_flight), status.fingerprint)
    if not status.pending and not plans:
        closing = _closing_run(instance, paths, status)
        plans += [closing] if closing else []
    # Every trial a grid planned has its parameters registered in the data directory.
    unplanned = [key for key in known_trials if not paths.is_registered(key)]
    return SweepPlan(partitions, plans, asset_events, unplanned)


def _materialisation_of_stored_result(key: str, result: TrialResult) -> dg.AssetMaterialization:
    return dg.AssetMaterialization(
        asset_key="grid_trials",
        partition=key,
        metadata=trial_metadata(result),
        description=f"Trial {key}: its result was already stored; not rerun.",
    )


def add_partitions(instance: dg.DagsterInstance, requests: list[dg.AddDynamicPartitionsRequest]) -> None:
    """Apply a plan's partition requests through the instance, as the sensor daemon applies a
    ``SensorResult``'s (keys that exist meanwhile are skipped)."""
    for request in requests:
        known = set(instance.get_dynamic_partitions(request.partitions_def_name))
        missing = [key for key in request.partition_keys if key not in known]
        if missing:
            instance.add_dynamic_partitions(request.partitions_def_name, missing)


def plan_next_runs(instance: dg.DagsterInstance, settings: PipelineSettings) -> list[PlannedRun]:
    """The runs to execute next, for a caller that executes them itself (the command line): the
    partitions they target are added first, since a run can only target partitions that exist."""
    plan = plan_sweep(instance, settings)
    add_partitions(instance, plan.partitions)
    for event in plan.asset_events:
        instance.report_runless_asset_event(event)
    return plan.runs

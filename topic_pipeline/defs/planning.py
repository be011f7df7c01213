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
``BackfillPolicy``. The planner splits a sweep's trials along the work they share instead
(``_trials_runs``), so that runs on different machines never build the same neighbour graph.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Mapping
from typing import Any

import dagster as dg

from topic_pipeline._compat.dagster import parent_run_tag, run_partition_tags, will_retry_tag
from topic_pipeline.defs.assets.trials import TRIALS_PER_RUN, trial_metadata
from topic_pipeline.defs.partitions import embedding_set_partitions, trial_partitions
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.domain.results import TrialResult, results_digest
from topic_pipeline.domain.trials import TrialParams
from topic_pipeline.storage.files import read_json
from topic_pipeline.storage.paths import DataPaths
from topic_pipeline.workflow.search_round import search_continues
from topic_pipeline.workflow.trials import GridStatus, grid_status

# Checked when this module loads: a Dagster that renamed them is refused before any run is planned.
PARTITION_TAG, PARTITION_RANGE_START_TAG, PARTITION_RANGE_END_TAG = run_partition_tags()
WILL_RETRY_TAG, PARENT_RUN_TAG = will_retry_tag(), parent_run_tag()
# Dagster tags a failed run with its retry decision just after the failure: a failure younger than this
# without the tag counts as one the run-retry daemon may still retry.
RETRY_DECISION_SECONDS = 60.0

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


def contiguous_blocks(ordered_keys: list[str], wanted: set[str]) -> list[list[str]]:
    """The wanted keys as the longest stretches of the partition order that contain no unwanted key."""
    blocks: list[list[str]] = []
    current: list[str] = []
    for key in ordered_keys:
        if key in wanted:
            current.append(key)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def run_partition_keys(run: dg.DagsterRun, ordered_keys: list[str]) -> list[str]:
    position = {key: index for index, key in enumerate(ordered_keys)}
    start = run.tags.get(PARTITION_RANGE_START_TAG)
    end = run.tags.get(PARTITION_RANGE_END_TAG)
    single = run.tags.get(PARTITION_TAG)
    if start in position and end in position:
        return ordered_keys[position[start] : position[end] + 1]
    return [single] if single else []


def retry_pending(instance: dg.DagsterInstance, record: dg.RunRecord) -> bool:
    """Whether the run-retry daemon (``run_retries:`` in dagster.yaml) is to launch a retry of this failed run
    that does not exist yet: its work is as good as in flight, and planning it again would run it twice."""
    run = record.dagster_run
    if run.status != dg.DagsterRunStatus.FAILURE:
        return False
    decision = run.tags.get(WILL_RETRY_TAG)
    if decision is None:
        ended = record.end_time or record.update_timestamp.timestamp()
        if not instance.run_retries_enabled or time.time() - ended > RETRY_DECISION_SECONDS:
            return False
    elif decision != "true":
        return False
    return not instance.get_run_ids(dg.RunsFilter(tags={PARENT_RUN_TAG: run.run_id}), limit=1)


def _keys_in_flight(instance: dg.DagsterInstance, ordered_keys: list[str]) -> set[str]:
    """The trial keys of runs queued or running, and of failed runs about to be retried."""
    busy: set[str] = set()
    records = instance.get_run_records(dg.RunsFilter(statuses=IN_FLIGHT))
    if instance.run_retries_enabled:
        records += [
            record
            for record in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]), limit=200)
            if retry_pending(instance, record)
        ]
    for record in records:
        run = record.dagster_run
        # Sensor runs are trials_job runs; a backfill launched from the UI runs as an asset job of its own.
        if run.job_name == "trials_job" or dg.AssetKey("grid_trials") in (run.asset_selection or ()):
            busy.update(run_partition_keys(run, ordered_keys))
    return busy


def _new_partitions(
    instance: dg.DagsterInstance, manifest: dict
) -> tuple[list[dg.AddDynamicPartitionsRequest], list[str], list[str]]:
    """The requests adding the grid's new embedding sets and trials, the trial partitions Dagster holds and
    the new trial keys. Existing partitions are kept, in their order, whatever the grid: earlier sweeps' trials
    stay browsable. New trials are added in group order (``in_group_order``), so that a run's range can hold
    whole groups."""
    known_sets = set(instance.get_dynamic_partitions(embedding_set_partitions.name))
    known_trials = instance.get_dynamic_partitions(trial_partitions.name)
    registered = set(known_trials)
    new_sets = [key for key in manifest["embedding_sets"] if key not in known_sets]
    new_trials = in_group_order([key for key in manifest["trials"] if key not in registered], manifest["trials"])
    partitions = [
        definition.build_add_request(keys)
        for definition, keys in ((embedding_set_partitions, new_sets), (trial_partitions, new_trials))
        if keys
    ]
    return partitions, known_trials, new_trials


def shared_work(params: Mapping[str, Any]) -> tuple[tuple, tuple]:
    """The neighbour graph and the UMAP reduction a trial needs, as the engine groups trials
    (``engine.fast.plan_groups``): the graph by embedding set, n_neighbors and UMAP seed, the reduction by
    the graph, n_components and min_dist. The seed is the configured one plus the trial's replicate, and
    one sweep has one configured seed, so the replicate stands for it."""
    trial = TrialParams.from_dict(params)
    graph = (trial.embedding_set.key, trial.umap_n_neighbors, trial.seed_replicate)
    return graph, (*graph, trial.umap_n_components, trial.umap_min_dist)


def in_group_order(keys: list[str], trials: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """``keys`` with the trials of each neighbour graph together, and within those of each reduction; graphs,
    reductions and trials otherwise in their order in ``keys`` (a grid's own order already groups them)."""
    graphs: dict[tuple, int] = {}
    layouts: dict[tuple, int] = {}
    position: dict[str, tuple[int, int]] = {}
    for key in keys:
        graph, layout = shared_work(trials[key])
        position[key] = (graphs.setdefault(graph, len(graphs)), layouts.setdefault(layout, len(layouts)))
    return sorted(keys, key=position.__getitem__)


def _uncut_pieces(block: list[str], trials: Mapping[str, Mapping[str, Any]], whole: int) -> list[list[str]]:
    """A stretch of runnable keys as the pieces no run boundary may cut: the trials of each neighbour graph
    (``whole=0``) or of each UMAP reduction (``whole=1``), as ``shared_work`` names them."""
    pieces: list[list[str]] = []
    for _, group in itertools.groupby(block, key=lambda key: shared_work(trials[key])[whole]):
        group = list(group)
        if len(group) <= TRIALS_PER_RUN:
            pieces.append(group)
            continue
        # A group too large for one run is cut: between its reductions where they fit in a run, else anywhere.
        for _, layout in itertools.groupby(group, key=lambda key: shared_work(trials[key])[1]):
            layout = list(layout)
            pieces += [layout[start : start + TRIALS_PER_RUN] for start in range(0, len(layout), TRIALS_PER_RUN)]
    return pieces


def _fill(sizes: list[int], load: int) -> list[tuple[int, int]]:
    """Consecutive pieces of these sizes as ranges ``(first, end)`` of at most ``load`` trials, each as full as
    it goes: the fewest such ranges (no piece is larger than ``load``)."""
    ranges: list[tuple[int, int]] = []
    start, total = 0, 0
    for index, size in enumerate(sizes):
        if total and total + size > load:
            ranges.append((start, index))
            start, total = index, 0
        total += size
    ranges.append((start, len(sizes)))
    return ranges


def _balanced_ranges(blocks: list[list[int]], runs: int) -> list[tuple[int, int, int]]:
    """Each block's pieces (given by size) as ranges ``(block, first, end)`` of consecutive pieces: ``runs``
    ranges in all, or the fewest that fit in runs of ``TRIALS_PER_RUN`` if more, or one per piece if fewer
    pieces; with the largest range as small as that number allows."""

    def fill(load: int) -> list[tuple[int, int, int]]:
        return [(block, first, end) for block, sizes in enumerate(blocks) for first, end in _fill(sizes, load)]

    runs = max(runs, len(fill(TRIALS_PER_RUN)))
    # The fewest ranges falls as the load allowed a range grows: the smallest load that needs at most ``runs``.
    low, high = max(max(sizes) for sizes in blocks), TRIALS_PER_RUN
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if len(fill(middle)) <= runs else (middle + 1, high)
    ranges = fill(low)
    # Ranges as full as they go can leave runs unused: split the heaviest range holding several pieces, at its
    # most even boundary, while runs are left.
    totals = [list(itertools.accumulate(sizes, initial=0)) for sizes in blocks]
    while len(ranges) < runs:
        splittable = [(block, first, end) for block, first, end in ranges if end - first > 1]
        if not splittable:
            break
        block, first, end = max(
            splittable, key=lambda bounds: totals[bounds[0]][bounds[2]] - totals[bounds[0]][bounds[1]]
        )
        total = totals[block]
        cut = min(range(first + 1, end), key=lambda at: abs(2 * total[at] - total[first] - total[end]))
        index = ranges.index((block, first, end))
        ranges[index : index + 1] = [(block, first, cut), (block, cut, end)]
    return ranges


# A neighbour graph is built by two runs only when that shortens the longest run by more than this share: a
# graph costs a fraction of the layouts built on it, and runs that hold whole graphs can be far apart in size
# (a grid with three graphs on two machines, say).
GRAPH_SPLIT_GAIN = 0.10


def _trials_runs(
    ordered: list[str], runnable: set[str], trials: Mapping[str, Mapping[str, Any]], fingerprint: str, sweep_runs: int
) -> list[PlannedRun]:
    """The runnable trials as ``sweep_runs`` runs, each one range of the partition order, balanced by trial count,
    that never share a UMAP reduction and share a neighbour graph only where balance needs it: runs on
    different machines do not do the same work.

    A run's range holds whole groups of trials sharing a graph (``shared_work``), or, when cutting between
    reductions shortens the longest run by more than ``GRAPH_SPLIT_GAIN``, whole groups sharing a reduction
    (then a graph cut by a run boundary is built by both runs: at most ``sweep_runs`` - 1 graphs twice). A range
    never holds a key that is not runnable, nor more than ``TRIALS_PER_RUN`` trials. There are fewer runs when
    there are fewer groups, more when the groups do not fit in ``sweep_runs`` runs of ``TRIALS_PER_RUN`` or
    when keys that are not runnable (done, in flight, not of this grid) cut the order into more stretches;
    ``sweep_runs=1`` asks for the fewest runs.

    A group is whole only where its partitions are contiguous: those registered in another order (by an
    earlier version, or a group that gained trials in a later grid) may be split across runs. Below the engine's
    small-data limit one exact graph serves all of an embedding set's n_neighbors: there, runs that split an
    embedding set each build that graph unless they find it in a data directory's cache they share.
    """
    stretches = contiguous_blocks(ordered, runnable)
    if not stretches:
        return []
    plans = []
    for whole in (0, 1):  # whole graphs, then whole reductions
        blocks = [_uncut_pieces(stretch, trials, whole) for stretch in stretches]
        ranges = _balanced_ranges([[len(piece) for piece in pieces] for pieces in blocks], sweep_runs)
        keys = [[key for piece in blocks[block][first:end] for key in piece] for block, first, end in ranges]
        plans.append(keys)
    by_graph, by_reduction = (max(len(keys) for keys in plan) for plan in plans)
    chosen = plans[1] if by_reduction < (1 - GRAPH_SPLIT_GAIN) * by_graph else plans[0]
    return [
        PlannedRun(
            "trials_job",
            f"trials:{fingerprint}:{keys[0]}:{keys[-1]}",
            tags={PARTITION_RANGE_START_TAG: keys[0], PARTITION_RANGE_END_TAG: keys[-1]},
        )
        for keys in chosen
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
    plans += _trials_runs(
        ordered, status.runnable(in_flight), manifest["trials"], status.fingerprint, settings.sweep_runs
    )
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

"""Grid trials: one partition per combination, scored against the labelled sample."""

import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pandas as pd

from topic_pipeline.inputs.corpus import Corpus
from topic_pipeline.defs.assets.embeddings import embeddings
from topic_pipeline.defs.partitions import trial_partitions
from topic_pipeline.inputs.embeddings import EmbeddingCache
from topic_pipeline.engine.fast import EmbeddingSource, SweepStats
from topic_pipeline.engine.progress import SweepProgress
from topic_pipeline.inputs.ground_truth import GroundTruth
from topic_pipeline.defs.resources.mlflow import MlflowTracking
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.processes import exit_with_parent, process_identity
from topic_pipeline.storage.migrations import CARRIED_OVER_FROM_TAG
from topic_pipeline.storage.results import ResultStore
from topic_pipeline.domain.results import STATUS_OK, TrialResult
from topic_pipeline.storage.files import read_json
from topic_pipeline.storage.paths import sweep_id
from topic_pipeline.engine.sweep import LabelledSample, ScoredTrial, run_trials

# The trials step's own process (``host:pid:start``): it may outlive the process that executed its run,
# and recovery waits for it before planning its trials again.
STEP_PROCESS_TAG = "topic_pipeline/step_process"

# A backfill runs as few runs of up to this many partitions each: every run starts its worker pool
# (imports, numba compilation) once, and trials sharing a UMAP reduction stay in one run.
TRIALS_PER_RUN = 1000

# A run tag naming the file where the step keeps its progress current (set by the command line, which
# draws a progress bar from it), and how often the step logs and saves its progress.
PROGRESS_FILE_TAG = "topic_pipeline/progress_file"
PROGRESS_LOG_SECONDS = 15.0
PROGRESS_FILE_SECONDS = 0.5


def trial_metadata(result: TrialResult) -> dict[str, object]:
    """A trial partition's materialisation metadata, from its stored result row."""
    metadata: dict[str, object] = {
        "status": result.status,
        "duration_s": round(result.duration_s, 3),
        "mlflow_run_id": result.tags.get("mlflow_run_id", ""),
        "inputs_fingerprint": result.fingerprint,
        "params": dg.MetadataValue.json(result.params),
    }
    if result.status == STATUS_OK:
        metadata.update({name: float(value) for name, value in result.metrics.items()})
    else:
        metadata["error"] = dg.MetadataValue.text(result.error or "")
    return metadata


@dg.asset(
    group_name="sweep",
    partitions_def=trial_partitions,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=TRIALS_PER_RUN),
    deps=[dg.AssetDep(embeddings, partition_mapping=dg.AllPartitionMapping())],
    kinds={"python"},
    output_required=False,  # its partitions materialise as events, one as each trial finishes
)
def grid_trials(
    context: dg.AssetExecutionContext,
    documents: pd.DataFrame,
    ground_truth: dict,
    settings: PipelineSettings,
    mlflow: MlflowTracking,
) -> Iterator[dg.AssetMaterialization | dg.AssetObservation]:
    """UMAP -> HDBSCAN -> BERTopic labels on the cached embeddings, scored against the labelled sample.

    Each partition materialises the moment its trial is done (the UI shows a run's progress), with its
    own metadata and MLflow run. A failing combination is recorded as failed (here, in MLflow and on the
    leaderboard); the others go on. The run's engine figures close it as an observation.
    """
    # A step killed with its run's process must not go on computing trials that a rerun plans again;
    # recovery reads the step's own identity to wait for it.
    exit_with_parent()
    context.instance.add_run_tags(context.run_id, {STEP_PROCESS_TAG: process_identity()})
    paths = settings.paths
    corpus = Corpus.from_frame(documents)
    labels = GroundTruth.from_mapping(ground_truth)
    positions, classes = labels.aligned(corpus.ids)
    heldout = settings.holdout_split(labels).mask(corpus.ids[positions])
    fingerprint = settings.inputs_fingerprint(corpus.content_hash, labels.content_hash)
    trials = [(key, paths.trial_params(key)) for key in context.partition_keys]
    # The search round that proposed each trial, so the UI and MLflow show why a trial exists.
    manifest = read_json(paths.current_grid) if paths.current_grid.exists() else {}
    rounds = manifest.get("rounds", {})

    cache = EmbeddingCache(paths.embeddings)
    sources: dict[str, EmbeddingSource] = {}
    for _, params in trials:
        embedding_set = params.embedding_set
        if embedding_set.key not in sources:
            cache_key, _ = cache.require_for_corpus(
                embedding_set, corpus.content_hash, len(corpus), settings.stopwords_language
            )
            sources[embedding_set.key] = EmbeddingSource(str(cache.path(cache_key)), cache_key, len(corpus))

    store = ResultStore(paths.results)
    tracker = mlflow.tracker(paths)
    # A key recorded before (a stored result, or a run a stop left unfinished) gets its older MLflow runs
    # superseded; a first recording skips that search.
    unfinished = tracker.trial_keys_with_unfinished_runs()
    # Each trial's run is nested under its sweep's run (or its search round's), found or created on first use.
    parents: dict[int | None, str] = {}

    def parent_run(key: str) -> str | None:
        if "grid" not in manifest:
            return None
        search_round = rounds.get(key)
        if search_round not in parents:
            parents[search_round] = tracker.sweep_run(sweep_id(manifest["grid"], fingerprint), search_round)
        return parents[search_round]

    def record(scored: ScoredTrial) -> dg.AssetMaterialization:
        result = scored.result
        origin = {"search_round": str(rounds[result.key])} if result.key in rounds else {}
        recorded = store.path(result.key).exists()
        # A result carried over from the first form of keys (storage.migrations) has its MLflow run under that key.
        stored = store.load(result.key) if recorded else None
        legacy = stored.tags.get(CARRIED_OVER_FROM_TAG) if stored else None
        run_id = tracker.log_trial(
            result,
            {"dagster_run_id": context.run.run_id, "dagster_partition_key": result.key, "inputs_fingerprint": fingerprint,
             **origin},
            supersede_older=result.key in unfinished or recorded,
            parent_run_id=parent_run(result.key),
            also_supersede=[legacy] if legacy else [],
        )
        result.tags = {"mlflow_run_id": run_id, "dagster_run_id": context.run.run_id}
        store.save(result, scored.labels)
        metadata = trial_metadata(result)
        metadata.update({name: int(value) for name, value in origin.items()})
        url = tracker.run_url(run_id)
        if url:
            metadata["mlflow_run"] = dg.MetadataValue.url(url)
        if result.status != STATUS_OK:
            failed.append(result.key)
            context.log.error("%s failed: %s", result.key, result.error)
        return dg.AssetMaterialization(asset_key=context.asset_key, partition=result.key, metadata=metadata)

    def sweep(on_result: Callable[[ScoredTrial], None]) -> SweepStats:
        return run_trials(
            trials,
            sources,
            corpus.texts,
            LabelledSample(positions, classes, heldout),
            fingerprint,
            settings.umap_seed,
            settings.stopwords_language,
            paths.reductions,
            on_result,
            engine=settings.engine,
            workers=settings.workers or None,
            # MLflow's import and its store's first connection cost seconds: paid while the workers start.
            meanwhile=lambda: tracker.experiment_id,
        )

    failed: list[str] = []
    stats = None
    trial_rounds = {rounds.get(key) for key, _ in trials}
    progress = SweepProgress(len(trials), settings.rank_by, round=trial_rounds.pop() if len(trial_rounds) == 1 else None)
    # The command line asks for a progress file (its progress bar) with a run tag; the UI reads the log. A
    # re-execution (from the UI) copies its run's tags, but no command line reads its file.
    progress_file = context.run.tags.get(PROGRESS_FILE_TAG) if context.run.parent_run_id is None else None
    last_logged = last_saved = 0.0
    for finished in as_they_finish(sweep):
        if isinstance(finished, SweepStats):
            stats = finished
            continue
        yield record(finished)
        result = finished.result
        progress.add(result.key, result.metrics.get(settings.rank_by) if result.status == STATUS_OK else None)
        now = time.monotonic()
        # At a steady rate, not per trial: a thousand trials would bury the run's log.
        if now - last_logged >= PROGRESS_LOG_SECONDS or progress.finished:
            context.log.info(progress.describe())
            last_logged = now
        if progress_file and (now - last_saved >= PROGRESS_FILE_SECONDS or progress.finished):
            try:
                progress.save(Path(progress_file))
            except OSError as error:  # a display aid: never a reason to stop the trials
                context.log.warning("progress file %s not written (%s); the command line shows no progress", progress_file, error)
                progress_file = None
            last_saved = now
    context.log.info(
        "%d trials in %.1fs (%d failed): %d UMAP reductions computed, %d reused from cache, %d HDBSCAN trees, "
        "%d worker(s)",
        stats.trials, stats.seconds, len(failed), stats.reductions_computed, stats.reductions_reused,
        stats.trees_built, stats.workers,
    )
    yield dg.AssetObservation(
        asset_key=context.asset_key,
        metadata={
            "trials_in_run": len(trials),
            "failed_in_run": len(failed),
            "engine": settings.engine,
            "run_seconds": round(stats.seconds, 2),
            "umap_reductions_computed": stats.reductions_computed,
            "umap_reductions_reused": stats.reductions_reused,
            "hdbscan_trees_built": stats.trees_built,
            # What outlier reduction cost in the workers (included in run_seconds' work).
            "outlier_variants": stats.outlier_variants,
            "outlier_seconds": round(stats.outlier_seconds, 2),
        },
    )


class _SweepFailed:
    def __init__(self, error: BaseException):
        self.error = error


class SweepAbandoned(Exception):
    """Raised inside the sweep's thread when the step stopped consuming its trials."""


def as_they_finish(sweep: Callable[[Callable[[ScoredTrial], None]], SweepStats]) -> Iterator[ScoredTrial | SweepStats]:
    """Runs ``sweep`` in a thread; yields each trial as it finishes, then the sweep's stats.

    Dagster writes an asset's events as its generator yields them, so each partition materialises as
    soon as its trial is done while the sweep goes on. If the step stops consuming (cancelled, failed),
    the sweep is stopped at its next trial: its pending work is dropped, not finished.
    """
    finished: queue.Queue = queue.Queue()
    abandoned = threading.Event()

    def on_result(scored: ScoredTrial) -> None:
        if abandoned.is_set():
            raise SweepAbandoned("the step stopped consuming the sweep's trials")
        finished.put(scored)

    def run() -> None:
        try:
            finished.put(sweep(on_result))
        except BaseException as error:  # noqa: BLE001 - handed to the consuming thread, which raises it
            finished.put(_SweepFailed(error))

    thread = threading.Thread(target=run, name="sweep", daemon=True)
    thread.start()
    try:
        while True:
            item = finished.get()
            if isinstance(item, _SweepFailed):
                raise item.error
            yield item
            if isinstance(item, SweepStats):
                return
    finally:
        abandoned.set()

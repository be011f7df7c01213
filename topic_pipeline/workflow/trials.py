"""A batch of trials run and recorded: each trial scored by the engine, logged to MLflow (nested under its
sweep's or search round's run, superseding its older runs) and stored, handed on the moment it is done.

``run_trial_batch`` is a generator: it yields each ``RecordedTrial`` as its trial finishes (the Dagster
layer turns each into a materialisation of its partition while the sweep goes on), then one
``TrialBatchSummary``. Which trials of a grid are due is decided here too (``grid_status``), for the
planner.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from topic_pipeline.domain.results import STATUS_OK, TrialResult
from topic_pipeline.domain.trials import EmbeddingSet, TrialParams
from topic_pipeline.engine.capacity import Layout, check_capacity, estimate_needs
from topic_pipeline.engine.fast import EmbeddingSource, SweepStats
from topic_pipeline.engine.progress import SweepProgress
from topic_pipeline.engine.sweep import LabelledSample, ScoredTrial, run_trials
from topic_pipeline.inputs.embeddings import EmbeddingCache
from topic_pipeline.integrations.mlflow_tracking import MlflowTracker
from topic_pipeline.settings import Settings
from topic_pipeline.storage.paths import sweep_id
from topic_pipeline.storage.results import ResultStore
from topic_pipeline.workflow.sweep_inputs import SweepConfig, SweepInputs

# How often a batch logs its progress, and how often it saves it to a progress file.
PROGRESS_LOG_SECONDS = 15.0
PROGRESS_FILE_SECONDS = 0.5

# Where a stage logs unless told (the Dagster layer passes its run log, itself a ``logging.Logger``).
_logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RecordedTrial:
    """One finished trial, logged to MLflow and stored: its result (its tags name its MLflow and Dagster runs)."""

    result: TrialResult
    search_round: int | None = None  # the search round that proposed it, for a search
    run_url: str | None = None  # its MLflow run in the MLflow UI, where one is configured

    @property
    def key(self) -> str:
        return self.result.key

    @property
    def failed(self) -> bool:
        return self.result.status != STATUS_OK


@dataclasses.dataclass(frozen=True)
class TrialBatchSummary:
    """What a batch did, once its last trial is recorded."""

    trials: int
    failed: list[str]
    engine: str
    stats: SweepStats


def embedding_sources(inputs: SweepInputs, trials: Iterable[tuple[str, TrialParams]]) -> dict[str, EmbeddingSource]:
    """The cached embeddings of each embedding set the trials use (refused unless cached and intact)."""
    corpus = inputs.corpus
    cache = EmbeddingCache(inputs.paths.embeddings)
    sources: dict[str, EmbeddingSource] = {}
    for _, params in trials:
        embedding_set = params.embedding_set
        if embedding_set.key not in sources:
            cache_key, _ = cache.require_for_corpus(
                embedding_set, corpus.content_hash, len(corpus), inputs.config.stopwords_language
            )
            sources[embedding_set.key] = EmbeddingSource(str(cache.path(cache_key)), cache_key, len(corpus))
    return sources


def check_sweep_capacity(
    inputs: SweepInputs, trials: Sequence[tuple[str, TrialParams]], sources: dict[str, EmbeddingSource]
) -> None:
    """Refuse, before any trial starts, a batch whose workers would not fit in memory or whose caches would not
    fit on the data directory's disk (``engine.capacity``): never halfway, under the OOM killer."""
    if not trials:
        return
    config = inputs.config
    dimensions = max(
        int(np.load(source.path, mmap_mode="r", allow_pickle=False).shape[1]) for source in sources.values()
    )
    # One layout per reduction group; one graph per embedding set, k and seed (engine/reduction.py's cache key).
    layouts = {
        (p.embedding_set.key, p.umap_n_neighbors, p.umap_n_components, p.umap_min_dist, p.seed_replicate): Layout(
            p.umap_n_neighbors, p.umap_n_components, (p.embedding_set.key, p.umap_n_neighbors, p.seed_replicate)
        )
        for _, p in trials
    }
    workers = 1 if config.engine == "reference" else (config.workers or os.cpu_count() or 1)
    min_samples = max(p.hdbscan_min_samples or p.hdbscan_min_cluster_size for _, p in trials)
    needs = estimate_needs(
        len(inputs.corpus),
        dimensions,
        workers,
        layouts.values(),
        len(trials),
        min_samples,
        reference=config.engine == "reference",
    )
    check_capacity(needs, inputs.paths.root, Settings.env_name("workers"))


class _Recorder:
    """Logs each finished trial to MLflow and stores it, for one batch."""

    def __init__(self, inputs: SweepInputs, tracker: MlflowTracker, dagster_run_id: str):
        self.inputs, self.tracker, self.dagster_run_id = inputs, tracker, dagster_run_id
        # A key recorded before (a stored result, or a run a stop left unfinished) gets its older MLflow runs
        # superseded; a first recording skips that search.
        self.unfinished = tracker.trial_keys_with_unfinished_runs()
        # Each trial's run is nested under its sweep's run (or its search round's), found or created on first use.
        self.parents: dict[int | None, str] = {}

    def parent_run(self, key: str) -> str | None:
        manifest = self.inputs.manifest
        if "grid" not in manifest:
            return None
        search_round = self.inputs.rounds.get(key)
        if search_round not in self.parents:
            self.parents[search_round] = self.tracker.sweep_run(
                sweep_id(manifest["grid"], self.inputs.fingerprint), search_round
            )
        return self.parents[search_round]

    def record(self, scored: ScoredTrial) -> RecordedTrial:
        result, store, rounds = scored.result, self.inputs.store, self.inputs.rounds
        origin = {"search_round": str(rounds[result.key])} if result.key in rounds else {}
        recorded = store.path(result.key).exists()
        run_id = self.tracker.log_trial(
            result,
            {
                "dagster_run_id": self.dagster_run_id,
                "dagster_partition_key": result.key,
                "inputs_fingerprint": self.inputs.fingerprint,
                **origin,
            },
            supersede_older=result.key in self.unfinished or recorded,
            parent_run_id=self.parent_run(result.key),
        )
        result.tags = {"mlflow_run_id": run_id, "dagster_run_id": self.dagster_run_id}
        store.save(result, scored.labels)
        return RecordedTrial(result, rounds.get(result.key), self.tracker.run_url(run_id))


class _ProgressReport:
    """A batch's progress, logged at a steady rate (a thousand trials would bury the log) and, if asked
    for, kept current in a file (the command line's progress bar)."""

    def __init__(self, inputs: SweepInputs, keys: Sequence[str], log: logging.Logger, progress_file: Path | None):
        trial_rounds = {inputs.rounds.get(key) for key in keys}
        rank_by = inputs.config.rank_by
        self.progress = SweepProgress(len(keys), rank_by, round=trial_rounds.pop() if len(trial_rounds) == 1 else None)
        # "Best so far" is the sweep's, not this batch's: it starts from the trials earlier runs scored (their
        # result rows only: the labels files, checked when ranked, are not read here).
        batch = set(keys)
        for key, params in inputs.trials.items():
            result = None if key in batch else inputs.store.load(key)
            if (
                result
                and result.status == STATUS_OK
                and result.fingerprint == inputs.fingerprint
                and result.params == params
            ):
                self.progress.add_earlier(key, result.metrics.get(rank_by))
        self.log, self.progress_file = log, progress_file
        self.last_logged = self.last_saved = 0.0

    def add(self, result: TrialResult) -> None:
        progress = self.progress
        progress.add(result.key, result.metrics.get(progress.rank_by) if result.status == STATUS_OK else None)
        now = time.monotonic()
        if now - self.last_logged >= PROGRESS_LOG_SECONDS or progress.finished:
            self.log.info(progress.describe())
            self.last_logged = now
        if self.progress_file and (now - self.last_saved >= PROGRESS_FILE_SECONDS or progress.finished):
            try:
                progress.save(self.progress_file)
            except OSError as error:  # a display aid: never a reason to stop the trials
                self.log.warning(
                    "progress file %s not written (%s); the command line shows no progress", self.progress_file, error
                )
                self.progress_file = None
            self.last_saved = now


def recorded_by_earlier_attempts(
    inputs: SweepInputs, trials: Iterable[tuple[str, TrialParams]], earlier_attempts: Collection[str]
) -> dict[str, str]:
    """The trials whose current stored result (these inputs, these parameters) one of the runs
    ``earlier_attempts`` recorded: key -> that run's id, in the order of ``trials``."""
    done: dict[str, str] = {}
    if not earlier_attempts:
        return done
    for key, params in trials:
        result = inputs.store.current(key, inputs.fingerprint, params.to_dict())
        recorded_by = result.tags.get("dagster_run_id") if result is not None else None
        if recorded_by in earlier_attempts:
            done[key] = recorded_by
    return done


def run_trial_batch(
    inputs: SweepInputs,
    keys: Sequence[str],
    tracker: MlflowTracker,
    dagster_run_id: str,
    log: logging.Logger = _logger,
    progress_file: Path | None = None,
    earlier_attempts: Collection[str] = frozenset(),
) -> Iterator[RecordedTrial | TrialBatchSummary]:
    """Run the trials ``keys`` on the cached embeddings; yields each as it is recorded, then the summary.

    A failing combination is recorded as failed (in MLflow and the result store) and logged; the others go
    on. Each trial is recorded in the consuming thread while the sweep goes on in its own; a consumer that
    stops (closes this generator) stops the sweep at its next trial (``as_they_finish``).

    ``earlier_attempts``: the run ids of earlier attempts of this run (a retry re-executes a stopped run over
    the same keys). A trial one of them recorded, with a result still current, is neither run nor yielded:
    that attempt showed it when it finished it, or recovery shows it for the attempt
    (``trials_finished_by``), so it is shown once whichever did.
    """
    config = inputs.config
    # A partition no grid planned (added by hand in the UI) has no parameters: named, skipped, never guessed.
    unplanned = [key for key in keys if not inputs.paths.is_registered(key)]
    if unplanned:
        log.warning(
            "%d partition(s) of this run were planned by no grid and are skipped: %s",
            len(unplanned),
            ", ".join(unplanned[:5]) + (" and more" if len(unplanned) > 5 else ""),
        )
    trials = [(key, inputs.params(key)) for key in keys if key not in set(unplanned)]
    done_before = recorded_by_earlier_attempts(inputs, trials, earlier_attempts)
    if done_before:
        log.info(
            "%d trial(s) of this run are skipped, neither rerun nor materialised again: an earlier attempt of "
            "this run (%s) recorded them on the same inputs",
            len(done_before),
            ", ".join(sorted(set(done_before.values()))),
        )
        trials = [(key, params) for key, params in trials if key not in done_before]
    sources = embedding_sources(inputs, trials)
    check_sweep_capacity(inputs, trials, sources)
    positions, classes, heldout = inputs.labelled()
    recorder = _Recorder(inputs, tracker, dagster_run_id)

    def sweep(on_result: Callable[[ScoredTrial], None]) -> SweepStats:
        return run_trials(
            trials,
            sources,
            inputs.corpus.texts,
            LabelledSample(positions, classes, heldout),
            inputs.fingerprint,
            config.umap_seed,
            config.stopwords_language,
            inputs.paths.reductions,
            on_result,
            engine=config.engine,
            workers=config.workers or None,
            # MLflow's import and its store's first connection cost seconds: paid while the workers start.
            meanwhile=lambda: tracker.experiment_id,
        )

    failed: list[str] = []
    stats = None
    report = _ProgressReport(inputs, [key for key, _ in trials], log, progress_file)
    stream = as_they_finish(sweep)
    try:
        for finished in stream:
            if isinstance(finished, SweepStats):
                stats = finished
                continue
            recorded = recorder.record(finished)
            if recorded.failed:
                failed.append(recorded.key)
                log.error("%s failed: %s", recorded.key, recorded.result.error)
            yield recorded
            report.add(recorded.result)
    finally:
        stream.close()  # a consumer that stopped stops the sweep
    log.info(
        "%d trials in %.1fs (%d failed): %d UMAP reductions computed, %d reused from cache, %d HDBSCAN trees, "
        "%d worker(s)",
        stats.trials,
        stats.seconds,
        len(failed),
        stats.reductions_computed,
        stats.reductions_reused,
        stats.trees_built,
        stats.workers,
    )
    yield TrialBatchSummary(len(trials), failed, config.engine, stats)


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
        except BaseException as error:  # handed to the consuming thread, which raises it
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


def trials_finished_by(
    store: ResultStore, dagster_run_id: str, keys: Iterable[str], already_recorded: set[str]
) -> dict[str, TrialResult]:
    """The stored results among ``keys`` that the run ``dagster_run_id`` finished, but for those in
    ``already_recorded``: what a stopped run did and has not shown (key -> result, in the order of ``keys``)."""
    finished: dict[str, TrialResult] = {}
    for key in keys:
        result = store.load(key)
        if result is None or result.tags.get("dagster_run_id") != dagster_run_id or key in already_recorded:
            continue
        finished[key] = result
    return finished


@dataclasses.dataclass(frozen=True)
class GridStatus:
    """Where the current grid stands on the given inputs: which of its embedding sets are cached, which of
    its trials have a current result."""

    manifest: Mapping[str, Any]
    fingerprint: str
    ready_sets: set[str]
    unready_sets: list[str]  # in the manifest's order
    results: dict[str, TrialResult | None]

    @property
    def pending(self) -> set[str]:
        """The trials without a current result."""
        return {key for key, result in self.results.items() if result is None}

    def runnable(self, in_flight: set[str]) -> set[str]:
        """The pending trials no run is computing, whose embedding set is cached."""
        trials = self.manifest["trials"]
        return {
            key
            for key in self.pending - in_flight
            if EmbeddingSet(trials[key]["embedding_model"], trials[key]["remove_stopwords"]).key in self.ready_sets
        }


def grid_status(config: SweepConfig, manifest: Mapping[str, Any], corpus_hash: str, labels_hash: str) -> GridStatus:
    """The status of the grid ``manifest`` on the inputs with these content hashes; changes nothing."""
    cache = EmbeddingCache(config.paths.embeddings)
    ready: set[str] = set()
    unready: list[str] = []
    for set_key, values in manifest["embedding_sets"].items():
        if cache.ready(cache.key(EmbeddingSet(**values), corpus_hash, config.stopwords_language)):
            ready.add(set_key)
        else:
            unready.append(set_key)
    fingerprint = config.inputs_fingerprint(corpus_hash, labels_hash)
    store = ResultStore(config.paths.results)
    results = {key: store.current(key, fingerprint, params) for key, params in manifest["trials"].items()}
    return GridStatus(manifest, fingerprint, ready, unready, results)

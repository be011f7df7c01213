"""Run a batch of trials and score them: the fast engine by default, the reference fit on request.

Both paths end the same way: a ``TrialResult`` (ok with metrics, or failed with the error) and, for
scored trials, the topic labels, handed to ``on_result`` as each trial finishes. Topic words are not
computed here: they are for display, and only the leaderboard's leaders are shown (``topic_words``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from topic_pipeline.domain.results import STATUS_FAILED, STATUS_OK, TrialResult
from topic_pipeline.domain.trials import TrialParams
from topic_pipeline.engine.fast import EmbeddingSource, SweepEngine, SweepStats, TrialLabels, WorkerPool
from topic_pipeline.engine.reference import run_reference_trial
from topic_pipeline.errors import error_text
from topic_pipeline.scoring.holdout import score_parts

ENGINES = ("fast", "reference")


@dataclasses.dataclass(frozen=True)
class LabelledSample:
    positions: np.ndarray  # corpus positions of the labelled documents
    classes: np.ndarray  # their class ids
    heldout: np.ndarray | None = None  # per labelled document: held out from selection (None: no split)


@dataclasses.dataclass(frozen=True)
class ScoredTrial:
    result: TrialResult
    labels: np.ndarray | None  # each document's topic (-1: outlier); None for a failed trial


def labels_metrics(labels: np.ndarray, sample: LabelledSample) -> dict[str, float]:
    topic_count = int(len(np.unique(labels[labels >= 0])))
    return score_parts(sample.classes, labels[sample.positions], sample.heldout, topic_count)


def scored_result(
    key: str, params: TrialParams, metrics: dict[str, float], fingerprint: str, seconds: float
) -> TrialResult:
    return TrialResult(
        key,
        params.to_dict(),
        fingerprint,
        STATUS_OK,
        metrics=dict(metrics),
        duration_s=seconds,
        finished_at=time.time(),
    )


def failed_result(key: str, params: TrialParams, fingerprint: str, error: str, seconds: float) -> TrialResult:
    return TrialResult(
        key, params.to_dict(), fingerprint, STATUS_FAILED, error=error, duration_s=seconds, finished_at=time.time()
    )


def score_reference_trial(
    key: str,
    params: TrialParams,
    embeddings: np.ndarray,
    texts: list[str],
    sample: LabelledSample,
    fingerprint: str,
    seed: int,
    stopwords_language: str,
) -> ScoredTrial:
    """One plain BERTopic fit, scored. A failure becomes a failed result, never an exception."""
    started = time.perf_counter()
    try:
        outcome = run_reference_trial(embeddings, texts, params, seed=seed, stopwords_language=stopwords_language)
        metrics = labels_metrics(outcome.labels, sample)
        result = scored_result(key, params, metrics, fingerprint, time.perf_counter() - started)
    except Exception as exc:  # one bad combination must not sink the sweep
        return ScoredTrial(
            failed_result(key, params, fingerprint, error_text(exc), time.perf_counter() - started), None
        )
    return ScoredTrial(result, outcome.labels)


def run_trials(
    trials: Sequence[tuple[str, TrialParams]],
    sources: dict[str, EmbeddingSource],
    texts: list[str],
    sample: LabelledSample,
    fingerprint: str,
    seed: int,
    stopwords_language: str,
    cache_dir: Path,
    on_result: Callable[[ScoredTrial], None],
    engine: str = "fast",
    workers: int | None = None,
    pool: WorkerPool | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> SweepStats:
    """``pool``: an open ``WorkerPool`` to run on, kept warm across calls (else one per call).
    ``meanwhile``: preparation of the caller's, run while the workers start (see ``SweepEngine.run``)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine '{engine}'; choose one of {', '.join(ENGINES)}")
    if engine == "reference":
        if meanwhile:
            meanwhile()
        started = time.perf_counter()
        loaded: dict[str, np.ndarray] = {}
        for key, params in trials:
            set_key = params.embedding_set.key
            if set_key not in loaded:
                loaded[set_key] = np.load(sources[set_key].path, allow_pickle=False)
            on_result(
                score_reference_trial(
                    key, params, loaded[set_key], texts, sample, fingerprint, seed, stopwords_language
                )
            )
        return SweepStats(trials=len(trials), workers=1, seconds=time.perf_counter() - started)

    params_of = dict(trials)
    # Trials sharing a clustering (differing only in n_gram_max) arrive one after another with
    # the same labels array: scored once.
    last_scored: list = [None, None]
    scoring_seconds = [0.0]

    def metrics_of(labels: np.ndarray) -> dict[str, float]:
        if last_scored[0] is not labels:
            started = time.perf_counter()
            last_scored[:] = [labels, labels_metrics(labels, sample)]
            scoring_seconds[0] += time.perf_counter() - started
        return last_scored[1]

    def deliver(trial: TrialLabels) -> None:
        params = params_of[trial.key]
        if trial.labels is None:
            on_result(
                ScoredTrial(
                    failed_result(trial.key, params, fingerprint, trial.error or "unknown error", trial.seconds), None
                )
            )
            return
        try:
            result = scored_result(trial.key, params, metrics_of(trial.labels), fingerprint, trial.seconds)
        except Exception as exc:
            on_result(ScoredTrial(failed_result(trial.key, params, fingerprint, error_text(exc), trial.seconds), None))
            return
        on_result(ScoredTrial(result, trial.labels))

    sweep_engine = SweepEngine(cache_dir, seed=seed, workers=workers, pool=pool, stopwords_language=stopwords_language)
    stats = sweep_engine.run(trials, sources, texts, deliver, meanwhile)
    stats.scoring_seconds = scoring_seconds[0]
    return stats

"""Run a batch of trials and score them: the fast engine by default, the reference fit on request.

Both paths end the same way: a ``TrialResult`` (ok with metrics, or failed with the error) and, for
scored trials, topic summaries for display, handed to ``on_result`` as each trial finishes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from topic_pipeline.engine import EmbeddingSource, SweepEngine, SweepStats, TrialLabels, WorkerPool
from topic_pipeline.errors import error_text
from topic_pipeline.grid import TrialParams
from topic_pipeline.metrics import score
from topic_pipeline.results import STATUS_FAILED, STATUS_OK, TrialResult
from topic_pipeline.topic_words import TopicSummariser
from topic_pipeline.trial import TopicSummary, run_reference_trial, vectorizer_stop_words

ENGINES = ("fast", "reference")


@dataclasses.dataclass(frozen=True)
class LabelledSample:
    positions: np.ndarray  # corpus positions of the labelled documents
    classes: np.ndarray  # their class ids


@dataclasses.dataclass(frozen=True)
class ScoredTrial:
    result: TrialResult
    topics: list[TopicSummary] | None



def scored_result(
    key: str, params: TrialParams, labels: np.ndarray, sample: LabelledSample, fingerprint: str, seconds: float
) -> TrialResult:
    topic_count = int(len(np.unique(labels[labels >= 0])))
    metrics = score(sample.classes, labels[sample.positions], topic_count=topic_count)
    return TrialResult(key, params.to_dict(), fingerprint, STATUS_OK, metrics=metrics, duration_s=seconds, finished_at=time.time())


def failed_result(key: str, params: TrialParams, fingerprint: str, error: str, seconds: float) -> TrialResult:
    return TrialResult(key, params.to_dict(), fingerprint, STATUS_FAILED, error=error, duration_s=seconds, finished_at=time.time())


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
        result = scored_result(key, params, outcome.labels, sample, fingerprint, time.perf_counter() - started)
    except Exception as exc:  # noqa: BLE001 - one bad combination must not sink the sweep
        return ScoredTrial(failed_result(key, params, fingerprint, error_text(exc), time.perf_counter() - started), None)
    return ScoredTrial(result, outcome.topics)


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
    loaded: dict[str, np.ndarray] = {}

    def embeddings_of(params: TrialParams) -> np.ndarray:
        set_key = params.embedding_set.key
        if set_key not in loaded:
            loaded[set_key] = np.load(sources[set_key].path, allow_pickle=False)
        return loaded[set_key]

    if engine == "reference":
        if meanwhile:
            meanwhile()
        started = time.perf_counter()
        for key, params in trials:
            on_result(score_reference_trial(key, params, embeddings_of(params), texts, sample, fingerprint, seed, stopwords_language))
        return SweepStats(trials=len(trials), workers=1, seconds=time.perf_counter() - started)

    params_of = dict(trials)
    summariser = TopicSummariser(texts)

    def deliver(trial: TrialLabels) -> None:
        params = params_of[trial.key]
        if trial.labels is None:
            on_result(ScoredTrial(failed_result(trial.key, params, fingerprint, trial.error or "unknown error", trial.seconds), None))
            return
        try:
            result = scored_result(trial.key, params, trial.labels, sample, fingerprint, trial.seconds)
            topics = summariser.summarise(
                trial.labels, embeddings_of(params), params.n_gram_max, vectorizer_stop_words(params, stopwords_language)
            )
        except Exception as exc:  # noqa: BLE001
            on_result(ScoredTrial(failed_result(trial.key, params, fingerprint, error_text(exc), trial.seconds), None))
            return
        on_result(ScoredTrial(result, topics))

    def prepare() -> None:
        summariser.prepare([(params.n_gram_max, vectorizer_stop_words(params, stopwords_language)) for _, params in trials])
        if meanwhile:
            meanwhile()

    return SweepEngine(cache_dir, seed=seed, workers=workers, pool=pool).run(trials, sources, texts, deliver, prepare)

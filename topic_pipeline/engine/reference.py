"""The reference trial: one plain BERTopic fit on precomputed embeddings.

This is the straightforward implementation every faster engine must match label for label:
UMAP (cosine, seeded) -> HDBSCAN -> BERTopic (c-TF-IDF only, no representation models), then, if the
trial reduces outliers, what a BERTopic user does after fitting: ``reduce_outliers`` and ``update_topics``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from topic_pipeline.domain.trials import TrialParams
from topic_pipeline.engine.bertopic_model import bertopic_model
from topic_pipeline.scoring.topic_words import TOP_WORDS, TopicSummary, count_vectorizer

DEFAULT_SEED = 42


@dataclasses.dataclass(frozen=True)
class TrialOutcome:
    labels: np.ndarray  # topic per corpus document, -1 for outliers
    topics: list[TopicSummary]


def reference_model(params: TrialParams, seed: int, stopwords_language: str) -> Any:
    """The trial's UMAP and HDBSCAN in the shared BERTopic model. ``seed`` is the configured base seed; a
    stability replicate offsets it (``TrialParams.umap_seed``)."""
    from hdbscan import HDBSCAN
    from umap import UMAP

    # The "probabilities" strategy reads HDBSCAN's soft clustering, as BERTopic's documentation sets it up.
    probabilities = params.outlier_reduction == "probabilities"
    return bertopic_model(
        params,
        umap_model=UMAP(**params.umap_settings(seed)),
        hdbscan_model=HDBSCAN(**params.hdbscan_settings(), prediction_data=probabilities),
        stopwords_language=stopwords_language,
        nr_topics=params.bertopic_nr_topics,
        calculate_probabilities=probabilities,
    )


def summarise_topics(topic_model: Any, labels: np.ndarray) -> list[TopicSummary]:
    sizes = dict(zip(*np.unique(labels, return_counts=True)))
    representative = topic_model.get_representative_docs() or {}
    summaries = []
    for topic in sorted(sizes):
        words = topic_model.get_topic(int(topic)) or []
        summaries.append(
            TopicSummary(
                topic=int(topic),
                size=int(sizes[topic]),
                top_words=[word for word, _ in words[:TOP_WORDS] if word],
                representative_docs=list(representative.get(int(topic), []))[:3],
            )
        )
    return summaries


def run_reference_trial(
    embeddings: np.ndarray,
    texts: list[str],
    params: TrialParams,
    seed: int = DEFAULT_SEED,
    stopwords_language: str = "english",
) -> TrialOutcome:
    topic_model = reference_model(params, seed, stopwords_language)
    topic_model.fit(texts, embeddings)
    labels = np.asarray(topic_model.topics_, dtype=np.int64)
    # BERTopic refuses to reduce where there are no outliers ("No outliers to reduce"): nothing to do.
    if params.outlier_reduction != "none" and (labels == -1).any():
        reduced = topic_model.reduce_outliers(
            texts,
            labels.tolist(),
            strategy=params.outlier_reduction,
            threshold=params.outlier_threshold,
            embeddings=embeddings,
            probabilities=topic_model.probabilities_,
        )
        labels = np.asarray(reduced, dtype=np.int64)
        topic_model.update_topics(
            texts, topics=labels.tolist(), vectorizer_model=count_vectorizer(params, stopwords_language)
        )
    return TrialOutcome(labels=labels, topics=summarise_topics(topic_model, labels))

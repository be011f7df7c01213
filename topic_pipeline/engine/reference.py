"""The reference trial: one plain BERTopic fit on precomputed embeddings.

This is the straightforward implementation every faster engine must match label for label:
UMAP (cosine, seeded) -> HDBSCAN -> BERTopic (c-TF-IDF only, no representation models).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from topic_pipeline.inputs.embeddings import stop_words
from topic_pipeline.inputs.grid import TrialParams

DEFAULT_SEED = 42
TOP_WORDS = 10


@dataclasses.dataclass(frozen=True)
class TopicSummary:
    topic: int
    size: int
    top_words: list[str]
    representative_docs: list[str]


@dataclasses.dataclass(frozen=True)
class TrialOutcome:
    labels: np.ndarray  # topic per corpus document, -1 for outliers
    topics: list[TopicSummary]


def vectorizer_stop_words(params: TrialParams, stopwords_language: str) -> str | list[str] | None:
    """The vectorizer's stop words: a JSON-serialisable value, as BERTopic's safetensors save needs."""
    if not params.remove_stopwords:
        return None
    if stopwords_language.lower() == "english":
        return "english"
    return sorted(stop_words(stopwords_language))


def build_bertopic(params: TrialParams, seed: int, stopwords_language: str) -> Any:
    """``seed`` is the configured base seed; a stability replicate offsets it (``TrialParams.umap_seed``)."""
    from bertopic import BERTopic
    from hdbscan import HDBSCAN
    from sklearn.feature_extraction.text import CountVectorizer
    from umap import UMAP

    umap_model = UMAP(
        n_neighbors=params.umap_n_neighbors,
        n_components=params.umap_n_components,
        min_dist=params.umap_min_dist,
        metric="cosine",
        random_state=params.umap_seed(seed),
    )
    hdbscan_model = HDBSCAN(
        min_cluster_size=params.hdbscan_min_cluster_size,
        min_samples=params.hdbscan_min_samples,
        cluster_selection_epsilon=params.hdbscan_cluster_selection_epsilon,
        metric="euclidean",
        cluster_selection_method="eom",
        prediction_data=False,
    )
    vectorizer = CountVectorizer(
        ngram_range=(1, params.n_gram_max), stop_words=vectorizer_stop_words(params, stopwords_language)
    )
    # embedding_model=None: BERTopic would otherwise load a model it never uses (embeddings are given).
    return BERTopic(
        embedding_model=None,
        umap_model=umap_model,
        hdbscan_model=hdbscan_model,
        vectorizer_model=vectorizer,
        nr_topics=params.bertopic_nr_topics,
        calculate_probabilities=False,
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
    topic_model = build_bertopic(params, seed, stopwords_language)
    topic_model.fit(texts, embeddings)
    labels = np.asarray(topic_model.topics_, dtype=np.int64)
    return TrialOutcome(labels=labels, topics=summarise_topics(topic_model, labels))

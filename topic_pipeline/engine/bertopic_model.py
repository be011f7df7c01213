"""The one place a BERTopic model is built: the reference trial, topic reduction and the export take their
model from ``bertopic_model``, its vectorizer from ``scoring.topic_words.count_vectorizer`` (the rule the
topic words shown for leaders follow too).

With precomputed embeddings the vectorizer (n-gram range, stop words) changes only topic words, never
which topic a document gets.
"""

from __future__ import annotations

from typing import Any

from topic_pipeline.domain.trials import TrialParams
from topic_pipeline.scoring.topic_words import count_vectorizer


def bertopic_model(
    params: TrialParams | None,
    *,
    umap_model: Any,
    hdbscan_model: Any,
    stopwords_language: str = "english",
    nr_topics: str | int | None = None,
    embedding_model: Any = None,
    calculate_probabilities: bool = False,
) -> Any:
    """An unfitted BERTopic model: topic words by BERTopic's c-TF-IDF (``ClassTfidfTransformer``, its
    default) over ``count_vectorizer(params, stopwords_language)``; no representation models, and topic
    probabilities only when asked (HDBSCAN's soft clustering, for the "probabilities" outlier reduction; the
    HDBSCAN model then needs ``prediction_data=True``).

    To give the model known labels, pass ``bertopic.dimensionality.BaseDimensionalityReduction()`` and
    ``bertopic.cluster.BaseCluster()`` and fit with ``y=labels``. ``nr_topics`` is BERTopic's topic
    reduction (None: none). ``embedding_model`` stays None wherever embeddings are given: BERTopic would
    otherwise load a model it never uses.
    """
    from bertopic import BERTopic
    from bertopic.vectorizers import ClassTfidfTransformer

    return BERTopic(
        embedding_model=embedding_model,
        umap_model=umap_model,
        hdbscan_model=hdbscan_model,
        vectorizer_model=count_vectorizer(params, stopwords_language),
        ctfidf_model=ClassTfidfTransformer(),
        nr_topics=nr_topics,
        calculate_probabilities=calculate_probabilities,
    )

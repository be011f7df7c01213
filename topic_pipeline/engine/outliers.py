"""BERTopic's ``reduce_outliers`` for many thresholds at once: what a strategy compares the outliers with is
computed once per clustering, then every threshold is applied to it.

A BERTopic user fits (with ``nr_topics`` if set), calls ``reduce_outliers(docs, topics, strategy=...,
threshold=...)`` and ``update_topics``; only the first two change labels. ``reduce_outliers`` (BERTopic
0.17.4) recomputes everything for each call. Here the comparison matrices come from BERTopic's own fitted
parts (its vectorizer, c-TF-IDF model and topic-term matrix, its topic embeddings and topic mappings) or,
where BERTopic's rule is one line, from that line (topic centroids, HDBSCAN's membership vectors), and
each threshold then costs a comparison per outlier and topic. ``test_outliers.py`` holds the labels
equal to a plain BERTopic fit followed by ``reduce_outliers`` for every strategy and several thresholds.

A clustering without outliers is left as it is (BERTopic refuses: "No outliers to reduce"); one without
any topic fails, as BERTopic does for every strategy but "probabilities" (where it would invent topic 0).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from topic_pipeline.domain.trials import DEFAULT_GRID, OUTLIER_STRATEGIES, TrialParams

# reduce_outliers' "distributions" calls approximate_distribution with its defaults.
WINDOW, STRIDE, BATCH_SIZE = 4, 1, 1000


@dataclasses.dataclass
class Clustering:
    """One clustering of a trial group, and what the strategies may need of it."""

    clusters: np.ndarray  # HDBSCAN's labels
    labels: np.ndarray  # the trial's topics before outlier reduction (after nr_topics), -1 for outliers
    embeddings: np.ndarray  # the documents' (cached) embeddings
    texts: list[str] | None  # the documents; given when a strategy or nr_topics needs them
    reduction: np.ndarray  # the UMAP reduction HDBSCAN clustered
    min_cluster_size: int
    min_samples: int | None
    epsilon: float
    nr_topics: str | int
    topic_model: Any = None  # BERTopic fitted on ``clusters`` with nr_topics (its topics_ are ``labels``), if built
    # Models fitted with a trial's vectorizer, by vectorizer: "c-tf-idf" and "distributions" share them.
    vectorizer_models: dict = dataclasses.field(default_factory=dict)


def vectorizer_params(n_gram_max: int) -> TrialParams:
    """Trial parameters as far as the vectorizer goes (``count_vectorizer`` reads only the n-gram range)."""
    defaults = TrialParams.from_dict({key: values[0] for key, values in DEFAULT_GRID.items()})
    return dataclasses.replace(defaults, n_gram_max=n_gram_max)


def reduce_outliers(
    clustering: Clustering,
    strategy: str,
    thresholds: Sequence[float],
    vectorizer: TrialParams | None = None,
    stopwords_language: str = "english",
) -> dict[float, np.ndarray]:
    """The labels ``BERTopic.reduce_outliers(texts, labels, strategy=strategy, threshold=t)`` gives, for each
    threshold ``t``. ``vectorizer``: the trial's parameters, for the strategies that compare c-TF-IDF vectors."""
    if strategy not in OUTLIER_STRATEGIES:
        raise ValueError(f"unknown outlier reduction strategy '{strategy}'")
    labels = np.asarray(clustering.labels, dtype=np.int64)
    outliers = np.flatnonzero(labels == -1)
    if outliers.size == 0:
        return {threshold: labels for threshold in thresholds}
    if not (labels >= 0).any():
        raise ValueError("the clustering found no topic to assign its outliers to")
    if strategy == "embeddings":
        assigned = _by_similarity(_embedding_similarity(clustering, labels, outliers), thresholds)
    elif strategy == "probabilities":
        assigned = _by_probability(_memberships(clustering, labels)[outliers], thresholds)
    else:
        model = _vectorizer_model(clustering, vectorizer, stopwords_language)
        # That model numbers the topics its own way (a permutation of ``labels``): assign in its numbering.
        labels = np.asarray(model.topics_, dtype=np.int64)
        documents = [clustering.texts[index] for index in outliers]
        if strategy == "c-tf-idf":
            assigned = _by_similarity(_ctfidf_similarity(model, documents), thresholds)
        else:
            assigned = _by_distribution(model, documents, thresholds)
    reduced = {}
    for threshold, topics in assigned.items():
        result = labels.copy()
        result[outliers] = topics
        reduced[threshold] = result
    return reduced


# --- the rules: reduce_outliers' own, applied to a matrix computed once ------------------------------


def _by_similarity(similarity: np.ndarray, thresholds: Sequence[float]) -> dict[float, np.ndarray]:
    """ "c-tf-idf" and "embeddings": similarities below the threshold count as 0, and an outlier goes to its
    most similar topic if its similarities then sum above 0. Thresholds are >= 0 (the grid refuses others),
    so every value left is >= 0 and "sums above 0" is "any value above 0"."""
    assigned = {}
    for threshold in thresholds:
        kept = np.where(similarity < threshold, 0, similarity)
        assigned[threshold] = np.where((kept > 0).any(axis=1), kept.argmax(axis=1), -1)
    return assigned


def _by_probability(memberships: np.ndarray, thresholds: Sequence[float]) -> dict[float, np.ndarray]:
    """ "probabilities": an outlier goes to its most probable topic if that probability reaches the threshold."""
    best, topic = memberships.max(axis=1), memberships.argmax(axis=1)
    return {threshold: np.where(best >= threshold, topic, -1) for threshold in thresholds}


def _by_distribution(model: Any, documents: list[str], thresholds: Sequence[float]) -> dict[float, np.ndarray]:
    """ "distributions": ``approximate_distribution(min_similarity=threshold)`` with its defaults, then the
    outlier goes to the topic of largest share if it has any. The threshold applies to each token window's
    similarities before they are summed per document, so the windows' similarities are computed once per
    batch of documents (BERTopic's batches) and every threshold is applied to them."""
    from sklearn.metrics.pairwise import cosine_similarity
    from sklearn.preprocessing import normalize

    tokenizer = model.vectorizer_model.build_tokenizer()
    topic_vectors = model.c_tf_idf_[1:]  # row 0 is the outliers' (-1 sorts first)
    assigned: dict[float, list[np.ndarray]] = {threshold: [] for threshold in thresholds}
    for start in range(0, len(documents), BATCH_SIZE):
        sentences: list[str] = []
        bounds = [0]
        for document in documents[start : start + BATCH_SIZE]:
            tokens = tokenizer(document)
            if len(tokens) < WINDOW:
                windows = [tokens]
            else:
                windows = [
                    tokens[i : i + WINDOW]
                    for i in range(0, len(tokens), STRIDE)
                    if len(tokens[i : i + WINDOW]) == WINDOW
                ]
            sentences.extend(" ".join(window) for window in windows)
            bounds.append(bounds[-1] + len(windows))
        similarity = cosine_similarity(
            model.ctfidf_model.transform(model.vectorizer_model.transform(sentences)), topic_vectors
        )
        for threshold in thresholds:
            kept = similarity.copy()
            kept[kept < threshold] = 0
            # Summed per document exactly as approximate_distribution sums (same slices, same order).
            sums = [kept[bounds[i] : max(bounds[i + 1], bounds[i] + 1)].sum(axis=0) for i in range(len(bounds) - 1)]
            distribution = normalize(np.array(sums), norm="l1", axis=1)
            assigned[threshold].append(np.where((distribution > 0).any(axis=1), distribution.argmax(axis=1), -1))
    return {threshold: np.concatenate(parts) for threshold, parts in assigned.items()}


# --- what each strategy compares the outliers with, once per clustering ------------------------------


def _embedding_similarity(clustering: Clustering, labels: np.ndarray, outliers: np.ndarray) -> np.ndarray:
    """Cosine similarity of each outlier's embedding to each topic embedding: BERTopic's topic embeddings
    are each topic's mean document embedding, and after nr_topics the size-weighted mean of the merged
    topics' (then the model built on the clusters holds them)."""
    from sklearn.metrics.pairwise import cosine_similarity

    if clustering.topic_model is not None:
        topic_embeddings = clustering.topic_model.topic_embeddings_[1:]  # row 0 is the outliers'
    else:
        # As BERTopic computes them: the mean of each topic's rows, topics in increasing order.
        topic_embeddings = np.array(
            [clustering.embeddings[labels == topic].mean(axis=0) for topic in range(labels.max() + 1)]
        )
    return cosine_similarity(clustering.embeddings[outliers], topic_embeddings)


def _ctfidf_similarity(model: Any, documents: list[str]) -> np.ndarray:
    from sklearn.metrics.pairwise import cosine_similarity

    vectors = model.ctfidf_model.transform(model.vectorizer_model.transform(documents))
    return cosine_similarity(vectors, model.c_tf_idf_[1:])


def _memberships(clustering: Clustering, labels: np.ndarray) -> np.ndarray:
    """Each document's HDBSCAN soft-clustering membership per topic, as BERTopic's ``probabilities_`` with
    ``calculate_probabilities=True``: ``hdbscan.all_points_membership_vectors``, columns summed into the
    topics they became. The shared tree keeps no prediction data, so this is a plain HDBSCAN fit with
    ``prediction_data=True``, once per clustering."""
    import hdbscan

    from topic_pipeline.engine.clustering import hdbscan_model, joblib_in_this_process

    model = hdbscan_model(clustering.min_cluster_size, clustering.min_samples, clustering.epsilon, prediction_data=True)
    with joblib_in_this_process():
        model.fit(clustering.reduction)
    if not np.array_equal(model.labels_, clustering.clusters):
        raise RuntimeError("HDBSCAN fitted with prediction data gave other clusters than the shared tree")
    memberships = hdbscan.all_points_membership_vectors(model)
    if clustering.topic_model is not None:
        mapping = clustering.topic_model.topic_mapper_.get_mappings(original_topics=True)
    else:
        clustered = clustering.clusters >= 0
        mapping = dict(zip(clustering.clusters[clustered].tolist(), labels[clustered].tolist()))
    # BERTopic's _map_probabilities: in the mapping's order, each cluster's column added to its topic's.
    topics = np.zeros((memberships.shape[0], int(labels.max()) + 1))
    for cluster, topic in mapping.items():
        if cluster != -1 and topic != -1:
            topics[:, topic] += memberships[:, cluster]
    return topics


def _vectorizer_model(clustering: Clustering, vectorizer: TrialParams | None, stopwords_language: str) -> Any:
    """BERTopic fitted on the clusters with the trial's vectorizer and nr_topics: the state a plain fit
    reaches (its c-TF-IDF of each topic, its topic numbering)."""
    from topic_pipeline.engine.clustering import topic_model_from_clusters

    if clustering.texts is None:
        raise ValueError("the documents are needed for this outlier reduction strategy")
    key = None if vectorizer is None else vectorizer.n_gram_max
    if key not in clustering.vectorizer_models:
        clustering.vectorizer_models[key] = topic_model_from_clusters(
            clustering.clusters,
            clustering.texts,
            clustering.embeddings,
            clustering.nr_topics,
            vectorizer,
            stopwords_language,
        )
    return clustering.vectorizer_models[key]

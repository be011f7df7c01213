"""HDBSCAN from a shared single-linkage tree, and BERTopic's topic reduction on given labels.

HDBSCAN's single-linkage tree depends on (data, min_samples, metric, algorithm) but not on
min_cluster_size or cluster_selection_epsilon, so one tree serves every such variant. ``TreeClusterer``
keeps one tree per min_samples through ``_compat.hdbscan``, which labels it as ``hdbscan.HDBSCAN.fit``
would; where that module was not written for the installed hdbscan, every request is a plain fit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from topic_pipeline._compat import hdbscan as hdbscan_compat
from topic_pipeline.domain.trials import hdbscan_settings


def hdbscan_model(min_cluster_size: int, min_samples: int | None, epsilon: float, prediction_data: bool = False) -> Any:
    """The (unfitted) HDBSCAN of a trial with these values, as the reference trial builds it
    (``domain.trials.hdbscan_settings``). ``prediction_data`` (soft clustering, for the "probabilities"
    outlier reduction) does not change the labels."""
    from hdbscan import HDBSCAN

    return HDBSCAN(**hdbscan_settings(min_cluster_size, min_samples, epsilon), prediction_data=prediction_data)


@contextmanager
def joblib_in_this_process() -> Iterator[None]:
    """HDBSCAN's joblib work done in this process, in the same pieces.

    Above 16,384 points HDBSCAN splits its core-distance query into ``core_dist_n_jobs`` (4) pieces and runs
    them in joblib processes, each holding its piece's documents x min_samples distances and indices, which
    then travel back pickled. Under joblib's sequential backend the same pieces are queried here, one after
    the other: the neighbours come out in the same order (ties included, which a single unsplit query would
    not promise), so the labels are those of a default fit, without the processes' copies or idle loky
    workers. The pieces no longer run at once: the engine's own workers are what keeps the cores busy.
    """
    from joblib import parallel_config

    with parallel_config(backend="sequential"):
        yield


class TreeClusterer:
    """HDBSCAN labels for one reduction, any number of (min_cluster_size, min_samples, epsilon)."""

    def __init__(self, reduction: np.ndarray):
        from sklearn.utils import check_array

        # As HDBSCAN.fit: BERTopic has already replaced NaN by 0, so every row is finite.
        self.data = check_array(reduction, accept_sparse="csr", ensure_all_finite=False)
        self._trees: dict[int, np.ndarray] = {}
        self.trees_built = 0

    def _effective_min_samples(self, min_cluster_size: int, min_samples: int | None) -> int:
        value = min_cluster_size if min_samples is None else min_samples
        return max(1, min(self.data.shape[0] - 1, value))

    def labels(self, min_cluster_size: int, min_samples: int | None, epsilon: float) -> np.ndarray:
        model = hdbscan_model(min_cluster_size, min_samples, epsilon)
        tree_key = self._effective_min_samples(min_cluster_size, min_samples)
        if tree_key in self._trees:
            return np.asarray(hdbscan_compat.labels_from_tree(self.data, self._trees[tree_key], model), dtype=np.int64)
        with joblib_in_this_process():
            labels, tree = hdbscan_compat.labels_and_tree(self.data, model)
        self.trees_built += 1
        if tree is not None:  # None: the public fallback, which keeps no tree
            self._trees[tree_key] = tree
        return np.asarray(labels, dtype=np.int64)


def topic_model_from_clusters(
    clusters: np.ndarray,
    texts: list[str],
    embeddings: np.ndarray,
    nr_topics: str | int,
    params: Any = None,
    stopwords_language: str = "english",
) -> Any:
    """BERTopic fitted on given HDBSCAN labels, with its own topic reduction (nr_topics int, "auto" or
    "none"): the state a plain fit reaches (topics, c-TF-IDF, topic embeddings, topic mappings).

    Since BERTopic 0.15 topics merge by their embedding centroids, so neither the n-gram range nor the
    vectorizer's stop words change the topics; without a trial's parameters (``params``) the builder takes
    the cheapest vectorizer.
    """
    from bertopic.cluster import BaseCluster
    from bertopic.dimensionality import BaseDimensionalityReduction

    from topic_pipeline.engine.bertopic_model import bertopic_model

    model = bertopic_model(
        params,
        umap_model=BaseDimensionalityReduction(),
        hdbscan_model=BaseCluster(),
        stopwords_language=stopwords_language,
        nr_topics=None if nr_topics == "none" else nr_topics,
    )
    model.fit(texts, embeddings, y=np.asarray(clusters))
    return model


def renumber_by_frequency(labels: np.ndarray) -> np.ndarray:
    """Topics numbered 0, 1, ... by decreasing size (ties by first appearance), outliers kept at -1.

    BERTopic does the same when nr_topics is None; the numbering is a permutation, so no metric changes.
    """
    labels = np.asarray(labels, dtype=np.int64)
    clustered = labels[labels >= 0]
    if clustered.size == 0:
        return labels.copy()
    topics, first, counts = np.unique(clustered, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    mapping = np.full(topics.max() + 1, -1, dtype=np.int64)
    mapping[topics[order]] = np.arange(len(topics))
    result = labels.copy()
    result[labels >= 0] = mapping[clustered]
    return result

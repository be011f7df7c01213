"""UMAP reductions from a shared neighbour graph, cached on disk by everything they depend on.

Where ``_compat.umap`` was not written for the installed umap-learn, no graph is shared: each reduction
is a plain UMAP fit, as BERTopic's own (slower, same reduction).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from topic_pipeline._compat import umap as umap_compat
from topic_pipeline.domain.trials import UMAP_METRIC, umap_settings
from topic_pipeline.domain.versions import REDUCTION_LIBRARIES, cache_key
from topic_pipeline.engine.neighbors import KnnGraph, descent_graph, exact_graph, is_small, prepare
from topic_pipeline.storage.array_cache import ArrayCache


@dataclasses.dataclass(frozen=True)
class ReductionSpec:
    n_neighbors: int
    n_components: int
    min_dist: float
    seed: int

    def umap_settings(self) -> dict[str, Any]:
        """The keyword arguments of this reduction's ``umap.UMAP`` (``domain.trials.umap_settings``)."""
        return umap_settings(self.n_neighbors, self.n_components, self.min_dist, self.seed)


def knn_cache_key(embeddings_key: str, n_documents: int, n_neighbors: int, largest_k: int, seed: int) -> str:
    """Small data: one exact graph at the largest k (seed-free); large data: one graph per k and seed."""
    if is_small(n_documents):
        identity = {"embeddings": embeddings_key, "k": largest_k, "metric": UMAP_METRIC}
    else:
        identity = {"embeddings": embeddings_key, "k": n_neighbors, "seed": seed, "metric": UMAP_METRIC}
    return cache_key("knn", identity, REDUCTION_LIBRARIES)


def reduction_cache_key(embeddings_key: str, spec: ReductionSpec) -> str:
    """The embeddings key stands for the corpus, model and embedding libraries."""
    identity = {"embeddings": embeddings_key, **dataclasses.asdict(spec), "metric": UMAP_METRIC}
    return cache_key("umap", identity, REDUCTION_LIBRARIES)


def neighbour_graph(
    cache: ArrayCache, embeddings_key: str, data: np.ndarray, n_neighbors: int, largest_k: int, seed: int
) -> KnnGraph:
    n = data.shape[0]
    k = min(largest_k, n - 1) if is_small(n) else n_neighbors

    def compute() -> dict[str, np.ndarray]:
        graph = exact_graph(data, k, seed) if is_small(n) else descent_graph(data, k, seed)
        return graph.to_arrays()

    def valid(arrays: dict[str, np.ndarray]) -> bool:
        return (
            arrays.get("indices") is not None
            and arrays["indices"].shape == (n, k)
            and arrays["distances"].shape == (n, k)
        )

    arrays, _ = cache.get_or_compute(knn_cache_key(embeddings_key, n, n_neighbors, largest_k, seed), compute, valid)
    return KnnGraph.from_arrays(arrays)


def fit_reduction(data: np.ndarray, graph: KnnGraph | None, spec: ReductionSpec) -> np.ndarray:
    """UMAP exactly as BERTopic runs it (cosine, seeded), with the neighbour search skipped if a
    ``graph`` is given (a plain fit, search included, if None).

    NaNs are replaced by 0 as BERTopic does before clustering.
    """
    import warnings

    from umap import UMAP

    settings = spec.umap_settings()
    if graph is not None:
        indices, distances = graph.for_umap(min(spec.n_neighbors, data.shape[0] - 1))
        settings.update(random_state=graph.random_state(spec.seed), precomputed_knn=(indices, distances, None))
    model = UMAP(**settings)
    with warnings.catch_warnings():
        # Expected here: a seeded UMAP runs single-threaded, and a precomputed graph has no search index
        # (the sweep never calls transform).
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        warnings.filterwarnings("ignore", message="precomputed_knn", category=UserWarning)
        return np.nan_to_num(model.fit_transform(data))


def cached_reduction(
    cache: ArrayCache, embeddings_key: str, embeddings: np.ndarray, spec: ReductionSpec, largest_k: int
) -> tuple[np.ndarray, bool]:
    """The reduction for ``spec``: from the cache, or computed once (other processes wait and reuse)."""
    n = embeddings.shape[0]

    def compute() -> dict[str, np.ndarray]:
        data = prepare(embeddings)
        graph = None
        if umap_compat.supported():
            graph = neighbour_graph(cache, embeddings_key, data, spec.n_neighbors, largest_k, spec.seed)
        return {"reduction": fit_reduction(data, graph, spec)}

    def valid(arrays: dict[str, np.ndarray]) -> bool:
        reduction = arrays.get("reduction")
        return (
            reduction is not None
            and reduction.shape == (n, spec.n_components)
            and reduction.dtype == np.float32
            and bool(np.isfinite(reduction).all())
        )

    arrays, was_cached = cache.get_or_compute(reduction_cache_key(embeddings_key, spec), compute, valid)
    return arrays["reduction"], was_cached

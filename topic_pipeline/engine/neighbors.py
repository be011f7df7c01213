"""The k-nearest-neighbour graph UMAP builds, computed once and handed to every UMAP fit that needs it.

Reproduces UMAP 0.5's own search so that a fit with ``precomputed_knn`` is bit-identical to a fit from
scratch:

* below ``SMALL_DATA_LIMIT`` documents UMAP computes an exact all-pairs distance matrix and takes each
  row's nearest points with a stable sort; no randomness is consumed. One exact graph at the largest
  k serves every smaller k by slicing its first k columns (UMAP does not trim a longer graph itself
  in this regime, so we slice).
* from ``SMALL_DATA_LIMIT`` documents UMAP runs NNDescent, which consumes the seeded RandomState; the
  graph is computed per distinct k, and the RandomState's state after the search is kept so each fit
  continues from exactly where a from-scratch fit would be.

Both searches take their settings from ``_compat.umap`` and run only where ``umap_compat.supported()``;
elsewhere the engine skips the graph and fits plain UMAP (``reduction.fit_reduction`` without a graph).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from topic_pipeline._compat import umap as umap_compat
from topic_pipeline.domain.trials import UMAP_METRIC

SMALL_DATA_LIMIT = 4096


def prepare(embeddings: np.ndarray) -> np.ndarray:
    """The array exactly as UMAP's ``fit`` sees it (float32, C order)."""
    from sklearn.utils import check_array

    return check_array(embeddings, dtype=np.float32, accept_sparse="csr", order="C")


def is_small(n_documents: int) -> bool:
    return n_documents < SMALL_DATA_LIMIT


@dataclasses.dataclass(frozen=True)
class KnnGraph:
    indices: np.ndarray
    distances: np.ndarray
    # MT19937 state after the search (large data only): keys, position, has_gauss, cached_gaussian.
    rng_keys: np.ndarray | None = None
    rng_scalars: np.ndarray | None = None

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"indices": self.indices, "distances": self.distances}
        if self.rng_keys is not None:
            arrays["rng_keys"] = self.rng_keys
            arrays["rng_scalars"] = self.rng_scalars
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> KnnGraph:
        return cls(arrays["indices"], arrays["distances"], arrays.get("rng_keys"), arrays.get("rng_scalars"))

    def for_umap(self, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
        """Copies (UMAP writes into the arrays it is given) of exactly ``n_neighbors`` columns."""
        return self.indices[:, :n_neighbors].copy(), self.distances[:, :n_neighbors].copy()

    def random_state(self, seed: int) -> np.random.RandomState:
        """A RandomState in the state a from-scratch fit has right after its neighbour search."""
        state = np.random.RandomState(seed)
        if self.rng_keys is not None:
            position, has_gauss, cached = self.rng_scalars.tolist()
            state.set_state(("MT19937", self.rng_keys, int(position), int(has_gauss), float(cached)))
        return state


def exact_graph(data: np.ndarray, k: int, seed: int) -> KnnGraph:
    """UMAP's small-data search: all-pairs distances with UMAP's own metric function, stable row sort."""
    from sklearn.metrics import pairwise_distances
    from umap.utils import fast_knn_indices

    settings = umap_compat.search_settings(data, k, UMAP_METRIC, seed)
    distances = pairwise_distances(data, metric=settings.distance_func, **settings.metric_kwds)
    distances[distances >= settings.disconnection_distance] = np.inf
    indices = fast_knn_indices(distances, k)
    knn_distances = distances[np.arange(distances.shape[0])[:, None], indices].copy()
    indices[knn_distances == np.inf] = -1
    return KnnGraph(indices, knn_distances)


def descent_graph(data: np.ndarray, k: int, seed: int) -> KnnGraph:
    """UMAP's large-data search (NNDescent) with the RandomState a seeded fit would use."""
    from sklearn.utils import check_random_state
    from umap.umap_ import nearest_neighbors

    settings = umap_compat.search_settings(data, k, UMAP_METRIC, seed)
    random_state = check_random_state(seed)
    indices, distances, _ = nearest_neighbors(
        data,
        k,
        UMAP_METRIC,
        settings.metric_kwds,
        settings.angular_rp_forest,
        random_state,
        settings.low_memory,
        use_pynndescent=True,
        n_jobs=1,  # a seeded UMAP forces n_jobs=1
        verbose=False,
    )
    _, keys, position, has_gauss, cached = random_state.get_state()
    return KnnGraph(indices, distances, np.asarray(keys), np.asarray([position, has_gauss, cached], dtype=np.float64))

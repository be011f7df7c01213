"""The documents of one trial in 2-D, for the report's topic map: which documents, and where.

HDBSCAN clustered the trial's UMAP reduction, so that reduction is the most honest picture of the
topics: with two components it is drawn as it is; with more, its first two principal components
are drawn (a linear view of what HDBSCAN saw, which may overlap topics that are apart in the other
dimensions). Without the reduction (the reference engine caches none), a 2-component UMAP of the
embeddings is fitted for the map. The figure caption says which (``TopicMap.method``).

Big corpora are sampled (``MAX_DOCUMENTS``): every labelled document first, since the class panel
compares exactly those, then others drawn with a fixed seed, so a rerun draws the same map; the caption
says how many of how many are drawn. A UMAP fitted for the map is kept in the data directory's cache
(``layout_cache_key``: the embeddings key, the drawn documents and the seed), so the next report on the
same embedding set and sample reads it instead of fitting it again.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from topic_pipeline.domain.trials import TrialParams, umap_settings
from topic_pipeline.domain.versions import REDUCTION_LIBRARIES, cache_key

# Documents drawn at most: a scatter of more neither reads better nor renders quickly in a browser.
MAX_DOCUMENTS = 20_000
# UMAP refuses fewer points than this; below it the map falls back to principal components.
_UMAP_MIN_DOCUMENTS = 10
# The 2-D UMAP fitted for a map when the trial's own reduction is not cached.
_MAP_UMAP = {"n_neighbors": 15, "n_components": 2, "min_dist": 0.1, "metric": "cosine"}


@dataclasses.dataclass(frozen=True)
class TopicMap:
    """The documents drawn on the map, in plain arrays of one row per drawn document."""

    trial: str
    coordinates: np.ndarray  # (n, 2) float
    topics: np.ndarray  # (n,) int, -1 for outliers
    classes: tuple[str | None, ...]  # the labelled sample's class, None for an unlabelled document
    method: str  # how the coordinates were made, for the caption
    total_documents: int  # in the corpus, before sampling
    layout_cached: bool = False  # the coordinates were a UMAP fitted for an earlier map, read from the cache

    def __post_init__(self) -> None:
        n = len(self.topics)
        if self.coordinates.shape != (n, 2) or len(self.classes) != n:
            raise ValueError(
                f"a topic map needs (n, 2) coordinates and n topics and classes; got {self.coordinates.shape}, "
                f"{n} and {len(self.classes)}"
            )


def sample_documents(classes: Sequence[str | None], max_documents: int = MAX_DOCUMENTS, seed: int = 42) -> np.ndarray:
    """Indices (sorted) of the documents to draw: labelled ones first, then others at random, seeded."""
    n = len(classes)
    if n <= max_documents:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    labelled = np.flatnonzero(np.fromiter((c is not None for c in classes), dtype=bool, count=n))
    if len(labelled) >= max_documents:
        return np.sort(rng.choice(labelled, size=max_documents, replace=False))
    others = np.setdiff1d(np.arange(n), labelled, assume_unique=True)
    drawn = rng.choice(others, size=max_documents - len(labelled), replace=False)
    return np.sort(np.concatenate([labelled, drawn]))


def _principal_components(data: np.ndarray) -> np.ndarray:
    """The first two principal components (an SVD of the centred data: no scikit-learn fit needed);
    zeros where the data has fewer than two directions (one document, one dimension)."""
    data = np.asarray(data, dtype=np.float64)
    result = np.zeros((len(data), 2))
    if len(data) == 0 or data.shape[1] == 0:
        return result
    centred = data - data.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ components[:2].T
    result[:, : projected.shape[1]] = projected
    return result


def _umap_2d(embeddings: np.ndarray, seed: int) -> np.ndarray:
    import warnings

    from umap import UMAP

    n_neighbors = min(_MAP_UMAP["n_neighbors"], len(embeddings) - 1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        model = UMAP(**umap_settings(n_neighbors, _MAP_UMAP["n_components"], _MAP_UMAP["min_dist"], seed))
        return np.nan_to_num(model.fit_transform(np.asarray(embeddings, dtype=np.float32)))


def coordinates_2d(
    reduction: np.ndarray | None, embeddings: np.ndarray | None, seed: int = 42
) -> tuple[np.ndarray, str]:
    """(n, 2) coordinates for these rows and a caption saying how they were made."""
    if reduction is not None:
        reduction = np.asarray(reduction)
        if reduction.shape[1] == 2:
            return reduction.astype(np.float64), "the trial's own 2-component UMAP reduction (what HDBSCAN clustered)"
        return (
            _principal_components(reduction),
            f"the first two principal components of the trial's {reduction.shape[1]}-component UMAP reduction "
            "(what HDBSCAN clustered; a linear view, so topics apart in other dimensions may overlap)",
        )
    if embeddings is None:
        raise ValueError("a topic map needs the trial's UMAP reduction or the embeddings")
    if len(embeddings) < _UMAP_MIN_DOCUMENTS:
        return _principal_components(embeddings), _embeddings_method(len(embeddings), seed)
    return _umap_2d(embeddings, seed), _embeddings_method(len(embeddings), seed)


def _embeddings_method(n: int, seed: int) -> str:
    if n < _UMAP_MIN_DOCUMENTS:
        return "the first two principal components of the embeddings (too few documents for UMAP)"
    return (
        f"a 2-component UMAP (cosine, min_dist 0.1, seed {seed}) of the embeddings, fitted for the map (and kept in "
        "the cache for the next report on these embeddings): the trial's own reduction was not in the cache"
    )


def layout_cache_key(embeddings_key: str, chosen: np.ndarray, n_documents: int, seed: int) -> str:
    """The cache key of a map's 2-D layout of the embeddings: the embedding set on this corpus (its cache
    key), which of its ``n_documents`` are drawn, the seed and the UMAP settings and libraries."""
    drawn = hashlib.sha256(np.asarray(chosen, dtype=np.int64).tobytes()).hexdigest()
    identity = {"embeddings": embeddings_key, "documents": n_documents, "drawn": drawn, "seed": seed, **_MAP_UMAP}
    return cache_key("map2d", identity, REDUCTION_LIBRARIES)


def embeddings_layout(
    embeddings: np.ndarray | Callable[[], np.ndarray],
    chosen: np.ndarray,
    n_documents: int,
    seed: int,
    cache_dir: str | Path | None = None,
    embeddings_key: str | None = None,
) -> tuple[np.ndarray, str, bool]:
    """(len(chosen), 2) coordinates of the ``chosen`` rows of the embeddings, how they were made, and whether
    they were read from the cache. ``embeddings`` (all ``n_documents`` rows) may be a function that loads
    them: it is called only when the layout is not cached. Without ``cache_dir`` and ``embeddings_key``
    nothing is cached."""

    def compute() -> dict[str, np.ndarray]:
        rows = np.asarray(embeddings() if callable(embeddings) else embeddings)
        if len(rows) != n_documents:
            raise ValueError(f"{len(rows)} embeddings for {n_documents} documents")
        return {"coordinates": coordinates_2d(None, rows[chosen], seed)[0]}

    method = _embeddings_method(len(chosen), seed)
    if cache_dir is None or embeddings_key is None:
        return compute()["coordinates"], method, False
    from topic_pipeline.storage.array_cache import ArrayCache

    arrays, cached = ArrayCache(cache_dir).get_or_compute(
        layout_cache_key(embeddings_key, chosen, n_documents, seed),
        compute,
        lambda found: found.get("coordinates") is not None and found["coordinates"].shape == (len(chosen), 2),
    )
    return np.asarray(arrays["coordinates"], dtype=np.float64), method, cached


def build_topic_map(
    trial: str,
    topics: np.ndarray,
    classes: Sequence[str | None],
    *,
    reduction: np.ndarray | None = None,
    embeddings: np.ndarray | Callable[[], np.ndarray] | None = None,
    max_documents: int = MAX_DOCUMENTS,
    seed: int = 42,
    layout_cache: str | Path | None = None,
    embeddings_key: str | None = None,
) -> TopicMap:
    """The map of one trial: ``topics`` (its labels, one per document), ``classes`` (the labelled sample's
    class per document, None where unlabelled) and either its UMAP ``reduction`` or the ``embeddings``
    (all of the corpus, in the same order; or a function that loads them, called only if needed). At most
    ``max_documents`` are drawn, labelled ones first. Given ``layout_cache`` (a directory: the data
    directory's ``DataPaths.reductions``) and ``embeddings_key`` (the embedding cache key), a layout fitted
    on the embeddings is cached there and read back by the next map of the same embeddings and sample."""
    topics = np.asarray(topics)
    if len(classes) != len(topics):
        raise ValueError(f"{len(topics)} topic labels but {len(classes)} classes")
    chosen = sample_documents(classes, max_documents, seed)
    cached = False
    if reduction is not None:
        coordinates, method = coordinates_2d(np.asarray(reduction)[chosen], None, seed)
    elif embeddings is not None:
        coordinates, method, cached = embeddings_layout(
            embeddings, chosen, len(topics), seed, layout_cache, embeddings_key
        )
    else:
        raise ValueError("a topic map needs the trial's UMAP reduction or the embeddings")
    if len(chosen) < len(topics):
        method += (
            f"; a sample of {len(chosen):,} of {len(topics):,} documents drawn (every labelled one first, the rest "
            f"at random, seed {seed})"
        )
    return TopicMap(
        trial=trial,
        coordinates=coordinates,
        topics=topics[chosen].astype(int),
        classes=tuple(classes[i] for i in chosen),
        method=method,
        total_documents=len(topics),
        layout_cached=cached,
    )


def cached_trial_reduction(
    cache_dir: str | Path, embeddings_key: str, params: TrialParams, base_seed: int, n_documents: int
) -> np.ndarray | None:
    """The trial's UMAP reduction if the fast engine cached it (never computed here), else None.

    ``cache_dir`` is the data directory's reduction cache (``DataPaths.reductions``), ``embeddings_key``
    the embedding cache key of the trial's embedding set, ``base_seed`` ``TOPIC_PIPELINE_UMAP_SEED``.
    """
    from topic_pipeline.engine.reduction import ReductionSpec, reduction_cache_key
    from topic_pipeline.storage.array_cache import ArrayCache

    spec = ReductionSpec(
        params.umap_n_neighbors, params.umap_n_components, params.umap_min_dist, params.umap_seed(base_seed)
    )
    arrays = ArrayCache(cache_dir).load(
        reduction_cache_key(embeddings_key, spec),
        lambda found: (
            found.get("reduction") is not None and found["reduction"].shape == (n_documents, spec.n_components)
        ),
    )
    return None if arrays is None else arrays["reduction"]


def classes_of(ids: Sequence[int] | np.ndarray, cluster_of: dict[int, str]) -> tuple[str | None, ...]:
    """The labelled sample's class of each document id (``GroundTruth.cluster_of``), None where unlabelled."""
    return tuple(cluster_of.get(int(text_id)) for text_id in np.asarray(ids).tolist())

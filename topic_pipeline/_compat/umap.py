"""umap-learn's private names: the neighbour-search settings a ``UMAP.fit`` derives before searching.

The engine computes UMAP's kNN graph once and hands it to every fit as ``precomputed_knn``. To search
exactly as ``fit`` would, it needs the metric function, metric keywords and disconnection distance that
``fit`` derives in ``_validate_parameters`` from attributes it sets just before; ``search_settings``
configures a model the same way and reads them.

Written for umap-learn 0.5.12 (``SUPPORTED``). That the shared graph reproduces a from-scratch fit bit
for bit also rests on that version's search (its 4,096-point threshold, its exact small-data search,
the RandomState it consumes), so ``supported()`` gates the whole shared-graph path: on any other
version the engine fits plain UMAP for every reduction (slower, the labels of plain BERTopic) and
``search_settings`` refuses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from topic_pipeline._compat import check, installed_versions, refusal

SUPPORTED = {"umap-learn": ("0.5.12",)}
# Read once, at import. A test replaces an entry to make this process take the fallback.
INSTALLED = installed_versions(SUPPORTED)
FALLBACK = "every reduction fits plain UMAP, without a shared neighbour graph (slower, same labels)"


def supported() -> bool:
    """Whether the shared-graph path may run here; the one place this module decides."""
    return check(__name__, SUPPORTED, INSTALLED, FALLBACK)


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """What ``UMAP.fit`` passes to its neighbour search, for one metric and data set."""

    distance_func: Callable[..., Any]
    metric_kwds: dict[str, Any]
    disconnection_distance: float
    angular_rp_forest: bool
    low_memory: bool


def search_settings(data: np.ndarray, n_neighbors: int, metric: str, seed: int) -> SearchSettings:
    """The settings a ``UMAP(n_neighbors, metric, random_state=seed).fit(data)`` searches with.

    ``data`` as ``fit`` sees it (float32, C order, dense). Raises ``UnsupportedVersion`` where
    ``supported()`` is False.
    """
    if not supported():
        raise refusal(__name__, SUPPORTED, INSTALLED)
    from umap import UMAP

    model = UMAP(n_neighbors=n_neighbors, metric=metric, random_state=seed)
    # What fit sets before it validates: validation derives the metric settings from these.
    model._raw_data = data
    model._sparse_data = False
    model._initial_alpha = model.learning_rate
    model.knn_indices = model.knn_dists = model.knn_search_index = None
    model._validate_parameters()
    return SearchSettings(
        distance_func=model._input_distance_func,
        metric_kwds=dict(model._metric_kwds),
        disconnection_distance=model._disconnection_distance,
        angular_rp_forest=model.angular_rp_forest,
        low_memory=model.low_memory,
    )

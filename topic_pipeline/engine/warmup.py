"""UMAP's and NNDescent's numba code compiled (or loaded from the cache ``_compat.numba`` gives it) before
the trials need it.

``warm`` runs every kernel a sweep uses once, on small synthetic data: ``topic-pipeline compile`` (``make
setup``) calls it, so no sweep pays the first compilation. ``warm_up_layout`` loads UMAP's layout code in a
worker of the pool while another builds the neighbour graphs.
"""

from __future__ import annotations

import time

import numpy as np

from topic_pipeline._compat import numba as numba_cache
from topic_pipeline._compat import umap as umap_compat
from topic_pipeline.domain.trials import umap_settings
from topic_pipeline.engine.neighbors import SMALL_DATA_LIMIT, descent_graph, exact_graph, prepare
from topic_pipeline.engine.reduction import ReductionSpec, fit_reduction


def warm() -> float:
    """Compile (or load) every kernel a sweep uses, on small synthetic data; returns the seconds taken.

    The kernels' types do not depend on the data's size, so a sweep on any corpus then finds them in
    the cache: no sweep pays the first compilation. ``make setup`` runs this once.
    """
    started = time.perf_counter()
    numba_cache.enable()
    rng = np.random.default_rng(0)
    for n_documents in (SMALL_DATA_LIMIT + 100, 300):  # both of UMAP's neighbour searches
        data = prepare(rng.normal(size=(n_documents, 8)))
        graph = None  # where the engine fits plain UMAP, a plain fit compiles what it uses
        if umap_compat.supported():
            graph = descent_graph(data, 10, 0) if n_documents >= SMALL_DATA_LIMIT else exact_graph(data, 10, 0)
        fit_reduction(data, graph, ReductionSpec(10, 2, 0.1, 0))
    return time.perf_counter() - started


def warm_up_layout() -> None:
    """Load (or, the first time on a machine, compile) UMAP's layout code while another worker builds
    the graphs."""
    from umap import UMAP

    data = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    UMAP(**umap_settings(5, 2, 0.1, 0), n_epochs=5).fit(data)

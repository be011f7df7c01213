"""The ``_compat`` modules: on a library version they were not written for, each takes its public fallback
(or refuses a private path with a clear message), and the fallbacks give the fast path's labels.

A version is made unsupported by replacing the installed version a module read at import.
"""

import logging
import os

import numpy as np
import pytest

from topic_pipeline import _compat
from topic_pipeline._compat import UnsupportedVersion
from topic_pipeline._compat import hdbscan as hdbscan_compat
from topic_pipeline._compat import numba as numba_compat
from topic_pipeline._compat import umap as umap_compat


@pytest.fixture
def fresh_announcements(monkeypatch):
    """Each module warns once per process; a test that expects the warning must not find it spent."""
    monkeypatch.setattr(_compat, "_announced", set())


def fallback_warnings(caplog, module) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.getMessage().startswith(module.__name__)
    ]


def test_the_installed_versions_are_those_the_modules_were_written_for():
    for module in (umap_compat, hdbscan_compat, numba_compat):
        assert module.supported(), _compat.mismatches(module.SUPPORTED, module.INSTALLED)


def test_umap_unsupported_version_skips_the_shared_graph_and_refuses_its_settings(
    monkeypatch, caplog, fresh_announcements
):
    from topic_pipeline.engine.fast import build_graphs
    from topic_pipeline.engine.neighbors import exact_graph, prepare

    monkeypatch.setitem(umap_compat.INSTALLED, "umap-learn", "0.6.0")
    with caplog.at_level(logging.WARNING):
        assert not umap_compat.supported()
        assert not umap_compat.supported()
    warned = fallback_warnings(caplog, umap_compat)
    assert len(warned) == 1 and "\n" not in warned[0]
    assert "umap-learn 0.6.0 (written for 0.5.12)" in warned[0] and "plain UMAP" in warned[0]
    data = prepare(np.random.default_rng(0).normal(size=(50, 4)))
    with pytest.raises(UnsupportedVersion, match=r"umap-learn 0\.6\.0 \(written for 0\.5\.12\)"):
        umap_compat.search_settings(data, 5, "cosine", 0)
    with pytest.raises(UnsupportedVersion):
        exact_graph(data, 5, 0)
    # The graph-building task is skipped without looking at its tasks.
    assert build_graphs((object(),)) == 0


def _cluster_all(data, requests):
    from topic_pipeline.engine.clustering import TreeClusterer

    clusterer = TreeClusterer(data)
    return [clusterer.labels(*request) for request in requests], clusterer.trees_built


def test_hdbscan_unsupported_version_fits_hdbscan_per_request_with_the_same_labels(
    monkeypatch, caplog, fresh_announcements
):
    from topic_pipeline.engine.clustering import hdbscan_model

    rng = np.random.default_rng(3)
    data = np.concatenate([rng.normal(loc=centre, size=(80, 3)) for centre in (0.0, 4.0, 9.0)])
    requests = [(10, None, 0.0), (10, None, 0.5), (25, 10, 0.0), (5, 3, 0.0), (8, 3, 0.2)]
    fast, fast_trees = _cluster_all(data, requests)
    assert fast_trees == 2  # min_samples 10 and 3

    monkeypatch.setitem(hdbscan_compat.INSTALLED, "hdbscan", "0.9.0")
    with caplog.at_level(logging.WARNING):
        fallback, fallback_trees = _cluster_all(data, requests)
    assert fallback_trees == len(requests)  # a public fit, and its own tree, per request
    for fast_labels, fallback_labels in zip(fast, fallback):
        np.testing.assert_array_equal(fallback_labels, fast_labels)
    warned = fallback_warnings(caplog, hdbscan_compat)
    assert len(warned) == 1 and "hdbscan 0.9.0 (written for 0.8.44)" in warned[0]

    labels, tree = hdbscan_compat.labels_and_tree(data, hdbscan_model(10, None, 0.0))
    assert tree is None
    np.testing.assert_array_equal(labels, fast[0])
    with pytest.raises(UnsupportedVersion, match=r"hdbscan 0\.9\.0 \(written for 0\.8\.44\)"):
        hdbscan_compat.labels_from_tree(data, np.zeros((1, 4)), hdbscan_model(10, None, 0.0))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_idle_loky_workers_are_stopped_through_the_public_api():
    from joblib import Parallel, delayed

    from topic_pipeline.engine.fast import stop_joblib_workers

    stop_joblib_workers()  # none running: starts none
    workers = set(Parallel(n_jobs=2)(delayed(os.getpid)() for _ in range(8))) - {os.getpid()}
    assert workers and all(_alive(pid) for pid in workers)
    stop_joblib_workers()
    assert not any(_alive(pid) for pid in workers)


def test_numba_unsupported_version_leaves_compilation_as_numba_has_it(monkeypatch, caplog, fresh_announcements):
    monkeypatch.setattr(numba_compat, "_enabled", False)
    monkeypatch.setitem(numba_compat.INSTALLED, "numba", "0.70.0")
    with caplog.at_level(logging.WARNING):
        assert numba_compat.enable() is False
        assert numba_compat.enable() is False
    assert numba_compat._enabled is False
    warned = fallback_warnings(caplog, numba_compat)
    assert len(warned) == 1 and "\n" not in warned[0]
    assert "numba 0.70.0 (written for 0.68.1)" in warned[0] and "compile in every process" in warned[0]


@pytest.mark.slow
def test_the_public_fallbacks_give_the_labels_of_the_fast_path(tmp_path, monkeypatch):
    """Below 4,096 documents, where the fast path shares one exact kNN graph and one tree per min_samples."""
    from test_engine import blobs, run_engine

    from topic_pipeline.inputs.grid import ParamGrid

    embeddings, texts = blobs(400, seed=2)
    grid = ParamGrid.from_mapping(
        {
            "umap_n_neighbors": [8, 15],
            "umap_n_components": [5],
            "umap_min_dist": [0.0],
            "hdbscan_min_cluster_size": [10, 20],
            "hdbscan_min_samples": [None, 4],
            "hdbscan_cluster_selection_epsilon": [0.0, 0.3],
            "nr_topics": ["none"],
        }
    )
    trials = [(t.key, t) for t in grid.trials()]
    (tmp_path / "fast").mkdir()
    (tmp_path / "fallback").mkdir()
    fast, fast_stats = run_engine(tmp_path / "fast", embeddings, texts, trials, workers=1)

    for module, name in ((umap_compat, "umap-learn"), (hdbscan_compat, "hdbscan")):
        monkeypatch.setitem(module.INSTALLED, name, "0.0.0")
    fallback, fallback_stats = run_engine(tmp_path / "fallback", embeddings, texts, trials, workers=1)

    # The fast path shared a kNN graph and one tree per (reduction, effective min_samples); the fallback
    # built neither.
    assert fast_stats.trees_built == 2 * 3 and fallback_stats.trees_built == len(trials)
    assert list((tmp_path / "fast" / "cache").glob("knn-*.npz"))
    assert not list((tmp_path / "fallback" / "cache").glob("knn-*.npz"))
    for key, _ in trials:
        assert fast[key].error is None and fallback[key].error is None, (fast[key].error, fallback[key].error)
        np.testing.assert_array_equal(fallback[key].labels, fast[key].labels, err_msg=key)
    # The reductions themselves are bit-identical (same cache keys on both sides).
    reductions = sorted(path.name for path in (tmp_path / "fast" / "cache").glob("umap-*.npz"))
    assert len(reductions) == 2
    for name in reductions:
        with np.load(tmp_path / "fast" / "cache" / name) as a, np.load(tmp_path / "fallback" / "cache" / name) as b:
            np.testing.assert_array_equal(b["reduction"], a["reduction"], err_msg=name)


def _add_one(x):
    return x + 1


def test_a_numba_cache_entry_naming_a_module_that_moved_is_compiled_afresh(monkeypatch):
    from numba.core import caching, types
    from numba.core.registry import cpu_target

    def stale_entry(self, sig, target_context):
        raise ModuleNotFoundError("No module named 'topic_pipeline.numba_cache'")

    monkeypatch.setattr(caching.Cache, "load_overload", stale_entry)
    cache = numba_compat._stable_key_cache_class()(_add_one)
    assert cache.load_overload((types.int64,), cpu_target.target_context) is None

"""The on-disk array cache: atomic entries, damaged entries recomputed, one writer per entry."""

import multiprocessing
import time
from pathlib import Path

import numpy as np

from topic_pipeline.array_cache import ArrayCache, cache_key


def _compute_slowly(directory: str, log: str, barrier) -> float:
    cache = ArrayCache(directory)

    def compute():
        with open(log, "a") as handle:
            handle.write("computed\n")
        time.sleep(1.0)
        return {"value": np.arange(5, dtype=np.float32)}

    barrier.wait()
    arrays, _ = cache.get_or_compute("entry", compute)
    return float(arrays["value"].sum())


def test_two_processes_wanting_one_entry_compute_it_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    log = tmp_path / "computations.log"
    with context.Manager() as manager:
        barrier = manager.Barrier(2)
        with context.Pool(2) as pool:
            results = pool.starmap(_compute_slowly, [(str(tmp_path / "cache"), str(log), barrier)] * 2)
    assert results == [10.0, 10.0]
    assert log.read_text().count("computed") == 1


def test_entries_are_pickle_free_and_damage_is_recomputed(tmp_path):
    cache = ArrayCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"reduction": np.ones((4, 2), dtype=np.float32)}

    valid = lambda arrays: arrays.get("reduction") is not None and arrays["reduction"].shape == (4, 2)  # noqa: E731
    first, cached = cache.get_or_compute("k", compute, valid)
    assert not cached and len(calls) == 1
    _, cached = cache.get_or_compute("k", compute, valid)
    assert cached and len(calls) == 1

    path = cache.path("k")
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # truncated
    again, cached = cache.get_or_compute("k", compute, valid)
    assert not cached and len(calls) == 2
    np.testing.assert_array_equal(again["reduction"], first["reduction"])

    np.savez(path, reduction=np.ones((3, 2), dtype=np.float32))  # wrong shape
    _, cached = cache.get_or_compute("k", compute, valid)
    assert not cached and len(calls) == 3

    np.savez(path, reduction=np.array([{"a": 1}], dtype=object))  # an object array would need pickle
    assert cache.load("k", valid) is None
    assert not [p for p in Path(tmp_path).iterdir() if p.suffix == ".tmp"]


def test_cache_key_covers_every_identity_field():
    base = {"embeddings": "e", "n_neighbors": 15, "seed": 42}
    keys = {cache_key("umap", base), cache_key("umap", {**base, "seed": 43}), cache_key("umap", {**base, "n_neighbors": 16}),
            cache_key("knn", base)}
    assert len(keys) == 4
    assert cache_key("umap", base) == cache_key("umap", dict(reversed(list(base.items()))))

"""The on-disk array cache: atomic entries, damaged entries recomputed, one writer per entry."""

import multiprocessing
import time
from pathlib import Path

import numpy as np
import pytest

from topic_pipeline.domain.versions import cache_key
from topic_pipeline.storage.array_cache import ArrayCache


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


RACING_WRITES = 40


def _store_one_entry_and_one_result_repeatedly(directory: str, barrier) -> int:
    """What two workers sharing a data directory do when both compute one cache entry and one trial: each writes
    its own complete copy, over and over, as close together in time as the barrier gets them, and reads back
    what is there meanwhile. Returns how many reads found something other than a whole entry and row."""
    from topic_pipeline.domain.results import STATUS_OK, TrialResult
    from topic_pipeline.storage.results import ResultStore

    cache, results = ArrayCache(Path(directory) / "cache"), ResultStore(Path(directory) / "results")
    arrays = {"reduction": np.arange(200_000, dtype=np.float32).reshape(-1, 2)}
    result = TrialResult("trial", {"n": 1}, "fingerprint", STATUS_OK, metrics={"ari": 0.5})
    barrier.wait()
    broken = 0
    for _ in range(RACING_WRITES):
        cache.store("entry", arrays)  # no lock taken: the rename alone must keep the entry whole
        results.save(result, np.zeros(1000, dtype=np.int32))
        broken += cache.load("entry") is None or results.current("trial", "fingerprint", {"n": 1}) is None
    return broken


def test_two_processes_writing_one_entry_and_one_result_at_once_leave_one_intact_copy_of_each(tmp_path):
    from topic_pipeline.storage.results import ResultStore

    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(2)
        with context.Pool(2) as pool:
            broken = pool.starmap(_store_one_entry_and_one_result_repeatedly, [(str(tmp_path), barrier)] * 2)

    assert broken == [0, 0]
    entry = ArrayCache(tmp_path / "cache").load("entry")
    np.testing.assert_array_equal(entry["reduction"], np.arange(200_000, dtype=np.float32).reshape(-1, 2))
    results = ResultStore(tmp_path / "results")
    assert results.current("trial", "fingerprint", {"n": 1}).metrics == {"ari": 0.5}
    assert results.labels("trial", 1000) is not None
    # One file per entry and per row (a trial written twice is one row), no temporary file left behind.
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["entry.npz"]
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["trial.json", "trial.labels.npy"]


def test_an_entry_is_computed_where_the_file_system_refuses_locks(tmp_path, monkeypatch):
    """Some NFS mounts answer ``flock`` with ENOLCK: the lock only saves work, so the entry is computed anyway."""
    import errno

    from topic_pipeline.storage import array_cache

    def refuse(*_):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(array_cache.fcntl, "flock", refuse)
    arrays, cached = ArrayCache(tmp_path).get_or_compute("k", lambda: {"value": np.arange(3)})
    assert not cached and arrays["value"].tolist() == [0, 1, 2]
    assert ArrayCache(tmp_path).get_or_compute("k", lambda: {})[1]


def test_temporary_files_are_named_by_host_process_and_chance(tmp_path):
    """Workers on several machines write into one directory: a process id alone repeats across machines."""
    import os
    import socket

    from topic_pipeline.storage.files import TEMPORARY_SUFFIX, staging_file, temporary_prefix

    host = "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname())[:24]
    assert temporary_prefix(tmp_path / "k.json") == f".k.json.{host}-{os.getpid()}."
    first, second = staging_file(tmp_path / "k.json"), staging_file(tmp_path / "k.json")
    assert first != second and all(p.name.startswith(f".k.json.{host}-{os.getpid()}.") for p in (first, second))
    assert all(p.name.endswith(TEMPORARY_SUFFIX) for p in (first, second))
    assert len(temporary_prefix(tmp_path / ("k" * 250))) < 200  # a long name leaves room for the rest


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
    keys = {
        cache_key("umap", base),
        cache_key("umap", {**base, "seed": 43}),
        cache_key("umap", {**base, "n_neighbors": 16}),
        cache_key("knn", base),
    }
    assert len(keys) == 4
    assert cache_key("umap", base) == cache_key("umap", dict(reversed(list(base.items()))))


def _all_keys() -> dict[str, str]:
    from topic_pipeline.domain.results import inputs_fingerprint
    from topic_pipeline.domain.trials import DEFAULT_EMBEDDING_MODEL, EmbeddingSet
    from topic_pipeline.engine.reduction import ReductionSpec, knn_cache_key, reduction_cache_key
    from topic_pipeline.inputs.embeddings import EmbeddingCache

    return {
        "embeddings": EmbeddingCache("unused").key(EmbeddingSet(DEFAULT_EMBEDDING_MODEL, False), "corpus", "english"),
        "small knn": knn_cache_key("emb", 1000, 15, 100, 42),
        "large knn": knn_cache_key("emb", 5000, 15, 15, 42),
        "reduction": reduction_cache_key("emb", ReductionSpec(15, 5, 0.0, 42)),
        "trial results": inputs_fingerprint("corpus", "labels", 42, "english", holdout_fraction=0.3, holdout_seed=42),
    }


@pytest.mark.parametrize(
    ("library", "changed"),
    [
        ("sentence-transformers", {"embeddings", "trial results"}),
        ("torch", {"embeddings", "trial results"}),
        ("umap-learn", {"small knn", "large knn", "reduction", "trial results"}),
        ("pynndescent", {"small knn", "large knn", "reduction", "trial results"}),
        ("numba", {"small knn", "large knn", "reduction", "trial results"}),
        ("hdbscan", {"trial results"}),
        ("bertopic", {"trial results"}),
        ("pandas", set()),  # moves data around, changes no number: an upgrade recomputes nothing
    ],
)
def test_a_new_library_version_changes_exactly_the_keys_it_can_change(monkeypatch, library, changed):
    import topic_pipeline.domain.versions as versions

    before = _all_keys()
    real = versions.package_version
    monkeypatch.setattr(versions, "package_version", lambda name: "9.9.9" if name == library else real(name))
    after = _all_keys()
    assert {name for name in before if before[name] != after[name]} == changed


def test_embedding_keys_follow_the_model_content(tmp_path, monkeypatch):
    """(Corpus, model name and stop words in the key: test_embeddings.)"""
    import topic_pipeline.inputs.embeddings as embeddings
    from topic_pipeline.domain.trials import DEFAULT_EMBEDDING_MODEL, EmbeddingSet
    from topic_pipeline.inputs.embeddings import EmbeddingCache

    key = EmbeddingCache(tmp_path).key
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights v1")
    local = EmbeddingSet(str(folder), False)
    before = key(local, "corpus", "english")
    assert key(local, "corpus", "english") == before
    (folder / "model.safetensors").write_bytes(b"weights v2, longer")  # a local model replaced in place
    assert key(local, "corpus", "english") != before

    default = EmbeddingSet(DEFAULT_EMBEDDING_MODEL, False)
    packaged = key(default, "corpus", "english")
    monkeypatch.setattr(embeddings, "package_version", lambda name: "9.9.9")  # a new release of the model's package
    assert key(default, "corpus", "english") != packaged

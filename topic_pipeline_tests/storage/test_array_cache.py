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

"""The store every cache and result row shares: an absent entry is None quietly, a damaged one is None
and logged, whichever store it belongs to."""

import logging

import numpy as np

from topic_pipeline.domain.results import TrialResult
from topic_pipeline.inputs.embeddings import EmbeddingCache
from topic_pipeline.storage.array_cache import ArrayCache
from topic_pipeline.storage.files import read_array, save_array
from topic_pipeline.storage.results import ResultStore
from topic_pipeline.storage.store import FileStore


def warnings_about(caplog, path) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and str(path) in r.getMessage()]


def test_absent_is_quiet_damaged_and_rejected_are_logged(tmp_path, caplog):
    store = FileStore(tmp_path, ".npy", read_array, save_array, "test entry", "it is ignored")
    caplog.set_level(logging.WARNING)
    assert store.load("k") is None
    assert caplog.records == []

    path = store.save("k", np.arange(3))
    assert path == tmp_path / "k.npy"
    np.testing.assert_array_equal(store.load("k"), np.arange(3))
    assert store.load("k", lambda a: None if a.shape == (3,) else "is the wrong shape") is not None
    assert store.load("k", lambda a: "is the wrong shape") is None
    assert warnings_about(caplog, path) == [f"test entry {path} is the wrong shape; it is ignored"]

    caplog.clear()
    path.write_bytes(b"not an npy file")
    assert store.load("k") is None
    (message,) = warnings_about(caplog, path)
    assert message.startswith(f"test entry {path} is unreadable (") and message.endswith("; it is ignored")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.npy"]  # no temporary file left behind


def test_every_store_logs_a_damaged_entry(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    arrays = ArrayCache(tmp_path / "cache")
    arrays.store("a", {"x": np.zeros(2)})
    embeddings = EmbeddingCache(tmp_path / "embeddings")
    embeddings.store("e", np.zeros((2, 3), dtype=np.float32), {})
    results = ResultStore(tmp_path / "results")
    results.save(TrialResult("t", {}, "fp", "ok"), np.zeros(2))
    damaged = [arrays.path("a"), embeddings.path("e"), results.path("t"), results.labels_path("t")]
    for path in damaged:
        path.write_bytes(path.read_bytes()[:20])
    assert arrays.load("a") is None
    assert embeddings.load("e", 2) is None
    assert results.load("t") is None
    assert results.labels("t", 2) is None
    for path in damaged:
        assert len(warnings_about(caplog, path)) == 1, path

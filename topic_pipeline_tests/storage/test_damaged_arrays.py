"""Damaged array files, every kind the project stores: a trial's labels (``.labels.npy``), the embedding cache
(``.npy``), neighbour graphs and UMAP reductions (``.npz``). A truncated or garbled file is detected when it
is read (its checksum, numpy's and zipfile's own checks, the reader's check of its shape), logged with its
path, and treated as absent: the trial counts as not run (the planner reruns it), the cache entry is
recomputed. The other entries stay as they were, byte for byte and inode for inode."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from topic_pipeline.domain.results import STATUS_FAILED, STATUS_OK, TrialResult
from topic_pipeline.storage import store as store_module
from topic_pipeline.storage.array_cache import ArrayCache
from topic_pipeline.storage.files import ARRAY_CHECKSUM_MARK, read_array, read_arrays, save_array, save_arrays
from topic_pipeline.storage.results import ResultStore
from topic_pipeline.storage.store import FileStore

TRAILER = len(ARRAY_CHECKSUM_MARK) + 65
N_DOCUMENTS = 30


def warnings_about(caplog, path) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and str(path) in r.getMessage()]


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Each file's bytes, inode and modification time: an entry left alone keeps all three."""
    return {
        p.name: (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()
    }


def damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbled data":  # one byte in the middle of the file: the array's data, same size
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif how == "garbled header":  # one byte of the first header (.npy: its dict; .npz: the first member's)
        data[20] ^= 0x01
        path.write_bytes(bytes(data))
    elif how == "garbled checksum":
        data[-5] = ord("0") if data[-5] != ord("0") else ord("1")
        path.write_bytes(bytes(data))
    else:
        raise AssertionError(how)


DAMAGE = ["truncated", "empty", "garbled data", "garbled header", "garbled checksum"]


# --- the file formats --------------------------------------------------------------------------------


def _read_or_damage(store: FileStore, key: str):
    """The entry as ``FileStore.load`` gives it, never an exception."""
    return store.load(key)


def test_every_byte_of_an_npy_file_is_covered(tmp_path, caplog):
    """Every single-byte change and every truncation of a stored .npy reads as damage, except cutting off
    exactly the checksum (what is left is a complete .npy, read with numpy's checks as a file written
    before checksums existed)."""
    caplog.set_level(logging.WARNING)
    store = FileStore(tmp_path, ".npy", read_array, save_array, "test array", "it is ignored")
    original = np.arange(N_DOCUMENTS, dtype=np.int32) - 1
    path = store.save("k", original)
    good = path.read_bytes()
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), original)  # still a plain .npy for numpy
    for position in range(len(good)):
        changed = bytearray(good)
        changed[position] ^= 0x55
        path.write_bytes(bytes(changed))
        assert _read_or_damage(store, "k") is None, f"a change at byte {position} went unnoticed"
    for length in range(len(good)):
        path.write_bytes(good[:length])
        loaded = _read_or_damage(store, "k")
        if length == len(good) - TRAILER:
            np.testing.assert_array_equal(loaded, original)
        else:
            assert loaded is None, f"cut to {length} bytes went unnoticed"
    assert len(warnings_about(caplog, path)) == 2 * len(good) - 1


def test_every_byte_of_an_npz_file_is_covered(tmp_path):
    """The same for a cache entry: every change or truncation reads as damage, or, where it touched only the
    checksum, as the very arrays that were stored (each member's CRC-32 still checks them); never as other
    arrays. A changed member count in the archive's end record used to read as an entry missing members."""
    store = FileStore(tmp_path, ".npz", read_arrays, save_arrays, "test entry", "it is ignored")
    original = {
        "indices": np.arange(12, dtype=np.int32).reshape(4, 3),
        "distances": np.linspace(0, 1, 12, dtype=np.float32).reshape(4, 3),
    }
    path = store.save("k", original)
    good = path.read_bytes()
    with np.load(path, allow_pickle=False) as archive:  # still a plain .npz for numpy
        np.testing.assert_array_equal(archive["distances"], original["distances"])
    unnoticed = []
    for position, length in [(p, None) for p in range(len(good))] + [(None, n) for n in range(len(good))]:
        if length is None:
            changed = bytearray(good)
            changed[position] ^= 0x55
            path.write_bytes(bytes(changed))
        else:
            path.write_bytes(good[:length])
        loaded = _read_or_damage(store, "k")
        if loaded is not None:
            assert loaded.keys() == original.keys()
            for name, array in original.items():
                assert loaded[name].dtype == array.dtype
                np.testing.assert_array_equal(loaded[name], array)
            unnoticed.append(position if length is None else length)
    # Only damage to the trailing checksum itself leaves the arrays readable.
    assert all(point >= len(good) - TRAILER for point in unnoticed)


def test_array_files_without_a_checksum_still_read(tmp_path):
    np.save(tmp_path / "old.npy", np.arange(3, dtype=np.int32))
    np.savez(tmp_path / "old.npz", reduction=np.ones((2, 2), dtype=np.float32))
    np.testing.assert_array_equal(read_array(tmp_path / "old.npy"), np.arange(3))
    assert read_arrays(tmp_path / "old.npz")["reduction"].shape == (2, 2)
    # ... but bytes after the array that are not a checksum are damage.
    with open(tmp_path / "old.npy", "ab") as stream:
        stream.write(b"junk")
    with pytest.raises(ValueError, match="not its checksum"):
        read_array(tmp_path / "old.npy")


# --- trial labels: the trial counts as not run --------------------------------------------------------


def _scored(key: str, status: str = STATUS_OK) -> TrialResult:
    return TrialResult(
        key,
        {"p": key},
        "fp",
        status,
        {"ari": 0.5} if status == STATUS_OK else {},
        error=None if status == STATUS_OK else "RuntimeError: x",
        finished_at=1.0,
    )


def _store_three(folder: Path) -> ResultStore:
    store = ResultStore(folder)
    for number, key in enumerate(["a", "b"]):
        store.save(_scored(key), np.full(N_DOCUMENTS, number, dtype=np.int32))
    store.save(_scored("c", STATUS_FAILED))
    return store


@pytest.mark.parametrize("how", DAMAGE)
def test_a_trial_whose_labels_are_damaged_counts_as_not_run(tmp_path, caplog, how):
    caplog.set_level(logging.WARNING)
    store = _store_three(tmp_path)
    assert all(store.current(key, "fp", {"p": key}) is not None for key in "abc")
    before = snapshot(tmp_path)

    damage(store.labels_path("a"), how)
    assert store.current("a", "fp", {"p": "a"}) is None  # the planner's question: not done, so it reruns
    (message,) = warnings_about(caplog, store.labels_path("a"))
    assert message.startswith(f"trial labels {store.labels_path('a')} is unreadable (")
    assert message.endswith("; the trial counts as not run (its topics are not shown until it is rerun)")
    assert store.labels("a", N_DOCUMENTS) is None
    assert store.load("a") is not None  # the row itself is intact: only its labels make it not current

    # The other trials are untouched and still done.
    after = snapshot(tmp_path)
    assert {name: after[name] for name in after if not name.startswith("a.")} == {
        name: before[name] for name in before if not name.startswith("a.")
    }
    assert store.current("b", "fp", {"p": "b"}) is not None and store.current("c", "fp", {"p": "c"}) is not None
    assert store.labels("b", N_DOCUMENTS).tolist() == [1] * N_DOCUMENTS

    # The rerun writes both again: done, with its topics.
    store.save(_scored("a"), np.zeros(N_DOCUMENTS, dtype=np.int32))
    assert store.current("a", "fp", {"p": "a"}) is not None
    assert store.labels("a", N_DOCUMENTS).tolist() == [0] * N_DOCUMENTS


def test_labels_of_another_length_hide_topics_but_a_row_without_labels_stays_done(tmp_path, caplog):
    """A check that needs the corpus (its length) is the leaderboard's, which only stops showing topics; a
    scored row stored without a labels file (before labels were stored) stays done, as before."""
    caplog.set_level(logging.WARNING)
    store = _store_three(tmp_path)
    assert store.labels("a", N_DOCUMENTS + 1) is None
    (message,) = warnings_about(caplog, store.labels_path("a"))
    assert message.endswith(f"expected ({N_DOCUMENTS + 1},) int32; that trial's topics are not shown")
    store.labels_path("b").unlink()
    assert store.current("b", "fp", {"p": "b"}) is not None


def test_a_labels_file_read_intact_is_read_again_only_once_it_changes(tmp_path, monkeypatch):
    """The planner asks for every trial on every tick: a settled file version read intact is not read again,
    and a change in place (same inode, same size) is still seen."""
    import topic_pipeline.storage.results as results_module

    reads = []

    def counting(path):
        reads.append(path)
        return read_array(path)

    monkeypatch.setattr(results_module, "read_array", counting)
    store = _store_three(tmp_path)
    time.sleep(1.1)  # versions changed within the last second are never remembered
    for _ in range(3):
        assert store.current("a", "fp", {"p": "a"}) is not None
    assert reads == [store.labels_path("a")]
    with open(store.labels_path("a"), "r+b") as stream:  # garbled in place: inode and size stay
        stream.seek(140)
        stream.write(b"\x7f")
    assert store.current("a", "fp", {"p": "a"}) is None
    assert store_module._READ_INTACT.get(str(store.labels_path("a"))) is None


# --- the planner ---------------------------------------------------------------------------------------


def test_the_planner_reruns_exactly_the_trial_whose_labels_are_damaged(tmp_path, caplog):
    import dagster as dg

    from topic_pipeline.defs.assets.inputs import documents, ground_truth, param_grid
    from topic_pipeline.defs.planning import (
        PARTITION_RANGE_END_TAG,
        PARTITION_RANGE_START_TAG,
        plan_next_runs,
        plan_sweep,
    )
    from topic_pipeline.defs.resources.database import DocumentsDatabase
    from topic_pipeline.defs.resources.io_manager import ParquetJsonIOManager
    from topic_pipeline.defs.resources.settings import PipelineSettings
    from topic_pipeline.domain.trials import EmbeddingSet
    from topic_pipeline.inputs.embeddings import EmbeddingCache
    from topic_pipeline.storage.files import read_json

    database = tmp_path / "source.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE documents (id INTEGER, text TEXT)")
        connection.executemany(
            "INSERT INTO documents VALUES (?, ?)", [(i, f"text {i}") for i in range(1, N_DOCUMENTS + 1)]
        )
    connection.close()
    (tmp_path / "labels.json").write_text(json.dumps({"a": [1, 2], "b": [3, 4]}))
    (tmp_path / "grid.json").write_text(json.dumps({"hdbscan_min_cluster_size": [2, 3, 4]}))
    data = str(tmp_path / "data")
    settings = PipelineSettings(
        data_dir=data, ground_truth_path=str(tmp_path / "labels.json"), grid_path=str(tmp_path / "grid.json")
    )
    resources = {
        "database": DocumentsDatabase(url=f"sqlite:///{database}"),
        "settings": settings,
        "io_manager": ParquetJsonIOManager(data_dir=data),
    }
    caplog.set_level(logging.WARNING)
    with dg.instance_for_test() as instance:
        assert dg.materialize([documents, ground_truth, param_grid], instance=instance, resources=resources).success
        paths = settings.paths
        manifest = read_json(paths.current_grid)
        latest = {
            asset: instance.get_latest_materialization_event(dg.AssetKey(asset))
            .asset_materialization.metadata["content_hash"]
            .value
            for asset in ("documents", "ground_truth")
        }
        [values] = manifest["embedding_sets"].values()
        cache = EmbeddingCache(paths.embeddings)
        cache.store(
            cache.key(EmbeddingSet(**values), latest["documents"], settings.stopwords_language),
            np.zeros((N_DOCUMENTS, 4), dtype=np.float32),
            {},
        )
        fingerprint = settings.inputs_fingerprint(latest["documents"], latest["ground_truth"])
        store = ResultStore(paths.results)
        keys = list(manifest["trials"])
        for number, key in enumerate(keys):
            store.save(
                TrialResult(key, manifest["trials"][key], fingerprint, STATUS_OK, {"ari": 0.5}),
                np.full(N_DOCUMENTS, number, dtype=np.int32),
            )
        plan_next_runs(instance, settings)  # the partitions exist, as after a sweep
        assert [run.job_name for run in plan_sweep(instance, settings).runs] == ["leaderboard_job"]

        damaged = keys[1]
        damage(store.labels_path(damaged), "truncated")
        [run] = plan_sweep(instance, settings).runs
        assert run.job_name == "trials_job"
        assert run.tags == {PARTITION_RANGE_START_TAG: damaged, PARTITION_RANGE_END_TAG: damaged}
        assert warnings_about(caplog, store.labels_path(damaged))


# --- the caches: recomputed, the other entries untouched -----------------------------------------------


@pytest.fixture
def fake_reduction(monkeypatch):
    """The engine's reduction path with its real cache keys and checks, the numerical work faked (counted)."""
    import topic_pipeline.engine.reduction as reduction
    from topic_pipeline.engine.neighbors import KnnGraph

    computed: list[str] = []

    def graph(data, k, seed):
        computed.append("knn")
        distances = np.linalg.norm(data[:, None] - data[None], axis=2)
        indices = np.argsort(distances, axis=1, kind="stable")[:, :k]
        return KnnGraph(indices, np.take_along_axis(distances, indices, axis=1).astype(np.float32), None, None)

    def fit(data, graph, spec):
        computed.append(f"umap nc{spec.n_components}")
        return np.full((data.shape[0], spec.n_components), spec.n_components, dtype=np.float32)

    monkeypatch.setattr(reduction, "exact_graph", graph)
    monkeypatch.setattr(reduction, "fit_reduction", fit)
    monkeypatch.setattr(reduction.umap_compat, "supported", lambda: True)
    return reduction, computed


@pytest.mark.parametrize("entry", ["knn", "umap"])
@pytest.mark.parametrize("how", [*DAMAGE, "a member missing"])
def test_a_damaged_graph_or_reduction_is_recomputed_and_the_others_untouched(
    tmp_path, caplog, fake_reduction, entry, how
):
    reduction, computed = fake_reduction
    caplog.set_level(logging.WARNING)
    cache = ArrayCache(tmp_path)
    embeddings = np.random.default_rng(0).normal(size=(N_DOCUMENTS, 8)).astype(np.float32)
    specs = [reduction.ReductionSpec(10, components, 0.0, 42) for components in (2, 5)]

    def everything():
        graph = reduction.neighbour_graph(cache, "emb", reduction.prepare(embeddings), 10, 15, 42)
        return graph, [reduction.cached_reduction(cache, "emb", embeddings, spec, 15)[0] for spec in specs]

    first_graph, first = everything()
    assert computed == ["knn", "umap nc2", "umap nc5"]
    before = snapshot(tmp_path)
    path = cache.path(
        reduction.knn_cache_key("emb", N_DOCUMENTS, 10, 15, 42)
        if entry == "knn"
        else reduction.reduction_cache_key("emb", specs[0])
    )
    if how == "a member missing":  # an intact file without what its reader needs ('distances', 'reduction')
        cache.store(
            path.name.removesuffix(".npz"), {"indices": first_graph.indices} if entry == "knn" else {"other": first[0]}
        )
    else:
        damage(path, how)

    computed.clear()
    graph, again = everything()
    assert computed == (["knn"] if entry == "knn" else ["umap nc2"])
    assert warnings_about(caplog, path) and all(
        message.endswith("; recomputing it") for message in warnings_about(caplog, path)
    )
    np.testing.assert_array_equal(graph.indices, first_graph.indices)
    for old, new in zip(first, again):
        np.testing.assert_array_equal(old, new)
    after = snapshot(tmp_path)
    assert {name: value for name, value in after.items() if name != path.name} == {
        name: value for name, value in before.items() if name != path.name
    }
    assert after[path.name][0] == before[path.name][0]  # recomputed to the same bytes
    computed.clear()
    everything()
    assert computed == []


@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_embedding_entry_is_recomputed_and_the_others_untouched(tmp_path, caplog, monkeypatch, how):
    from topic_pipeline.domain.trials import DEFAULT_EMBEDDING_MODEL, EmbeddingSet
    from topic_pipeline.errors import MissingEmbeddingsError
    from topic_pipeline.inputs import embeddings as embeddings_module
    from topic_pipeline.inputs.embeddings import EmbeddingCache, EmbeddingSettings, embed_corpus

    encoded = []

    class Model:
        def encode(self, texts, **_):
            encoded.append(len(texts))
            return np.array([[len(text), index, 1.0] for index, text in enumerate(texts)], dtype=np.float32)

    monkeypatch.setattr(embeddings_module, "load_model", lambda *args: Model())
    caplog.set_level(logging.WARNING)
    cache = EmbeddingCache(tmp_path)
    texts = [f"text number {i}" for i in range(N_DOCUMENTS)]
    settings = EmbeddingSettings(device="cpu")
    sets = [EmbeddingSet(DEFAULT_EMBEDDING_MODEL, False), EmbeddingSet("other/model", False)]
    first = [embed_corpus(texts, "corpus", embedding_set, cache, settings) for embedding_set in sets]
    before = snapshot(tmp_path)
    path = cache.path(first[0].cache_key)
    damage(path, how)

    with pytest.raises(MissingEmbeddingsError, match="materialise the embeddings partition"):
        cache.require(first[0].cache_key, N_DOCUMENTS, sets[0])  # a trial is refused, not handed damage
    encoded.clear()
    again = [embed_corpus(texts, "corpus", embedding_set, cache, settings) for embedding_set in sets]
    assert [outcome.from_cache for outcome in again] == [False, True] and encoded == [N_DOCUMENTS]
    message = warnings_about(caplog, path)[0]
    assert message.startswith(f"embedding cache entry {path} is unreadable (") and message.endswith(
        "; it will be recomputed"
    )
    np.testing.assert_array_equal(again[0].embeddings, first[0].embeddings)
    after = snapshot(tmp_path)
    rewritten = {path.name, f"{first[0].cache_key}.json"}  # the entry and its metadata, written again alike
    assert all(after[name][0] == before[name][0] for name in rewritten)
    assert {name: value for name, value in after.items() if name not in rewritten} == {
        name: value for name, value in before.items() if name not in rewritten
    }

"""A sweep killed mid-way (SIGKILL to the CLI, its Dagster step process and the engine's workers)
resumes with only its unfinished trials, reuses every finished cache entry, and ends with the same
leaderboard as a sweep that was never interrupted.

Real parts throughout: ``topic-pipeline sweep`` in subprocesses on a persistent Dagster instance,
SQLite source and MLflow store, the packaged embedding model. The uninterrupted sweep runs on the same
inputs in its own data directory and instance, at the same time as the one that gets killed. To save
two embedding runs, the embeddings are computed once here, into the cache both sweeps read.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from topic_pipeline.corpus import SqlSource, load_corpus
from topic_pipeline.embeddings import EmbeddingCache, EmbeddingSettings, embed_corpus
from topic_pipeline.grid import DEFAULT_EMBEDDING_MODEL, EmbeddingSet
from topic_pipeline.layout import DataLayout
from topic_pipeline.results import ResultStore
from topic_pipeline.storage import read_json

pytestmark = pytest.mark.slow

N_REDUCTIONS = 6


@pytest.fixture
def tiny_grid():
    """Six UMAP reductions (one per n_components) x two cluster sizes: the kill lands between them."""
    return {"umap_n_neighbors": [10], "umap_n_components": [2, 3, 4, 5, 6, 7], "hdbscan_min_cluster_size": [8, 20]}


def _cli() -> str:
    return str(Path(sys.executable).parent / "topic-pipeline")


def _start_sweep(project: Path, log_name: str, extra_environment: dict[str, str] | None = None) -> subprocess.Popen:
    environment = {
        **os.environ,
        "DAGSTER_HOME": str(project / "dagster_home"),
        "TOPIC_PIPELINE_DATA_DIR": str(project / "data"),
        **(extra_environment or {}),
    }
    log = open(project / log_name, "wb")  # noqa: SIM115 - closed with the process
    # Its own session and process group: the kill reaches every process the sweep started.
    return subprocess.Popen([_cli(), "sweep"], cwd=project, env=environment, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _group_members(group: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _cache_entries(layout: DataLayout) -> dict[str, tuple[int, int]]:
    return {path.name: (path.stat().st_ino, path.stat().st_mtime_ns) for path in layout.reductions.glob("*.npz")}


def _materialisations_by_partition(instance: dg.DagsterInstance) -> dict[str, list[str]]:
    """Partition key -> the run id of each of its materialisations ("" for one recorded outside a run)."""
    records = instance.fetch_materializations(dg.AssetKey("grid_trials"), limit=10_000).records
    found: dict[str, list[str]] = {}
    for record in records:
        found.setdefault(record.partition_key, []).append(record.run_id or "")
    return found


def _ranked(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    return frame[["rank", "trial", "status", "ari", "ami", "nmi", "f1_macro", "outlier_fraction", "topic_count"]]


def _embed_once(*layouts: DataLayout) -> None:
    source = SqlSource(os.environ["TOPIC_PIPELINE_DATABASE_URL"], table="articles", id_column="article_id", text_column="headline")
    corpus = load_corpus(source)
    embedding_set = EmbeddingSet(DEFAULT_EMBEDDING_MODEL, remove_stopwords=False)
    outcome = embed_corpus(corpus.texts, corpus.content_hash, embedding_set, EmbeddingCache(layouts[0].embeddings),
                           EmbeddingSettings(device="cpu", local_files_only=True))
    for layout in layouts[1:]:
        shutil.copytree(layouts[0].embeddings, layout.embeddings)
    assert not outcome.from_cache


def test_killed_sweep_resumes_with_only_the_missing_trials(tiny_project):
    project = tiny_project
    reference = project / "reference"
    reference.mkdir()
    (reference / "dagster_home").mkdir()
    layout = DataLayout(project / "data")
    _embed_once(layout, DataLayout(reference / "data"))

    # One worker: the reference needs no pool, and its labels equal the pool's (test_engine).
    uninterrupted = _start_sweep(reference, "sweep.log", {"TOPIC_PIPELINE_WORKERS": "1"})
    doomed = _start_sweep(project, "killed.log")
    deadline = time.monotonic() + 300
    results = layout.results
    while not (results.exists() and any(results.glob("*.json"))):
        assert doomed.poll() is None, (project / "killed.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no trial result appeared within 300 s"
        time.sleep(0.01)
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    for _ in range(200):  # the step process and the workers die with the group
        if not _group_members(doomed.pid):
            break
        time.sleep(0.05)
    assert _group_members(doomed.pid) == []

    done_at_kill = {path.stem for path in results.glob("*.json")}
    entries_at_kill = _cache_entries(layout)
    reductions_at_kill = sum(name.startswith("umap-") for name in entries_at_kill)
    assert 0 < len(done_at_kill) < 2 * N_REDUCTIONS, "the kill must land mid-sweep"
    assert reductions_at_kill < N_REDUCTIONS
    # Whatever the kill interrupted is at most a temporary file, which nothing reads; plant one per store
    # (as a write cut short would leave it) to show that the resumed sweep neither reads nor trips on it.
    missing_key = next(key for key in read_json(layout.current_grid)["trials"] if key not in done_at_kill)
    (results / f".{missing_key}.json.cut.tmp").write_text('{"key": "' + missing_key + '", "status": "o')
    (layout.reductions / ".umap-cut.npz.cut.tmp").write_bytes(b"PK\x03\x04 truncated")

    assert uninterrupted.wait(timeout=300) == 0, (reference / "sweep.log").read_text()[-3000:]
    resumed = _start_sweep(project, "resumed.log")
    assert resumed.wait(timeout=300) == 0, (project / "resumed.log").read_text()[-3000:]
    assert "marked failed: its process is gone" in (project / "resumed.log").read_text()

    # Every cache entry finished before the kill was reused as it was; only the missing ones were added.
    entries = _cache_entries(layout)
    assert {name: entries[name] for name in entries_at_kill} == entries_at_kill
    assert sum(name.startswith("umap-") for name in entries) == N_REDUCTIONS
    for name in entries:
        with np.load(layout.reductions / name, allow_pickle=False) as archive:
            assert archive.files

    with dg.DagsterInstance.from_config(str(project / "dagster_home")) as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name="trials_job"))
        killed = [run for run in runs if run.status == dg.DagsterRunStatus.FAILURE]
        finished = [run for run in runs if run.status == dg.DagsterRunStatus.SUCCESS]
        assert len(killed) == 1 and len(runs) == 1 + len(finished)
        # Each trial materialised exactly once: the resumed runs did only the missing ones; those the killed
        # run finished are recorded (outside a run) from their stored results, never recomputed.
        by_partition = _materialisations_by_partition(instance)
        assert sorted(by_partition) == sorted(instance.get_dynamic_partitions("trials"))
        assert all(len(run_ids) == 1 for run_ids in by_partition.values()), by_partition
        resumed_ids = {run.run_id for run in finished}
        assert {key for key, (run_id,) in by_partition.items() if run_id in resumed_ids} == set(by_partition) - done_at_kill
        assert {key for key, (run_id,) in by_partition.items() if run_id == ""} == done_at_kill
        computed = 0
        for run in finished:
            event = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records[0]
            computed += event.event_log_entry.asset_materialization.metadata["umap_reductions_computed"].value
        assert computed == N_REDUCTIONS - reductions_at_kill

    # The trials finished before the kill kept their results, and the leaderboard matches the uninterrupted one.
    store = ResultStore(results)
    assert all(store.load(key).tags["dagster_run_id"] == killed[0].run_id for key in done_at_kill)
    pd.testing.assert_frame_equal(
        _ranked(layout.leaderboard / "leaderboard.csv"), _ranked(reference / "data" / "leaderboard" / "leaderboard.csv")
    )
    shutil.rmtree(reference)

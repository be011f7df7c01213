"""Whole sweeps under faults, through the project's CLI in subprocesses on persistent Dagster instances.

* A sweep killed mid-way (SIGKILL to the CLI, its Dagster step process and the engine's workers)
  resumes with only its unfinished trials, reuses every finished cache entry, and ends with the same
  leaderboard as a sweep that was never interrupted.
* That uninterrupted sweep (and an export after it) reads its texts from PostgreSQL through a URL with
  a password, with HF_TOKEN set: neither secret may appear in any log, Dagster event or metadata, MLflow
  record or file it leaves behind.

Real parts throughout: ``topic-pipeline sweep`` / ``export``, SQLite and PostgreSQL sources, SQLite
MLflow stores, the packaged embedding model. The uninterrupted sweep runs at the same time as the one
that gets killed (two cores), on the same corpus and labels; to save an embedding run, the killed
sweep's embeddings are computed here, into the cache it reads.
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from conftest import require_service

from topic_pipeline.corpus import SqlSource, load_corpus
from topic_pipeline.embeddings import EmbeddingCache, EmbeddingSettings, embed_corpus
from topic_pipeline.grid import DEFAULT_EMBEDDING_MODEL, EmbeddingSet
from topic_pipeline.layout import DataLayout
from topic_pipeline.results import ResultStore
from topic_pipeline.sample_corpus import generate_sample_corpus
from topic_pipeline.storage import read_json

pytestmark = pytest.mark.slow

N_REDUCTIONS = 6
# Six UMAP reductions (one per n_components) x two cluster sizes: a kill lands between them.
GRID = {"umap_n_neighbors": [10], "umap_n_components": [2, 3, 4, 5, 6, 7], "hdbscan_min_cluster_size": [8, 20]}


@pytest.fixture
def tiny_grid():
    return GRID


def _cli() -> str:
    return str(Path(sys.executable).parent / "topic-pipeline")


def _start(project: Path, log_name: str, command: str, environment: dict[str, str]) -> subprocess.Popen:
    """``command`` (CLI subcommands joined by &&) in its own session and process group, so that a kill
    reaches every process it starts."""
    script = " && ".join(f'"{_cli()}" {part.strip()}' for part in command.split("&&"))
    log = open(project / log_name, "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(["bash", "-c", script], cwd=project, env=environment, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _start_sweep(project: Path, log_name: str) -> subprocess.Popen:
    environment = {**os.environ, "DAGSTER_HOME": str(project / "dagster_home"), "TOPIC_PIPELINE_DATA_DIR": str(project / "data")}
    return _start(project, log_name, "sweep", environment)


@pytest.fixture(scope="module")
def uninterrupted_sweep(tmp_path_factory):
    """``topic-pipeline sweep && topic-pipeline export`` on the tiny corpus, texts from PostgreSQL.

    Started in the background; the tests wait for it. Yields (folder, process, secrets).
    """
    try:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test", connect_timeout=5)
    except Exception as exc:  # noqa: BLE001 - any failure to connect means the service is absent
        require_service(f"PostgreSQL not reachable at 127.0.0.1:5432: {type(exc).__name__}: {str(exc).strip()}")
    connection.autocommit = True
    table = f"tp_faults_{uuid.uuid4().hex[:12]}"
    corpus = generate_sample_corpus(n_docs=200, n_topics=4)  # the corpus and labels of the tiny_project fixture
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE TABLE "{table}" (article_id BIGINT PRIMARY KEY, headline TEXT NOT NULL)')
        cursor.executemany(f'INSERT INTO "{table}" VALUES (%s, %s)', list(zip(corpus.ids, corpus.texts)))
    root = tmp_path_factory.mktemp("uninterrupted")
    (root / "dagster_home").mkdir()
    (root / "labels.json").write_text(json.dumps(corpus.ground_truth(labelled_fraction=0.5)))
    (root / "grid.json").write_text(json.dumps(GRID))
    # Trust authentication ignores the password, so a real one can travel in the URL.
    secrets = {"password": f"S3cr3t-{uuid.uuid4().hex}", "token": f"hf_{uuid.uuid4().hex}"}
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith(("TOPIC_PIPELINE_", "MLFLOW_"))},
        "DAGSTER_HOME": str(root / "dagster_home"),
        "TOPIC_PIPELINE_DATA_DIR": str(root / "data"),
        "TOPIC_PIPELINE_DATABASE_URL": f"postgresql+psycopg2://postgres:{secrets['password']}@127.0.0.1:5432/test",
        "TOPIC_PIPELINE_DOCUMENTS_TABLE": table,
        "TOPIC_PIPELINE_ID_COLUMN": "article_id",
        "TOPIC_PIPELINE_TEXT_COLUMN": "headline",
        "TOPIC_PIPELINE_GROUND_TRUTH": str(root / "labels.json"),
        "TOPIC_PIPELINE_GRID": str(root / "grid.json"),
        "TOPIC_PIPELINE_EXPERIMENT": "uninterrupted",
        "TOPIC_PIPELINE_WORKERS": "1",  # no pool needed; its labels equal the pool's (test_engine)
        "HF_TOKEN": secrets["token"],
        "HF_HUB_OFFLINE": "1",
    }
    process = _start(root, "cli.log", "sweep && export", environment)
    try:
        yield root, process, secrets
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        with connection.cursor() as cursor:
            cursor.execute(f'DROP TABLE IF EXISTS "{table}"')
        connection.close()


def _finished(sweep) -> Path:
    root, process, _ = sweep
    assert process.wait(timeout=600) == 0, (root / "cli.log").read_text()[-3000:]
    return root


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


def _embed_once(layout: DataLayout) -> None:
    source = SqlSource(os.environ["TOPIC_PIPELINE_DATABASE_URL"], table="articles", id_column="article_id", text_column="headline")
    corpus = load_corpus(source)
    embedding_set = EmbeddingSet(DEFAULT_EMBEDDING_MODEL, remove_stopwords=False)
    embed_corpus(corpus.texts, corpus.content_hash, embedding_set, EmbeddingCache(layout.embeddings),
                 EmbeddingSettings(device="cpu", local_files_only=True))


def test_killed_sweep_resumes_with_only_the_missing_trials(tiny_project, uninterrupted_sweep):
    project = tiny_project
    layout = DataLayout(project / "data")
    _embed_once(layout)
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

    reference = _finished(uninterrupted_sweep)
    assert (reference / "labels.json").read_text() == (project / "labels.json").read_text(), "both sweeps score the same labels"
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


def test_secrets_reach_no_log_event_metadata_mlflow_record_or_file(uninterrupted_sweep):
    from dagster._serdes import serialize_value
    from mlflow import MlflowClient

    root = _finished(uninterrupted_sweep)
    secrets = [value.encode() for value in uninterrupted_sweep[2].values()]

    # Every byte the sweep and the export left: the CLI's output, Dagster's run, event-log and schedule
    # storage, the compute logs of every step, the MLflow store and its artifacts, caches, results, export.
    files = [path for path in root.rglob("*") if path.is_file()]
    assert any("compute_logs" in path.parts for path in files), "the steps' compute logs were scanned"
    leaks = [str(path) for path in files for secret in secrets if secret in path.read_bytes()]
    assert leaks == []

    # The same through the stores' own APIs (so the scan above did read what they hold).
    with dg.DagsterInstance.from_config(str(root / "dagster_home")) as instance:
        runs = instance.get_runs()
        assert {run.job_name for run in runs} >= {"refresh_inputs_job", "embeddings_job", "trials_job", "leaderboard_job", "export_job"}
        for run in runs:
            records = instance.get_records_for_run(run.run_id).records
            text = serialize_value(run) + "".join(serialize_value(record.event_log_entry) for record in records)
            assert not [secret for secret in secrets if secret.decode() in text], run.job_name
        source = instance.get_latest_materialization_event(dg.AssetKey("documents")).asset_materialization.metadata["source"]
        assert source.value == "postgresql+psycopg2://postgres:***@127.0.0.1:5432/test"
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'data' / 'mlflow' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("uninterrupted").experiment_id])
    assert len([run for run in runs if "dagster_partition_key" in run.data.tags]) == 2 * N_REDUCTIONS
    assert any(run.data.tags.get("kind") == "export" for run in runs)
    recorded = json.dumps([[run.data.params, run.data.tags, list(run.data.metrics)] for run in runs])
    assert not [secret for secret in secrets if secret.decode() in recorded]

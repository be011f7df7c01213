"""The production services against the real PostgreSQL on this machine (127.0.0.1:5432).

* A Dagster instance configured by ``deploy/dagster.yaml`` itself (PostgreSQL storage from the
  ``DAGSTER_PG_*`` variables, the queued run coordinator, the gpu pool) runs a small sweep with the
  multiprocess executor.
* An ``mlflow server`` with a PostgreSQL backend store and proxied artifacts, started here on loopback,
  receives a trial and a leaderboard from the pipeline's tracker.

Each test works in a database it creates and drops.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from conftest import require_service
from deploy_files import REPO, load_compose
from topic_pipeline.cli import run_sweep
from topic_pipeline.grid import ParamGrid
from topic_pipeline.layout import DataLayout
from topic_pipeline.leaderboard import build_leaderboard, to_markdown
from topic_pipeline.resources.mlflow import MlflowTracking
from topic_pipeline.results import STATUS_OK, TrialResult
from topic_pipeline.trial import TopicSummary

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


@pytest.fixture
def fresh_database():
    """A new, empty database on the local PostgreSQL server; dropped afterwards with its connections."""
    import psycopg2

    try:
        admin = psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
    except Exception as exc:  # noqa: BLE001 - any failure to connect means the service is absent
        require_service(f"PostgreSQL not reachable at 127.0.0.1:5432: {type(exc).__name__}: {str(exc).strip()}")
    admin.autocommit = True
    name = f"topic_pipeline_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def count_rows(database: str, table: str) -> int:
    import psycopg2

    with psycopg2.connect(dbname=database, **PG) as connection, connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{table}"')
        (count,) = cursor.fetchone()
    connection.close()
    return count


# --- The postgres service's first-start script ---------------------------------------------------


def test_postgres_init_script_creates_the_mlflow_and_source_databases(fresh_database):
    """deploy/postgres/init-databases.sh as the postgres image runs it, here against the local server
    (PGHOST instead of the image's socket); run twice, as a restarted initialisation would."""
    import psycopg2

    names = {"MLFLOW_DB": f"{fresh_database}_mlflow", "SOURCE_DB": f"{fresh_database}_articles"}
    environment = {**os.environ, **names, "POSTGRES_USER": PG["user"], "POSTGRES_DB": fresh_database,
                   "PGHOST": PG["host"], "PGPORT": str(PG["port"]),
                   "ARTICLES_SCHEMA": str(REPO / "deploy" / "postgres" / "articles.sql")}
    admin = psycopg2.connect(dbname="postgres", **PG)
    admin.autocommit = True
    try:
        for _ in range(2):
            completed = subprocess.run(["sh", str(REPO / "deploy" / "postgres" / "init-databases.sh")], env=environment,
                                       capture_output=True, text=True, timeout=60)
            assert completed.returncode == 0, completed.stderr
        assert count_rows(names["SOURCE_DB"], "articles") == 0
        with psycopg2.connect(dbname=names["SOURCE_DB"], **PG) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'articles' ORDER BY ordinal_position")
            assert [name for (name,) in cursor.fetchall()] == ["id", "title", "body", "source", "published_at"]
        connection.close()
        with admin.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database WHERE datname = %s", (names["MLFLOW_DB"],))
            assert cursor.fetchone()
    finally:
        with admin.cursor() as cursor:
            for name in names.values():
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# --- Dagster on PostgreSQL ------------------------------------------------------------------------


@pytest.fixture
def tiny_grid():
    """Two trials over one embedding set: one trials run with the multiprocess executor."""
    return {
        "umap_n_neighbors": [10],
        "umap_n_components": [5],
        "hdbscan_min_cluster_size": [8, 20],
        "embedding_model": ["sentence-transformers/all-MiniLM-L6-v2"],
    }


@pytest.mark.slow
def test_sweep_on_postgres_instance_from_deploy_config(tiny_project, fresh_database, monkeypatch):
    """Proves that deploy/dagster.yaml, given the DAGSTER_PG_* variables, yields an instance whose run,
    event-log and schedule storage live in PostgreSQL, and that a sweep's runs (step processes of the
    multiprocess executor included) record runs, dynamic partitions, materialisations and the gpu pool's
    slot there. Runs execute the way ``topic-pipeline sweep`` executes them (``execute_job`` in this
    process), which bypasses the run queue: dequeuing needs the daemon, run in the UI test."""
    home = tiny_project / "dagster_home"
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    environment = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": PG["host"],
        "DAGSTER_PG_PORT": str(PG["port"]),
        "DAGSTER_PG_USER": PG["user"],
        "DAGSTER_PG_PASSWORD": "unused-with-trust-auth",
        "DAGSTER_PG_DB": fresh_database,
        "DAGSTER_COMPUTE_LOGS_DIR": str(tiny_project / "compute_logs"),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 4

        run_sweep(instance)

        runs = instance.get_runs()
        assert {run.job_name for run in runs} == {"refresh_inputs_job", "embeddings_job", "trials_job", "leaderboard_job"}
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
        trial_keys = instance.get_dynamic_partitions("trials")
        assert len(trial_keys) == 2
        for key in trial_keys:
            assert instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("grid_trials"), asset_partitions=[key]), limit=1
            ).records
        # The multiprocess executor ran the trials step in a process of its own, writing to the same storage.
        (trials_run,) = [run for run in runs if run.job_name == "trials_job"]
        step_starts = instance.all_logs(trials_run.run_id, of_type=dg.DagsterEventType.STEP_START)
        assert step_starts and all(event.dagster_event.pid != os.getpid() for event in step_starts)
        # The embeddings step claimed a slot of the gpu pool, created with the configured limit of 1.
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 1

    frame = pd.read_csv(DataLayout(tiny_project / "data").leaderboard / "leaderboard.csv")
    assert sorted(frame["trial"]) == sorted(trial_keys) and set(frame["status"]) == {STATUS_OK}
    # The history is in PostgreSQL, not in files under DAGSTER_HOME.
    assert count_rows(fresh_database, "runs") == len(runs)
    assert count_rows(fresh_database, "event_logs") > 0
    assert not list(home.glob("**/*.db"))


# --- MLflow tracking server -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_status(url: str, host: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture
def mlflow_server(fresh_database, tmp_path):
    """``mlflow server`` from the venv on a free loopback port: PostgreSQL backend store, artifacts
    proxied into a temporary folder, the Host allow-list of docker-compose.yml. Always terminated."""
    port = free_port()
    artifacts = tmp_path / "mlflow-artifacts"
    log_path = tmp_path / "mlflow-server.log"
    allowed_hosts = load_compose()["services"]["mlflow"]["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"]
    # Plus this server's own address (compose publishes MLflow on the port of MLFLOW_PUBLIC_HOSTS).
    environment = {**os.environ, "MLFLOW_SERVER_ALLOWED_HOSTS": f"{allowed_hosts},127.0.0.1:{port}"}
    command = [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{fresh_database}",
        "--artifacts-destination", artifacts.as_uri(), "--serve-artifacts",
    ]
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if http_status(f"{url}/health") == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy after 120 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, artifacts
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.mark.slow
def test_mlflow_server_with_postgres_backend(mlflow_server, fresh_database, tmp_path):
    url, artifacts = mlflow_server
    from mlflow import MlflowClient

    # The pipeline's resource, pointed at the server by URI as MLFLOW_TRACKING_URI does in deployment.
    tracker = MlflowTracking(tracking_uri=url, experiment_name="deploy", ui_url="").tracker(DataLayout(tmp_path / "data"))
    trials = ParamGrid.from_mapping({"hdbscan_min_cluster_size": [5, 10]}).trials()
    results = {
        trial.key: TrialResult(trial.key, trial.to_dict(), "fp", STATUS_OK, {"ari": ari, "ami": ari / 2}, duration_s=1.5)
        for trial, ari in zip(trials, (0.4, 0.7))
    }
    topics = [TopicSummary(0, 12, ["market", "shares"], ["Shares rallied."]), TopicSummary(1, 8, ["match"], ["A late goal."])]
    trial_run_ids = {key: tracker.log_trial(result, topics, {"dagster_run_id": "r1"}) for key, result in results.items()}
    frame = build_leaderboard({trial.key: trial.to_dict() for trial in trials}, results)
    csv_path = tmp_path / "leaderboard.csv"
    frame.to_csv(csv_path, index=False)
    best = frame.iloc[0]
    leaderboard_run_id = tracker.log_leaderboard(csv_path, to_markdown(frame), {"trial": best["trial"], "ari": best["ari"]}, {})

    client = MlflowClient(tracking_uri=url)
    experiment = client.get_experiment_by_name("deploy")
    # --serve-artifacts: clients upload through the server, which writes to --artifacts-destination.
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    best_key = max(results, key=lambda key: results[key].metrics["ari"])
    run = client.get_run(trial_run_ids[best_key])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["ari"] == 0.7 and run.data.params["hdbscan_min_cluster_size"] == "10"
    assert run.data.tags["trial_key"] == best_key and run.data.tags["dagster_run_id"] == "r1"
    topics_json = client.download_artifacts(run.info.run_id, "topics.json", str(tmp_path / "download"))
    assert "market" in Path(topics_json).read_text()
    leaderboard_run = client.get_run(leaderboard_run_id)
    assert leaderboard_run.data.params["best_trial"] == best_key and leaderboard_run.data.metrics["best_ari"] == 0.7
    assert {item.path for item in client.list_artifacts(leaderboard_run_id)} == {"leaderboard.csv", "leaderboard.md"}
    assert tracker.run_url(leaderboard_run_id) == f"{url}/#/experiments/{experiment.experiment_id}/runs/{leaderboard_run_id}"

    # Stored where the deployment puts them: runs in PostgreSQL, files under the artifact destination.
    assert count_rows(fresh_database, "runs") == 3
    assert sorted(path.name for path in artifacts.rglob("*") if path.is_file()) == [
        "leaderboard.csv", "leaderboard.md", "topics.json", "topics.json"
    ]
    # The compose file's allow-list admits the code server's Host header and nothing unlisted.
    search = f"{url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=deploy"
    assert http_status(search, host="mlflow:5000") == 200
    assert http_status(search, host="attacker.example") == 403

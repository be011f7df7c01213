"""The production services against the real PostgreSQL on this machine (127.0.0.1:5432).

One test runs the deployed combination: a Dagster instance configured by ``deploy/dagster.yaml`` itself
(PostgreSQL storage from the ``DAGSTER_PG_*`` variables, the queued run coordinator, the gpu pool) runs a
small sweep with the multiprocess executor, and its trials and leaderboard are tracked by an ``mlflow
server`` started here on loopback, with a PostgreSQL backend store and proxied artifacts, as
docker-compose.yml runs it. Another runs the postgres service's first-start script.

Every database used is created by the test and dropped afterwards.
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
from topic_pipeline.domain.results import STATUS_OK
from topic_pipeline.integrations.mlflow_tracking import METRIC_DECIMALS
from topic_pipeline.storage.paths import DataPaths

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


@pytest.fixture
def new_database():
    """``new_database()`` creates an empty database on the local PostgreSQL server and returns its name;
    ``new_database(create=False)`` only reserves a name. All are dropped afterwards, connections and all."""
    import psycopg2

    try:
        admin = psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
    except Exception as exc:  # any failure to connect means the service is absent
        require_service(f"PostgreSQL not reachable at 127.0.0.1:5432: {type(exc).__name__}: {str(exc).strip()}")
    admin.autocommit = True
    names: list[str] = []

    def create(create: bool = True) -> str:
        name = f"topic_pipeline_test_{uuid.uuid4().hex[:12]}"
        names.append(name)
        if create:
            with admin.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        return name

    try:
        yield create
    finally:
        with admin.cursor() as cursor:
            for name in names:
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


def test_postgres_init_script_creates_the_mlflow_and_source_databases(new_database):
    """deploy/postgres/init-databases.sh as the postgres image runs it, here against the local server
    (PGHOST instead of the image's socket); run twice, as a restarted initialisation would."""
    import psycopg2

    names = {"MLFLOW_DB": new_database(create=False), "SOURCE_DB": new_database(create=False)}
    environment = {
        **os.environ,
        **names,
        "POSTGRES_USER": PG["user"],
        "POSTGRES_DB": new_database(),
        "PGHOST": PG["host"],
        "PGPORT": str(PG["port"]),
        "ARTICLES_SCHEMA": str(REPO / "deploy" / "postgres" / "articles.sql"),
    }
    for _ in range(2):
        completed = subprocess.run(
            ["sh", str(REPO / "deploy" / "postgres" / "init-databases.sh")],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert completed.returncode == 0, completed.stderr
    assert count_rows(names["SOURCE_DB"], "articles") == 0
    with psycopg2.connect(dbname=names["SOURCE_DB"], **PG) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'articles' ORDER BY ordinal_position"
        )
        assert [name for (name,) in cursor.fetchall()] == ["id", "title", "body", "source", "published_at"]
    connection.close()
    assert count_rows(names["MLFLOW_DB"], "pg_class") > 0  # it exists and accepts connections


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
def mlflow_server(new_database, tmp_path):
    """``mlflow server`` from the venv on a free loopback port: PostgreSQL backend store, artifacts
    proxied into a temporary folder, the Host allow-list of docker-compose.yml. Always terminated.
    Yields its URL, its backend database and its artifact folder."""
    port = free_port()
    database = new_database()
    artifacts = tmp_path / "mlflow-artifacts"
    log_path = tmp_path / "mlflow-server.log"
    allowed_hosts = load_compose()["services"]["mlflow"]["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"]
    # Plus this server's own address (compose publishes MLflow on the port of MLFLOW_PUBLIC_HOSTS).
    environment = {**os.environ, "MLFLOW_SERVER_ALLOWED_HOSTS": f"{allowed_hosts},127.0.0.1:{port}"}
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{database}",
        "--artifacts-destination",
        artifacts.as_uri(),
        "--serve-artifacts",
    ]
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True
        )
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
        yield url, database, artifacts
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            # uvicorn's graceful shutdown waits on the client's kept-alive connections: do not wait long.
            server.wait(timeout=2)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


# --- Dagster on PostgreSQL, tracked by the MLflow server ------------------------------------------


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
def test_sweep_on_postgres_instance_tracked_by_mlflow_server(tiny_project, new_database, mlflow_server, monkeypatch):
    """Proves that deploy/dagster.yaml, given the DAGSTER_PG_* variables, yields an instance whose run,
    event-log and schedule storage live in PostgreSQL; that a sweep's runs (step processes of the
    multiprocess executor included) record runs, dynamic partitions, materialisations and the gpu pool's
    slot there; and that the assets log each trial and the leaderboard to an MLflow server, found by URI,
    that keeps runs in its own PostgreSQL database and artifacts where --artifacts-destination says.
    Runs execute the way ``topic-pipeline sweep`` executes them (``execute_job`` in this process), which
    bypasses the run queue: dequeuing needs the daemon."""
    mlflow_url, mlflow_database, artifacts = mlflow_server
    dagster_database = new_database()
    home = tiny_project / "dagster_home"
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    environment = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": PG["host"],
        "DAGSTER_PG_PORT": str(PG["port"]),
        "DAGSTER_PG_USER": PG["user"],
        "DAGSTER_PG_PASSWORD": "unused-with-trust-auth",
        "DAGSTER_PG_DB": dagster_database,
        "DAGSTER_COMPUTE_LOGS_DIR": str(tiny_project / "compute_logs"),
        "MLFLOW_TRACKING_URI": mlflow_url,
        "TOPIC_PIPELINE_MLFLOW_UI_URL": mlflow_url,
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
        assert {run.job_name for run in runs} == {
            "refresh_inputs_job",
            "embeddings_job",
            "trials_job",
            "leaderboard_job",
        }
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
        trial_keys = instance.get_dynamic_partitions("trials")
        assert len(trial_keys) == 2
        mlflow_run_ids = {}
        for key in trial_keys:
            (record,) = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("grid_trials"), asset_partitions=[key]), limit=1
            ).records
            mlflow_run_ids[key] = record.asset_materialization.metadata["mlflow_run_id"].value
        # The multiprocess executor ran the trials step in a process of its own, writing to the same storage.
        (trials_run,) = [run for run in runs if run.job_name == "trials_job"]
        step_starts = instance.all_logs(trials_run.run_id, of_type=dg.DagsterEventType.STEP_START)
        assert step_starts and all(event.dagster_event.pid != os.getpid() for event in step_starts)
        # The embeddings step claimed a slot of the gpu pool, created with the configured limit of 1.
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 1

    leaderboard = pd.read_csv(DataPaths(tiny_project / "data").leaderboard / "leaderboard.csv")
    assert sorted(leaderboard["trial"]) == sorted(trial_keys) and set(leaderboard["status"]) == {STATUS_OK}
    # Dagster's history is in PostgreSQL, not in files under DAGSTER_HOME.
    assert count_rows(dagster_database, "runs") == len(runs)
    assert count_rows(dagster_database, "event_logs") > 0
    assert not list(home.glob("**/*.db"))

    # MLflow: read back through the client what the assets logged to the server.
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_url)
    experiment = client.get_experiment_by_name(os.environ["TOPIC_PIPELINE_EXPERIMENT"])
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # uploads go through the server
    best = leaderboard.iloc[0]
    run = client.get_run(mlflow_run_ids[best["trial"]])
    assert run.info.status == "FINISHED" and run.data.tags["dagster_partition_key"] == best["trial"]
    assert run.data.metrics["ari"] == round(best["ari"], METRIC_DECIMALS)  # rounded for MLflow's display
    assert run.data.params["hdbscan_min_cluster_size"] == str(best["hdbscan_min_cluster_size"])
    topics = client.download_artifacts(run.info.run_id, "topics.json", str(tiny_project / "download"))
    assert '"top_words"' in Path(topics).read_text()
    (sweep_run,) = client.search_runs([experiment.experiment_id], "tags.kind = 'sweep'")
    assert sweep_run.data.tags["recommended_trial"] == best["trial"]
    assert run.data.tags["mlflow.parentRunId"] == sweep_run.info.run_id
    assert {item.path for item in client.list_artifacts(sweep_run.info.run_id)} >= {"leaderboard.csv", "leaderboard.md"}
    # Stored where the deployment puts them: runs in MLflow's own database, files under the destination.
    assert count_rows(mlflow_database, "runs") == 3
    stored = sorted(path.name for path in artifacts.rglob("*") if path.is_file())
    report = [name for name in stored if name == "report.html" or name.endswith(".png")]
    assert "report.html" in report and sorted(set(stored) - set(report)) == [
        "importances.json",
        "leaderboard.csv",
        "leaderboard.md",
        "topics.json",
    ]
    assert stored.count("topics.json") == 2
    # The compose file's allow-list admits the code server's Host header and nothing unlisted.
    lookup = f"{mlflow_url}/api/2.0/mlflow/experiments/get-by-name?experiment_name={experiment.name}"
    assert http_status(lookup, host="mlflow:5000") == 200
    assert http_status(lookup, host="attacker.example") == 403

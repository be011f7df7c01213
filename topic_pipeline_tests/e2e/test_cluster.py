"""The Celery deployment (deploy/celery/) with real workers, on this machine's PostgreSQL, RabbitMQ and Redis.

One cluster for the module (scripts/local_cluster.py): the daemon (sensor, run queue, run monitoring, run
retries), an MLflow server on PostgreSQL and two `dagster-celery` workers, each in a working directory of its
own, sharing one data directory. Each test sweeps a grid of its own on it, in order:

1. through the sensor (the UI's path): every trial materialised once, both workers used, labels identical
   to a local multiprocess sweep of the same grid;
2. the broker down when the sensor launches the trials runs (the cluster reaches RabbitMQ through a TCP
   proxy here, which the test cuts and restores): they fail, saying so, and are launched again once it is
   back; then a worker SIGKILLed (its whole process group) while it executes a trials run: the run is failed
   by the heartbeat check, retried and finished on the other worker; nothing missing, nothing twice;
3. `topic-pipeline sweep` against the cluster's instance: it executes nothing in its own process.

Two machines are stood in for by two processes on one machine; the shared directory is a local folder.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from conftest import require_service
from topic_pipeline.defs.planning import IN_FLIGHT

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from local_cluster import LocalCluster, ServiceMissing, check_services, free_port

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
HEARTBEAT_TIMEOUT_S = 30
MONITORING_POLL_S = 5


class BrokerProxy:
    """Forwards a loopback port to RabbitMQ. ``cut`` closes the port and every connection through it (to the
    cluster, the broker is down); ``restore`` opens the port again."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5672)):
        self.port, self.target = free_port(), target
        self._server: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def restore(self) -> None:
        self._server = socket.create_server(("127.0.0.1", self.port), reuse_port=True)
        threading.Thread(target=self._accept, args=(self._server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)  # the timeout was for connecting: an idle AMQP connection is no fault
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        with self._lock:
            for end in self._sockets:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()
            self._sockets.clear()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        check_services()
    except ServiceMissing as missing:
        require_service(str(missing))
    root = tmp_path_factory.mktemp("cluster")
    grid = root / "grid.json"
    proxy = BrokerProxy()
    proxy.restore()
    local = LocalCluster(
        root,
        broker_port=proxy.port,
        extra_env={
            "TOPIC_PIPELINE_GRID": str(grid),
            "TOPIC_PIPELINE_SWEEP_RUNS": "2",
            "TOPIC_PIPELINE_SENSOR_INTERVAL_S": "5",
            # One engine worker per Celery worker: the two share this machine's two cores.
            "TOPIC_PIPELINE_WORKERS": "1",
        },
    )
    local.grid, local.broker_proxy = grid, proxy
    with local:
        previous = dict(os.environ)
        os.environ.update(local.env)
        try:
            yield local
        finally:
            os.environ.clear()
            os.environ.update(previous)
            proxy.cut()


def _set_grid(cluster: LocalCluster, n_neighbors: list[int], min_cluster_size: list[int]) -> None:
    cluster.grid.write_text(
        json.dumps(
            {
                "umap_n_neighbors": n_neighbors,
                "umap_n_components": [5],
                "hdbscan_min_cluster_size": min_cluster_size,
                "embedding_model": [MODEL],
            }
        )
    )


def _trial_keys(cluster: LocalCluster) -> list[str]:
    from topic_pipeline.storage.paths import DataPaths

    manifest = json.loads(DataPaths(cluster.data_dir).current_grid.read_text())
    return list(manifest["trials"])


def _materialisations(instance: dg.DagsterInstance, keys: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(keys, 0)
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("grid_trials"), asset_partitions=keys), limit=1000
    )
    for record in result.records:
        counts[record.partition_key] += 1
    return counts


def _wait_for_leaderboard(instance: dg.DagsterInstance, since: float, timeout_s: float = 420) -> None:
    """Until a leaderboard newer than ``since`` exists and no run is in flight."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        event = instance.get_latest_materialization_event(dg.AssetKey("sweep_report"))
        in_flight = instance.get_runs(dg.RunsFilter(statuses=IN_FLIGHT))
        if event is not None and event.timestamp > since and not in_flight:
            return
        time.sleep(2)
    runs = [(run.job_name, run.status.value, run.tags.get("topic_pipeline/worker")) for run in instance.get_runs()]
    pytest.fail(f"no leaderboard within {timeout_s:.0f} s; runs: {runs}")


def _start_sweep(cluster: LocalCluster) -> float:
    """Materialise the inputs as the UI's launchpad would (a run in the queue); the sensor does the rest."""
    from topic_pipeline.cli import follow_runs, submit_run

    since = time.time()
    with dg.DagsterInstance.get() as instance:
        follow_runs(instance, [submit_run(instance, "refresh_inputs_job", {})])
    return since


def _labels(data_dir: Path, keys: list[str]) -> dict[str, np.ndarray]:
    from topic_pipeline.storage.results import ResultStore

    store = ResultStore(data_dir / "trials" / "results")
    return {key: np.load(store.labels_path(key), allow_pickle=False) for key in keys}


def _local_sweep(tmp_path: Path, cluster: LocalCluster) -> Path:
    """The same grid swept by `topic-pipeline sweep` on the embedded instance (multiprocess executor), on a
    data directory of its own that starts with the cluster's cached embeddings."""
    data_dir = tmp_path / "local-data"
    shutil.copytree(cluster.data_dir / "embeddings", data_dir / "embeddings")
    env = {
        key: value
        for key, value in cluster.env.items()
        if not key.startswith(("DAGSTER_PG", "DAGSTER_CELERY")) and key != "MLFLOW_TRACKING_URI"
    }
    env.update(
        {
            "DAGSTER_HOME": str(tmp_path / "local-home"),
            "TOPIC_PIPELINE_DATA_DIR": str(data_dir),
            "TOPIC_PIPELINE_WORKERS": "2",
            "TOPIC_PIPELINE_SWEEP_RUNS": "1",
        }
    )
    completed = subprocess.run(
        [str(BIN / "topic-pipeline"), "sweep"], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    return data_dir


def test_a_sweep_through_the_sensor_runs_on_both_workers_with_the_labels_of_a_local_sweep(cluster, tmp_path):
    _set_grid(cluster, [10, 15], [8, 20])
    since = _start_sweep(cluster)
    with dg.DagsterInstance.get() as instance:
        _wait_for_leaderboard(instance, since)
        keys = _trial_keys(cluster)
        assert len(keys) == 4
        assert _materialisations(instance, keys) == dict.fromkeys(keys, 1)
        runs = instance.get_runs()
        trials_runs = [run for run in runs if run.job_name == "trials_job"]
        assert len(trials_runs) == 2 and all(run.status == dg.DagsterRunStatus.SUCCESS for run in trials_runs)
        workers = {run.tags.get("topic_pipeline/worker") for run in runs}
        assert {name.split("@")[0] for name in workers if name} == {"worker1", "worker2"}, workers
    local = _local_sweep(tmp_path, cluster)
    on_cluster, on_one_machine = _labels(cluster.data_dir, keys), _labels(local, keys)
    for key in keys:
        np.testing.assert_array_equal(on_cluster[key], on_one_machine[key], err_msg=key)


def _wait_for_launch_failure(instance: dg.DagsterInstance, since: float) -> list[dg.DagsterRun]:
    after = datetime.datetime.fromtimestamp(since, tz=datetime.UTC)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        filters = dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], created_after=after)
        failed = [record.dagster_run for record in instance.get_run_records(filters)]
        if failed:
            return failed
        time.sleep(0.5)
    pytest.fail("no run failed while the broker was down")


def _wait_for_a_trials_run_on_a_worker(instance: dg.DagsterInstance, cluster: LocalCluster):
    """A trials run a worker is executing (its record written), and that worker's name."""
    from topic_pipeline.storage.run_records import WORKER, RunRecords

    records = RunRecords(cluster.data_dir / "runs")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        for run in instance.get_runs(dg.RunsFilter(job_name="trials_job", statuses=[dg.DagsterRunStatus.STARTED])):
            record = records.read(run.run_id)
            if record.get(WORKER):
                return run, record[WORKER].split("@")[0]
        time.sleep(0.5)
    pytest.fail("no trials run started on a worker")


def test_a_broker_outage_and_a_killed_worker_lose_nothing(cluster):
    """The broker is cut when the sensor launches the trials runs: they fail, saying so, and are launched again
    once it is back. Then a worker is SIGKILLed while it executes one: its heartbeat stops, the run is failed
    within the timeout, retried and finished on the other worker. Every trial is materialised once and keeps
    one live, finished MLflow run."""
    from topic_pipeline.integrations.mlflow_tracking import is_trial_run

    _set_grid(cluster, [10, 15], [10, 25])
    since = _start_sweep(cluster)  # the inputs, with the broker up
    cluster.broker_proxy.cut()
    try:
        with dg.DagsterInstance.get() as instance:
            failed = _wait_for_launch_failure(instance, since)
            reported = " ".join(
                f"{event.message} {event.dagster_event.event_specific_data}"
                for run in failed
                for event in instance.all_logs(run.run_id)
                if event.is_dagster_event
            )
            assert "did not take the run" in reported and "127.0.0.1" in reported, reported[-3000:]
            assert "guest:guest" not in reported and ":guest@" not in reported
    finally:
        cluster.broker_proxy.restore()
    with dg.DagsterInstance.get() as instance:
        run, worker = _wait_for_a_trials_run_on_a_worker(instance, cluster)
        cluster.kill_worker(worker)
        killed_at = time.monotonic()
        while instance.get_run_by_id(run.run_id).status != dg.DagsterRunStatus.FAILURE:
            # The timeout, then up to two monitoring polls and a daemon loop under a loaded machine.
            assert time.monotonic() - killed_at < HEARTBEAT_TIMEOUT_S + 6 * MONITORING_POLL_S, "not failed in time"
            time.sleep(0.5)
        failure = [event.message for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)]
        assert any("stopped its heartbeat" in message and worker in message for message in failure), failure
        _wait_for_leaderboard(instance, since)
        retries = instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": run.run_id}))
        assert len(retries) == 1 and retries[0].status == dg.DagsterRunStatus.SUCCESS
        survivor = {"worker1", "worker2"} - {worker}
        assert retries[0].tags["topic_pipeline/worker"].split("@")[0] in survivor
        keys = _trial_keys(cluster)
        assert _materialisations(instance, keys) == dict.fromkeys(keys, 1)
    # MLflow: one live run per trial, finished; the dead run's are marked (KILLED, superseded and deleted).
    import mlflow

    client = mlflow.MlflowClient(cluster.mlflow_url)
    live = [
        run
        for experiment in client.search_experiments()
        for run in client.search_runs([experiment.experiment_id], max_results=1000)
        if is_trial_run(run.data.tags) and run.data.tags.get("trial_key") in keys
    ]
    assert sorted(run.data.tags["trial_key"] for run in live) == sorted(keys)
    assert {run.info.status for run in live} == {"FINISHED"}
    cluster.start_worker(worker)


def _sensor(cluster: LocalCluster, action: str) -> None:
    workspace = str(cluster.dagster_home / "workspace.yaml")
    done = subprocess.run(
        [str(BIN / "dagster"), "sensor", action, "sweep_sensor", "-w", workspace],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_command_line_submits_to_the_workers_and_executes_nothing_itself(cluster):
    _set_grid(cluster, [10], [12, 30])  # one trials run: what is shown is where runs execute, not how many
    # The sensor would plan the same trials beside the command line: it is off for this one.
    _sensor(cluster, "stop")
    try:
        with dg.DagsterInstance.get() as instance:
            before = {run.run_id for run in instance.get_runs()}
        command = subprocess.Popen(
            [str(BIN / "topic-pipeline"), "sweep"],
            env=cluster.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cluster.root,
        )
        output, _ = command.communicate(timeout=420)
    finally:
        _sensor(cluster, "start")
    assert command.returncode == 0, output[-3000:]
    with dg.DagsterInstance.get() as instance:
        new = [run for run in instance.get_runs() if run.run_id not in before]
        assert {run.job_name for run in new} >= {"refresh_inputs_job", "trials_job", "leaderboard_job"}
        for run in new:
            assert run.tags.get("topic_pipeline/worker"), f"{run.job_name} {run.run_id} names no worker"
            executed = [
                event.message
                for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
                if event.message.startswith("Executed by Celery worker")
            ]
            assert executed and f"pid {command.pid}" not in executed[0], executed
        keys = _trial_keys(cluster)
        assert _materialisations(instance, keys) == dict.fromkeys(keys, 1)
    assert "queued as run" in output and "ok (run" in output

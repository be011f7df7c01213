"""The Celery deployment (deploy/celery/) on one machine: what `make cluster-demo`, its tests and
`make benchmark-cluster` start.

On this machine's PostgreSQL, RabbitMQ and Redis it starts the Dagster daemon, optionally the webserver, an
MLflow tracking server on PostgreSQL, and Celery workers, each in a working directory of its own, all sharing
one data directory. Every process runs in a process group of its own; ``LocalCluster.stop`` ends them all
(SIGTERM, then SIGKILL after a few seconds), and so does leaving its ``with`` block, an exception or a signal
included.

What stands in for separate machines: separate processes with separate working directories. The shared data
directory is a local folder, not NFS; the services are reached on loopback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
BROKER_URL = "pyamqp://guest:guest@127.0.0.1:5672//"
BACKEND_URL = "redis://127.0.0.1:6379/0"
STOP_GRACE_S = 5.0


class ServiceMissing(RuntimeError):
    """A service the cluster needs is not running; the message says which and how to start it."""


def check_services() -> None:
    """Refuse, before anything starts, when PostgreSQL, RabbitMQ or Redis is not reachable."""
    import psycopg2
    import redis
    from kombu import Connection

    try:
        psycopg2.connect(dbname="postgres", connect_timeout=5, **PG).close()
    except Exception as exc:
        raise ServiceMissing(
            f"PostgreSQL is not reachable at 127.0.0.1:5432 ({type(exc).__name__}): start it, e.g. "
            "`pg_ctlcluster 15 main start`"
        ) from None
    try:
        with Connection(BROKER_URL, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:
        raise ServiceMissing(
            f"RabbitMQ is not reachable at 127.0.0.1:5672 as guest ({type(exc).__name__}): start it, e.g. "
            "`service rabbitmq-server start`"
        ) from None
    try:
        redis.Redis.from_url(BACKEND_URL, socket_connect_timeout=5).ping()
    except Exception as exc:
        raise ServiceMissing(
            f"Redis is not reachable at 127.0.0.1:6379 ({type(exc).__name__}): start it, e.g. `service redis-server start`"
        ) from None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _admin(statement: str) -> None:
    import psycopg2

    connection = psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


class LocalCluster:
    """The processes of a Celery cluster on this machine, under ``root`` (created; its databases too)."""

    def __init__(
        self,
        root: Path,
        workers: int = 2,
        webserver: bool = False,
        extra_env: dict[str, str] | None = None,
        broker_port: int = 5672,
    ):
        self.root = Path(root).resolve()
        # The port the cluster reaches RabbitMQ on (a test puts a proxy it can cut in between).
        self.broker_port = broker_port
        self.worker_names = [f"worker{index + 1}" for index in range(workers)]
        self.webserver = webserver
        self.extra_env = dict(extra_env or {})
        self.data_dir = self.root / "shared-data"
        self.dagster_home = self.root / "dagster-home"
        self.logs = self.root / "logs"
        tag = uuid.uuid4().hex[:10]
        self.databases = {"dagster": f"tp_cluster_dagster_{tag}", "mlflow": f"tp_cluster_mlflow_{tag}"}
        # A RabbitMQ virtual host of its own, where rabbitmqctl may create one: tasks of another cluster on the
        # same broker are then never taken by these workers, nor these tasks by theirs.
        self.vhost = f"tp_cluster_{tag}"
        self.own_vhost = False
        self.mlflow_port = free_port()
        self.webserver_port = free_port()
        self.processes: dict[str, subprocess.Popen] = {}
        self.created: list[str] = []  # the databases this cluster created, the only ones it drops

    # --- set-up ------------------------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "DAGSTER_HOME": str(self.dagster_home),
            "DAGSTER_PG_HOST": PG["host"],
            "DAGSTER_PG_PORT": str(PG["port"]),
            "DAGSTER_PG_USER": PG["user"],
            "DAGSTER_PG_PASSWORD": "",
            "DAGSTER_PG_DB": self.databases["dagster"],
            "DAGSTER_COMPUTE_LOGS_DIR": str(self.root / "compute-logs"),
            "DAGSTER_CELERY_BROKER_URL": self.broker_url,
            "DAGSTER_CELERY_BACKEND_URL": BACKEND_URL,
            "TOPIC_PIPELINE_DATA_DIR": str(self.data_dir),
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            **self.extra_env,
        }

    @property
    def broker_url(self) -> str:
        url = BROKER_URL.replace(":5672/", f":{self.broker_port}/")
        return f"{url[:-1]}{self.vhost}" if self.own_vhost else url

    def _create_vhost(self) -> None:
        rabbitmqctl = shutil.which("rabbitmqctl")
        if rabbitmqctl is None:
            return
        created = subprocess.run([rabbitmqctl, "add_vhost", self.vhost], capture_output=True, timeout=60)
        if created.returncode != 0:
            return
        self.own_vhost = True
        subprocess.run(
            [rabbitmqctl, "set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*"],
            capture_output=True,
            timeout=60,
            check=True,
        )

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def webserver_url(self) -> str:
        return f"http://127.0.0.1:{self.webserver_port}"

    def _write_instance(self) -> None:
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "deploy" / "celery" / "dagster.yaml", self.dagster_home / "dagster.yaml")
        (self.dagster_home / "workspace.yaml").write_text(
            "load_from:\n"
            "  - python_module:\n"
            "      module_name: topic_pipeline.definitions\n"
            "      location_name: topic_pipeline\n"
            f"      working_directory: {REPO}\n"
        )

    def _start(self, name: str, command: list[str], cwd: Path) -> subprocess.Popen:
        cwd.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                command, cwd=cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes[name] = process
        return process

    def start_worker(self, name: str) -> subprocess.Popen:
        """A `dagster-celery worker` named ``name`` in a working directory of its own (a machine stands for it)."""
        return self._start(
            name,
            [
                str(BIN / "dagster-celery"),
                "worker",
                "start",
                "-A",
                "topic_pipeline.cluster.worker",
                "-n",
                name,
                "--",
                "--pool=solo",
            ],
            self.root / "machines" / name,
        )

    def start(self) -> LocalCluster:
        """Start everything; what a failure or an interruption half way has started is stopped again."""
        check_services()
        try:
            self._start_all()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_all(self) -> None:
        self._create_vhost()
        for database in self.databases.values():
            _admin(f'CREATE DATABASE "{database}"')
            self.created.append(database)
        self._write_instance()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._start(
            "mlflow",
            [
                str(BIN / "mlflow"),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.mlflow_port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{self.databases['mlflow']}",
                "--artifacts-destination",
                (self.root / "mlflow-artifacts").as_uri(),
                "--serve-artifacts",
            ],
            self.root / "machines" / "mlflow",
        )
        self._wait_http(f"{self.mlflow_url}/health", "mlflow")
        # The instance's tables exist before the daemon and workers open it.
        subprocess.run(
            [str(BIN / "dagster"), "instance", "migrate"], env=self.env, check=True, capture_output=True, timeout=300
        )
        self._start(
            "daemon",
            [str(BIN / "dagster-daemon"), "run", "-w", str(self.dagster_home / "workspace.yaml")],
            self.root / "machines" / "instance",
        )
        if self.webserver:
            self._start(
                "webserver",
                [
                    str(BIN / "dagster-webserver"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.webserver_port),
                    "-w",
                    str(self.dagster_home / "workspace.yaml"),
                ],
                self.root / "machines" / "instance",
            )
        for name in self.worker_names:
            self.start_worker(name)

    def _wait_http(self, url: str, name: str, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited; see {self.logs / (name + '.log')}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"{name} did not answer at {url} within {timeout_s:.0f} s")

    # --- tear-down ---------------------------------------------------------------------------------
    def kill_worker(self, name: str) -> None:
        """SIGKILL a worker's whole process group: its run and step processes die with it, as with a machine."""
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        """End every process started, then drop the databases created."""
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the group: whatever the leader left behind
            process.wait()
        self.processes.clear()
        for database in self.created:
            with contextlib.suppress(Exception):
                _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        self.created.clear()
        if self.own_vhost:
            subprocess.run(["rabbitmqctl", "delete_vhost", self.vhost], capture_output=True, timeout=60)
            self.own_vhost = False

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def stopped_on_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise KeyboardInterrupt here, so the exit of a cluster's ``with`` block inside stops it."""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

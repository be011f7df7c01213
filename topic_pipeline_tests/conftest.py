import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest

from topic_pipeline.inputs.demo_corpus import generate_demo_corpus

# Tests never reach a model hub: the embedding model ships in a package, and a pointer to a hub name
# must fail fast rather than retry a network this machine does not have.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REQUIRE_SERVICES = os.environ.get("TOPIC_PIPELINE_REQUIRE_SERVICES") == "1"


def require_service(reason: str) -> None:
    """Skip a test whose service is absent, unless CI demands every service (then fail)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


def postgres_test_database():
    """An autocommit connection to the local PostgreSQL 'test' database (trust auth), or the service's
    absence reported through ``require_service``."""
    try:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test", connect_timeout=5)
    except Exception as exc:  # any failure to connect means the service is absent
        require_service(f"PostgreSQL not reachable at 127.0.0.1:5432: {type(exc).__name__}: {str(exc).strip()}")
    connection.autocommit = True
    return connection


def free_loopback_port() -> int:
    """A port on 127.0.0.1 that is free now, for a service started next."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]
    except OSError as error:
        require_service(f"cannot bind a loopback port: {error}")


@contextlib.contextmanager
def service_process(command: list[str], log_path: Path, env: dict[str, str], cwd: Path | None = None):
    """A server started in its own process group, output to ``log_path``. Leaving the block stops the
    whole group (SIGTERM, then SIGKILL), so that the processes it started (runs, code servers) go too."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        for sig, grace_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=grace_s)
                break
            except subprocess.TimeoutExpired:
                continue


def write_tiny_project(root: Path, grid: dict, experiment: str = "tiny_project") -> dict[str, str]:
    """A 200-document SQLite source, labels for half of it and ``grid`` under ``root``, plus an empty
    ``dagster_home/``; returns the environment variables the code location reads to use them."""
    corpus = generate_demo_corpus(n_docs=200, n_topics=4)
    database = root / "source.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE articles (article_id INTEGER PRIMARY KEY, headline TEXT)")
        connection.executemany("INSERT INTO articles VALUES (?, ?)", zip(corpus.ids, corpus.texts))
    connection.close()
    (root / "labels.json").write_text(json.dumps(corpus.ground_truth(labelled_fraction=0.5)))
    (root / "grid.json").write_text(json.dumps(grid))
    (root / "dagster_home").mkdir()
    return {
        "TOPIC_PIPELINE_DATA_DIR": str(root / "data"),
        "TOPIC_PIPELINE_DATABASE_URL": f"sqlite:///{database}",
        "TOPIC_PIPELINE_DOCUMENTS_TABLE": "articles",
        "TOPIC_PIPELINE_ID_COLUMN": "article_id",
        "TOPIC_PIPELINE_TEXT_COLUMN": "headline",
        "TOPIC_PIPELINE_GROUND_TRUTH": str(root / "labels.json"),
        "TOPIC_PIPELINE_GRID": str(root / "grid.json"),
        "TOPIC_PIPELINE_EXPERIMENT": experiment,
        "HF_HUB_OFFLINE": "1",
    }


@pytest.fixture
def tiny_project(tmp_path, monkeypatch, tiny_grid):
    """``write_tiny_project`` with the module's ``tiny_grid``, wired in through the environment the code
    location reads; ``dagster_home/`` is left empty for the instance."""
    for name, value in write_tiny_project(tmp_path, tiny_grid).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


# The slowest files, handed to pytest-xdist's two processes first (the Makefile passes --no-loadscope-reorder,
# which keeps this order): started last, one of them would hold the whole suite up at its end.
SLOWEST_FIRST = ("e2e/test_cluster.py", "e2e/test_ui_operation.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return next((place for place, name in enumerate(SLOWEST_FIRST) if path.endswith(name)), len(SLOWEST_FIRST))

    items.sort(key=rank)  # stable: the rest keep their order

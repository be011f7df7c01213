"""The command line on a fresh instance: commands that need a sweep say so instead of a traceback."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _run(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith(("TOPIC_PIPELINE_", "MLFLOW_"))},
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "TOPIC_PIPELINE_DATA_DIR": str(tmp_path / "data"),
    }
    cli = Path(sys.executable).parent / "topic-pipeline"
    return subprocess.run(
        [str(cli), *arguments], env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["leaderboard"], "No leaderboard yet: no sweep has finished with the data directory"),
        (["export"], "Nothing to export: no sweep has run on the Dagster instance"),
    ],
)
def test_commands_before_the_first_sweep_say_what_to_run(tmp_path: Path, command: list[str], message: str) -> None:
    (tmp_path / "dagster_home").mkdir()
    result = _run(tmp_path, *command)
    assert result.returncode == 1
    assert message in result.stderr and "Run `topic-pipeline sweep`" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_sweep_with_an_unreachable_mlflow_server_stops_in_seconds_in_one_line(tmp_path: Path) -> None:
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith(("TOPIC_PIPELINE_", "MLFLOW_"))},
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "TOPIC_PIPELINE_DATA_DIR": str(tmp_path / "data"),
        "MLFLOW_TRACKING_URI": "http://robot:s3cret@127.0.0.1:1",
    }
    cli = Path(sys.executable).parent / "topic-pipeline"
    started = time.monotonic()
    result = subprocess.run(
        [str(cli), "sweep"], env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    took = time.monotonic() - started
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (result.stdout + result.stderr).strip() == (
        "topic-pipeline sweep: MLflow tracking server at http://robot:***@127.0.0.1:1 (MLFLOW_TRACKING_URI) cannot be "
        "reached: connection refused; start it or unset MLFLOW_TRACKING_URI to use the local store"
    )
    assert took < 20, f"{took:.0f} s"
    assert not (tmp_path / "data" / "embeddings").exists()  # nothing ran

"""What a process that executes a Dagster run itself records about it, beside the data, not on the run.

``topic-pipeline`` executes its runs in its own process, and a Celery worker of a cluster executes the runs
it is sent. A later sweep must tell a run whose process was
killed from one still going, so the process's identity (host, pid, start time) is recorded when the run
starts, and its trials step adds its own (it can outlive the process); the command line also names the
file where the step keeps its progress current. These are bookkeeping, not something a person filters
runs by: as run tags they showed as chips on every run in the Dagster UI. One small JSON file per run,
removed when the run ends; only a killed run's stays, until recovery has read it.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from topic_pipeline.storage.files import read_json, write_json

HOST, PID, PID_START, PROGRESS_FILE, STEP_PROCESS = "host", "pid", "pid_start", "progress_file", "step_process"
# A run a Celery worker executes (topic_pipeline.cluster): the worker's name and its Celery task.
WORKER, TASK_ID = "worker", "task_id"


class RunRecords:
    """The records of runs in flight, one ``<run id>.json`` each in ``directory``."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def _path(self, run_id: str) -> Path:
        return self.directory / f"{run_id}.json"

    def read(self, run_id: str) -> dict[str, Any]:
        """The run's record; empty when it has none (it was launched elsewhere, or has ended)."""
        try:
            record = read_json(self._path(run_id))
        except (OSError, ValueError, json.JSONDecodeError):
            return {}
        return record if isinstance(record, dict) else {}

    def update(self, run_id: str, **fields: Any) -> None:
        """Add ``fields`` to the run's record (written whole, atomically)."""
        write_json(self._path(run_id), {**self.read(run_id), **fields})

    def age_s(self, run_id: str) -> float:
        """Seconds since the run's record was last written (0 when it has none)."""
        try:
            return time.time() - self._path(run_id).stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def run_ids(self) -> list[str]:
        """The runs that have a record."""
        return sorted(path.stem for path in self.directory.glob("*.json"))

    def remove(self, run_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(run_id).unlink()

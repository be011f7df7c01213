"""The Celery app of the cluster's workers: ``dagster-celery worker start -A topic_pipeline.cluster.worker -n
<name> -- --pool=solo``. dagster-celery's run tasks (the ones its launcher sends), on the broker and result
backend named by ``DAGSTER_CELERY_BROKER_URL`` and ``DAGSTER_CELERY_BACKEND_URL``, as the instance's launcher
(deploy/celery/dagster.yaml) reads them: from the environment, so no credential is written to a file.

While the worker executes a run, its name, host and pid are in the run's record (``<data dir>/runs/<run
id>.json``), and a thread raises a count in the Celery result backend (``heartbeat_key``) every
``HEARTBEAT_SECONDS``; the instance's launcher (``cluster.launcher``) fails the run when it stops rising. In
the result backend (Redis), not the shared directory: a network file system's client may serve a cached
directory entry for longer than the launcher waits, and would make a live run look dead.

Why a heartbeat of our own: dagster-celery's launcher judges a run by its Celery task's state in the result
backend, and a worker killed mid-task leaves that state STARTED for ever; Celery's own remote control cannot
ask a solo-pool worker anything while its one task runs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

import dagster as dg
from celery import signals

from topic_pipeline._compat.dagster import packed_run_id
from topic_pipeline._compat.dagster_celery import EXECUTE_RUN_TASK_NAME, RUN_TASK_NAMES, run_task_app
from topic_pipeline.cluster.launcher import heartbeat_key
from topic_pipeline.definitions import WORKER_TAG
from topic_pipeline.defs.resources.settings import CLUSTER_WORKER_ENV
from topic_pipeline.domain.versions import environment_versions
from topic_pipeline.errors import TopicPipelineError
from topic_pipeline.processes import process_start_time
from topic_pipeline.settings import Settings
from topic_pipeline.storage.data_directory import verify
from topic_pipeline.storage.paths import DataPaths
from topic_pipeline.storage.run_records import HOST, PID, PID_START, TASK_ID, WORKER, RunRecords

HEARTBEAT_SECONDS = 5.0
# A count no one raises any more is dropped by the backend after this long.
HEARTBEAT_KEPT_SECONDS = 3600


_log = logging.getLogger(__name__)


def _connection(variable: str) -> str:
    value = os.environ.get(variable, "").strip()
    if not value:
        raise SystemExit(f"{variable} is not set: the worker needs the URL the instance's run launcher uses for it")
    return value


# Acknowledged when the run ends, not when it starts: with one message prefetched, a busy worker then holds no
# second run while another worker idles. A dead worker's run is sent again to another worker, which Dagster
# ignores (run monitoring judges that run; _start_heartbeat leaves its record alone).
app = run_task_app(
    _connection("DAGSTER_CELERY_BROKER_URL"), _connection("DAGSTER_CELERY_BACKEND_URL"), task_acks_late=True
)


class _Heartbeat:
    """Records who executes a run, then raises its heartbeat until stopped; the record goes when the run ends."""

    def __init__(self, records: RunRecords, run_id: str, task_id: str, worker: str):
        self.records, self.run_id = records, run_id
        pid = os.getpid()
        self.identity = {
            WORKER: worker,
            HOST: socket.gethostname(),
            PID: pid,
            PID_START: process_start_time(pid) or "",
            TASK_ID: task_id,
        }
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{run_id}", daemon=True)

    def start(self) -> None:
        self.records.update(self.run_id, **self.identity)
        self._raise()
        self._thread.start()

    def _raise(self) -> None:
        self.count += 1
        try:
            app.backend.set(heartbeat_key(self.run_id), str(self.count), expires=HEARTBEAT_KEPT_SECONDS)
        except Exception as exc:  # a missed beat is retried; enough of them and the run is judged dead
            _log.warning("run %s: heartbeat not raised: %s", self.run_id, type(exc).__name__)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            self._raise()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.records.remove(self.run_id)


_beats: dict[str, _Heartbeat] = {}


def _checked_records(worker: str, run_id: str) -> RunRecords | None:
    """The run records in this worker's data directory, once it has checked that directory is the sweep's
    (as every step does); None, having logged why, when its settings do not load or the check refuses: the
    run's steps then fail on the same one-line error, which is where a person looks, and nothing is written."""
    try:
        paths = DataPaths(Settings.load().data_dir)
        verify(paths, environment_versions(), f"worker {worker}, run {run_id}")
    except TopicPipelineError as exc:
        _log.error("no heartbeat: %s", exc)
        return None
    return RunRecords(paths.run_records)


@signals.celeryd_init.connect
def _name_worker(sender: str | None = None, **_: Any) -> None:
    # Set before any task: the run's step processes inherit it.
    os.environ[CLUSTER_WORKER_ENV] = str(sender or socket.gethostname())


@signals.task_prerun.connect
def _start_heartbeat(task_id: str, task: Any, kwargs: dict | None = None, **_: Any) -> None:
    if task.name not in RUN_TASK_NAMES:
        return
    run_id = packed_run_id((kwargs or {}).get("execute_job_args_packed"))
    if run_id is None:
        return
    worker = os.environ.get(CLUSTER_WORKER_ENV) or socket.gethostname()
    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
        if run is None:
            _log.error(
                "run %s: not in this worker's instance (DAGSTER_HOME=%s)", run_id, os.environ.get("DAGSTER_HOME")
            )
            return
        startable = (dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING)
        if task.name == EXECUTE_RUN_TASK_NAME and run.status not in startable:
            # The broker resent the task of a worker that died before acknowledging it: Dagster ignores this copy,
            # and the dead worker's record and heartbeat must stay as they stopped, for the launcher to judge by.
            _log.warning("run %s is %s already: a resent task, not executed here", run_id, run.status.value)
            return
        records = _checked_records(worker, run_id)
        if records is None:
            return
        beat = _Heartbeat(records, run_id, task_id, worker)
        beat.start()
        _beats[task_id] = beat
        # Named on the run: a tag to filter runs by in the UI, and a line of its log with host and pid.
        instance.add_run_tags(run_id, {WORKER_TAG: worker})
        instance.report_engine_event(
            f"Executed by Celery worker {worker} on host {socket.gethostname()}, pid {os.getpid()}", run
        )


@signals.task_postrun.connect
def _stop_heartbeat(task_id: str, **_: Any) -> None:
    beat = _beats.pop(task_id, None)
    if beat is not None:
        beat.stop()

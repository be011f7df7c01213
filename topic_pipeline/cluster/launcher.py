"""The cluster's run launcher: dagster-celery's ``CeleryRunLauncher`` (each run one Celery task on a
``dagster-celery worker``), whose health check also reads the heartbeat the worker raises in the result
backend (``cluster.worker``).

Run monitoring (``run_monitoring:`` in deploy/celery/dagster.yaml) asks the launcher about every started run
every few seconds. dagster-celery's own answer comes from the task's state in the result backend, which a
worker killed mid-task leaves STARTED for ever. Here a heartbeat that stops rising for
``heartbeat_timeout_seconds`` fails the run, with the worker's name; run retries then send it to a live
worker. The timeout is measured on this process's clock, from when it last saw the count change, so the
workers' clocks need not agree with the daemon's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dagster import Field, IntSource, StringSource
from dagster_celery.launcher import CeleryRunLauncher
from kombu.exceptions import OperationalError

from topic_pipeline._compat.dagster import run_worker_health
from topic_pipeline.errors import TopicPipelineError
from topic_pipeline.redaction import mask_url
from topic_pipeline.storage.paths import DataPaths
from topic_pipeline.storage.run_records import HOST, PID, WORKER, RunRecords

DEFAULT_HEARTBEAT_TIMEOUT_SECONDS = 30
STALE_ENTRY_SECONDS = 3600.0


def heartbeat_key(run_id: str) -> str:
    """Where the worker executing a run keeps its heartbeat count, in the Celery result backend."""
    return f"topic_pipeline-heartbeat-{run_id}"


class BrokerUnavailableError(TopicPipelineError):
    """The Celery broker did not take a run: the run was handed to no worker."""


class HeartbeatCeleryRunLauncher(CeleryRunLauncher):
    """``CeleryRunLauncher`` that also fails a run whose worker stopped raising its heartbeat."""

    def __init__(
        self,
        data_dir: str = "",
        heartbeat_timeout_seconds: int = DEFAULT_HEARTBEAT_TIMEOUT_SECONDS,
        **celery_config: Any,
    ):
        self.data_dir = data_dir
        self.heartbeat_timeout_seconds = heartbeat_timeout_seconds
        self._records = RunRecords(DataPaths(Path(data_dir) if data_dir else None).run_records)
        # run id -> (the last heartbeat seen, when this process first saw it); runs that ended are dropped
        self._seen: dict[str, tuple[bytes, float]] = {}
        super().__init__(**celery_config)

    def launch_run(self, context: Any) -> None:
        try:
            super().launch_run(context)
        except OperationalError as exc:
            # The daemon marks the run failed with this message; it never started, so the sweep sensor launches
            # its work again at a later tick (defs/automation.py, launchable_run_key).
            raise BrokerUnavailableError(
                f"the Celery broker at {mask_url(self.broker or '')} did not take the run ({exc}): no worker "
                "received it and nothing of it ran; the sweep sensor launches its work again once the broker "
                "answers (DAGSTER_CELERY_BROKER_URL names the broker)"
            ) from None

    def check_run_worker_health(self, run: Any) -> Any:
        beat = self.celery.backend.get(heartbeat_key(run.run_id))
        now = time.monotonic()
        # Monitoring asks only about started runs: a run not asked about for long has ended.
        for stale in [run_id for run_id, (_, seen) in self._seen.items() if now - seen > STALE_ENTRY_SECONDS]:
            del self._seen[stale]
        if beat is None:
            # No heartbeat: not started on a worker yet, or ended long ago. The task's state answers.
            self._seen.pop(run.run_id, None)
            return super().check_run_worker_health(run)
        last = self._seen.get(run.run_id)
        if last is None or last[0] != beat:
            self._seen[run.run_id] = (beat, now)
            return run_worker_health(True)
        silent = now - last[1]
        if silent <= self.heartbeat_timeout_seconds:
            return run_worker_health(True)
        self._seen.pop(run.run_id, None)
        record = self._records.read(run.run_id)
        return run_worker_health(
            False,
            f"Celery worker {record.get(WORKER, '?')} (host {record.get(HOST, '?')}, pid {record.get(PID, '?')}) "
            f"stopped its heartbeat {silent:.0f} s ago: it was killed or its machine went down",
        )

    @classmethod
    def config_type(cls) -> dict:
        return {
            **CeleryRunLauncher.config_type(),
            "data_dir": Field(
                StringSource,
                is_required=False,
                default_value="",
                description="The shared data directory (TOPIC_PIPELINE_DATA_DIR), where workers keep run records.",
            ),
            "heartbeat_timeout_seconds": Field(
                IntSource,
                is_required=False,
                default_value=DEFAULT_HEARTBEAT_TIMEOUT_SECONDS,
                description="A run whose worker's heartbeat has not risen for this long is failed.",
            ),
        }

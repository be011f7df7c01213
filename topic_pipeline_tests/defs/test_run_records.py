"""The records of runs the command line executes in-process: read by recovery, never left behind (fast)."""

from __future__ import annotations

import os
import socket
import time

import dagster as dg

from topic_pipeline.defs.recovery import recover_interrupted_runs
from topic_pipeline.storage.paths import DataPaths
from topic_pipeline.storage.run_records import RunRecords


def test_recovery_fails_a_run_whose_process_is_gone_and_removes_records_without_a_run_in_flight(tmp_path):
    paths = DataPaths(tmp_path / "data")
    records = RunRecords(paths.run_records)
    job = dg.Definitions(jobs=[dg.define_asset_job("a_job")]).resolve_job_def("a_job")
    with dg.instance_for_test() as instance:
        gone, ended = instance.create_run_for_job(job), instance.create_run_for_job(job)
        instance.report_run_canceled(ended)
        # A run in flight whose recorded process is gone (a pid above the kernel's limit), one that ended, and
        # records of runs that do not exist: an old one, and one written a moment before its run is created.
        records.update(gone.run_id, host=socket.gethostname(), pid=2**22 + 7, pid_start="")
        records.update(ended.run_id, host="elsewhere", pid=1)
        records.update("never-created", host="elsewhere", pid=1)
        hour_ago = time.time() - 3600
        os.utime(records.directory / "never-created.json", (hour_ago, hour_ago))
        records.update("about-to-be-created", host="elsewhere", pid=1)

        actions = recover_interrupted_runs(instance, paths)

        assert actions == [f"run {gone.run_id} (a_job) marked failed: its process is gone"]
        assert instance.get_run_by_id(gone.run_id).status == dg.DagsterRunStatus.FAILURE
        assert records.run_ids() == ["about-to-be-created"]

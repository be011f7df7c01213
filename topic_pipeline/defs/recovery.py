"""Runs that stopped half way: made visible as stopped, and what they finished made visible in Dagster.

Used by ``topic-pipeline sweep`` and the sweep sensor before they plan, so a sweep that was killed
resumes with only its unfinished trials.

Why Dagster's run monitoring (``run_monitoring:`` in dagster.yaml; on in the local instance, deploy/
and deploy/k8s/) does not replace this:

* Monitoring is a loop of the daemon that judges a started run by asking the run launcher about the
  run worker it launched (``check_run_worker_health``). The command line executes its runs in its own
  process: no launcher started a worker for them, so nothing can be asked. The
  default launcher (the local instance, docker-compose) answers for no run at all; the Kubernetes one
  looks for the Job it created for the run, which a run of the command line does not have (its daemon
  would report such a run failed while it runs). And the command line mostly runs with no daemon at all.
* For a run it can judge, monitoring marks it failed (or resumes it). The rest of the recovery, the
  trials a stopped trials run finished recorded as materialisations, the MLflow runs it left RUNNING
  closed, the temporary files of cut-short writes deleted, has no counterpart in Dagster; it applies to
  every stopped trials run, whoever launched it.

So a run executed in-process by ``topic-pipeline`` has the identity of its process (host, pid, start
time) recorded in the data directory (``storage.run_records``; run tags would show as chips on every run in
the UI) and is marked failed here once that process is gone; a run launched through a run launcher is left
to run monitoring (its start timeout everywhere, its run worker's health on Kubernetes).
"""

from __future__ import annotations

import os
import socket
import time

import dagster as dg

from topic_pipeline.defs.assets.trials import trial_metadata
from topic_pipeline.defs.partitions import trial_partitions
from topic_pipeline.defs.planning import IN_FLIGHT, run_partition_keys
from topic_pipeline.integrations.mlflow_tracking import MlflowTracker, TrackingUnavailableError
from topic_pipeline.processes import identified_process_alive, process_start_time
from topic_pipeline.storage.files import remove_stale_temporaries
from topic_pipeline.storage.paths import DataPaths
from topic_pipeline.storage.results import ResultStore
from topic_pipeline.storage.run_records import HOST, PID, PID_START, STEP_PROCESS, WORKER, RunRecords
from topic_pipeline.workflow.trials import trials_finished_by

# A record is written just before its run is created: one without a run younger than this may be that moment.
RECORD_BEFORE_RUN_S = 60.0
# How long recovery waits for such a step to notice that its run's process is gone and exit.
STEP_EXIT_WAIT_SECONDS = 30.0
# Set on a stopped trials run once the results it did finish have been recorded as materialisations.
RESULTS_RECORDED_TAG = "topic_pipeline/results_recorded"
# Set on a stopped trials run once its MLflow runs are closed and its trials left one live MLflow run each.
MLFLOW_CHECKED_TAG = "topic_pipeline/mlflow_checked"
# A temporary file this old cannot belong to a write still in progress (writes take seconds at most).
STALE_TEMPORARY_SECONDS = 3600


def record_process(records: RunRecords, run_id: str, **fields: str) -> None:
    """Record the current process as the one executing ``run_id`` in-process (with ``fields``)."""
    pid = os.getpid()
    records.update(run_id, **{HOST: socket.gethostname(), PID: pid, PID_START: process_start_time(pid) or ""}, **fields)


def _step_still_running(record: dict) -> bool:
    """Whether the run's trials step process still runs, after giving it time to exit (a step exits
    when the process that started it is gone: ``processes.exit_with_parent``)."""
    identity = record.get(STEP_PROCESS)
    if not identity:
        return False
    deadline = time.monotonic() + STEP_EXIT_WAIT_SECONDS
    while identified_process_alive(identity) and time.monotonic() < deadline:
        time.sleep(0.2)
    return bool(identified_process_alive(identity))


def _process_is_gone(record: dict) -> bool:
    """Whether the process a run's record names is gone. A run without a record was not executed in-process
    (a launcher, the UI's re-execution): only Dagster's own monitoring can tell."""
    if record.get(HOST) != socket.gethostname() or not str(record.get(PID, "")).isdigit():
        return False
    if record.get(WORKER):
        # A cluster worker's run is judged by the launcher's heartbeat check (run monitoring), from any host alike.
        return False
    started = process_start_time(int(record[PID]))
    return started is None or (bool(record.get(PID_START)) and started != record[PID_START])


def recover_interrupted_runs(
    instance: dg.DagsterInstance, paths: DataPaths, tracker: MlflowTracker | None = None
) -> list[str]:
    """Close the books on runs that stopped half way; returns a line per action taken.

    * A run executed by ``topic-pipeline`` whose process is gone (killed, crashed, machine restarted)
      would stay STARTED forever and keep its trials "in flight": it is reported failed, so the
      trials it did not finish are planned again.
    * A trials run that failed or was cancelled emits no materialisation, yet every trial it finished
      has its result stored (each is saved as it finishes) and is not rerun: each such trial is
      recorded as a materialisation of its partition, so Dagster shows it. Temporary files that writes
      cut short left in the data directory more than an hour ago are deleted.
    * With ``tracker``, the MLflow runs a stopped trials run left RUNNING are marked KILLED, and each
      trial it recorded keeps one live MLflow run, the one its stored result names (a kill between
      closing a trial's run and storing its result would otherwise leave the rerun trial two).
    """
    actions = _fail_runs_whose_process_is_gone(instance, RunRecords(paths.run_records))
    stopped = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
    stopped_runs = instance.get_runs(dg.RunsFilter(job_name="trials_job", statuses=stopped))
    runs = [run for run in stopped_runs if RESULTS_RECORDED_TAG not in run.tags]
    # Also those whose MLflow runs an earlier pass could not check (MLflow unreachable, or no tracker then): a
    # kill of those may have left a trial two live MLflow runs.
    unchecked = [run for run in stopped_runs if MLFLOW_CHECKED_TAG not in run.tags] if tracker is not None else []
    if not runs and not unchecked:
        return actions
    store = ResultStore(paths.results)
    if runs:
        actions.extend(_record_finished_trials(instance, paths, store, runs))
    if unchecked:
        # After the tags of the above: an MLflow outage must not make a later pass record the same trials again.
        actions.extend(_recover_mlflow_runs(instance, tracker, store, unchecked))
    return actions


def _fail_runs_whose_process_is_gone(instance: dg.DagsterInstance, records: RunRecords) -> list[str]:
    """Report failed the runs in flight whose executing process is gone, unless their trials step still runs."""
    actions: list[str] = []
    for run in instance.get_runs(dg.RunsFilter(statuses=IN_FLIGHT)):
        record = records.read(run.run_id)
        if not _process_is_gone(record):
            continue
        # Its trials stay in flight, so nothing plans them a second time beside it.
        if _step_still_running(record):
            actions.append(
                f"run {run.run_id} ({run.job_name}): its process is gone but its step process "
                f"({record[STEP_PROCESS]}) still runs; its trials are left to it"
            )
            continue
        instance.report_run_failed(
            run, f"the process that executed this run (pid {record[PID]}) is gone: it was killed or crashed"
        )
        records.remove(run.run_id)
        actions.append(f"run {run.run_id} ({run.job_name}) marked failed: its process is gone")
    # Records a process left without a run in flight (killed between its run's end and the record's removal).
    # A record without a run is younger than its run for a moment (it is written first): kept that moment.
    for run_id in records.run_ids():
        run = instance.get_run_by_id(run_id)
        if (run is None and records.age_s(run_id) > RECORD_BEFORE_RUN_S) or (run and run.status not in IN_FLIGHT):
            records.remove(run_id)
    return actions


def _record_finished_trials(
    instance: dg.DagsterInstance, paths: DataPaths, store: ResultStore, runs: list[dg.DagsterRun]
) -> list[str]:
    """Delete the stale temporary files of cut-short writes, then record each trial the stopped ``runs``
    finished as a materialisation of its partition (unless the asset index has it); each run is tagged once done."""
    actions: list[str] = []
    removed = remove_stale_temporaries(paths.root, STALE_TEMPORARY_SECONDS)
    if removed:
        actions.append(f"{len(removed)} temporary file(s) left by interrupted writes deleted")
    ordered = instance.get_dynamic_partitions(trial_partitions.name)
    for run in runs:
        keys = run_partition_keys(run, ordered)
        finished = trials_finished_by(store, run.run_id, keys, _materialised_by(instance, run.run_id, keys))
        for key, result in finished.items():
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key="grid_trials",
                    partition=key,
                    description=f"finished by run {run.run_id}, which stopped before the end of its step",
                    metadata={**trial_metadata(result), "dagster_run_id": run.run_id},
                )
            )
        instance.add_run_tags(run.run_id, {RESULTS_RECORDED_TAG: str(len(finished))})
        if finished:
            actions.append(f"run {run.run_id}: {len(finished)} finished trial(s) recorded as materialisations")
    return actions


def _recover_mlflow_runs(
    instance: dg.DagsterInstance, tracker: MlflowTracker, store: ResultStore, runs: list[dg.DagsterRun]
) -> list[str]:
    """Close the MLflow runs that the stopped trials ``runs`` left RUNNING, and give each trial they
    recorded one live MLflow run (``MlflowTracker.reconcile_trial_runs``: a stop between closing a trial's
    run and storing its result must not leave the trial two runs once it is rerun). Each run is tagged
    once done; if MLflow cannot be reached, nothing is and the next pass tries again."""
    try:
        # A server that is down would otherwise hold this pass (and the sensor's tick) for minutes of retries.
        tracker.check_reachable()
    except TrackingUnavailableError as exc:
        return [
            f"{len(runs)} stopped run(s): their MLflow runs could not be checked ({exc}); they are checked at the next sweep"
        ]
    actions: list[str] = []
    try:
        for run in runs:
            closed = tracker.close_abandoned_runs(run.run_id)
            if closed:
                actions.append(f"run {run.run_id}: {closed} MLflow run(s) it left RUNNING marked KILLED")
        actions.extend(tracker.reconcile_trial_runs(store.load, [run.run_id for run in runs]))
    except Exception as exc:  # MLflow unreachable: Dagster's side is recovered all the same
        # The type only: a tracking server's error can quote its address, credentials included.
        actions.append(
            f"{len(runs)} stopped run(s): their MLflow runs could not be checked ({type(exc).__name__}); "
            "they are checked at the next sweep"
        )
        return actions
    for run in runs:
        instance.add_run_tags(run.run_id, {MLFLOW_CHECKED_TAG: "1"})
    return actions


def _materialised_by(instance: dg.DagsterInstance, run_id: str, keys: list[str]) -> set[str]:
    """The partitions among ``keys`` whose materialisation by ``run_id`` is in the asset index.

    The run materialised each trial as it finished; a kill can land between an event's write to the
    run's log and its write to the asset index, and only indexed events count in the UI and here.
    """
    found: set[str] = set()
    cursor = None
    while keys:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("grid_trials"), asset_partitions=keys),
            limit=1000,
            cursor=cursor,
        )
        found.update(record.partition_key for record in page.records if record.run_id == run_id)
        if not page.has_more:
            break
        cursor = page.cursor
    return found

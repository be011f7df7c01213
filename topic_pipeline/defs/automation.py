"""The biweekly schedule and the sensor that carries a sweep through to its leaderboard.

"Biweekly" means every other Monday at 06:00 UTC: cron cannot say "every two weeks", so the schedule
fires every Monday (``0 6 * * 1``) and skips the weeks whose ISO week number is odd.
"""

import datetime as dt

import dagster as dg

from topic_pipeline._compat.dagster import run_key_tag
from topic_pipeline.defs.jobs import (
    embeddings_job,
    leaderboard_job,
    refresh_inputs_job,
    report_job,
    search_job,
    trials_job,
)
from topic_pipeline.defs.planning import plan_sweep, retry_pending
from topic_pipeline.defs.recovery import recover_interrupted_runs
from topic_pipeline.defs.resources.database import WINDOW_END_TAG
from topic_pipeline.defs.resources.mlflow import MlflowTracking
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.domain.versions import environment_versions
from topic_pipeline.integrations.mlflow_tracking import TrackingUnavailableError
from topic_pipeline.settings import Settings
from topic_pipeline.storage.data_directory import claim

BIWEEKLY_CRON = "0 6 * * 1"


def is_schedule_week(moment: dt.datetime) -> bool:
    return moment.isocalendar().week % 2 == 0


# Off until a user starts it (the UI's Automation page or `dagster schedule start biweekly_refresh`; the
# instance remembers): a sweep that starts by itself on a laptop would be a surprise.
@dg.schedule(
    job=refresh_inputs_job,
    cron_schedule=BIWEEKLY_CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=(
        "Every other Monday at 06:00 UTC: re-exports the texts and labels and re-expands the grid; the "
        "sweep sensor then runs the trials the new inputs need. Off by default: start it here (the "
        "instance keeps it on across restarts; the daemon, which `make ui` runs, must be running). "
        "Cron cannot say 'every two weeks', so the cron (0 6 * * 1) ticks every Monday and the ticks "
        "of odd ISO weeks are skipped, each with its reason. After a year with 53 ISO weeks, weeks 53 "
        "and 1 are both odd: that gap is three weeks."
    ),
)
def biweekly_refresh(context: dg.ScheduleEvaluationContext):
    """Re-export the texts and labels every other Monday; the sweep sensor then runs what changed."""
    moment = context.scheduled_execution_time
    if not is_schedule_week(moment):
        return dg.SkipReason(f"ISO week {moment.isocalendar().week} is odd: biweekly runs on even weeks")
    # The tick's time ends a relative export window (window_days), so a rerun exports the same period.
    return dg.RunRequest(run_key=f"biweekly-{moment.date().isoformat()}", tags={WINDOW_END_TAG: moment.isoformat()})


RUN_KEY_TAG = run_key_tag()
# Planned work launched this many times under keys whose runs started and failed (each key's run with its own
# run retries), or this many times in all, is not launched again by the sensor.
MAX_STARTED_FAILURES = 3
MAX_LAUNCHES = 1000


def launchable_run_key(instance: dg.DagsterInstance, run_key: str) -> str | None:
    """The key to launch a planned run under, or None when its runs have failed too often.

    Dagster launches a sensor's run key once, whatever became of its run, while a plan names the same work by
    the same key until it is done. When every earlier run of the key failed, the key gets an attempt suffix,
    so the work is launched again: a launch that failed before its run started (the broker was down, say)
    costs nothing; after ``MAX_STARTED_FAILURES`` keys whose runs started and failed (or ``MAX_LAUNCHES`` keys in
    all), the sensor stops and says so.
    A key whose run is in flight, succeeded, was cancelled or is about to be retried by the run-retry daemon is
    returned as it is: Dagster skips it as a duplicate.
    """
    started_failures = 0
    for attempt in range(MAX_LAUNCHES):
        key = run_key if attempt == 0 else f"{run_key}:again{attempt}"
        records = instance.get_run_records(dg.RunsFilter(tags={RUN_KEY_TAG: key}), limit=1)
        if not records:
            return key if started_failures < MAX_STARTED_FAILURES else None
        run = records[0].dagster_run
        # A cancelled run stays so: someone stopped it. A run the run-retry daemon launches again is left to it.
        if run.status != dg.DagsterRunStatus.FAILURE or retry_pending(instance, records[0]):
            return key
        started_failures += records[0].start_time is not None
    return None


@dg.sensor(
    jobs=[embeddings_job, trials_job, leaderboard_job, report_job, search_job],
    # Read when the code location loads (the decorator needs it); 30 s unless TOPIC_PIPELINE_SENSOR_INTERVAL_S says.
    minimum_interval_seconds=Settings.load().sensor_interval_s,
    default_status=dg.DefaultSensorStatus.RUNNING,
    # Shown on the sensor's page in the UI (the docstring is not).
    description=(
        "Every few seconds (TOPIC_PIPELINE_SENSOR_INTERVAL_S, 30 by default): registers the partitions of a new grid or search round, embeds new embedding sets, runs "
        "the trials without a current result, ranks them, writes the report and, in a search, proposes the next "
        "round. A tick that launches nothing says why (for example: the current grid is complete). A trial "
        "partition no grid planned (added by hand) is named in the tick's log and never run."
    ),
)
def sweep_sensor(context: dg.SensorEvaluationContext, settings: PipelineSettings, mlflow: MlflowTracking):
    """Registers the partitions of a new grid or search round, embeds new embedding sets, runs trials
    without a current result, ranks them, and (for a search) proposes the next round once the
    leaderboard ranks the last one. The partitions go in the ``SensorResult``: Dagster adds them before
    it launches the tick's runs, which may target them."""
    # The workers that execute the runs check this marker before they write (PipelineSettings.setup_for_execution);
    # it is rewritten only when the environment changed.
    claim(settings.paths, environment_versions())
    for action in recover_interrupted_runs(context.instance, settings.paths, mlflow.tracker(settings.paths)):
        context.log.warning(action)
    plan = plan_sweep(context.instance, settings)
    note = plan.unplanned_note()
    if note:
        context.log.warning(note)
    if not plan.runs and not plan.partitions:
        return dg.SkipReason("the current grid is complete on the current inputs" + (f"; {note}" if note else ""))
    try:  # found now, not when the first trial records itself minutes later
        mlflow.check_reachable(settings.paths)
    except TrackingUnavailableError as error:
        return dg.SkipReason(f"{error}; no run launched")
    requests, given_up = [], []
    for run in plan.runs:
        run_key = launchable_run_key(context.instance, run.run_key)
        if run_key is None:
            given_up.append(run.run_key)
            continue
        requests.append(
            dg.RunRequest(job_name=run.job_name, run_key=run_key, tags=run.tags, partition_key=run.partition_key)
        )
    if given_up:
        context.log.error(
            f"not launched again: {', '.join(given_up)}, whose runs failed {MAX_STARTED_FAILURES} times after they "
            f"started (or {MAX_LAUNCHES} times in all); see those runs' errors, fix the cause, then re-execute one from "
            "the UI"
        )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=plan.partitions,
        asset_events=plan.asset_events,
    )

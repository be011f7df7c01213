"""The sweep sensor launches a planned run again, under a fresh run key, when the earlier runs of its key failed."""

import uuid

import dagster as dg

from topic_pipeline.defs.automation import MAX_STARTED_FAILURES, RUN_KEY_TAG, launchable_run_key


@dg.asset
def always_fails() -> None:
    raise RuntimeError("this asset fails")


def _failed_before_start(instance: dg.DagsterInstance, key: str) -> None:
    """A run whose launch failed: it never started (no start time), as when the broker was down."""
    run = instance.add_run(dg.DagsterRun(job_name="trials_job", run_id=str(uuid.uuid4()), tags={RUN_KEY_TAG: key}))
    instance.report_run_failed(run, "could not reach the broker")


def _started_and_failed(instance: dg.DagsterInstance, key: str) -> None:
    result = dg.materialize([always_fails], instance=instance, tags={RUN_KEY_TAG: key}, raise_on_error=False)
    assert not result.success


def test_a_new_key_is_used_once_and_a_failed_launch_costs_nothing():
    with dg.instance_for_test() as instance:
        assert launchable_run_key(instance, "trials:a") == "trials:a"
        for _ in range(MAX_STARTED_FAILURES + 2):  # launches that never started never exhaust the key
            _failed_before_start(instance, launchable_run_key(instance, "trials:a"))
        assert launchable_run_key(instance, "trials:a") == f"trials:a:again{MAX_STARTED_FAILURES + 2}"


def test_runs_that_started_and_failed_are_launched_again_a_few_times_then_not():
    with dg.instance_for_test() as instance:
        for attempt in range(MAX_STARTED_FAILURES):
            key = launchable_run_key(instance, "trials:b")
            assert key == ("trials:b" if attempt == 0 else f"trials:b:again{attempt}")
            _started_and_failed(instance, key)
        assert launchable_run_key(instance, "trials:b") is None


def test_a_key_whose_run_succeeded_or_runs_is_left_to_dagster_s_deduplication():
    with dg.instance_for_test() as instance:
        result = dg.materialize([dg.asset(lambda: None, name="fine")], instance=instance, tags={RUN_KEY_TAG: "c"})
        assert result.success
        assert launchable_run_key(instance, "c") == "c"


def test_a_failed_run_the_retry_daemon_will_retry_keeps_its_key():
    with dg.instance_for_test() as instance:
        run = instance.add_run(dg.DagsterRun(job_name="trials_job", run_id=str(uuid.uuid4()), tags={RUN_KEY_TAG: "d"}))
        instance.report_run_failed(run, "worker died")
        instance.add_run_tags(run.run_id, {"dagster/will_retry": "true"})
        assert launchable_run_key(instance, "d") == "d"


def test_the_trials_of_a_failed_run_about_to_be_retried_count_as_in_flight():
    """Planning them again beside the retry would run them twice (a worker died, its run is to be retried)."""
    from topic_pipeline.defs.planning import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG, _keys_in_flight

    ordered = ["t1", "t2", "t3"]
    with dg.instance_for_test(overrides={"run_retries": {"enabled": True, "max_retries": 2}}) as instance:
        tags = {PARTITION_RANGE_START_TAG: "t1", PARTITION_RANGE_END_TAG: "t2"}
        run = instance.add_run(dg.DagsterRun(job_name="trials_job", run_id=str(uuid.uuid4()), tags=tags))
        instance.report_run_failed(run, "its worker died")
        # Undecided a moment after the failure, then decided: in flight either way until the retry exists.
        assert _keys_in_flight(instance, ordered) == {"t1", "t2"}
        instance.add_run_tags(run.run_id, {"dagster/will_retry": "true"})
        assert _keys_in_flight(instance, ordered) == {"t1", "t2"}
        instance.add_run_tags(run.run_id, {"dagster/will_retry": "false"})
        assert _keys_in_flight(instance, ordered) == set()


def test_a_cancelled_run_is_not_launched_again():
    with dg.instance_for_test() as instance:
        run = instance.add_run(dg.DagsterRun(job_name="trials_job", run_id=str(uuid.uuid4()), tags={RUN_KEY_TAG: "e"}))
        instance.report_run_canceled(run)
        assert launchable_run_key(instance, "e") == "e"

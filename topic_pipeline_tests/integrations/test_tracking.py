"""MLflow tracking on a real SQLite store: a trial key keeps one live run however often it is recorded."""

import time

import pytest

from topic_pipeline.domain.results import STATUS_FAILED, STATUS_OK, TrialResult
from topic_pipeline.integrations.mlflow_tracking import (
    ABANDONED_AFTER_S,
    RESULT_NOT_STORED_TAG,
    SUPERSEDED_BY_TAG,
    MlflowTracker,
    local_tracking_uri,
)
from topic_pipeline.storage.results import ResultStore


@pytest.fixture
def tracker(tmp_path):
    return MlflowTracker(
        local_tracking_uri(tmp_path / "mlflow"),
        "tracking-test",
        artifact_location=(tmp_path / "mlflow" / "artifacts").as_uri(),
    )


def _result(key: str, status: str = STATUS_OK, ari: float = 0.5) -> TrialResult:
    metrics = {"ari": ari} if status == STATUS_OK else {}
    return TrialResult(
        key,
        {"umap_n_neighbors": 15},
        "fingerprint",
        status,
        metrics,
        error=None if status == STATUS_OK else "boom",
        duration_s=1.0,
    )


def _live_runs(tracker: MlflowTracker, key: str):
    # The default view type is the one MLflow's runs list opens with: active runs only.
    return tracker.client.search_runs([tracker.experiment_id], f"tags.trial_key = '{key}'")


def test_a_rerun_trial_supersedes_its_older_run(tracker, tmp_path):
    first = tracker.log_trial(_result("trial_a", ari=0.4), {"dagster_run_id": "run-1"})
    other = tracker.log_trial(_result("trial_b"), {"dagster_run_id": "run-1"})
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    export = tracker.log_export(tmp_path / "model", "trial_a", first, {"dagster_run_id": "run-2"})

    # A backfill of a finished partition records the same key again (here it fails this time).
    second = tracker.log_trial(_result("trial_a", STATUS_FAILED), {"dagster_run_id": "run-3"})

    live = [run for run in _live_runs(tracker, "trial_a") if run.data.tags["kind"] == "trial"]
    assert [run.info.run_id for run in live] == [second]
    assert live[0].info.status == "FAILED" and live[0].data.tags["dagster_run_id"] == "run-3"
    older = tracker.client.get_run(first)
    assert older.info.lifecycle_stage == "deleted"
    assert older.data.tags[SUPERSEDED_BY_TAG] == second
    assert older.info.status == "FINISHED" and older.data.metrics["ari"] == 0.4  # kept as it was
    # Other keys and the export run that points at the older trial run are untouched.
    assert [run.info.run_id for run in _live_runs(tracker, "trial_b")] == [other]
    assert tracker.client.get_run(export).info.lifecycle_stage == "active"

    # A third recording supersedes the second; the first stays deleted, pointing at its own successor.
    third = tracker.log_trial(_result("trial_a", ari=0.6), {"dagster_run_id": "run-4"})
    assert [run.info.run_id for run in _live_runs(tracker, "trial_a") if run.data.tags["kind"] == "trial"] == [third]
    assert tracker.client.get_run(second).data.tags[SUPERSEDED_BY_TAG] == third
    assert tracker.client.get_run(first).data.tags[SUPERSEDED_BY_TAG] == second

    # Soft deletion: the older run is restorable from MLflow's UI or client.
    tracker.client.restore_run(first)
    assert tracker.client.get_run(first).info.lifecycle_stage == "active"


def test_abandoned_running_runs_are_closed_and_superseded_but_a_recording_in_progress_is_not(tracker):
    client = tracker.client
    # A recorder killed long ago, whose run nobody recovered (a run Dagster's daemon launched).
    long_ago = int((time.time() - 2 * ABANDONED_AFTER_S) * 1000)
    stale = client.create_run(
        tracker.experiment_id, start_time=long_ago, tags={"trial_key": "trial_a", "dagster_run_id": "killed-long-ago"}
    ).info.run_id
    # Another process's recording of the same key, opened a moment ago and not yet closed.
    recent = client.create_run(
        tracker.experiment_id, tags={"trial_key": "trial_a", "dagster_run_id": "still-recording"}
    ).info.run_id

    newest = tracker.log_trial(_result("trial_a"), {"dagster_run_id": "rerun"})

    assert client.get_run(stale).info.status == "KILLED"
    assert client.get_run(stale).info.lifecycle_stage == "deleted"
    assert client.get_run(stale).data.tags[SUPERSEDED_BY_TAG] == newest
    assert client.get_run(recent).info.status == "RUNNING"
    assert client.get_run(recent).info.lifecycle_stage == "active"

    # Recovery still finds the run a stopped Dagster run left RUNNING and marks it KILLED ...
    assert tracker.close_abandoned_runs("still-recording") == 1
    assert client.get_run(recent).info.status == "KILLED"
    # ... and the key's next recording supersedes it, leaving one live run.
    latest = tracker.log_trial(_result("trial_a"), {"dagster_run_id": "rerun-2"})
    assert [run.info.run_id for run in _live_runs(tracker, "trial_a")] == [latest]
    assert client.get_run(recent).data.tags[SUPERSEDED_BY_TAG] == latest
    assert client.search_runs([tracker.experiment_id], "attributes.status = 'RUNNING'") == []


def test_the_keys_whose_older_runs_need_superseding_are_found_up_front(tracker):
    tracker.log_trial(_result("finished"), {"dagster_run_id": "run-1"})
    tracker.client.create_run(tracker.experiment_id, tags={"trial_key": "running", "dagster_run_id": "run-1"})
    killed = tracker.client.create_run(tracker.experiment_id, tags={"trial_key": "killed", "dagster_run_id": "run-1"})
    tracker.client.set_terminated(killed.info.run_id, status="KILLED")
    assert tracker.trial_keys_with_unfinished_runs() == {"running", "killed"}
    # Once the killed trial is recorded again, its KILLED run is superseded (deleted) and no longer found.
    tracker.log_trial(_result("killed"), {"dagster_run_id": "run-2"})
    assert tracker.trial_keys_with_unfinished_runs() == {"running"}


def test_a_sweep_is_one_parent_run_with_its_rounds_and_trials_nested(tracker, tmp_path):
    experiment = tracker.client.get_experiment(tracker.experiment_id)
    # MLflow 3 opens an experiment without this tag in its GenAI view (traces), not on its runs.
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"

    sweep = tracker.sweep_run("abc123")
    assert tracker.sweep_run("abc123") == sweep  # found, not created again
    assert tracker.sweep_run("other") != sweep
    first_round = tracker.sweep_run("abc123", search_round=1)
    assert tracker.sweep_run("abc123", search_round=1) == first_round != tracker.sweep_run("abc123", search_round=2)
    assert tracker.client.get_run(first_round).data.tags["mlflow.parentRunId"] == sweep

    trial = tracker.log_trial(_result("trial_a"), {}, parent_run_id=first_round)
    tags = tracker.client.get_run(trial).data.tags
    assert tags["kind"] == "trial" and tags["mlflow.parentRunId"] == first_round

    # The leaderboard goes on the sweep's run, one metric step per leaderboard.
    csv = tmp_path / "leaderboard.csv"
    csv.write_text("rank,trial\n1,trial_a\n")
    for ari in (0.5, 0.7):
        tracker.log_leaderboard(sweep, csv, "| rank |", {"trial": "trial_a", "ari": ari}, {"grid_fingerprint": "g"})
    run = tracker.client.get_run(sweep)
    assert run.data.tags["best_trial"] == "trial_a" and run.data.tags["kind"] == "sweep"
    assert [m.value for m in tracker.client.get_metric_history(sweep, "best_ari")] == [0.5, 0.7]
    assert {item.path for item in tracker.client.list_artifacts(sweep)} == {"leaderboard.csv", "leaderboard.md"}
    # The report (its own step, after the leaderboard) goes on the same run, its files under report/.
    (tmp_path / "report.html").write_text("<html></html>")
    (tmp_path / "convergence.png").write_bytes(b"\x89PNG")
    tracker.log_report(sweep, [tmp_path / "report.html", tmp_path / "convergence.png"])
    assert {item.path for item in tracker.client.list_artifacts(sweep, "report")} == {
        "report/report.html",
        "report/convergence.png",
    }


def test_an_experiment_made_elsewhere_is_marked_for_training_runs(tmp_path):
    uri = local_tracking_uri(tmp_path / "mlflow")
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=uri).create_experiment("earlier")
    tracker = MlflowTracker(uri, "earlier")
    assert (
        tracker.client.get_experiment(tracker.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    )


def test_logged_metrics_are_rounded_for_display(tracker):
    # MLflow's UI prints a metric as logged; the exact value stays in the result store.
    run_id = tracker.log_trial(_result("trial_a", ari=0.123456789012), {"dagster_run_id": "run-1"})
    assert tracker.client.get_run(run_id).data.metrics["ari"] == 0.1235


# A stop (SIGKILL, SIGTERM, a failed write) can land between closing a trial's MLflow run and storing its
# result (trials.record). ``_record`` is that recording as the trials step does it, stopped or not.


def _record(tracker, store, key, dagster_run_id, stop_before_storing=False, ari=0.5):
    unfinished = tracker.trial_keys_with_unfinished_runs()
    result = _result(key, ari=ari)
    run_id = tracker.log_trial(
        result, {"dagster_run_id": dagster_run_id}, supersede_older=key in unfinished or store.path(key).exists()
    )
    if not stop_before_storing:
        result.tags = {"mlflow_run_id": run_id, "dagster_run_id": dagster_run_id}
        store.save(result)
    return run_id


def _live_trial_runs(tracker):
    runs = tracker.client.search_runs([tracker.experiment_id], "", max_results=1000)
    by_key: dict[str, list[str]] = {}
    for run in runs:
        if run.data.tags.get("kind") == "trial":
            by_key.setdefault(run.data.tags["trial_key"], []).append(run.info.run_id)
    return by_key


def _snapshot(tracker):
    from mlflow.entities import ViewType

    runs = tracker.client.search_runs([tracker.experiment_id], "", run_view_type=ViewType.ALL, max_results=1000)
    return sorted(
        (
            r.info.run_id,
            r.info.lifecycle_stage,
            r.info.status,
            sorted(r.data.tags.items()),
            sorted(r.data.metrics.items()),
        )
        for r in runs
    )


def test_a_kill_between_closing_a_trials_run_and_storing_its_result_leaves_one_run_after_the_resume(tracker, tmp_path):
    store = ResultStore(tmp_path / "results")
    finished = _record(tracker, store, "trial_a", "killed")  # done before the kill
    orphan = _record(tracker, store, "trial_b", "killed", stop_before_storing=True)  # the kill lands here

    # The next sweep's recovery, before it plans: trial_b has no stored result, so it is rerun.
    lines = tracker.reconcile_trial_runs(store.load, ["killed"])
    assert lines == [
        f"1 MLflow trial run(s) whose result a stop kept from the result store tagged {RESULT_NOT_STORED_TAG}: "
        "each trial is rerun and its new run supersedes the old one"
    ]
    assert _live_trial_runs(tracker) == {"trial_a": [finished], "trial_b": [orphan]}  # never none
    assert tracker.client.get_run(orphan).data.tags[RESULT_NOT_STORED_TAG] == "true"

    # The resumed sweep reruns trial_b: its new run supersedes the one whose result was not stored.
    rerun = _record(tracker, store, "trial_b", "resumed")
    assert _live_trial_runs(tracker) == {"trial_a": [finished], "trial_b": [rerun]}
    assert store.load("trial_b").tags["mlflow_run_id"] == rerun
    old = tracker.client.get_run(orphan)
    assert old.info.lifecycle_stage == "deleted" and old.data.tags[SUPERSEDED_BY_TAG] == rerun

    # The sweep after it changes nothing.
    before = _snapshot(tracker)
    assert tracker.reconcile_trial_runs(store.load, ["killed"]) == []
    assert _snapshot(tracker) == before


def test_duplicate_trial_runs_left_by_a_kill_keep_the_one_the_stored_result_names(tracker, tmp_path):
    store = ResultStore(tmp_path / "results")
    keys = [f"trial_{index}" for index in range(4)]
    for key in keys:
        _record(tracker, store, key, "killed")
    # What the kill left before this fix, and a resume without it: the trial logged, not stored, then logged
    # again (a first recording for the planner: no supersession) and stored.
    orphan = tracker.log_trial(_result("trial_x", ari=0.3), {"dagster_run_id": "killed"}, supersede_older=False)
    rerun = tracker.log_trial(_result("trial_x", ari=0.3), {"dagster_run_id": "resumed"}, supersede_older=False)
    result = _result("trial_x", ari=0.3)
    result.tags = {"mlflow_run_id": rerun, "dagster_run_id": "resumed"}
    store.save(result)
    assert len(_live_trial_runs(tracker)["trial_x"]) == 2

    lines = tracker.reconcile_trial_runs(store.load, ["killed"])

    assert lines == [
        f"1 MLflow trial run(s) that stopped runs left beside their trial's current run superseded "
        f"(tagged {SUPERSEDED_BY_TAG}, soft-deleted): each trial keeps one live run"
    ]
    live = _live_trial_runs(tracker)
    assert sorted(live) == sorted([*keys, "trial_x"]) and all(len(ids) == 1 for ids in live.values())
    assert live["trial_x"] == [store.load("trial_x").tags["mlflow_run_id"]] == [rerun]
    for key in keys:
        assert live[key] == [store.load(key).tags["mlflow_run_id"]]
    superseded = tracker.client.get_run(orphan)
    assert superseded.info.lifecycle_stage == "deleted" and superseded.data.tags[SUPERSEDED_BY_TAG] == rerun

    before = _snapshot(tracker)
    assert tracker.reconcile_trial_runs(store.load, ["killed"]) == []
    assert _snapshot(tracker) == before


def test_a_kill_mid_supersession_keeps_the_run_the_stored_result_names(tracker, tmp_path):
    store = ResultStore(tmp_path / "results")
    # trial_a: a backfill reran it and was killed after closing its new run, before superseding the old one.
    stored_a = _record(tracker, store, "trial_a", "sweep-1")
    newer_a = tracker.log_trial(_result("trial_a"), {"dagster_run_id": "killed"}, supersede_older=False)
    # trial_b: killed after superseding the old run, before storing: the stored result names a deleted run.
    stored_b = _record(tracker, store, "trial_b", "sweep-1")
    newer_b = _record(tracker, store, "trial_b", "killed", stop_before_storing=True)
    assert tracker.client.get_run(stored_b).info.lifecycle_stage == "deleted"

    lines = tracker.reconcile_trial_runs(store.load, ["killed"])

    assert len(lines) == 2 and "1 MLflow trial run(s) named by a stored result restored" in lines[1]
    assert _live_trial_runs(tracker) == {"trial_a": [stored_a], "trial_b": [stored_b]}
    for newer, stored in ((newer_a, stored_a), (newer_b, stored_b)):
        run = tracker.client.get_run(newer)
        assert run.info.lifecycle_stage == "deleted" and run.data.tags[SUPERSEDED_BY_TAG] == stored
    assert SUPERSEDED_BY_TAG not in tracker.client.get_run(stored_b).data.tags
    before = _snapshot(tracker)
    assert tracker.reconcile_trial_runs(store.load, ["killed"]) == []
    assert _snapshot(tracker) == before


def test_a_stored_result_whose_run_was_left_open_closes_it_and_runs_of_live_dagster_runs_are_left_alone(
    tracker, tmp_path
):
    store = ResultStore(tmp_path / "results")
    client = tracker.client
    # Result stored, run never closed (the opposite order; its values were never logged either).
    open_run = client.create_run(
        tracker.experiment_id, tags={"kind": "trial", "trial_key": "trial_a", "dagster_run_id": "killed"}
    ).info.run_id
    result = _result("trial_a", ari=0.7)
    result.tags = {"mlflow_run_id": open_run, "dagster_run_id": "killed"}
    store.save(result)
    # Marked KILLED by the recovery of its Dagster run first, as recover_interrupted_runs does.
    assert tracker.close_abandoned_runs("killed") == 1
    # Another Dagster run, still going, is recording trial_b (open a moment ago) and has recorded trial_c.
    in_progress = client.create_run(
        tracker.experiment_id, tags={"kind": "trial", "trial_key": "trial_b", "dagster_run_id": "running"}
    ).info.run_id
    done_c = _record(tracker, store, "trial_c", "running", stop_before_storing=True)
    # ... and a stopped run left trial_b a run whose result was not stored.
    orphan_b = tracker.log_trial(_result("trial_b"), {"dagster_run_id": "killed"}, supersede_older=False)

    lines = tracker.reconcile_trial_runs(store.load, ["killed"])

    assert "1 MLflow trial run(s) whose result was stored closed as their result says" in lines
    closed = client.get_run(open_run)
    assert closed.info.status == "FINISHED" and closed.data.metrics["ari"] == 0.7
    # trial_b: the stopped run's run is superseded by the live Dagster run's recording, which is untouched.
    assert _live_trial_runs(tracker) == {"trial_a": [open_run], "trial_b": [in_progress], "trial_c": [done_c]}
    assert client.get_run(orphan_b).data.tags[SUPERSEDED_BY_TAG] == in_progress
    assert client.get_run(in_progress).info.status == "RUNNING"
    before = _snapshot(tracker)
    assert tracker.reconcile_trial_runs(store.load, ["killed"]) == []
    assert _snapshot(tracker) == before

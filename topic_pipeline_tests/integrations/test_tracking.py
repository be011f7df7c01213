"""MLflow tracking on a real SQLite store: a trial key keeps one live run however often it is recorded."""

import time

import pytest

from topic_pipeline.storage.results import STATUS_FAILED, STATUS_OK, TrialResult
from topic_pipeline.integrations.mlflow_tracking import ABANDONED_AFTER_S, SUPERSEDED_BY_TAG, MlflowTracker, local_tracking_uri


@pytest.fixture
def tracker(tmp_path):
    return MlflowTracker(local_tracking_uri(tmp_path / "mlflow"), "tracking-test",
                         artifact_location=(tmp_path / "mlflow" / "artifacts").as_uri())


def _result(key: str, status: str = STATUS_OK, ari: float = 0.5) -> TrialResult:
    metrics = {"ari": ari} if status == STATUS_OK else {}
    return TrialResult(key, {"umap_n_neighbors": 15}, "fingerprint", status, metrics,
                       error=None if status == STATUS_OK else "boom", duration_s=1.0)


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
    stale = client.create_run(tracker.experiment_id, start_time=long_ago,
                              tags={"trial_key": "trial_a", "dagster_run_id": "killed-long-ago"}).info.run_id
    # Another process's recording of the same key, opened a moment ago and not yet closed.
    recent = client.create_run(tracker.experiment_id,
                               tags={"trial_key": "trial_a", "dagster_run_id": "still-recording"}).info.run_id

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


def test_an_experiment_made_by_an_earlier_version_is_marked_for_training_runs(tmp_path):
    uri = local_tracking_uri(tmp_path / "mlflow")
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=uri).create_experiment("earlier")
    tracker = MlflowTracker(uri, "earlier")
    assert tracker.client.get_experiment(tracker.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"


def test_logged_metrics_are_rounded_for_display(tracker):
    # MLflow's UI prints a metric as logged; the exact value stays in the result store.
    run_id = tracker.log_trial(_result("trial_a", ari=0.123456789012), {"dagster_run_id": "run-1"})
    assert tracker.client.get_run(run_id).data.metrics["ari"] == 0.1235


def test_a_trial_recorded_again_supersedes_the_runs_of_its_earlier_key(tracker):
    # A result carried over from the first form of keys keeps its run under that key (storage.migrations).
    legacy = tracker.log_trial(_result("legacy_form_key"), {"dagster_run_id": "run-1"})
    current = tracker.log_trial(_result("current_key"), {"dagster_run_id": "run-2"}, also_supersede=["legacy_form_key"])
    assert tracker.client.get_run(legacy).data.tags[SUPERSEDED_BY_TAG] == current
    assert _live_runs(tracker, "legacy_form_key") == [] and len(_live_runs(tracker, "current_key")) == 1

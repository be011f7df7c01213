"""MLflow tracking on a real SQLite store: a trial key keeps one live run however often it is recorded."""

import time

import pytest

from topic_pipeline.domain.results import STATUS_FAILED, STATUS_OK, TrialResult
from topic_pipeline.domain.trials import TrialParams
from topic_pipeline.integrations.mlflow_tracking import (
    ABANDONED_AFTER_S,
    NOTE_TAG,
    RECORDED_AT_TAG,
    RESULT_NOT_STORED_TAG,
    SUPERSEDED_BY_TAG,
    MlflowTracker,
    local_tracking_uri,
    mlflow_metric_name,
)
from topic_pipeline.scoring.metrics import METRIC_NAMES
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
    for best, mean in ((0.5, 0.45), (0.7, 0.41)):
        series = {"best_trial_ari": best, "recommended_mean_ari": mean}
        tracker.log_leaderboard(sweep, csv, "| rank |", series, {"recommended_trial": "trial_a"})
    run = tracker.client.get_run(sweep)
    assert run.data.tags["recommended_trial"] == "trial_a" and run.data.tags["kind"] == "sweep"
    # Each figure its own series: the best trial so far, and the recommended configuration's mean.
    assert [m.value for m in tracker.client.get_metric_history(sweep, "best_trial_ari")] == [0.5, 0.7]
    assert [m.value for m in tracker.client.get_metric_history(sweep, "recommended_mean_ari")] == [0.45, 0.41]
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


# What a person sees in MLflow's UI: run names that differ where the runs list cuts them, the trial's own
# duration, the main scores first, and runs that say what they hold.

PARAMS = TrialParams(30, 5, 0.0, 15, 5, 0.0, "none", 1, "sentence-transformers/all-MiniLM-L6-v2", False)


def _trial(params: TrialParams = PARAMS, finished_at: float = 1_700_000_000.0, duration_s: float = 13.5, **metrics):
    return TrialResult(
        params.key,
        params.to_dict(),
        "fingerprint",
        STATUS_OK,
        metrics or {"ari": 0.5},
        duration_s=duration_s,
        finished_at=finished_at,
    )


def test_trial_run_names_put_the_values_that_vary_first():
    assert PARAMS.run_name == "mcs15 ms5 eps0 | nn30 nc5 md0 | all-minilm-l6-v2"
    varied = TrialParams(
        15, 10, 0.1, 25, None, 0.05, 20, 2, "sentence-transformers/all-MiniLM-L6-v2", True, "embeddings", 0.25, 2
    )
    assert varied.key == "nn15_nc10_md0.1__all-minilm-l6-v2-nostop__mcs25_eps0.05_nt20_ng2_oemb0.25_r2"
    assert varied.run_name == "mcs25 eps0.05 nt20 ng2 oemb0.25 | nn15 nc10 md0.1 r2 | all-minilm-l6-v2-nostop"
    # MLflow's runs list shows a nested run's first dozen characters: trials of one UMAP layout now differ there.
    names = {TrialParams(30, 5, 0.0, size, 5, 0.0, "none", 1, "m", False).run_name[:12] for size in (10, 15, 25)}
    assert len(names) == 3


def test_a_trial_run_is_named_by_its_values_and_spans_the_trial_itself(tracker):
    run_id = tracker.log_trial(_trial(), {"dagster_run_id": "run-1"})

    run = tracker.client.get_run(run_id)
    assert run.info.run_name == "mcs15 ms5 eps0 | nn30 nc5 md0 | all-minilm-l6-v2"
    assert run.data.tags["trial_key"] == PARAMS.key == "nn30_nc5_md0__all-minilm-l6-v2__mcs15_ms5_eps0"
    # Logged after the fact, the run still shows the trial's duration, ending when the trial finished.
    assert run.info.end_time == 1_700_000_000_000 and run.info.end_time - run.info.start_time == 13_500
    assert int(run.data.tags[RECORDED_AT_TAG]) > run.info.end_time  # when it was recorded: later
    # A result without its finish time ends when it is recorded; one without a whole trial's parameters
    # (made outside a grid) is named by its key.
    started = int(time.time() * 1000)
    bare = tracker.client.get_run(tracker.log_trial(_result("trial_b"), {"dagster_run_id": "run-1"}))
    assert bare.info.run_name == "trial_b" and bare.info.end_time - bare.info.start_time == 1_000
    assert started <= bare.info.end_time <= int(time.time() * 1000)


def test_main_scores_come_first_and_the_other_parts_are_named_after_them(tracker):
    metrics = {}
    for prefix in ("", "heldout_", "all_"):
        metrics.update({f"{prefix}{name}": 0.5 for name in (*METRIC_NAMES, "outlier_fraction", "labelled_documents")})
    metrics["topic_count"] = 7.0
    run_id = tracker.log_trial(_trial(**metrics), {"dagster_run_id": "run-1"})

    logged = list(tracker.client.get_run(run_id).data.metrics)
    # The selection part's scores keep their names; the held-out and all-labels parts' follow them.
    assert mlflow_metric_name("heldout_ari") == "ari_heldout" and mlflow_metric_name("all_ari") == "ari_all"
    assert mlflow_metric_name("ari") == "ari" and mlflow_metric_name("topic_count") == "topic_count"
    assert sorted(logged) == sorted(["duration_s", *(mlflow_metric_name(name) for name in metrics)])
    assert not [name for name in logged if name.startswith(("heldout_", "all_"))]
    # A run's page lists them as the store returns them: as logged, the ranking metric first. Alphabetically
    # (MLflow's charts and column chooser), each score is followed by its other parts: ari, ari_all, ari_heldout.
    main = [*METRIC_NAMES, "outlier_fraction", "topic_count", "labelled_documents", "duration_s"]
    assert logged[: len(main)] == main
    assert logged[len(main)] == "ari_heldout" and logged[-1] == "labelled_documents_all"
    assert sorted(logged)[sorted(logged).index("ari") :][:3] == ["ari", "ari_all", "ari_heldout"]


def _live_trial_keys(tracker) -> list[str]:
    runs = tracker.client.search_runs([tracker.experiment_id], "tags.kind = 'trial'", max_results=1000)
    return sorted(run.data.tags["trial_key"] for run in runs)


def test_a_backfill_rerun_leaves_one_live_run_per_trial(tracker, tmp_path):
    store = ResultStore(tmp_path / "results")
    trials = [TrialParams(30, 5, 0.0, size, 5, 0.0, "none", 1, "m", False) for size in (10, 15, 25)]
    first = {}
    for params in trials:
        result = _trial(params, finished_at=1_700_000_000.0, duration_s=5.0)
        first[params.key] = _record_result(tracker, store, result, "sweep")
    assert _live_trial_keys(tracker) == sorted(first)

    # A UI backfill of the three partitions: a new Dagster run records each trial again. The first comes out
    # unchanged (same finish time and duration, so the same start: no tie may keep the older run); the
    # others ran longer, so their runs start before the older runs did, yet they are the newer recordings.
    rerun = {}
    for params, (finished_at, duration_s) in zip(
        trials, [(1_700_000_000.0, 5.0), (1_700_000_001.0, 60.0), (1_700_000_100.0, 600.0)], strict=True
    ):
        result = _trial(params, finished_at=finished_at, duration_s=duration_s)
        rerun[params.key] = _record_result(tracker, store, result, "backfill")

    assert _live_trial_keys(tracker) == sorted(first)  # one live run per trial
    for key, run_id in rerun.items():
        assert [run.info.run_id for run in _live_runs(tracker, key)] == [run_id]
        assert store.load(key).tags["mlflow_run_id"] == run_id
        older = tracker.client.get_run(first[key])
        assert older.info.lifecycle_stage == "deleted" and older.data.tags[SUPERSEDED_BY_TAG] == run_id
    start = {run_id: tracker.client.get_run(run_id).info.start_time for run_id in (*first.values(), *rerun.values())}
    assert start[rerun[trials[2].key]] < start[first[trials[2].key]]  # the rerun started before the older run


def _record_result(tracker, store, result, dagster_run_id):
    """A trial recorded as ``workflow.trials._Recorder.record`` does it."""
    unfinished = tracker.trial_keys_with_unfinished_runs()
    run_id = tracker.log_trial(
        result,
        {"dagster_run_id": dagster_run_id, "dagster_partition_key": result.key},
        supersede_older=result.key in unfinished or store.path(result.key).exists(),
    )
    result.tags = {"mlflow_run_id": run_id, "dagster_run_id": dagster_run_id}
    store.save(result)
    return run_id


def test_two_dagster_runs_recording_a_trial_at_once_leave_one_live_run(tracker, monkeypatch):
    tracker.log_trial(_trial(), {"dagster_run_id": "sweep"})
    # Two runs rematerialise the same partition at once (a backfill beside another run): the second recording
    # opens, logs, closes and supersedes while the first one's run is still open.
    log_values = tracker._log_values
    second: list[str] = []

    def interleaved(run_id, result):
        log_values(run_id, result)
        if not second:
            second.append("recording")
            time.sleep(0.002)  # recorded a moment later
            second[0] = tracker.log_trial(_trial(), {"dagster_run_id": "other"})

    monkeypatch.setattr(tracker, "_log_values", interleaved)
    first = tracker.log_trial(_trial(), {"dagster_run_id": "backfill"})

    (live,) = _live_runs(tracker, PARAMS.key)
    assert live.info.run_id == second[0] and live.info.status == "FINISHED"
    # The first recording's own run is superseded, and it returns the live run: the result it stores names it.
    assert first == second[0]
    from mlflow.entities import ViewType

    deleted = tracker.client.search_runs(
        [tracker.experiment_id], "tags.dagster_run_id = 'backfill'", run_view_type=ViewType.DELETED_ONLY
    )
    assert [run.data.tags[SUPERSEDED_BY_TAG] for run in deleted] == [second[0]]


def test_a_recording_in_progress_is_told_by_when_it_was_recorded_not_by_its_back_dated_start(tracker):
    client = tracker.client
    # Another process's recording of a trial that ran for 20 minutes: its run started long ago, but was
    # opened a moment ago and is not closed yet.
    now = int(time.time() * 1000)
    in_progress = client.create_run(
        tracker.experiment_id,
        start_time=now - 20 * 60 * 1000,
        tags={"kind": "trial", "trial_key": PARAMS.key, "dagster_run_id": "other", RECORDED_AT_TAG: str(now)},
    ).info.run_id

    tracker.log_trial(_trial(), {"dagster_run_id": "backfill"})

    assert client.get_run(in_progress).info.status == "RUNNING"
    assert client.get_run(in_progress).info.lifecycle_stage == "active"


def test_recovery_keeps_the_most_recently_recorded_run_whatever_its_start(tracker, tmp_path):
    store = ResultStore(tmp_path / "results")
    # A stopped run's recording whose result was never stored, and two later recordings by Dagster runs still
    # going (neither knew of the other); the later one ran longest, so it started first.
    orphan = tracker.log_trial(_trial(duration_s=1.0), {"dagster_run_id": "killed"}, supersede_older=False)
    tracker.log_trial(_trial(duration_s=1.0), {"dagster_run_id": "running-1"}, supersede_older=False)
    time.sleep(0.002)
    latest = tracker.log_trial(_trial(duration_s=900.0), {"dagster_run_id": "running-2"}, supersede_older=False)

    tracker.reconcile_trial_runs(store.load, ["killed"])

    assert tracker.client.get_run(orphan).data.tags[SUPERSEDED_BY_TAG] == latest


def test_sweep_and_round_runs_say_what_they_hold(tracker):
    sweep = tracker.client.get_run(tracker.sweep_run("abc123"))
    description = sweep.data.tags[NOTE_TAG]  # MLflow's run description
    assert description.startswith("Sweep `abc123`")
    for held in ("nested under this one", "leaderboard.csv", "leaderboard.md", "report/", "report.html", "_heldout"):
        assert held in description
    search_round = tracker.client.get_run(tracker.sweep_run("abc123", search_round=2))
    assert search_round.data.tags[NOTE_TAG].startswith("Round 2 of the search of sweep `abc123`")
    # Found again, not created again: the description is written once, with the run.
    assert tracker.sweep_run("abc123", search_round=2) == search_round.info.run_id

"""MLflow faults at a sweep's start: an unreachable tracking store is reported in seconds, in one line
without credentials; the recovery of a killed trials run leaves each trial one live MLflow run."""

import http.server
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from conftest import free_loopback_port, service_process
from topic_pipeline.defs.recovery import MLFLOW_CHECKED_TAG, RESULTS_RECORDED_TAG, recover_interrupted_runs
from topic_pipeline.defs.resources.mlflow import MlflowTracking
from topic_pipeline.domain.results import STATUS_OK, TrialResult
from topic_pipeline.integrations.mlflow_tracking import (
    RESULT_NOT_STORED_TAG,
    SUPERSEDED_BY_TAG,
    TrackingUnavailableError,
    check_reachable,
    local_tracking_uri,
)
from topic_pipeline.storage.paths import DataPaths
from topic_pipeline.storage.results import ResultStore


@pytest.fixture
def mlflow_default_retries(monkeypatch):
    # MLflow's defaults (7 retries with back-off, 120 s a try): the check must not depend on them.
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)


def test_an_unreachable_tracking_server_is_reported_in_seconds_in_one_line_without_credentials(
    tmp_path, mlflow_default_retries
):
    port = free_loopback_port()  # nothing listens on it
    uri = f"http://robot:Tr4ckSecret@127.0.0.1:{port}"
    expected = (
        f"MLflow tracking server at http://robot:***@127.0.0.1:{port} (MLFLOW_TRACKING_URI) cannot be reached: "
        "connection refused; start it or unset MLFLOW_TRACKING_URI to use the local store"
    )
    started = time.monotonic()
    with pytest.raises(TrackingUnavailableError) as raised:
        check_reachable(uri)
    assert time.monotonic() - started < 10
    assert str(raised.value) == expected
    # The same through the Dagster resource (what the command line and the sensor call).
    started = time.monotonic()
    with pytest.raises(TrackingUnavailableError) as raised:
        MlflowTracking(tracking_uri=uri).check_reachable(DataPaths(tmp_path / "data"))
    assert time.monotonic() - started < 10
    assert str(raised.value) == expected and "Tr4ckSecret" not in str(raised.value)


def test_the_resource_reads_an_unresolved_env_var_tracking_uri(tmp_path, monkeypatch):
    # Built outside a run (as the command line builds its resources), the field holds the EnvVar itself.
    port = free_loopback_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    resource = MlflowTracking(tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI"))
    assert resource.tracker(DataPaths(tmp_path / "data")).tracking_uri == f"http://127.0.0.1:{port}"
    with pytest.raises(
        TrackingUnavailableError, match=f"at http://127.0.0.1:{port} \\(MLFLOW_TRACKING_URI\\) cannot be reached"
    ):
        resource.check_reachable(DataPaths(tmp_path / "data"))


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 404

    def do_GET(self):
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html>not here</html>")

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(
    "status, problem",
    [
        (
            404,
            "does not answer as an MLflow tracking server: HTTP 404 Not Found for api/2.0/mlflow/experiments/get-by-name; "
            "check the address in MLFLOW_TRACKING_URI",
        ),
        (401, "rejected the request: HTTP 401 Unauthorized; check the credentials it is given"),
        (503, "cannot be reached: HTTP 503 Service Unavailable; start it"),
    ],
)
def test_a_server_that_answers_but_not_as_mlflow_does_is_reported(status, problem, mlflow_default_retries):
    handler = type("Handler", (_Answer,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://alice:pa55word@127.0.0.1:{server.server_address[1]}"
        started = time.monotonic()
        with pytest.raises(TrackingUnavailableError) as raised:
            check_reachable(uri)
        assert time.monotonic() - started < 10  # a 503 is not retried either
        message = str(raised.value)
        assert message.startswith(
            f"MLflow tracking server at http://alice:***@127.0.0.1:{server.server_address[1]} "
            f"(MLFLOW_TRACKING_URI) {problem}"
        )
        assert "pa55word" not in message
    finally:
        server.shutdown()


def test_database_and_local_stores_are_opened(tmp_path):
    local = local_tracking_uri(tmp_path / "mlflow")
    check_reachable(local, setting=None)  # the default store, created on first use
    MlflowTracking().check_reachable(DataPaths(tmp_path / "data"))
    with pytest.raises(TrackingUnavailableError) as raised:
        check_reachable(f"sqlite:///{tmp_path}/missing/mlflow.db")
    assert str(raised.value) == (
        f"MLflow tracking database at sqlite:///{tmp_path}/missing/mlflow.db (MLFLOW_TRACKING_URI) cannot be opened: "
        f"its folder {tmp_path}/missing does not exist; check the path in MLFLOW_TRACKING_URI or unset it to use the local store"
    )
    pytest.importorskip("psycopg2")
    port = free_loopback_port()
    started = time.monotonic()
    with pytest.raises(TrackingUnavailableError) as raised:
        check_reachable(f"postgresql+psycopg2://mlflow:Db5ecret@127.0.0.1:{port}/mlflow")
    assert time.monotonic() - started < 10
    message = str(raised.value)
    assert message.startswith(
        f"MLflow tracking database at postgresql+psycopg2://mlflow:***@127.0.0.1:{port}/mlflow "
        "(MLFLOW_TRACKING_URI) cannot be opened: "
    )
    assert "Connection refused" in message and "Db5ecret" not in message


def test_a_running_mlflow_server_passes_the_check(tmp_path, mlflow_default_retries):
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'server.db'}",
        "--default-artifact-root",
        (tmp_path / "artifacts").as_uri(),
    ]
    log = tmp_path / "mlflow-server.log"
    with service_process(command, log, dict(os.environ)) as server:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"mlflow server not up after 180 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        started = time.monotonic()
        check_reachable(url, experiment_name="no-such-experiment-yet")  # MLflow's "no such experiment" is an answer
        MlflowTracking(tracking_uri=url, experiment_name="topic_pipeline").check_reachable(DataPaths(tmp_path / "data"))
        assert time.monotonic() - started < 10


# The recovery that ``topic-pipeline sweep`` and the sweep sensor run before they plan.


def _result(key: str) -> TrialResult:
    return TrialResult(key, {"umap_n_neighbors": 15}, "fingerprint", STATUS_OK, {"ari": 0.5}, duration_s=1.0)


def _stopped_trials_run(instance, run_id, key, tags=None):
    instance.add_run(
        dg.DagsterRun(
            job_name="trials_job",
            run_id=run_id,
            status=dg.DagsterRunStatus.FAILURE,
            tags={"dagster/partition": key, **(tags or {})},
        )
    )


def _live(tracker):
    runs = tracker.client.search_runs([tracker.experiment_id], "", max_results=1000)
    return sorted((run.data.tags["trial_key"], run.info.run_id) for run in runs if run.data.tags.get("kind") == "trial")


def test_recovery_of_a_killed_trials_run_leaves_each_trial_one_mlflow_run(tmp_path):
    paths = DataPaths(tmp_path / "data")
    tracker = MlflowTracking().tracker(paths)
    store = ResultStore(paths.results)
    killed = "11111111-1111-1111-1111-111111111111"
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        _stopped_trials_run(instance, killed, "trial_a")
        # Killed between closing trial_a's MLflow run and storing its result.
        orphan = tracker.log_trial(_result("trial_a"), {"dagster_run_id": killed}, supersede_older=False)

        actions = recover_interrupted_runs(instance, paths, tracker)

        assert any(RESULT_NOT_STORED_TAG in line for line in actions), actions
        assert MLFLOW_CHECKED_TAG in instance.get_run_by_id(killed).tags
        # The resumed sweep's trials step reruns trial_a (as grid_trials records it) and stores its result.
        unfinished = MlflowTracking().tracker(paths).trial_keys_with_unfinished_runs()
        assert unfinished == {"trial_a"}
        rerun = tracker.log_trial(
            _result("trial_a"), {"dagster_run_id": "resumed"}, supersede_older="trial_a" in unfinished
        )
        result = _result("trial_a")
        result.tags = {"mlflow_run_id": rerun, "dagster_run_id": "resumed"}
        store.save(result)
        assert _live(tracker) == [("trial_a", rerun)]
        assert tracker.client.get_run(orphan).data.tags[SUPERSEDED_BY_TAG] == rerun
        # The next sweep's recovery has nothing left to do.
        assert recover_interrupted_runs(instance, paths, tracker) == []
        assert _live(tracker) == [("trial_a", rerun)]


def test_duplicates_of_a_run_recovered_without_an_mlflow_check_are_reconciled_once(tmp_path):
    paths = DataPaths(tmp_path / "data")
    tracker = MlflowTracking().tracker(paths)
    store = ResultStore(paths.results)
    killed = "22222222-2222-2222-2222-222222222222"
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        # Recovered by a pass that could not check MLflow: its results recorded, its MLflow runs never reconciled.
        _stopped_trials_run(instance, killed, "trial_a", {RESULTS_RECORDED_TAG: "0"})
        orphan = tracker.log_trial(_result("trial_a"), {"dagster_run_id": killed}, supersede_older=False)
        rerun = tracker.log_trial(_result("trial_a"), {"dagster_run_id": "resumed"}, supersede_older=False)
        result = _result("trial_a")
        result.tags = {"mlflow_run_id": rerun, "dagster_run_id": "resumed"}
        store.save(result)
        assert len(_live(tracker)) == 2  # the 49 runs for 48 trials of the report

        actions = recover_interrupted_runs(instance, paths, tracker)

        assert any("superseded" in line for line in actions), actions
        assert _live(tracker) == [("trial_a", rerun)]
        assert tracker.client.get_run(orphan).data.tags[SUPERSEDED_BY_TAG] == rerun
        assert recover_interrupted_runs(instance, paths, tracker) == []


def test_recovery_with_mlflow_unreachable_is_quick_and_tried_again_next_time(tmp_path, mlflow_default_retries):
    paths = DataPaths(tmp_path / "data")
    port = free_loopback_port()
    tracker = MlflowTracking(tracking_uri=f"http://robot:Tr4ckSecret@127.0.0.1:{port}").tracker(paths)
    killed = "33333333-3333-3333-3333-333333333333"
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        _stopped_trials_run(instance, killed, "trial_a")
        started = time.monotonic()
        actions = recover_interrupted_runs(instance, paths, tracker)
        assert time.monotonic() - started < 15
        assert actions == [
            f"1 stopped run(s): their MLflow runs could not be checked (MLflow tracking server at "
            f"http://robot:***@127.0.0.1:{port} (MLFLOW_TRACKING_URI) cannot be reached: connection refused; start it or "
            "unset MLFLOW_TRACKING_URI to use the local store); they are checked at the next sweep"
        ]
        tags = instance.get_run_by_id(killed).tags
        assert RESULTS_RECORDED_TAG in tags and MLFLOW_CHECKED_TAG not in tags
        assert recover_interrupted_runs(instance, paths, tracker) == actions  # tried again

"""Operating the pipeline through the Dagster UI, as a team member would.

dagster-webserver and dagster-daemon run as real processes on loopback, over a persistent instance
configured by the repository's deploy/local/dagster.yaml (queued run coordinator) and the repository's
pyproject.toml's [tool.dg]. The trial partitions are backfilled with the GraphQL mutation the UI's "Materialize"
dialog sends, the daemon submits and runs the backfill, the sweep sensor (started from the UI) ranks
the trials, and a headless Chromium renders the asset graph page.

The inputs and embeddings are materialised beforehand, in this process, by the project's
refresh_inputs_job and embeddings_job on the same instance (the webserver then shows them): the
daemon's backfill loop ticks every 30 s, and a backfill launched before the daemon starts is picked
up on its first tick.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import free_loopback_port, require_service, service_process
from topic_pipeline.cli import _execute
from topic_pipeline.definitions import build_resources
from topic_pipeline.defs.assets.leaderboard import partition_link
from topic_pipeline.defs.planning import plan_next_runs
from topic_pipeline.storage.paths import DataPaths

pytestmark = pytest.mark.slow

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
LOCATION = "topic_pipeline"
REPOSITORY = "__repository__"
PROJECT_ASSETS = ["documents", "ground_truth", "param_grid", "embeddings", "grid_trials", "leaderboard", "topic_model"]
# The sweep group's page: its assets plus their upstream and downstream neighbours, as a graph.
ASSET_GRAPH_PATH = f"/locations/{LOCATION}/asset-groups/sweep"
GRAPH_WINDOW = "2200,1400"

# Three trials over one embedding set.
GRID = {"umap_n_neighbors": [10], "hdbscan_min_cluster_size": [5, 8, 20]}

# The mutation of the UI's launch dialog for asset partitions (dagster-webserver's bundled JS sends
# {tags, assetSelection, partitionNames, fromFailure, runConfigData}).
LAUNCH_BACKFILL = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PartitionKeysNotFoundError { message }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}"""
BACKFILL_STATUS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) { __typename ... on PartitionBackfill { status } ... on PythonError { message } }
}"""
ALL_RUNS = """
{ runsOrError { ... on Runs { results { runId jobName repositoryOrigin { repositoryLocationName repositoryName } tags { key value } } } } }"""
RUNS_WITH_TAG = """
query Runs($key: String!, $value: String!) {
  runsOrError(filter: {tags: [{key: $key, value: $value}]}) {
    ... on Runs { results { runId jobName status tags { key value } } }
  }
}"""
SENSOR = """
query Sensor($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) { __typename ... on Sensor { sensorState { id status } } }
}"""
STOP_SENSOR = """
mutation StopRunningSensor($id: String!) {
  stopSensor(id: $id) { __typename ... on StopSensorMutationResult { instigationState { status } } ... on PythonError { message } }
}"""
START_SENSOR = """
mutation StartSensor($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) { __typename ... on Sensor { sensorState { status } } ... on PythonError { message } }
}"""
TRIAL_PARTITIONS = """
{ assetNodeOrError(assetKey: {path: ["grid_trials"]}) { ... on AssetNode { partitionKeysByDimension { partitionKeys } } } }"""
LOCATION_STATUS = """
{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus locationOrLoadError { __typename } } } } }"""


@pytest.fixture
def tiny_grid():
    return GRID


@pytest.fixture
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        require_service("Debian's chromium is not installed (make test installs it)")
    return path


class Webserver:
    """The webserver's GraphQL API, as the UI calls it; a failed wait shows the webserver's and the daemon's logs."""

    def __init__(self, port: int, logs: list[Path]):
        self.url = f"http://127.0.0.1:{port}"
        self.logs = logs

    def graphql(self, query: str, **variables) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        assert "errors" not in answer, answer["errors"]
        return answer["data"]

    def log_tails(self) -> str:
        return "\n".join(
            f"--- {path.name}:\n{path.read_text(errors='replace')[-4000:]}" for path in self.logs if path.exists()
        )

    def wait_for(self, what: str, check, timeout_s: float, interval_s: float = 1.0):
        """Poll ``check`` until it returns something truthy; fail with the services' logs otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(interval_s)
        pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}\n{self.log_tails()}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _write_instance_config(dagster_home: Path) -> None:
    """The local instance's deploy/local/dagster.yaml, with the newsletter prompt off so that it does not cover the screenshot."""
    config = yaml.safe_load((REPOSITORY_ROOT / "deploy" / "local" / "dagster.yaml").read_text())
    config["nux"] = {"enabled": False}
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))


def _render(
    chromium: str, url: str, profile: Path, *outputs: str, window: str = "1600,1000"
) -> subprocess.CompletedProcess:
    # The virtual time budget lets the React app fetch its data and lay out the graph before the capture.
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={window}",
            "--virtual-time-budget=15000",
            *outputs,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )


def test_backfill_launched_through_the_ui_api_materialises_trials_and_leaderboard(
    tiny_project, chromium, monkeypatch, request
):
    dagster_home = tiny_project / "dagster_home"
    _write_instance_config(dagster_home)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    port = free_loopback_port()
    webserver = Webserver(port, [tiny_project / "webserver.log", tiny_project / "daemon.log"])
    sensor_selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": "sweep_sensor"}
    started = time.monotonic()

    with contextlib.ExitStack() as services, dg.DagsterInstance.get() as instance:
        webserver_process = services.enter_context(
            service_process(
                [str(VENV_BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)],
                webserver.logs[0],
                env,
                cwd=REPOSITORY_ROOT,  # where pyproject.toml declares the code location ([tool.dg])
            )
        )
        # While the webserver starts: the inputs and the embeddings, on the same persistent instance, executed as
        # `topic-pipeline sweep` executes its runs (in this process), so the UI shows runs of both origins.
        _execute(instance, "refresh_inputs_job", {})
        # The grid's partitions, added as the sweep sensor's first tick would (the sensor is stopped below).
        plan_next_runs(instance, build_resources()["settings"])
        [embedding_set] = instance.get_dynamic_partitions("embedding_sets")
        _execute(instance, "embeddings_job", {"dagster/partition": embedding_set})
        trial_keys = instance.get_dynamic_partitions("trials")
        assert len(trial_keys) == 3

        def webserver_up() -> bool:
            assert webserver_process.poll() is None, (
                f"the webserver exited with {webserver_process.returncode}\n{webserver.log_tails()}"
            )
            return _answers(f"{webserver.url}/server_info")

        webserver.wait_for("the webserver", webserver_up, 90)
        webserver.wait_for(
            "the code location to load",
            lambda: [
                entry
                for entry in webserver.graphql(LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
                if entry["name"] == LOCATION and entry["loadStatus"] == "LOADED"
            ],
            90,
        )
        location = [
            e
            for e in webserver.graphql(LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
            if e["name"] == LOCATION
        ]
        assert location[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation", location

        # The UI lists the trial partitions the planner registered.
        partitions = webserver.graphql(TRIAL_PARTITIONS)["assetNodeOrError"]["partitionKeysByDimension"][0][
            "partitionKeys"
        ]
        assert partitions == trial_keys

        # Stop the sweep sensor (on by default) before the daemon starts, so that the trials can only come from the backfill.
        sensor = webserver.graphql(SENSOR, selector=sensor_selector)["sensorOrError"]
        assert sensor["sensorState"]["status"] == "RUNNING"
        stopped = webserver.graphql(STOP_SENSOR, id=sensor["sensorState"]["id"])["stopSensor"]
        assert stopped["instigationState"]["status"] == "STOPPED", stopped

        launched = webserver.graphql(
            LAUNCH_BACKFILL,
            backfillParams={
                "tags": [],
                "assetSelection": [{"path": ["grid_trials"]}],
                "partitionNames": trial_keys,
                "fromFailure": False,
            },
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]

        services.enter_context(
            service_process([str(VENV_BIN / "dagster-daemon"), "run"], webserver.logs[1], env, cwd=REPOSITORY_ROOT)
        )

        def backfill_runs_done() -> list[dict]:
            runs = webserver.graphql(RUNS_WITH_TAG, key="dagster/backfill", value=backfill_id)["runsOrError"]["results"]
            failed = [run for run in runs if run["status"] in {"FAILURE", "CANCELED"}]
            assert not failed, f"backfill runs failed: {failed}\n{webserver.log_tails()}"
            return runs if runs and all(run["status"] == "SUCCESS" for run in runs) else []

        runs = webserver.wait_for("the backfill's runs", backfill_runs_done, 150)
        # With every trial scored, the sensor (started as from the UI's toggle) launches the leaderboard.
        started_sensor = webserver.graphql(START_SENSOR, selector=sensor_selector)["startSensor"]
        assert started_sensor["sensorState"]["status"] == "RUNNING", started_sensor

        def backfill_status() -> str | None:
            status = webserver.graphql(BACKFILL_STATUS, id=backfill_id)["partitionBackfillOrError"]["status"]
            return None if status in {"REQUESTED", "CANCELING", "FAILING"} else status

        assert webserver.wait_for("the backfill to complete", backfill_status, 90) == "COMPLETED_SUCCESS"
        webserver.wait_for(
            "the leaderboard", lambda: instance.get_latest_materialization_event(dg.AssetKey("leaderboard")), 90
        )
        print(f"\nUI operation: trials and leaderboard materialised {time.monotonic() - started:.1f}s after the start")

        # One run of the asset job for the three partitions (the backfill policy batches them), and the trials
        # came from it alone: the sensor launched no trials_job run.
        assert len(runs) == 1 and runs[0]["jobName"] == "__ASSET_JOB", runs
        assert instance.get_runs(dg.RunsFilter(job_name="trials_job")) == []
        for key in trial_keys:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("grid_trials"), asset_partitions=[key]), limit=1
            ).records
            assert records, f"no materialisation of trial {key}"
            assert records[0].run_id == runs[0]["runId"]
            assert records[0].asset_materialization.metadata["status"].value == "ok"

        leaderboard_event = instance.get_latest_materialization_event(dg.AssetKey("leaderboard"))
        leaderboard_run = instance.get_run_by_id(leaderboard_event.run_id)
        assert leaderboard_run.job_name == "leaderboard_job"
        assert leaderboard_run.tags.get("dagster/sensor_name") == "sweep_sensor"
        assert leaderboard_event.asset_materialization.metadata["scored"].value == 3
        frame = pd.read_csv(DataPaths(tiny_project / "data").leaderboard / "leaderboard.csv")
        assert sorted(frame["trial"]) == sorted(trial_keys) and set(frame["status"]) == {"ok"}

        # The asset graph page, as a browser renders it: every asset of the project, the three trial partitions
        # filled, and the trials' and the leaderboard's latest events linking to the runs above.
        page = f"{webserver.url}{ASSET_GRAPH_PATH}"
        # Kept where a person can look at it after the run (pytest's own temporary folders are rotated),
        # taken before the checks so that a failing check has its picture.
        shots = request.config.cache.mkdir("ui_operation")
        screenshot = shots / "asset_graph.png"
        # The sweep group's graph (with its neighbours) is wider than a laptop screen: every node in view.
        _render(chromium, page, tiny_project / "chromium", f"--screenshot={screenshot}", window=GRAPH_WINDOW)
        print(f"UI screenshot of {ASSET_GRAPH_PATH}: {screenshot}")
        dom = _render(chromium, page, tiny_project / "chromium", "--dump-dom", window=GRAPH_WINDOW).stdout
        for asset in PROJECT_ASSETS:
            assert f">{asset}<" in dom, f"{asset} is not on {page}"
        assert "3 partitions" in dom and "100% filled" in dom
        for run_id, asset in ((runs[0]["runId"], "grid_trials"), (leaderboard_event.run_id, "leaderboard")):
            assert re.search(rf'href="/runs/{run_id}\?[^"]*selection={asset}&', dom), (
                f"{asset}'s latest event does not link its run on {page}"
            )

        # The trials' partitions as the UI lists them: a long key is shortened in its middle, and what tells the
        # trials apart (the UMAP values first, the HDBSCAN values last) is what stays in view.
        page = f"{webserver.url}/assets/grid_trials?view=partitions"
        dom = _render(chromium, page, tiny_project / "chromium", "--dump-dom").stdout
        shortened = [text.split("…") for text in re.findall(r">([^<>]*…[^<>]*)<", dom)]
        shown = {}
        for key in trial_keys:
            umap, _, hdbscan = key.split("__")
            shown[key] = [
                f"{head}…{tail}"
                for head, tail in shortened
                if key.startswith(head) and key.endswith(tail) and head.startswith(umap) and tail.endswith(hdbscan)
            ]
            assert shown[key], f"{key} is not shown with its UMAP and HDBSCAN values in view on {page}: {shortened}"
        assert len({texts[0] for texts in shown.values()}) == len(trial_keys), f"trials look alike on {page}: {shown}"
        _render(chromium, page, tiny_project / "chromium", f"--screenshot={shots / 'partitions.png'}")

        # The leaderboard's own page: the verdict first, then its ranking as tables (a row per configuration, then
        # per trial, with the value each is ranked by), and the page of its asset checks with both evaluated.
        page = f"{webserver.url}/assets/leaderboard"
        _render(chromium, page, tiny_project / "chromium", f"--screenshot={shots / 'leaderboard.png'}")
        dom = _render(chromium, page, tiny_project / "chromium", "--dump-dom").stdout
        assert "<table" in dom and all(key in dom for key in trial_keys), f"the leaderboard's table is not on {page}"
        for column in ("rank", "trial", "ranking_value", "ari", "outlier_fraction"):
            assert f">{column}<" in dom, f"no '{column}' column on {page}"
        verdict = leaderboard_event.asset_materialization.metadata["recommended"].value
        assert verdict.split(":")[0] in dom and dom.index(">recommended<") < dom.index(">configurations<"), (
            f"the verdict does not come before the tables on {page}"
        )
        shown = re.findall(r">(-?\d+\.\d+)<", dom)  # the figures the page shows as text
        assert shown and not [figure for figure in shown if len(figure.split(".")[1]) > 4], f"unrounded on {page}"

        # The summary links each configuration to its partition: the link opens that trial's partition, its
        # scores listed first.
        best = frame.sort_values("rank").iloc[0]["trial"]
        page = f"{webserver.url}{partition_link(best)}"
        _render(chromium, page, tiny_project / "chromium", f"--screenshot={shots / 'partition.png'}")
        dom = _render(chromium, page, tiny_project / "chromium", "--dump-dom").stdout
        assert (
            best in dom and ">ari<" in dom and dom.index(">status<") < dom.index(">ari<") < dom.index(">duration_s<")
        ), f"the partition of {best} does not show its scores first on {page}"

        # One history, whichever way a run started: the command line's runs are runs of the code location (the
        # Overview timeline lists them beside the daemon's), and no run carries our bookkeeping as tag chips.
        every_run = webserver.graphql(ALL_RUNS)["runsOrError"]["results"]
        assert {run["jobName"] for run in every_run} >= {"refresh_inputs_job", "embeddings_job", "leaderboard_job"}
        for run in every_run:
            assert run["repositoryOrigin"] == {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}, run
            assert not [tag for tag in run["tags"] if tag["key"].startswith("topic_pipeline/")], run
        page = f"{webserver.url}/overview/timeline"
        _render(chromium, page, tiny_project / "chromium", f"--screenshot={shots / 'timeline.png'}")
        dom = _render(chromium, page, tiny_project / "chromium", "--dump-dom").stdout
        for job in ("refresh_inputs_job", "embeddings_job", "leaderboard_job"):
            assert job in dom, f"{job} is not on the Overview timeline {page}"
        _render(chromium, f"{webserver.url}/runs", tiny_project / "chromium", f"--screenshot={shots / 'runs.png'}")
        page = f"{webserver.url}/assets/leaderboard?view=checks"
        dom = _render(chromium, page, tiny_project / "chromium", "--dump-dom").stdout
        for check in ("trials_succeeded", "leader_is_sound"):
            assert f">{check}<" in dom, f"check {check} is not on {page}"
        _render(chromium, page, tiny_project / "chromium", f"--screenshot={shots / 'leaderboard_checks.png'}")
        print(f"UI screenshots of the leaderboard and its checks: {shots}")

        # The sweep's HTML report, opened from its file as a person would open it (nothing loads from the network).
        report = DataPaths(tiny_project / "data").leaderboard / "report" / "report.html"
        dom = _render(chromium, report.as_uri(), tiny_project / "chromium", "--dump-dom").stdout
        for title in (
            "Best score so far",
            "Ranking metric by parameter",
            "Top configurations",
            "Topics of the chosen trial",
        ):
            assert title in dom, f"'{title}' is not in the report"
        assert dom.count('class="main-svg"') >= 4, (
            "plotly drew no plots in the report (its SVGs are made by its script)"
        )
        _render(chromium, report.as_uri(), tiny_project / "chromium", f"--screenshot={shots / 'report.png'}")

    sizes = {
        "asset_graph.png": GRAPH_WINDOW,
        "partitions.png": "1600,1000",
        "leaderboard.png": "1600,1000",
        "leaderboard_checks.png": "1600,1000",
        "timeline.png": "1600,1000",
        "runs.png": "1600,1000",
        "partition.png": "1600,1000",
        "report.png": "1600,1000",
    }
    for name, window in sizes.items():
        with Image.open(shots / name) as image:
            assert image.size == tuple(int(side) for side in window.split(","))
            colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 50, f"the screenshot {name} is (nearly) one colour"

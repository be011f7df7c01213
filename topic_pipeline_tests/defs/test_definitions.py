"""The code location loads, and the Dagster layer is wired as documented."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from topic_pipeline.definitions import defs
from topic_pipeline.defs.automation import BIWEEKLY_CRON, biweekly_refresh, is_schedule_week
from topic_pipeline.defs.planning import contiguous_blocks
from topic_pipeline.defs.resources.database import WINDOW_END_TAG

ROOT = Path(__file__).resolve().parents[2]


def test_dagster_definitions_validate_through_the_project_declaration(tmp_path):
    # Its own instance folder: the test must not depend on (or touch) the user's .dagster_home.
    environment = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run(
        # No workspace file: the code location is declared once, in pyproject.toml's [tool.dg].
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed validation" in result.stdout + result.stderr


def test_asset_graph_and_automation():
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {
        "documents",
        "ground_truth",
        "param_grid",
        "embeddings",
        "grid_trials",
        "leaderboard",
        "sweep_report",
        "search_refinement",
        "topic_model",
        "hub_model",
    }
    # The report is downstream of the leaderboard, and in the leaderboard's job: every ranking has its report.
    assert "leaderboard" in {p.to_user_string() for p in graph.get(dg.AssetKey("sweep_report")).parent_keys}
    assert definitions.resolve_job_def("leaderboard_job").asset_layer.selected_asset_keys == {
        dg.AssetKey("leaderboard"),
        dg.AssetKey("sweep_report"),
    }
    # The search's refinement is downstream of the leaderboard: lineage shows why a round's trials exist.
    assert {p.to_user_string() for p in graph.get(dg.AssetKey("search_refinement")).parent_keys} >= {"leaderboard"}
    # Nothing pushes to the Hub unasked: no schedule or sensor targets a job that selects hub_model.
    automated = {definitions.resolve_schedule_def("biweekly_refresh").job_name}
    automated |= {job.name for job in definitions.resolve_sensor_def("sweep_sensor").jobs}
    for name in automated:
        assert dg.AssetKey("hub_model") not in definitions.resolve_job_def(name).asset_layer.selected_asset_keys, name
    embeddings = graph.get(dg.AssetKey("embeddings"))
    assert embeddings.pools == {"gpu"}
    trials = graph.get(dg.AssetKey("grid_trials"))
    assert trials.backfill_policy is not None
    assert {parent.to_user_string() for parent in trials.parent_keys} == {"documents", "ground_truth", "embeddings"}
    assert definitions.resolve_sensor_def("sweep_sensor")
    assert definitions.resolve_schedule_def("biweekly_refresh").cron_schedule == BIWEEKLY_CRON
    for name in ("embeddings_job", "trials_job"):
        assert definitions.resolve_job_def(name).executor_def.name == "multiprocess"
    for name in ("refresh_inputs_job", "search_job"):
        assert definitions.resolve_job_def(name).executor_def.name == "in_process"
    # The leaderboard runs in-process unless a run's config asks for a forked step (the command line's).
    leaderboard = definitions.resolve_job_def("leaderboard_job")
    assert leaderboard.executor_def.name == "multi_or_in_process_executor"
    assert leaderboard.run_config_schema.config_type.fields["execution"].default_value == {"config": {"in_process": {}}}


def test_the_command_lines_forked_step_config_is_valid_for_each_job(monkeypatch):
    """``topic-pipeline sweep`` forks the steps of these jobs from its preloaded server: the run config it
    passes must be one each job accepts (only a real sweep would otherwise find out)."""
    from topic_pipeline import cli
    from topic_pipeline.definitions import defs

    definitions = defs()
    monkeypatch.setattr(cli, "_forked_steps", True)
    for name in ("embeddings_job", "trials_job", "leaderboard_job"):
        config = cli._start_method(name)
        assert config["execution"], name
        assert dg.validate_run_config(definitions.resolve_job_def(name), config), name
    assert cli._start_method("refresh_inputs_job") == {}


def test_biweekly_means_every_other_monday():
    mondays = [dt.datetime(2026, 1, 5, 6, tzinfo=dt.UTC) + dt.timedelta(weeks=w) for w in range(8)]
    runs = [monday for monday in mondays if is_schedule_week(monday)]
    assert len(runs) == 4
    assert all((later - earlier).days == 14 for earlier, later in zip(runs, runs[1:]))
    with dg.build_schedule_context(scheduled_execution_time=runs[0]) as context:
        request = biweekly_refresh(context)
    assert isinstance(request, dg.RunRequest)
    # A relative export window (TOPIC_PIPELINE_WINDOW_DAYS) ends at the tick's time, not when the run starts.
    assert dt.datetime.fromisoformat(request.tags[WINDOW_END_TAG]) == runs[0]
    off_week = runs[0] + dt.timedelta(weeks=1)
    with dg.build_schedule_context(scheduled_execution_time=off_week) as context:
        assert isinstance(biweekly_refresh(context), dg.SkipReason)


def test_biweekly_schedule_ships_off_and_says_so_in_the_ui():
    schedule = defs().resolve_schedule_def("biweekly_refresh")
    # Off until a user starts it; the UI shows the description beside the schedule.
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    description = schedule.description or ""
    for phrase in ("Every other Monday at 06:00 UTC", "Off by default", BIWEEKLY_CRON, "odd ISO weeks", "53"):
        assert phrase in description, phrase
    # The three-week gap the description warns of: ISO 2026 has 53 weeks.
    before, after = dt.datetime(2026, 12, 21, 6, tzinfo=dt.UTC), dt.datetime(2027, 1, 11, 6, tzinfo=dt.UTC)
    between = [before + dt.timedelta(weeks=w) for w in (1, 2)]
    assert is_schedule_week(before) and is_schedule_week(after) and not any(map(is_schedule_week, between))


def test_contiguous_blocks_skip_unwanted_keys():
    # How long a run may be is planning._trials_runs' rule, tested with the sweep's split (test_sweep_planning.py).
    order = ["a", "b", "c", "d", "e", "f", "g"]
    assert contiguous_blocks(order, {"a", "b", "d", "e", "f", "g"}) == [["a", "b"], ["d", "e", "f", "g"]]
    assert contiguous_blocks(order, set()) == []


def test_the_code_location_the_command_line_names_its_runs_after_is_the_declared_one():
    import tomllib

    from topic_pipeline.definitions import CODE_LOCATION, CODE_LOCATION_MODULE

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dg"]["project"]
    assert (
        project["code_location_name"],
        project["code_location_target_module"],
    ) == (CODE_LOCATION, CODE_LOCATION_MODULE)

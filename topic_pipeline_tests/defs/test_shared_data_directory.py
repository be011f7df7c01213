"""The Dagster side of runs on a cluster's workers: a step refuses a data directory the instance did not claim
before it writes, and a retried run knows its earlier attempts (fast: no trials run)."""

from __future__ import annotations

from types import SimpleNamespace

import dagster as dg
import pytest

from topic_pipeline.defs.assets.trials import ROOT_RUN_ID_TAG, earlier_attempts
from topic_pipeline.defs.resources.io_manager import ParquetJsonIOManager
from topic_pipeline.defs.resources.settings import CLUSTER_WORKER_ENV, PipelineSettings
from topic_pipeline.domain.versions import environment_versions
from topic_pipeline.storage.data_directory import claim
from topic_pipeline.storage.paths import DataPaths


@dg.asset
def small_value(settings: PipelineSettings) -> dict:
    return {"data_dir": str(settings.paths.root)}


def _materialise(data_dir) -> dg.ExecuteInProcessResult:
    resources = {
        "settings": PipelineSettings(data_dir=str(data_dir)),
        "io_manager": ParquetJsonIOManager(data_dir=str(data_dir)),
    }
    return dg.materialize([small_value], resources=resources, raise_on_error=False)


def test_a_worker_step_refuses_a_data_directory_without_the_marker_before_it_writes(tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv(CLUSTER_WORKER_ENV, "celery-w1")

    result = _materialise(data_dir)

    assert not result.success
    # The step's resources are initialised before its body runs and its IO manager writes: that is what fails.
    [failure] = [event for event in result.all_events if event.event_type_value == "RESOURCE_INIT_FAILURE"]
    assert failure.step_key == "small_value" and not any(event.is_step_success for event in result.all_events)
    message = failure.event_specific_data.error.to_string()
    assert (
        f"worker celery-w1, run {result.run_id}: the data directory {data_dir} has no data_directory.json: " in message
    )
    assert "this worker does not see the sweep's shared data directory" in message
    assert list(data_dir.iterdir()) == []  # the IO manager wrote nothing

    claim(DataPaths(data_dir), environment_versions())
    assert _materialise(data_dir).success
    # Off a cluster worker (the command line, the UI's local runs) nothing is checked.
    monkeypatch.delenv(CLUSTER_WORKER_ENV)
    assert _materialise(tmp_path / "unclaimed").success


def test_a_retry_knows_its_earlier_attempts_and_a_first_attempt_has_none():
    job = dg.Definitions(jobs=[dg.define_asset_job("a_job")]).resolve_job_def("a_job")
    with dg.instance_for_test() as instance:
        root = instance.create_run_for_job(job)
        unrelated = instance.create_run_for_job(job)

        def retry_of(parent: dg.DagsterRun) -> dg.DagsterRun:
            tags = {ROOT_RUN_ID_TAG: root.run_id, "dagster/parent_run_id": parent.run_id}
            return instance.create_run_for_job(job, tags=tags, root_run_id=root.run_id, parent_run_id=parent.run_id)

        first_retry = retry_of(root)
        second_retry = retry_of(first_retry)

        def context(run: dg.DagsterRun) -> SimpleNamespace:
            return SimpleNamespace(run=run, instance=instance)

        assert earlier_attempts(context(root)) == set() and earlier_attempts(context(unrelated)) == set()
        assert earlier_attempts(context(first_retry)) == {root.run_id, second_retry.run_id}
        assert earlier_attempts(context(second_retry)) == {root.run_id, first_retry.run_id}


@pytest.fixture(autouse=True)
def _no_worker_name_from_outside(monkeypatch):
    monkeypatch.delenv(CLUSTER_WORKER_ENV, raising=False)

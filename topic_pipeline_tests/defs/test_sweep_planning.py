"""The planner's partitions: requested by the sensor in its SensorResult, added by the command line's path
through the instance, never by an asset (fast; no models)."""

from __future__ import annotations

import json
import sqlite3

import dagster as dg
import pytest

from topic_pipeline._compat import dagster as dagster_compat
from topic_pipeline.defs.assets.inputs import documents, ground_truth, param_grid
from topic_pipeline.defs.automation import sweep_sensor
from topic_pipeline.defs.planning import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG, plan_next_runs, plan_sweep
from topic_pipeline.defs.resources.database import DocumentsDatabase
from topic_pipeline.defs.resources.io_manager import ParquetJsonIOManager
from topic_pipeline.defs.resources.mlflow import MlflowTracking
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.inputs.embeddings import EmbeddingCache
from topic_pipeline.inputs.grid import EmbeddingSet
from topic_pipeline.storage.files import read_json


@pytest.fixture
def registered_inputs(tmp_path):
    """An instance where documents, ground_truth and param_grid (three trials, one embedding set) are
    materialised, and the settings they were materialised with."""
    database = tmp_path / "source.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE documents (id INTEGER, text TEXT)")
        connection.executemany("INSERT INTO documents VALUES (?, ?)", [(i, f"text {i}") for i in range(1, 31)])
    connection.close()
    (tmp_path / "labels.json").write_text(json.dumps({"a": [1, 2], "b": [3, 4]}))
    (tmp_path / "grid.json").write_text(json.dumps({"hdbscan_min_cluster_size": [2, 3, 4]}))
    data = str(tmp_path / "data")
    settings = PipelineSettings(data_dir=data, ground_truth_path=str(tmp_path / "labels.json"), grid_path=str(tmp_path / "grid.json"))
    with dg.instance_for_test() as instance:
        assert dg.materialize(
            [documents, ground_truth, param_grid], instance=instance,
            resources={"database": DocumentsDatabase(url=f"sqlite:///{database}"), "settings": settings,
                       "io_manager": ParquetJsonIOManager(data_dir=data)},
        ).success
        yield instance, settings


def test_param_grid_registers_no_partition_and_the_sensor_requests_them(registered_inputs):
    instance, settings = registered_inputs
    manifest = read_json(settings.paths.current_grid)
    assert instance.get_dynamic_partitions("trials") == [] and instance.get_dynamic_partitions("embedding_sets") == []

    with dg.build_sensor_context(instance=instance, resources={"settings": settings, "mlflow": MlflowTracking()}) as context:
        result = sweep_sensor(context)
    assert isinstance(result, dg.SensorResult)
    assert result.dynamic_partitions_requests == [
        dg.AddDynamicPartitionsRequest("embedding_sets", list(manifest["embedding_sets"])),
        dg.AddDynamicPartitionsRequest("trials", list(manifest["trials"])),
    ]
    # The same tick embeds the new set: Dagster adds a result's partitions before it launches its runs.
    [embedding_set] = manifest["embedding_sets"]
    assert [(r.job_name, r.partition_key) for r in result.run_requests] == [("embeddings_job", embedding_set)]
    # Evaluating the sensor changes nothing: the daemon applies the requests.
    assert instance.get_dynamic_partitions("trials") == []


def test_the_command_line_path_adds_the_partitions_before_the_runs_that_target_them(registered_inputs):
    instance, settings = registered_inputs
    manifest = read_json(settings.paths.current_grid)
    keys = list(manifest["trials"])
    # The embedding set is cached: its trials are due, as one run over the range of new partitions.
    [values] = manifest["embedding_sets"].values()
    corpus_hash = instance.get_latest_materialization_event(dg.AssetKey("documents")).asset_materialization.metadata["content_hash"].value
    cache = EmbeddingCache(settings.paths.embeddings)
    path = cache.path(cache.key(EmbeddingSet(**values), corpus_hash, settings.stopwords_language))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()

    planned = plan_sweep(instance, settings)
    [trials_run] = planned.runs
    assert trials_run.tags == {PARTITION_RANGE_START_TAG: keys[0], PARTITION_RANGE_END_TAG: keys[-1]}
    assert instance.get_dynamic_partitions("trials") == []

    assert plan_next_runs(instance, settings) == planned.runs
    assert instance.get_dynamic_partitions("trials") == keys  # in the manifest's order, as the range assumed
    assert instance.get_dynamic_partitions("embedding_sets") == list(manifest["embedding_sets"])
    assert plan_sweep(instance, settings).partitions == []


def test_partition_range_tags_are_checked_against_dagsters_own(monkeypatch):
    from dagster._core.storage import tags

    assert dagster_compat.run_partition_tags() == (
        "dagster/partition", "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
    )
    monkeypatch.setattr(tags, "ASSET_PARTITION_RANGE_START_TAG", "dagster/range_from")
    with pytest.raises(dagster_compat.UnsupportedDagsterVersion, match="was written for dagster 1.13.27"):
        dagster_compat.run_partition_tags()


def test_results_stored_under_the_first_form_of_keys_carry_over_without_a_rerun(registered_inputs):
    """A data directory of the key's first form (TrialParams.legacy_key): its results are carried over to the
    current keys, the new partitions are recorded as materialised with where their result came from, and
    nothing reruns."""
    import numpy as np

    from topic_pipeline.inputs.grid import TrialParams
    from topic_pipeline.storage.files import write_json
    from topic_pipeline.storage.results import STATUS_OK, ResultStore, TrialResult

    instance, settings = registered_inputs
    paths = settings.paths
    manifest = read_json(paths.current_grid)
    latest = {asset: instance.get_latest_materialization_event(dg.AssetKey(asset)).asset_materialization.metadata["content_hash"].value
              for asset in ("documents", "ground_truth")}
    fingerprint = settings.inputs_fingerprint(latest["documents"], latest["ground_truth"])
    [values] = manifest["embedding_sets"].values()
    cache = EmbeddingCache(paths.embeddings)
    cache_path = cache.path(cache.key(EmbeddingSet(**values), latest["documents"], settings.stopwords_language))
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    cache_path.touch()
    # What the first form left behind: each trial's parameters and result under its legacy key.
    store = ResultStore(paths.results)
    trials = [TrialParams.from_dict(params) for params in manifest["trials"].values()]
    for number, trial in enumerate(trials):
        write_json(paths.trial_params_path(trial.legacy_key), trial.to_dict())
        store.save(TrialResult(trial.legacy_key, trial.to_dict(), fingerprint, STATUS_OK, {"ari": 0.5 + number / 10},
                               tags={"mlflow_run_id": f"run-{number}"}), labels=np.full(30, number, dtype=np.int32))

    resources = {"settings": settings, "io_manager": ParquetJsonIOManager(data_dir=str(paths.root))}
    # param_grid reads the stored inputs: materialise it alone, as refresh_inputs_job's last step would.
    result = dg.materialize(
        [documents, ground_truth, param_grid], instance=instance, selection=[param_grid],
        resources={**resources, "database": DocumentsDatabase(url="sqlite:///unused.db")},
    )
    assert result.success
    assert result.asset_materializations_for_node("param_grid")[0].metadata["results_carried_over"].value == 3
    for number, trial in enumerate(trials):
        carried = store.load(trial.key)
        assert carried.key == trial.key and carried.metrics == {"ari": 0.5 + number / 10}
        assert carried.tags == {"mlflow_run_id": f"run-{number}", "carried_over_from": trial.legacy_key}
        assert store.labels(trial.key, 30).tolist() == [number] * 30
        assert store.path(trial.legacy_key).exists()  # the legacy files stay

    # The sensor's tick records the new partitions as materialised (Dagster reports its asset events, then
    # adds its partitions); nothing reruns, the leaderboard ranks the carried-over results.
    with dg.build_sensor_context(instance=instance, resources={"settings": settings, "mlflow": MlflowTracking()}) as context:
        tick = sweep_sensor(context)
    assert [run.job_name for run in tick.run_requests] == ["leaderboard_job"]
    assert [(event.partition, event.metadata["carried_over_from"].value) for event in tick.asset_events] == [
        (trial.key, trial.legacy_key) for trial in trials
    ]
    # The command line's path applies the same plan through the instance.
    assert [run.job_name for run in plan_next_runs(instance, settings)] == ["leaderboard_job"]
    assert instance.get_materialized_partitions(dg.AssetKey("grid_trials")) == {trial.key for trial in trials}
    # An export may still name a trial by its legacy key.
    assert paths.current_key(trials[0].legacy_key) == trials[0].key
    assert plan_sweep(instance, settings).asset_events == []

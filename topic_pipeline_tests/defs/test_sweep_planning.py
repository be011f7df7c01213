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

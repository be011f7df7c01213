"""The planner's partitions: requested by the sensor in its SensorResult, added by the command line's path
through the instance, never by an asset (fast; no models)."""

from __future__ import annotations

import json
import sqlite3

import dagster as dg
import numpy as np
import pytest

from topic_pipeline._compat import dagster as dagster_compat
from topic_pipeline.defs.assets.inputs import documents, ground_truth, param_grid
from topic_pipeline.defs.automation import sweep_sensor
from topic_pipeline.defs.planning import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG, plan_next_runs, plan_sweep
from topic_pipeline.defs.resources.database import DocumentsDatabase
from topic_pipeline.defs.resources.io_manager import ParquetJsonIOManager
from topic_pipeline.defs.resources.mlflow import MlflowTracking
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.domain.trials import EmbeddingSet
from topic_pipeline.inputs.embeddings import EmbeddingCache
from topic_pipeline.storage.files import read_json, save_array


def _register_inputs(tmp_path, grid: dict, sweep_runs: int = 1):
    database = tmp_path / "source.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE documents (id INTEGER, text TEXT)")
        connection.executemany("INSERT INTO documents VALUES (?, ?)", [(i, f"text {i}") for i in range(1, 31)])
    connection.close()
    (tmp_path / "labels.json").write_text(json.dumps({"a": [1, 2], "b": [3, 4]}))
    (tmp_path / "grid.json").write_text(json.dumps(grid))
    data = str(tmp_path / "data")
    settings = PipelineSettings(
        data_dir=data,
        ground_truth_path=str(tmp_path / "labels.json"),
        grid_path=str(tmp_path / "grid.json"),
        sweep_runs=sweep_runs,
    )
    resources = {
        "database": DocumentsDatabase(url=f"sqlite:///{database}"),
        "settings": settings,
        "io_manager": ParquetJsonIOManager(data_dir=data),
    }
    with dg.instance_for_test() as instance:
        assert dg.materialize([documents, ground_truth, param_grid], instance=instance, resources=resources).success
        yield instance, settings, resources


def _cache_embeddings(path) -> None:
    """An intact embeddings entry (the planner checks that the file is one, not only that it exists)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as stream:
        save_array(stream, np.zeros((30, 4), dtype=np.float32))


def _cache_the_grids_embeddings(instance, settings, manifest: dict) -> None:
    """The grid's one embedding set cached for the corpus the instance last materialised."""
    [values] = manifest["embedding_sets"].values()
    corpus_hash = (
        instance.get_latest_materialization_event(dg.AssetKey("documents"))
        .asset_materialization.metadata["content_hash"]
        .value
    )
    cache = EmbeddingCache(settings.paths.embeddings)
    _cache_embeddings(cache.path(cache.key(EmbeddingSet(**values), corpus_hash, settings.stopwords_language)))


@pytest.fixture
def registered_inputs(tmp_path):
    """An instance where documents, ground_truth and param_grid (three trials, one embedding set) are
    materialised, and the settings they were materialised with."""
    for instance, settings, _ in _register_inputs(tmp_path, {"hdbscan_min_cluster_size": [2, 3, 4]}):
        yield instance, settings


def test_param_grid_registers_no_partition_and_the_sensor_requests_them(registered_inputs):
    instance, settings = registered_inputs
    manifest = read_json(settings.paths.current_grid)
    assert instance.get_dynamic_partitions("trials") == [] and instance.get_dynamic_partitions("embedding_sets") == []

    with dg.build_sensor_context(
        instance=instance, resources={"settings": settings, "mlflow": MlflowTracking()}
    ) as context:
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
    _cache_the_grids_embeddings(instance, settings, manifest)

    planned = plan_sweep(instance, settings)
    [trials_run] = planned.runs
    assert trials_run.tags == {PARTITION_RANGE_START_TAG: keys[0], PARTITION_RANGE_END_TAG: keys[-1]}
    assert instance.get_dynamic_partitions("trials") == []

    assert plan_next_runs(instance, settings) == planned.runs
    assert instance.get_dynamic_partitions("trials") == keys  # in the manifest's order, as the range assumed
    assert instance.get_dynamic_partitions("embedding_sets") == list(manifest["embedding_sets"])
    assert plan_sweep(instance, settings).partitions == []


def test_a_partition_added_by_hand_is_named_and_never_run(registered_inputs):
    """The UI's partition picker offers "+ Add partition" first: one stray Enter registers a bogus trial key.
    The planner never runs a partition no grid planned; the sensor names it in its log and skip reason."""
    instance, settings = registered_inputs
    manifest = read_json(settings.paths.current_grid)
    keys = list(manifest["trials"])
    # The grid's first two trials, then the stray key, then the third: a range over all would run the stray one.
    instance.add_dynamic_partitions("trials", [*keys[:2], "x", keys[2]])
    _cache_the_grids_embeddings(instance, settings, manifest)
    plan = plan_sweep(instance, settings)
    assert plan.unplanned == ["x"]
    ranges = [(run.tags[PARTITION_RANGE_START_TAG], run.tags[PARTITION_RANGE_END_TAG]) for run in plan.runs]
    assert ranges == [(keys[0], keys[1]), (keys[2], keys[2])]
    assert "'x'" in plan.unplanned_note() and "never run" in plan.unplanned_note()

    instance.add_dynamic_partitions("embedding_sets", list(manifest["embedding_sets"]))
    with dg.build_sensor_context(
        instance=instance, resources={"settings": settings, "mlflow": MlflowTracking()}
    ) as context:
        result = sweep_sensor(context)
    launched = [(run.tags[PARTITION_RANGE_START_TAG], run.tags[PARTITION_RANGE_END_TAG]) for run in result.run_requests]
    assert launched == ranges


def test_partition_range_tags_are_checked_against_dagsters_own(monkeypatch):
    from dagster._core.storage import tags

    assert dagster_compat.run_partition_tags() == (
        "dagster/partition",
        "dagster/asset_partition_range_start",
        "dagster/asset_partition_range_end",
    )
    monkeypatch.setattr(tags, "ASSET_PARTITION_RANGE_START_TAG", "dagster/range_from")
    with pytest.raises(dagster_compat.UnsupportedDagsterVersion, match="was written for dagster 1.13.27"):
        dagster_compat.run_partition_tags()


def _inputs_fingerprint(instance, settings) -> str:
    latest = {
        asset: instance.get_latest_materialization_event(dg.AssetKey(asset))
        .asset_materialization.metadata["content_hash"]
        .value
        for asset in ("documents", "ground_truth")
    }
    return settings.inputs_fingerprint(latest["documents"], latest["ground_truth"])


def _store_results(paths, trials, fingerprint) -> None:
    """Each trial's result, stored in the data directory before this Dagster instance knows its partition."""
    import numpy as np

    from topic_pipeline.domain.results import STATUS_OK, TrialResult
    from topic_pipeline.storage.results import ResultStore

    store = ResultStore(paths.results)
    for number, trial in enumerate(trials):
        store.save(
            TrialResult(
                trial.key,
                trial.to_dict(),
                fingerprint,
                STATUS_OK,
                {"ari": 0.5 + number / 1000},
                tags={"mlflow_run_id": f"run-{number}"},
            ),
            labels=np.full(30, number, dtype=np.int32),
        )


@pytest.mark.parametrize("applied_by", ["sensor", "command_line"])
def test_results_stored_before_their_partitions_exist_are_recorded_without_a_rerun(tmp_path, applied_by):
    """A data directory that already holds the trials' results: the new partitions are recorded as
    materialised, with their results' metadata, and nothing reruns."""
    from topic_pipeline.defs.planning import add_partitions
    from topic_pipeline.domain.trials import TrialParams

    for instance, settings, _ in _register_inputs(tmp_path, {"hdbscan_min_cluster_size": [2, 3, 4]}):
        paths = settings.paths
        manifest = read_json(paths.current_grid)
        [values] = manifest["embedding_sets"].values()
        corpus_hash = (
            instance.get_latest_materialization_event(dg.AssetKey("documents"))
            .asset_materialization.metadata["content_hash"]
            .value
        )
        cache = EmbeddingCache(paths.embeddings)
        cache_path = cache.path(cache.key(EmbeddingSet(**values), corpus_hash, settings.stopwords_language))
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        _cache_embeddings(cache_path)  # the trials would be runnable: only their results keep them from running
        trials = [TrialParams.from_dict(params) for params in manifest["trials"].values()]
        _store_results(paths, trials, _inputs_fingerprint(instance, settings))

        if applied_by == "sensor":
            with dg.build_sensor_context(
                instance=instance, resources={"settings": settings, "mlflow": MlflowTracking()}
            ) as context:
                tick = sweep_sensor(context)
            assert [run.job_name for run in tick.run_requests] == ["leaderboard_job"]
            events = tick.asset_events
            # As the daemon applies a tick: its asset events first, then its partitions.
            for event in events:
                instance.report_runless_asset_event(event)
            add_partitions(instance, tick.dynamic_partitions_requests)
        else:
            events = plan_sweep(instance, settings).asset_events
            assert [run.job_name for run in plan_next_runs(instance, settings)] == ["leaderboard_job"]
        assert [event.partition for event in events] == [trial.key for trial in trials]
        assert events[0].metadata["mlflow_run_id"].value == "run-0" and events[0].metadata["ari"].value == 0.5
        # Nothing reruns; the partitions show materialised, once.
        assert instance.get_materialized_partitions(dg.AssetKey("grid_trials")) == {trial.key for trial in trials}
        again = plan_sweep(instance, settings)
        assert again.asset_events == [] and [run.job_name for run in again.runs] == ["leaderboard_job"]


def test_a_leaderboard_without_its_report_gets_the_report_alone(tmp_path):
    """A run that ranked but stopped before writing its report: the planner asks for the report, once."""
    from topic_pipeline.defs.planning import _closing_run
    from topic_pipeline.domain.results import results_digest
    from topic_pipeline.storage.paths import DataPaths
    from topic_pipeline.workflow.trials import GridStatus

    manifest = {"grid_fingerprint": "g", "grid": {}, "trials": {}}
    status = GridStatus(manifest=manifest, fingerprint="f", ready_sets=set(), unready_sets=[], results={})
    digest = results_digest("g", "f", {})
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization("leaderboard", metadata={"results_digest": digest}))
        planned = _closing_run(instance, DataPaths(tmp_path), status)
        assert planned is not None and planned.job_name == "report_job"
        instance.report_runless_asset_event(dg.AssetMaterialization("sweep_report"))
        assert _closing_run(instance, DataPaths(tmp_path), status) is None


# Two neighbour graphs (n_neighbors), each with two reductions (min_dist) of three clusterings.
TWO_GRAPHS_GRID = {"umap_n_neighbors": [5, 10], "umap_min_dist": [0.0, 0.1], "hdbscan_min_cluster_size": [2, 3, 4]}


@pytest.mark.parametrize(("sweep_runs", "expected_runs", "graph_builds"), [(1, 1, 2), (2, 2, 2), (5, 4, 4)])
def test_a_sweep_is_split_into_runs_that_share_no_reduction_and_a_graph_only_for_balance(
    tmp_path, sweep_runs, expected_runs, graph_builds
):
    """``TOPIC_PIPELINE_SWEEP_RUNS`` runs at most, never two holding one reduction; one graph per run while that
    balances them (two runs), and split between reductions when more runs than graphs are asked for."""
    from topic_pipeline.defs.planning import run_partition_keys, shared_work

    for instance, settings, _ in _register_inputs(tmp_path, TWO_GRAPHS_GRID, sweep_runs=sweep_runs):
        manifest = read_json(settings.paths.current_grid)
        _cache_the_grids_embeddings(instance, settings, manifest)
        runs = plan_next_runs(instance, settings)
        ordered = instance.get_dynamic_partitions("trials")
        assert len(runs) == expected_runs
        assert len({run.run_key for run in runs}) == len(runs)
        run_keys = [run_partition_keys(dg.DagsterRun("trials_job", tags=run.tags), ordered) for run in runs]
        assert sorted(key for keys in run_keys for key in keys) == sorted(manifest["trials"])
        graphs = [{shared_work(manifest["trials"][key])[0] for key in keys} for keys in run_keys]
        assert sum(len(run_graphs) for run_graphs in graphs) == graph_builds
        layouts = [{shared_work(manifest["trials"][key])[1] for key in keys} for keys in run_keys]
        assert sum(len(run_layouts) for run_layouts in layouts) == 4  # each reduction in one run only
        assert {len(keys) for keys in run_keys} == {12 // expected_runs}  # balanced
        # The same plan again: the same runs, so the sensor's run keys dedupe its launches.
        assert plan_sweep(instance, settings).runs == runs


def _trial(**values):
    from topic_pipeline.domain.trials import DEFAULT_GRID, TrialParams

    return TrialParams(**{**{name: choices[0] for name, choices in DEFAULT_GRID.items()}, **values})


def test_new_trials_are_registered_group_by_group_and_existing_ones_keep_their_order():
    """A manifest whose graphs interleave (as a search's rounds can): each graph's trials, and each
    reduction's within them, become contiguous; graphs in the order the manifest first names them."""
    from topic_pipeline.defs.planning import _new_partitions

    interleaved = [
        _trial(umap_n_neighbors=10, hdbscan_min_cluster_size=2),
        _trial(umap_n_neighbors=5, hdbscan_min_cluster_size=2),
        _trial(umap_n_neighbors=10, umap_min_dist=0.1, hdbscan_min_cluster_size=2),
        _trial(umap_n_neighbors=10, hdbscan_min_cluster_size=3),
        _trial(umap_n_neighbors=5, hdbscan_min_cluster_size=3),
        _trial(umap_n_neighbors=10, seed_replicate=1),
    ]
    trials = {trial.key: trial.to_dict() for trial in interleaved}
    manifest = {"embedding_sets": {}, "trials": trials}
    keys = [trial.key for trial in interleaved]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("trials", ["old-b", "old-a"])
        requests, known, new = _new_partitions(instance, manifest)
    assert known == ["old-b", "old-a"]
    assert new == [keys[0], keys[3], keys[2], keys[1], keys[4], keys[5]]
    assert requests == [dg.AddDynamicPartitionsRequest("trials", new)]


def test_runs_never_span_a_key_that_is_not_due_and_only_an_oversized_group_is_cut(monkeypatch):
    from topic_pipeline.defs import planning

    monkeypatch.setattr(planning, "TRIALS_PER_RUN", 4)
    # A graph of six trials (two reductions of three), then graphs of two trials each.
    large = [
        _trial(umap_n_neighbors=5, umap_min_dist=d, hdbscan_min_cluster_size=m) for d in (0.0, 0.1) for m in (2, 3, 4)
    ]
    small = [_trial(umap_n_neighbors=n, hdbscan_min_cluster_size=m) for n in (10, 20, 30) for m in (2, 3)]
    ordered = [trial.key for trial in large + small]
    trials = {trial.key: trial.to_dict() for trial in large + small}

    def ranges(runnable, sweep_runs):
        """Each planned run's range, as positions in the partition order."""
        runs = planning._trials_runs(ordered, runnable, trials, "f", sweep_runs)
        return [
            (ordered.index(run.tags[PARTITION_RANGE_START_TAG]), ordered.index(run.tags[PARTITION_RANGE_END_TAG]))
            for run in runs
        ]

    # The large graph is cut between its reductions; the others stay whole, two to a run.
    assert ranges(set(ordered), 1) == [(0, 2), (3, 5), (6, 9), (10, 11)]
    # More runs than graphs: one run per piece that may not be cut.
    assert ranges(set(ordered), 9) == [(0, 2), (3, 5), (6, 7), (8, 9), (10, 11)]
    # A trial done in the middle of a graph: no run spans it (the graph's trial before it fits in a run).
    assert ranges(set(ordered) - {ordered[7]}, 1) == [(0, 2), (3, 6), (8, 11)]
    # Runs large enough for every graph: two runs balanced by trial count, the large graph whole.
    monkeypatch.setattr(planning, "TRIALS_PER_RUN", 100)
    assert ranges(set(ordered), 2) == [(0, 5), (6, 11)]
    assert ranges(set(ordered), 1) == [(0, 11)]
    # Three runs: whole graphs would leave one of six trials beside two of three; cutting the large graph between
    # its reductions (built twice) gives four at most.
    assert ranges(set(ordered), 3) == [(0, 2), (3, 7), (8, 11)]
    assert planning._trials_runs(ordered, set(), trials, "f", 2) == []

"""The whole asset graph on a tiny corpus, in a persistent Dagster instance, with the multiprocess executor.

Real parts throughout: a SQLite source database, the packaged embedding model, UMAP/HDBSCAN/BERTopic,
a SQLite-backed MLflow store and a Dagster instance on disk.
"""

import json
import os
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from topic_pipeline.cli import run_sweep
from topic_pipeline.definitions import build_resources
from topic_pipeline.defs.automation import sweep_sensor
from topic_pipeline.defs.planning import plan_next_runs
from topic_pipeline.domain.trials import GRID_KEYS
from topic_pipeline.storage.paths import DataPaths

pytestmark = pytest.mark.slow

GRID = {
    "umap_n_neighbors": [10],
    "umap_n_components": [5],
    "umap_min_dist": [0.0],
    "hdbscan_min_cluster_size": [8, 20],
    "hdbscan_min_samples": [None],
    "hdbscan_cluster_selection_epsilon": [0.0],
    "nr_topics": ["none"],
    "n_gram_max": [1],
    "embedding_model": ["sentence-transformers/all-MiniLM-L6-v2"],
    "remove_stopwords": [False, True],
}


@pytest.fixture
def tiny_grid():
    """Two cluster sizes x with/without stop words: four trials over two embedding sets."""
    return GRID


def test_whole_graph_materialises_with_multiprocess_executor(tiny_project, monkeypatch):
    # Every document labelled and 40 % held out: a split even the smallest class (25 documents) affords.
    from topic_pipeline.inputs.demo_corpus import generate_demo_corpus

    labels = generate_demo_corpus(n_docs=200, n_topics=4).ground_truth(labelled_fraction=1.0)
    (tiny_project / "labels.json").write_text(json.dumps(labels))
    monkeypatch.setenv("TOPIC_PIPELINE_HOLDOUT_FRACTION", "0.4")
    paths = DataPaths(tiny_project / "data")
    with dg.instance_for_test(temp_dir=str(tiny_project / "dagster_home")) as instance:
        resources = build_resources()
        settings = resources["settings"]
        run_sweep(instance)
        # Runs the command line executes itself are runs of the code location, as the UI's own are (its
        # timeline and jobs pages list a location's runs), and carry no bookkeeping tags of ours as chips.
        runs = instance.get_runs()
        assert runs and {run.remote_job_origin.location_name for run in runs} == {"topic_pipeline"}
        # The label the UI filters a location's runs by.
        labelled = dg.RunsFilter(tags={".dagster/repository": "__repository__@topic_pipeline"})
        assert len(instance.get_runs(labelled)) == len(runs)
        assert not [key for run in runs for key in run.tags if key.startswith("topic_pipeline/")]
        assert not list(paths.run_records.glob("*.json"))  # each run's process record removed as it ended

        # The leaderboard lists every trial of the grid, ranked.
        frame = pd.read_csv(paths.leaderboard / "leaderboard.csv")
        assert len(frame) == 4
        assert set(frame["status"]) == {"ok"}, frame[["trial", "status", "error"]]
        assert list(frame["rank"]) == [1, 2, 3, 4]
        assert frame["ari"].is_monotonic_decreasing
        assert frame["ari"].between(-1, 1).all()
        # The UI shows the best trial's topics with the leaderboard, words from its stored labels.
        shown = instance.get_latest_materialization_event(dg.AssetKey("leaderboard")).asset_materialization.metadata
        assert f"**Topics of the best trial** ({frame['trial'][0]})" in shown["summary"].value
        # The answer first: the verdict, then the figures a history plots, each its own series.
        assert list(shown)[:3] == ["recommended", "recommended_trial", "best_trial_ari"]
        assert shown["recommended_trial"].value == frame["trial"][0]
        assert shown["best_trial_ari"].value == round(frame["ari"].max(), 4)
        # The ranking itself is a table the UI renders and sorts, metrics to three decimals: one row per
        # configuration, and every trial with the value it is ranked by.
        assert len(shown["configurations"].records) == frame["configuration"].nunique()
        table = shown["trials"]
        assert isinstance(table, dg.TableMetadataValue)
        assert [column.name for column in table.schema.columns][:5] == [
            "rank",
            "trial",
            "status",
            "ranking_value",
            "round",
        ]
        assert [record.data["trial"] for record in table.records] == list(frame["trial"])
        assert table.records[0].data["ari"] == round(frame["ari"][0], 3)
        # Scores on the selection part rank; the held-out part's are recorded beside them, and summarised.
        assert (frame["labelled_documents"] == 120).all() and (frame["heldout_labelled_documents"] == 80).all()
        assert frame["heldout_ari"].between(-1, 1).all() and frame["ci_low"].notna().all()
        assert shown["heldout_documents"].value == 80
        assert "**How much to trust this** (ari)" in shown["summary"].value
        assert "120 used for selection, 80 held out (40% per class, seed 42)" in shown["summary"].value

        # Every trial is its own partition, materialised with its metrics and a link to MLflow.
        trial_keys = instance.get_dynamic_partitions("trials")
        assert sorted(trial_keys) == sorted(frame["trial"])
        for key in trial_keys:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("grid_trials"), asset_partitions=[key]), limit=1
            ).records
            assert records, key
            metadata = records[0].asset_materialization.metadata
            assert metadata["status"].value == "ok"
            assert metadata["topic_count"].value >= 0
            assert metadata["mlflow_run_id"].value

        # Two embedding sets (with and without stop words), one embeddings partition each.
        assert sorted(instance.get_dynamic_partitions("embedding_sets")) == [
            "all-minilm-l6-v2",
            "all-minilm-l6-v2-nostop",
        ]

        # MLflow: one parent run for the sweep, holding the leaderboard, with one nested run per trial carrying
        # every grid parameter and the Dagster ids; the experiment opens on its runs (model training).
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=f"sqlite:///{paths.mlflow / 'mlflow.db'}")
        experiment = client.get_experiment_by_name(os.environ["TOPIC_PIPELINE_EXPERIMENT"])
        assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
        runs = client.search_runs([experiment.experiment_id])
        (sweep_run,) = [run for run in runs if run.data.tags.get("kind") == "sweep"]
        assert {item.path for item in client.list_artifacts(sweep_run.info.run_id)} >= {
            "leaderboard.csv",
            "leaderboard.md",
        }
        assert sweep_run.data.tags["recommended_trial"] == frame["trial"][0]
        # The report (HTML page and its plots' images) is an asset of its own, written in the leaderboard's run:
        # beside the CSV, linked from its metadata, and on the sweep's run.
        assert "report" not in shown
        drawn = instance.get_latest_materialization_event(dg.AssetKey("sweep_report"))
        assert drawn.run_id == instance.get_latest_materialization_event(dg.AssetKey("leaderboard")).run_id
        drawn = drawn.asset_materialization.metadata
        assert drawn["problems"].value == "none" and drawn["trial_shown"].value == frame["trial"][0]
        assert drawn["map_documents"].value == drawn["total_documents"].value == 200
        report = Path(drawn["report"].value)
        assert report == paths.leaderboard / "report" / "report.html" and report.is_file()
        images = sorted(path.name for path in report.parent.glob("*.png"))
        assert images, "the report wrote no images"
        logged = {item.path for item in client.list_artifacts(sweep_run.info.run_id, "report")}
        assert {"report/report.html", *(f"report/{name}" for name in images)} <= logged
        trial_runs = [run for run in runs if "trial_key" in run.data.tags]
        assert len(trial_runs) == 4
        for run in trial_runs:
            assert run.data.tags["kind"] == "trial"
            assert run.data.tags["mlflow.parentRunId"] == sweep_run.info.run_id
            assert set(GRID_KEYS) <= set(run.data.params)
            assert run.data.tags["dagster_partition_key"] == run.data.tags["trial_key"]
            assert run.data.tags["dagster_run_id"]
            assert "ari" in run.data.metrics and "ari_heldout" in run.data.metrics and "ari_all" in run.data.metrics
            # Every trial here is among the leaderboard's leaders, whose topic words it logs.
            artifacts = [item.path for item in client.list_artifacts(run.info.run_id)]
            assert "topics.json" in artifacts

        # The command line's runs evaluated the asset checks; on this sample and grid they pass.
        for check in (("ground_truth", "labels_can_rank_trials"), ("leaderboard", "trials_succeeded")):
            record = instance.get_latest_asset_check_evaluation_record(
                dg.AssetCheckKey(dg.AssetKey(check[0]), check[1])
            )
            assert record is not None and record.evaluation.passed, (check, record and record.evaluation.description)
        leader = instance.get_latest_asset_check_evaluation_record(
            dg.AssetCheckKey(dg.AssetKey("leaderboard"), "leader_is_sound")
        )
        assert leader is not None and leader.evaluation is not None

        # Nothing is left to do, and the sensor agrees.
        assert plan_next_runs(instance, settings) == []
        with dg.build_sensor_context(
            instance=instance, resources={"settings": settings, "mlflow": resources["mlflow"]}
        ) as context:
            outcome = sweep_sensor(context)
        assert isinstance(outcome, dg.SkipReason)

        # Export the leaderboard's first trial as a BERTopic model (safetensors) and load it back.
        from bertopic import BERTopic

        from topic_pipeline.cli import _execute
        from topic_pipeline.inputs.embeddings import load_model

        _execute(instance, "export_job", {})
        export = instance.get_latest_materialization_event(dg.AssetKey("topic_model")).asset_materialization.metadata
        assert export["trial"].value == frame.iloc[0]["trial"]
        assert export["serialization"].value == "safetensors" and export["size_bytes"].value > 0
        model = BERTopic.load(export["path"].value, embedding_model=load_model("all-MiniLM-L6-v2", "cpu", True))
        assert len(model.topics_) == 200
        assert int(model.get_topic_info().query("Topic != -1")["Count"].shape[0]) == int(frame.iloc[0]["topic_count"])
        export_runs = [
            run for run in client.search_runs([experiment.experiment_id]) if run.data.tags.get("kind") == "export"
        ]
        assert export_runs and export_runs[0].data.tags["trial_run_id"]
        record = json.loads((Path(export["path"].value).parent / "tuning.json").read_text())
        assert (
            record["trust"]["recommended_trial"] == frame.iloc[0]["trial"]
            and record["trust"]["heldout_documents"] == 80
        )
        assert record["trust"]["heldout_score"] == pytest.approx(frame.iloc[0]["heldout_ari"])
        # The default export is the recommended trial: what to expect from it is the recommendation's estimate.
        assert record["exported_trial_trust"]["is_recommended"] is True
        assert export["expected_ari"].value == pytest.approx(
            record["trust"]["heldout_score"], abs=1e-4
        )  # shown rounded
        # An unknown trial key is a clear error naming it, and the earlier export stays in place.
        with pytest.raises(SystemExit, match="no-such-trial"):
            _execute(
                instance,
                "export_job",
                {},
                run_config={"ops": {"topic_model": {"config": {"trial_key": "no-such-trial"}}}},
            )
        assert (Path(export["path"].value) / "topic_embeddings.safetensors").exists()
        # A trial that failed cannot be exported: the message says so and names it.
        second = str(frame.iloc[1]["trial"])
        row = json.loads((paths.results / f"{second}.json").read_text())
        (paths.results / f"{second}.json").write_text(
            json.dumps({**row, "status": "failed", "error": "ValueError: boom"})
        )
        with pytest.raises(SystemExit, match=f"trial '{second}' failed"):
            _execute(instance, "export_job", {}, run_config={"ops": {"topic_model": {"config": {"trial_key": second}}}})
        (paths.results / f"{second}.json").write_text(json.dumps(row))
        assert (Path(export["path"].value) / "topic_embeddings.safetensors").exists()

        # A second sweep re-exports the inputs and reuses the cached embeddings: no trial reruns.
        runs_before = len(instance.get_runs())
        run_sweep(instance)
        assert len(instance.get_runs()) == runs_before + 1  # only the refresh of the inputs

        # Re-running a finished trial (what a UI backfill of its partition does) leaves one live MLflow run
        # for its key: the new one; the older is soft-deleted, tagged with its successor.
        rerun_key = str(frame.iloc[0]["trial"])
        (older,) = [run for run in trial_runs if run.data.tags["trial_key"] == rerun_key]
        _execute(instance, "trials_job", {"dagster/partition": rerun_key})
        live = [
            run
            for run in client.search_runs([experiment.experiment_id], f"tags.trial_key = '{rerun_key}'")
            if run.data.tags.get("kind") == "trial"
        ]
        assert len(live) == 1 and live[0].info.run_id != older.info.run_id
        superseded = client.get_run(older.info.run_id)
        assert superseded.info.lifecycle_stage == "deleted"
        assert superseded.data.tags["topic_pipeline.superseded_by"] == live[0].info.run_id


def test_sensor_requests_embeddings_then_trials(tiny_project):
    from topic_pipeline.cli import _execute

    with dg.instance_for_test(temp_dir=str(tiny_project / "dagster_home")) as instance:
        resources = build_resources()
        settings = resources["settings"]
        with dg.build_sensor_context(
            instance=instance, resources={"settings": settings, "mlflow": resources["mlflow"]}
        ) as context:
            assert isinstance(sweep_sensor(context), dg.SkipReason)  # nothing materialised yet
        _execute(instance, "refresh_inputs_job", {})
        with dg.build_sensor_context(
            instance=instance, resources={"settings": settings, "mlflow": resources["mlflow"]}
        ) as context:
            result = sweep_sensor(context)
        assert sorted((r.job_name, r.partition_key) for r in result.run_requests) == [
            ("embeddings_job", "all-minilm-l6-v2"),
            ("embeddings_job", "all-minilm-l6-v2-nostop"),
        ]
        # The partitions those runs target come with them, for Dagster to add first.
        requested = {
            request.partitions_def_name: list(request.partition_keys) for request in result.dynamic_partitions_requests
        }
        assert sorted(requested["embedding_sets"]) == ["all-minilm-l6-v2", "all-minilm-l6-v2-nostop"]
        assert len(requested["trials"]) == 4

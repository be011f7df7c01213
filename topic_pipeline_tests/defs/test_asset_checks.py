"""The asset checks, materialised with their assets in a temporary instance, each failing and passing (fast;
no models, no MLflow)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from topic_pipeline.defs.assets.inputs import documents, ground_truth
from topic_pipeline.defs.checks import (
    FAILED_SHARE_WARN,
    MIN_LABELLED_DOCUMENTS,
    labels_can_rank_trials,
    leaderboard_check_results,
)
from topic_pipeline.defs.resources.database import DocumentsDatabase
from topic_pipeline.defs.resources.io_manager import ParquetJsonIOManager
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.domain.results import STATUS_FAILED, STATUS_OK, TrialResult
from topic_pipeline.inputs.grid import ParamGrid
from topic_pipeline.inputs.ground_truth import GroundTruth
from topic_pipeline.scoring.leaderboard import build_leaderboard
from topic_pipeline.scoring.metrics import METRIC_NAMES

ERROR, WARN = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN
# Two classes of ten documents each: a sample the checks accept.
SOUND_LABELS = {"a": list(range(1, 11)), "b": list(range(11, 21))}


def evaluations(result: dg.ExecuteInJobResult) -> dict[str, dg.AssetCheckEvaluation]:
    assert result.success  # a check that does not pass still leaves its run successful
    return {evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()}


# --- ground_truth: labels_can_rank_trials ----------------------------------------------------------


def check_labels(
    tmp_path: Path, labels: dict, check: str = "labels_can_rank_trials", **settings
) -> dg.AssetCheckEvaluation:
    database = tmp_path / "source.db"
    if not database.exists():
        with sqlite3.connect(database) as connection:
            connection.execute("CREATE TABLE documents (id INTEGER, text TEXT)")
            connection.executemany("INSERT INTO documents VALUES (?, ?)", [(i, f"text {i}") for i in range(1, 41)])
        connection.close()
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(labels))
    data = str(tmp_path / "data")
    # An ephemeral (in-memory) instance: a check's result needs no history.
    result = dg.materialize(
        [documents, ground_truth, labels_can_rank_trials],
        resources={
            "database": DocumentsDatabase(url=f"sqlite:///{database}"),
            "settings": PipelineSettings(data_dir=data, ground_truth_path=str(path), **settings),
            "io_manager": ParquetJsonIOManager(data_dir=data),
        },
    )
    return evaluations(result)[check]


def test_labels_where_no_two_documents_share_a_class_fail(tmp_path):
    evaluation = check_labels(tmp_path, {f"class{i}": [i] for i in range(1, 31)})
    assert not evaluation.passed and evaluation.severity == ERROR
    assert "Each of the 30 classes holds one labelled document" in evaluation.description
    assert evaluation.metadata["smallest_class"].value == 1


def test_labels_with_single_document_classes_or_few_documents_warn(tmp_path):
    evaluation = check_labels(tmp_path, {**SOUND_LABELS, "lonely": [30], "alone": [31]})
    assert not evaluation.passed and evaluation.severity == WARN
    assert "2 of 4 classes hold a single labelled document (alone, lonely)" in evaluation.description
    assert evaluation.metadata["single_document_classes"].value == 2

    few = check_labels(tmp_path, {"a": [1, 2, 3], "b": [4, 5, 6]})
    assert not few.passed and few.severity == WARN
    assert f"Only 6 documents are labelled (fewer than {MIN_LABELLED_DOCUMENTS})" in few.description


def test_a_sound_labelled_sample_passes(tmp_path):
    evaluation = check_labels(tmp_path, SOUND_LABELS)
    assert evaluation.passed, evaluation.description
    assert evaluation.metadata["labelled_documents"].value == 20
    found = check_labels(tmp_path, SOUND_LABELS, "labels_found_in_export")
    assert found.passed and found.metadata["found_share"].value == 1.0


# --- ground_truth: labels_found_in_export ----------------------------------------------------------


def test_labelled_ids_missing_from_the_export_warn_and_are_left_out(tmp_path):
    # The export holds ids 1-40: two of the 22 labelled ids are not in it, and class "gone" loses its only one.
    evaluation = check_labels(
        tmp_path, {**SOUND_LABELS, "b": [*SOUND_LABELS["b"], 41], "gone": [99]}, "labels_found_in_export"
    )
    assert not evaluation.passed and evaluation.severity == WARN
    assert (
        "2 of 22 labelled text id(s) are not in the export and are left out of every score (90.9% found): 41, 99"
        in evaluation.description
    )
    assert "Clusters left without any id, dropped: gone" in evaluation.description
    assert evaluation.metadata["missing_ids"].value == [41, 99] and evaluation.metadata["found_share"].value == 0.9091
    # What the sweep scores against: the ids the export holds.
    stored = json.loads((tmp_path / "data" / "assets" / "ground_truth.json").read_text())
    assert stored == SOUND_LABELS


def test_labels_mostly_missing_from_the_export_are_refused(tmp_path):
    labels = {**SOUND_LABELS, "c": list(range(100, 110))}  # 20 of 30 found
    with pytest.raises(
        Exception, match=r"10 text id\(s\) are not in the export: 100, 101.*20 of 30 labelled ids found \(66.7%\)"
    ):
        check_labels(tmp_path, labels, "labels_found_in_export")
    # A lower minimum accepts them.
    evaluation = check_labels(tmp_path, labels, "labels_found_in_export", min_labels_found=0.5)
    assert not evaluation.passed and evaluation.metadata["clusters_dropped"].value == ["c"]


# --- leaderboard: trials_succeeded and leader_is_sound ---------------------------------------------


def trial_results(n: int, failed: int = 0, first: dict | None = None) -> tuple[dict, dict]:
    """``n`` trials with distinct scores, the last ``failed`` of them failed; ``first`` overrides the
    best trial's metrics."""
    trials = {
        t.key: t.to_dict() for t in ParamGrid.from_mapping({"hdbscan_min_cluster_size": list(range(2, 2 + n))}).trials()
    }
    results = {}
    for index, (key, params) in enumerate(trials.items()):
        if index >= n - failed:
            results[key] = TrialResult(
                key, params, "f" * 16, STATUS_FAILED, error="ValueError: k must be less than n\nTraceback"
            )
            continue
        metrics = {name: 0.9 - index / 100 for name in METRIC_NAMES}
        metrics.update(outlier_fraction=0.1, topic_count=4.0, labelled_documents=20.0)
        if index == 0:
            metrics.update(first or {})
        results[key] = TrialResult(key, params, "f" * 16, STATUS_OK, metrics=metrics)
    return trials, results


def check_leaderboard(
    tmp_path: Path, frame: pd.DataFrame, labels: dict = SOUND_LABELS
) -> dict[str, dg.AssetCheckResult]:
    """The leaderboard's checks as the asset evaluates them on the frame it built (the end-to-end sweep
    tests see them recorded on the instance)."""
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(labels))
    settings = PipelineSettings(data_dir=str(tmp_path / "data"), ground_truth_path=str(path))
    results = leaderboard_check_results(frame, GroundTruth.from_mapping(labels), settings)
    return {result.check_name: result for result in results}


def test_a_sweep_whose_trials_all_failed_is_an_error(tmp_path):
    checks = check_leaderboard(tmp_path, build_leaderboard(*trial_results(3, failed=3)))
    succeeded = checks["trials_succeeded"]
    assert not succeeded.passed and succeeded.severity == ERROR
    assert "all 3 trials that ran failed; 3 of them with: ValueError: k must be less than n" in succeeded.description
    assert not checks["leader_is_sound"].passed and checks["leader_is_sound"].severity == WARN


def test_many_failed_trials_and_a_degenerate_leader_warn(tmp_path):
    frame = build_leaderboard(*trial_results(5, failed=2, first={"topic_count": 0.0}))
    checks = check_leaderboard(tmp_path, frame)
    succeeded = checks["trials_succeeded"]
    assert not succeeded.passed and succeeded.severity == WARN
    assert f"2 of 5 trials failed (40%, more than {FAILED_SHARE_WARN:.0%})" in succeeded.description
    assert succeeded.metadata["failed_share"].value == pytest.approx(0.4)
    leader = checks["leader_is_sound"]
    second = str(frame["trial"][1])
    assert not leader.passed and leader.severity == WARN
    assert "found no topic" in leader.description and f"is '{second}' (rank 2)" in leader.description


def test_trials_without_a_result_warn(tmp_path):
    trials, results = trial_results(4)
    del results[list(trials)[-1]]
    succeeded = check_leaderboard(tmp_path, build_leaderboard(trials, results))["trials_succeeded"]
    assert not succeeded.passed and succeeded.severity == WARN
    assert "1 of 4 trials have no result on the current inputs" in succeeded.description


def test_a_sound_sweep_passes_both_checks(tmp_path):
    # One failure in eleven stays under the share that warns.
    checks = check_leaderboard(tmp_path, build_leaderboard(*trial_results(11, failed=1)))
    assert checks["trials_succeeded"].passed, checks["trials_succeeded"].description
    assert checks["trials_succeeded"].metadata["failed"].value == 1
    assert checks["leader_is_sound"].passed, checks["leader_is_sound"].description


def test_the_jobs_that_materialise_the_checked_assets_run_their_checks():
    from topic_pipeline.definitions import defs

    definitions = defs()
    checks = {
        "refresh_inputs_job": {dg.AssetCheckKey(dg.AssetKey("ground_truth"), "labels_can_rank_trials")},
        "leaderboard_job": {
            dg.AssetCheckKey(dg.AssetKey("leaderboard"), name) for name in ("trials_succeeded", "leader_is_sound")
        },
        "embeddings_job": {dg.AssetCheckKey(dg.AssetKey("embeddings"), "embeddings_are_usable")},
    }
    for job_name, keys in checks.items():
        job = definitions.resolve_job_def(job_name)
        assert keys <= set(job.asset_layer.asset_graph.asset_check_keys), job_name
        specs = [definitions.resolve_asset_graph().get_check_spec(key) for key in keys]
        # Only the embeddings' check blocks: trials must never run on embeddings that fail it.
        assert all(spec.blocking == (job_name == "embeddings_job") and spec.description for spec in specs), job_name


# --- embeddings: embeddings_are_usable (blocking) ---------------------------------------------------


def test_embeddings_check_fails_on_non_finite_values_or_a_wrong_shape_and_blocks():
    import numpy as np

    from topic_pipeline.defs.assets.embeddings import embeddings, embeddings_check

    (spec,) = embeddings.check_specs
    assert spec.name == "embeddings_are_usable" and spec.blocking
    good = np.ones((5, 3), dtype=np.float32)
    assert embeddings_check(good, 5).passed
    broken = good.copy()
    broken[1, 2], broken[3, 0] = np.nan, np.inf
    result = embeddings_check(broken, 5)
    assert not result.passed and result.severity == ERROR
    assert result.description == "2 document(s) with a NaN or infinite value"
    result = embeddings_check(good, 6)
    assert not result.passed and "shape [5, 3], expected [6, width]" in result.description


# --- the leaderboard and its report: the library's results mapped onto Dagster ------------------------


class _RecordingTracker:
    """Stands in for ``MlflowTracking.tracker``'s ``MlflowTracker``: no MLflow store needed."""

    def __init__(self):
        self.logged: list[str] = []

    def log_topics(self, run_id, topics):
        self.logged.append(f"topics {run_id}")

    def sweep_run(self, sweep_id, search_round=None):
        return "sweep-run"

    def log_leaderboard(self, run_id, csv_path, markdown, best, tags):
        self.logged.append(f"leaderboard {run_id}")

    def log_report(self, run_id, files):
        self.logged.append(f"report {run_id}")

    def run_url(self, run_id, artifact=None):
        return None


def _stored_sweep(tmp_path: Path, monkeypatch) -> tuple[dict, _RecordingTracker]:
    """Three scored trials of one embedding set in a data directory, the inputs' values where the IO manager
    keeps them, and the resources to rank them."""
    import numpy as np

    from topic_pipeline.defs.resources.mlflow import MlflowTracking
    from topic_pipeline.inputs.embeddings import EmbeddingCache
    from topic_pipeline.integrations.report import topic_map
    from topic_pipeline.storage.results import ResultStore
    from topic_pipeline.workflow import SweepInputs

    path = tmp_path / "labels.json"
    path.write_text(json.dumps(SOUND_LABELS))
    settings = PipelineSettings(data_dir=str(tmp_path / "data"), ground_truth_path=str(path))
    paths = settings.paths
    frame = pd.DataFrame(
        {"id": range(1, 41), "text": [f"{'apple fruit' if i <= 20 else 'engine motor'} {i}" for i in range(1, 41)]}
    )
    paths.assets.mkdir(parents=True)
    frame.to_parquet(paths.assets / "documents.parquet", index=False)
    (paths.assets / "ground_truth.json").write_text(json.dumps(SOUND_LABELS))
    grid = {"hdbscan_min_cluster_size": [2, 3, 4]}
    trials = ParamGrid.from_mapping(grid).trials()
    paths.write_current_grid("grid.json", grid, trials)
    inputs = SweepInputs.load(settings.sweep_config(), frame, SOUND_LABELS)
    for index, trial in enumerate(trials):
        metrics = {name: 0.9 - index / 10 for name in METRIC_NAMES}
        metrics.update(outlier_fraction=0.0, topic_count=2.0, labelled_documents=14.0)
        result = TrialResult(trial.key, trial.to_dict(), inputs.fingerprint, STATUS_OK, metrics=metrics)
        ResultStore(paths.results).save(result, labels=np.repeat([0, 1], 20).astype(np.int32))
    cache = EmbeddingCache(paths.embeddings)
    key = cache.key(trials[0].embedding_set, inputs.corpus.content_hash, settings.stopwords_language)
    cache.store(key, np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32), {})
    tracker = _RecordingTracker()
    monkeypatch.setattr(MlflowTracking, "tracker", lambda self, paths: tracker)
    monkeypatch.setattr(topic_map, "_umap_2d", lambda embeddings, seed: np.asarray(embeddings, dtype=np.float64)[:, :2])
    # Only the two ranked assets run: the database the documents would come from is never opened.
    resources = {
        "settings": settings,
        "mlflow": MlflowTracking(),
        "io_manager": ParquetJsonIOManager(data_dir=settings.data_dir),
        "database": DocumentsDatabase(url=f"sqlite:///{tmp_path / 'absent.db'}"),
    }
    return resources, tracker


def _rank_and_report(resources: dict) -> dg.ExecuteInJobResult:
    from topic_pipeline.defs.assets.inputs import param_grid
    from topic_pipeline.defs.assets.leaderboard import leaderboard
    from topic_pipeline.defs.assets.report import sweep_report
    from topic_pipeline.defs.assets.trials import grid_trials

    return dg.materialize(
        [documents, ground_truth, param_grid, grid_trials, leaderboard, sweep_report],
        selection=[leaderboard, sweep_report],
        resources=resources,
    )


def test_the_leaderboard_and_its_report_materialise_as_two_assets(tmp_path, monkeypatch):
    resources, tracker = _stored_sweep(tmp_path, monkeypatch)
    result = _rank_and_report(resources)
    assert result.success
    shown = result.asset_materializations_for_node("leaderboard")[0].metadata
    assert {
        "summary",
        "csv",
        "recommended",
        "recommended_trial",
        "best_trial_ari",
        "recommended_mean_ari",
        "recommended_heldout_ari",
        "configurations",
        "trials",
        "scored",
        "failed",
        "missing",
        "rank_by",
        "rank_by_stability",
        "grid_fingerprint",
        "inputs_fingerprint",
        "results_digest",
        "mlflow_run_id",
        "warnings",
        "heldout_documents",
    } <= set(shown)
    assert "report" not in shown and shown["scored"].value == 3 and shown["mlflow_run_id"].value == "sweep-run"
    assert "**Topics of the best trial**" in shown["summary"].value
    assert set(evaluations(result)) == {"trials_succeeded", "leader_is_sound"}
    report = result.asset_materializations_for_node("sweep_report")[0].metadata
    assert (
        Path(report["report"].value) == Path(resources["settings"].data_dir) / "leaderboard" / "report" / "report.html"
    )
    assert Path(report["report"].value).is_file() and report["images"].value > 0 and report["problems"].value == "none"
    assert report["map_documents"].value == 40 and report["trial_shown"].value == shown["recommended_trial"].value
    # The report's files go to the leaderboard's run, after it.
    assert tracker.logged[-2:] == ["leaderboard sweep-run", "report sweep-run"]


def test_a_report_that_cannot_be_written_leaves_the_leaderboard_and_its_run_successful(tmp_path, monkeypatch):
    from topic_pipeline.defs.assets import report as report_asset

    resources, _ = _stored_sweep(tmp_path, monkeypatch)

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(report_asset, "write_sweep_report", broken)
    result = _rank_and_report(resources)
    assert result.success and result.asset_materializations_for_node("leaderboard")
    report = result.asset_materializations_for_node("sweep_report")[0].metadata
    assert (
        report["report"].value == "none (see the run's log)" and "No space left on device" in report["problems"].value
    )

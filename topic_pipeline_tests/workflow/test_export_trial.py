"""The export stage as a library function: which trial is exported, which are refused, and a whole export of a
trial a batch ran (no Dagster; a recording tracker stands in for MLflow)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from topic_pipeline.domain.results import STATUS_FAILED, STATUS_OK, TrialResult
from topic_pipeline.inputs.demo_corpus import generate_demo_corpus
from topic_pipeline.inputs.embeddings import EmbeddingCache
from topic_pipeline.inputs.grid import ParamGrid
from topic_pipeline.integrations.export import RECORD_FILE, ExportError
from topic_pipeline.scoring.leaderboard import build_leaderboard
from topic_pipeline.storage.paths import DataPaths
from topic_pipeline.storage.results import ResultStore
from topic_pipeline.workflow.export import chosen_trial, export_trial
from topic_pipeline.workflow.sweep_inputs import SweepConfig, SweepInputs
from topic_pipeline.workflow.trials import RecordedTrial, run_trial_batch

GRID = {"umap_n_neighbors": [15], "hdbscan_min_cluster_size": [10, 15]}


class RecordingTracker:
    """What a batch and an export ask of an ``MlflowTracker``, recorded."""

    experiment_id = "0"

    def __init__(self):
        self.exports: list[tuple] = []

    def trial_keys_with_unfinished_runs(self):
        return set()

    def sweep_run(self, sweep_id, search_round=None):
        return "sweep"

    def log_trial(self, result, tags, supersede_older=True, parent_run_id=None):
        return f"run-{result.key}"

    def log_export(self, directory, trial_key, trial_run_id, tags):
        self.exports.append((Path(directory), trial_key, trial_run_id, dict(tags)))
        return "export-run"

    def run_url(self, run_id, artifact=None):
        return f"http://mlflow.example/#/runs/{run_id}"


def _sweep(root: Path) -> SweepInputs:
    """A 300-document demo corpus, labels for half of it, and a two-trial grid whose embeddings (one direction
    per topic, with noise) are cached."""
    corpus = generate_demo_corpus(n_docs=300, n_topics=4)
    labels = corpus.ground_truth(labelled_fraction=0.5)
    paths = DataPaths(root / "data")
    trials = ParamGrid.from_mapping(GRID).trials()
    paths.write_current_grid("grid.json", GRID, trials)
    documents = pd.DataFrame({"id": corpus.ids, "text": corpus.texts})
    inputs = SweepInputs.load(
        SweepConfig(paths=paths, workers=1, ground_truth_file=root / "labels.json"), documents, labels
    )
    topics = sorted(set(corpus.topics))
    rng = np.random.default_rng(0)
    embeddings = np.eye(16, dtype=np.float32)[[topics.index(topic) for topic in corpus.topics]] + rng.normal(
        0, 0.05, (300, 16)
    )
    cache = EmbeddingCache(paths.embeddings)
    cache.store(
        cache.key(trials[0].embedding_set, inputs.corpus.content_hash, "english"), embeddings.astype(np.float32), {}
    )
    return inputs


def _board(inputs: SweepInputs) -> pd.DataFrame:
    return build_leaderboard(inputs.trials, inputs.current_results())


def _store(inputs: SweepInputs, key: str, status: str, ari: float) -> None:
    metrics = {
        "ari": ari,
        "ami": ari,
        "nmi": ari,
        "outlier_fraction": 0.1,
        "topic_count": 4.0,
        "labelled_documents": 150.0,
    }
    result = TrialResult(
        key,
        inputs.trials[key],
        inputs.fingerprint,
        status,
        metrics=metrics if status == STATUS_OK else {},
        error=None if status == STATUS_OK else "HDBSCAN broke",
        finished_at=1.0,
    )
    ResultStore(inputs.paths.results).save(result, np.zeros(300, dtype=np.int32) if status == STATUS_OK else None)


def test_the_trial_to_export_and_those_refused(tmp_path):
    inputs = _sweep(tmp_path)
    best, failed = list(inputs.trials)
    with pytest.raises(ExportError, match="the leaderboard has no scored trial to export"):
        chosen_trial(_board(inputs))
    _store(inputs, best, STATUS_OK, 0.8)
    _store(inputs, failed, STATUS_FAILED, 0.0)
    board = _board(inputs)
    assert chosen_trial(board) == best and chosen_trial(board, failed) == failed
    with pytest.raises(ExportError, match="trial key 'nope' is not in the current leaderboard"):
        chosen_trial(board, "nope")
    with pytest.raises(ExportError, match=rf"trial '{failed}' failed \(HDBSCAN broke\); choose a trial that succeeded"):
        export_trial(inputs, board, RecordingTracker(), "run", trial_key=failed)
    # Without a stored result, nothing to export.
    ResultStore(inputs.paths.results).path(best).unlink()
    with pytest.raises(ExportError, match=f"trial '{best}' has no result on the current inputs"):
        export_trial(inputs, board, RecordingTracker(), "run")


@pytest.mark.slow
def test_a_trial_a_batch_ran_is_exported(tmp_path, caplog):
    inputs = _sweep(tmp_path)
    recorded = [
        item
        for item in run_trial_batch(inputs, list(inputs.trials), RecordingTracker(), "run-1")
        if isinstance(item, RecordedTrial)
    ]
    assert all(not item.failed for item in recorded)
    board = _board(inputs)
    tracker = RecordingTracker()

    with caplog.at_level(logging.WARNING):
        export = export_trial(
            inputs, board, tracker, "run-2", serialization="safetensors", target_dir=tmp_path / "model"
        )

    assert export.trial_key == board["trial"].iloc[0] and export.serialization == "safetensors"
    assert export.exported.directory == tmp_path / "model" and export.exported.size_bytes > 0
    assert export.topic_table.startswith("| topic | size | top words |")
    assert (export.mlflow_run_id, export.run_url) == ("export-run", "http://mlflow.example/#/runs/export-run")
    assert tracker.exports == [
        (tmp_path / "model", export.trial_key, f"run-{export.trial_key}", {"dagster_run_id": "run-2"})
    ]
    record = json.loads((tmp_path / "model" / RECORD_FILE).read_text())
    assert record["trial_key"] == export.trial_key and record["warnings"] == export.warnings
    assert record["exported_trial_trust"]["expected"] == export.expected
    assert export.metrics == ResultStore(inputs.paths.results).load(export.trial_key).metrics
    assert [record.getMessage() for record in caplog.records] == export.warnings

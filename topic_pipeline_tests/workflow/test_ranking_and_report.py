"""The ranking and report stages as library functions, on a small stored sweep (no Dagster, no models, no
MLflow server: a recording tracker stands in for it)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from topic_pipeline.domain.results import STATUS_OK, TrialResult, results_digest
from topic_pipeline.inputs.embeddings import EmbeddingCache
from topic_pipeline.inputs.grid import ParamGrid
from topic_pipeline.integrations.report import topic_map as topic_map_module
from topic_pipeline.scoring.leaderboard import read_leaderboard_warnings
from topic_pipeline.scoring.metrics import METRIC_NAMES
from topic_pipeline.storage.paths import DataPaths
from topic_pipeline.storage.results import ResultStore
from topic_pipeline.workflow.ranking import rank_sweep, read_best_topics
from topic_pipeline.workflow.report import write_sweep_report
from topic_pipeline.workflow.sweep_inputs import SweepConfig, SweepInputs

# 30 documents about fruit, 20 about engines, 10 in a script BERTopic's English cleaning removes whole.
TEXTS = (
    [f"apple banana orchard fruit harvest {i}" for i in range(30)]
    + [f"engine piston motor cylinder torque {i}" for i in range(20)]
    + ["日本語のテキスト" for _ in range(10)]
)
IDS = list(range(1, len(TEXTS) + 1))
LABELS = {"fruit": IDS[:12], "engine": IDS[30:42]}
# The best trial keeps the 10 wordless documents apart (topic 2); so does the second; the third mixes them in.
WORDLESS = np.repeat([0, 1, 2], [30, 20, 10]).astype(np.int32)
MIXED = np.repeat([0, 1], [30, 30]).astype(np.int32)
NO_WORDS = "has no topic words"


class RecordingTracker:
    """What ``rank_sweep`` and ``write_sweep_report`` ask of an ``MlflowTracker``, recorded."""

    def __init__(self, fail_report: bool = False):
        self.calls: list[tuple] = []
        self.fail_report = fail_report

    def log_topics(self, run_id, topics):
        self.calls.append(("topics", run_id, len(topics)))

    def sweep_run(self, sweep_id, search_round=None):
        return f"sweep-{sweep_id}"

    def log_leaderboard(self, run_id, csv_path, markdown, best, tags):
        self.calls.append(("leaderboard", run_id, dict(best), dict(tags)))

    def log_report(self, run_id, files):
        if self.fail_report:
            raise ConnectionError("tracking server went away")
        self.calls.append(("report", run_id, sorted(Path(path).name for path in files)))

    def run_url(self, run_id, artifact=None):
        return f"http://mlflow.example/#/runs/{run_id}"


def _inputs(root: Path) -> SweepInputs:
    paths = DataPaths(root / "data")
    labels_file = root / "labels.json"
    labels_file.write_text(json.dumps(LABELS))
    config = SweepConfig(paths=paths, ground_truth_file=labels_file)
    return SweepInputs.load(config, pd.DataFrame({"id": IDS, "text": TEXTS}), LABELS)


@pytest.fixture
def sweep(tmp_path: Path) -> SweepInputs:
    """Three scored trials of one embedding set, their labels and the set's embeddings stored."""
    trials = ParamGrid.from_mapping({"hdbscan_min_cluster_size": [2, 3, 4]}).trials()
    paths = DataPaths(tmp_path / "data")
    paths.write_current_grid("grid.json", {"hdbscan_min_cluster_size": [2, 3, 4]}, trials)
    inputs = _inputs(tmp_path)
    store = ResultStore(paths.results)
    for index, (trial, labels) in enumerate(zip(trials, [WORDLESS, WORDLESS, MIXED])):
        metrics = {name: 0.9 - index / 10 for name in METRIC_NAMES}
        metrics.update(outlier_fraction=0.0, topic_count=float(labels.max() + 1), labelled_documents=24.0)
        result = TrialResult(
            trial.key,
            trial.to_dict(),
            inputs.fingerprint,
            STATUS_OK,
            metrics=metrics,
            tags={"mlflow_run_id": f"run-{index}"},
            finished_at=1000.0 + index,
            duration_s=1.0,
        )
        store.save(result, labels=labels)
    cache = EmbeddingCache(paths.embeddings)
    key = cache.key(trials[0].embedding_set, inputs.corpus.content_hash, inputs.config.stopwords_language)
    cache.store(key, np.random.default_rng(0).normal(size=(len(TEXTS), 8)).astype(np.float32), {})
    return inputs


@pytest.fixture
def umap_fits(monkeypatch) -> list[int]:
    """The report's 2-D UMAP, replaced by a cheap stand-in that counts its fits."""
    fits: list[int] = []

    def fake_umap(embeddings, seed):
        fits.append(len(embeddings))
        return np.asarray(embeddings, dtype=np.float64)[:, :2] + seed

    monkeypatch.setattr(topic_map_module, "_umap_2d", fake_umap)
    return fits


# --- ranking ----------------------------------------------------------------------------------------------


def test_rank_sweep_ranks_writes_the_csv_beside_its_warnings_and_logs_to_the_sweeps_run(sweep) -> None:
    tracker = RecordingTracker()
    ranking = rank_sweep(sweep, tracker, "dagster-run-1")
    keys = list(sweep.trials)
    assert list(ranking.frame["trial"]) == keys and ranking.recommended_trial == keys[0]
    assert ranking.counts == {"ok": 3, "failed": 0, "missing": 0} and ranking.best_trial_score == pytest.approx(0.9)
    assert ranking.recommended_mean == pytest.approx(0.9) and ranking.verdict.startswith(
        f"{ranking.best['configuration']}: ari 0.900"
    )
    assert ranking.frame["ci_low"].notna().all()  # intervals over the held-out labelled documents
    assert ranking.results_digest == results_digest(
        sweep.manifest["grid_fingerprint"], sweep.fingerprint, sweep.current_results()
    )
    assert pd.read_csv(ranking.csv_path)["trial"].tolist() == keys
    assert read_leaderboard_warnings(sweep.paths) == ranking.warnings
    # The leaders' topics on their runs, the leaderboard on the sweep's run.
    assert [call[1] for call in tracker.calls if call[0] == "topics"] == ["run-0", "run-1", "run-2"]
    [(_, run_id, best, tags)] = [call for call in tracker.calls if call[0] == "leaderboard"]
    assert run_id == ranking.mlflow_run_id and best["best_trial_ari"] == pytest.approx(0.9)
    assert tags == {
        "recommended_trial": keys[0],
        "dagster_run_id": "dagster-run-1",
        "grid_fingerprint": ranking.grid_fingerprint,
        "inputs_fingerprint": sweep.fingerprint,
    }
    assert ranking.mlflow_run_url.endswith(run_id)
    # The best trial's topics beside the CSV, for the report; another CSV makes them stale.
    trial, topics = read_best_topics(sweep.paths)
    assert trial == keys[0] and topics == ranking.topics[keys[0]]
    assert any(part.startswith(f"**Topics of the best trial** ({keys[0]})") for part in ranking.summary)
    ranking.csv_path.write_text("trial\nanother\n")
    assert read_best_topics(sweep.paths) is None


def test_a_leader_with_a_wordless_topic_is_named_in_the_leaderboards_warnings(sweep) -> None:
    ranking = rank_sweep(sweep, RecordingTracker(), "run")
    best, second = list(sweep.trials)[:2]
    wordless = [warning for warning in ranking.warnings if NO_WORDS in warning]
    # The second leader has the same wordless topic: only the best trial's is named, once.
    assert wordless == [
        f"trial '{best}': topic 2 (10 documents) has no topic words: its documents hold no token the vectorizer keeps: "
        "BERTopic's English cleaning leaves ASCII letters and digits only (text in other scripts and emoji go), and "
        "single letters or digits and stop words are not counted"
    ]
    assert not any(second in warning for warning in wordless)
    assert [t.top_words for t in ranking.topics[second] if t.topic == 2] == [[]]
    assert ranking.summary[0].startswith("**Recommended** (ari)")
    assert wordless[0] in ranking.summary[1] and ranking.summary[1].startswith("**Warnings**")
    assert wordless[0] in read_leaderboard_warnings(sweep.paths)


def test_a_leader_whose_topics_all_have_words_adds_no_warning(sweep) -> None:
    store = ResultStore(sweep.paths.results)
    best = list(sweep.trials)[0]
    store.save(store.load(best), labels=MIXED)
    assert not [warning for warning in rank_sweep(sweep, RecordingTracker(), "run").warnings if NO_WORDS in warning]


# --- report -----------------------------------------------------------------------------------------------


def test_the_report_is_written_logged_to_the_sweeps_run_and_its_map_layout_reused(sweep, umap_fits) -> None:
    tracker = RecordingTracker()
    ranking = rank_sweep(sweep, tracker, "run")
    first = write_sweep_report(sweep, ranking.frame, tracker)
    assert first.files.html.is_file() and first.files.html == sweep.paths.leaderboard / "report" / "report.html"
    assert first.chosen == ranking.recommended_trial and first.problems == []
    assert first.map_documents == len(TEXTS) == first.total_documents and not first.sampled
    assert first.map_layout == "a layout of the embeddings fitted now (and cached)" and umap_fits == [len(TEXTS)]
    [(_, run_id, names)] = [call for call in tracker.calls if call[0] == "report"]
    assert run_id == ranking.mlflow_run_id == first.mlflow_run_id
    assert names == sorted(path.name for path in first.files.paths) and "report.html" in names
    page = first.files.html.read_text(encoding="utf-8")
    assert NO_WORDS in page  # the leaderboard's warnings head the page
    assert "apple" in page  # the best trial's topic words, as the ranking stored them

    # A second report on the same embedding set reads the layout back: no second fit.
    second = write_sweep_report(sweep, ranking.frame, tracker)
    assert second.map_layout == "a layout of the embeddings read from the cache" and umap_fits == [len(TEXTS)]


def test_a_corpus_above_the_maps_size_is_drawn_as_a_sample_of_that_size(sweep, umap_fits) -> None:
    ranking = rank_sweep(sweep, RecordingTracker(), "run")
    report = write_sweep_report(sweep, ranking.frame, max_map_documents=40)
    assert report.map_documents == 40 and report.sampled and umap_fits == [40]
    assert "a sample of 40 of 60 documents drawn (every labelled one first, the rest at random, seed 42)" in (
        report.files.html.read_text(encoding="utf-8")
    )


def test_what_the_report_cannot_draw_or_log_is_a_problem_not_a_lost_report(sweep, umap_fits) -> None:
    ranking = rank_sweep(sweep, RecordingTracker(), "run")
    for entry in sweep.paths.embeddings.glob("*.npy"):
        entry.unlink()  # no embeddings and no cached reduction: no map
    report = write_sweep_report(sweep, ranking.frame, RecordingTracker(fail_report=True))
    assert report.files.html.is_file() and report.map_documents == 0 and report.mlflow_run_id is None
    assert [problem.split(":")[0] for problem in report.problems] == [
        f"topic map of trial '{ranking.recommended_trial}'",
        "not logged to MLflow",
    ]


def test_a_report_of_a_leaderboard_with_nothing_scored(tmp_path: Path) -> None:
    trials = ParamGrid.from_mapping({"hdbscan_min_cluster_size": [2, 3]}).trials()
    DataPaths(tmp_path / "data").write_current_grid("grid.json", {}, trials)
    inputs = _inputs(tmp_path)
    ranking = rank_sweep(inputs, RecordingTracker(), "run")
    assert ranking.recommended_trial is None and ranking.counts["missing"] == 2 and np.isnan(ranking.best_trial_score)
    report = write_sweep_report(inputs, ranking.frame)
    assert report.chosen is None and report.map_layout == "none" and report.files.html.is_file()


def test_the_ranking_is_a_plain_result(sweep) -> None:
    ranking = rank_sweep(sweep, RecordingTracker(), "run")
    assert dataclasses.is_dataclass(ranking) and ranking.varying == ["hdbscan_min_cluster_size"]

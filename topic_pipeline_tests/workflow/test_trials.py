"""A batch of trials as a library function: each trial recorded (MLflow, result store) and handed on as it
finishes, then the batch's figures; which trials a grid still needs; what a stopped run finished. No Dagster:
a recording tracker stands in for MLflow."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from topic_pipeline.domain.results import STATUS_FAILED, STATUS_OK, TrialResult
from topic_pipeline.engine.fast import SweepStats
from topic_pipeline.engine.progress import SweepProgress
from topic_pipeline.engine.sweep import ScoredTrial
from topic_pipeline.inputs.embeddings import EmbeddingCache
from topic_pipeline.inputs.grid import ParamGrid
from topic_pipeline.storage.paths import DataPaths
from topic_pipeline.storage.results import ResultStore
from topic_pipeline.workflow import trials as trials_module
from topic_pipeline.workflow.sweep_inputs import SweepConfig, SweepInputs
from topic_pipeline.workflow.trials import (
    RecordedTrial,
    SweepAbandoned,
    TrialBatchSummary,
    grid_status,
    run_trial_batch,
    trials_finished_by,
)

N_DOCUMENTS = 300
GRID = {"umap_n_neighbors": [10], "hdbscan_min_cluster_size": [10, 20]}
LABELS = {"a": list(range(1, 21)), "b": list(range(21, 41)), "c": list(range(41, 61))}


class RecordingTracker:
    """What a batch asks of an ``MlflowTracker``, recorded."""

    experiment_id = "0"

    def __init__(self, unfinished: set[str] = frozenset()):
        self.unfinished = set(unfinished)
        self.logged: list[dict] = []
        self.sweeps: list[tuple] = []

    def trial_keys_with_unfinished_runs(self) -> set[str]:
        return set(self.unfinished)

    def sweep_run(self, sweep_id, search_round=None):
        self.sweeps.append((sweep_id, search_round))
        return f"sweep-{search_round}"

    def log_trial(self, result, tags, supersede_older=True, parent_run_id=None):
        self.logged.append(
            {
                "key": result.key,
                "tags": dict(tags),
                "supersede_older": supersede_older,
                "parent": parent_run_id,
            }
        )
        return f"run-{result.key}"

    def run_url(self, run_id, artifact=None):
        return f"http://mlflow.example/#/runs/{run_id}"


def _sweep(root: Path, rounds: dict[str, int] | None = None) -> SweepInputs:
    """Two trials of one embedding set registered as the current grid, the set's embeddings cached."""
    paths = DataPaths(root / "data")
    trials = ParamGrid.from_mapping(GRID).trials()
    paths.write_current_grid("grid.json", GRID, trials, rounds)
    documents = pd.DataFrame({"id": range(1, N_DOCUMENTS + 1), "text": [f"text {i}" for i in range(N_DOCUMENTS)]})
    inputs = SweepInputs.load(
        SweepConfig(paths=paths, workers=1, ground_truth_file=root / "labels.json"), documents, LABELS
    )
    cache = EmbeddingCache(paths.embeddings)
    key = cache.key(trials[0].embedding_set, inputs.corpus.content_hash, "english")
    cache.store(key, np.random.default_rng(0).normal(size=(N_DOCUMENTS, 16)).astype(np.float32), {})
    return inputs


def _scored(inputs: SweepInputs, key: str, score: float | None) -> ScoredTrial:
    params = inputs.trials[key]
    if score is None:
        return ScoredTrial(TrialResult(key, params, inputs.fingerprint, STATUS_FAILED, error="HDBSCAN broke"), None)
    labels = np.zeros(N_DOCUMENTS, dtype=np.int32)
    return ScoredTrial(TrialResult(key, params, inputs.fingerprint, STATUS_OK, metrics={"ari": score}), labels)


@pytest.fixture
def scripted_engine(monkeypatch):
    """``run_trials`` replaced by a script of finished trials: (key, score or None for a failure)."""
    script: list[tuple[str, float | None]] = []

    def run_trials(trials, sources, texts, sample, fingerprint, seed, language, cache_dir, on_result, **options):
        assert [key for key, _ in trials] == [key for key, _ in script] and len(sources) == 1
        options["meanwhile"]()
        for key, score in script:
            on_result(_scored(inputs_of[0], key, score))
        return SweepStats(trials=len(script), workers=1)

    inputs_of: list[SweepInputs] = []
    monkeypatch.setattr(trials_module, "run_trials", run_trials)
    return script, inputs_of


def test_each_trial_is_recorded_as_it_finishes_then_the_batch_figures(tmp_path, scripted_engine):
    script, inputs_of = scripted_engine
    inputs = _sweep(tmp_path, rounds={})
    inputs_of.append(inputs)
    first, second = list(inputs.trials)
    script += [(first, 0.5), (second, None)]
    tracker = RecordingTracker()

    outcomes = list(run_trial_batch(inputs, [first, second], tracker, "dagster-run-1"))

    *recorded, summary = outcomes
    assert [type(item) for item in recorded] == [RecordedTrial, RecordedTrial]
    assert [item.key for item in recorded] == [first, second] and [item.failed for item in recorded] == [False, True]
    assert recorded[0].run_url == f"http://mlflow.example/#/runs/run-{first}" and recorded[0].search_round is None
    assert summary == TrialBatchSummary(2, [second], "fast", SweepStats(trials=2, workers=1))
    # Stored with the runs that recorded them; nested under the sweep's run; never recorded before: no supersede.
    store = ResultStore(inputs.paths.results)
    assert store.load(first).tags == {"mlflow_run_id": f"run-{first}", "dagster_run_id": "dagster-run-1"}
    assert store.load(second).status == STATUS_FAILED and store.labels(first, N_DOCUMENTS) is not None
    assert [call["supersede_older"] for call in tracker.logged] == [False, False]
    assert {call["parent"] for call in tracker.logged} == {"sweep-None"} and len(tracker.sweeps) == 1
    assert tracker.logged[0]["tags"] == {
        "dagster_run_id": "dagster-run-1",
        "dagster_partition_key": first,
        "inputs_fingerprint": inputs.fingerprint,
    }


def test_a_partition_no_grid_planned_is_skipped_and_named(tmp_path, scripted_engine, caplog):
    """A UI backfill over a partition added by hand ("+ Add partition") runs the real trials and skips that one."""
    import logging

    script, inputs_of = scripted_engine
    inputs = _sweep(tmp_path, rounds={})
    inputs_of.append(inputs)
    first, _ = list(inputs.trials)
    script += [(first, 0.5)]
    log = logging.getLogger("test.unplanned")
    with caplog.at_level(logging.INFO, logger="test.unplanned"):
        *recorded, _ = run_trial_batch(inputs, [first, "typo"], RecordingTracker(), "run", log=log)
    assert [item.key for item in recorded] == [first]
    assert "1 partition(s) of this run were planned by no grid and are skipped: typo" in caplog.text
    assert "trials 1/1" in caplog.text  # the progress counts the trials run, so it finishes


def test_a_batch_that_would_not_fit_in_memory_is_refused_before_any_trial(tmp_path, scripted_engine, monkeypatch):
    from topic_pipeline.engine import capacity
    from topic_pipeline.errors import CapacityError

    script, inputs_of = scripted_engine
    inputs = _sweep(tmp_path, rounds={})
    inputs_of.append(inputs)
    first, second = list(inputs.trials)
    script += [(first, 0.5), (second, 0.4)]
    monkeypatch.setattr(capacity, "available_memory", lambda: 64 * 2**20)
    tracker = RecordingTracker()
    with pytest.raises(CapacityError, match="GiB of memory .* is available: .*export fewer documents"):
        next(iter(run_trial_batch(inputs, [first, second], tracker, "run")))
    assert tracker.logged == [] and not ResultStore(inputs.paths.results).path(first).exists()


def test_a_trial_recorded_before_supersedes_its_older_runs_and_carries_its_round(tmp_path, scripted_engine):
    script, inputs_of = scripted_engine
    probe = _sweep(tmp_path / "probe", rounds={})
    first, second = list(probe.trials)
    inputs = _sweep(tmp_path, rounds={first: 1, second: 2})
    inputs_of.append(inputs)
    # The first was stored before; the second has a run a stop left unfinished.
    ResultStore(inputs.paths.results).save(
        TrialResult(
            first,
            inputs.trials[first],
            "old",
            STATUS_OK,
            metrics={"ari": 0.1},
        ),
        np.zeros(N_DOCUMENTS, dtype=np.int32),
    )
    script += [(first, 0.4), (second, 0.6)]
    tracker = RecordingTracker(unfinished={second})

    recorded = [
        item for item in run_trial_batch(inputs, [first, second], tracker, "run-2") if isinstance(item, RecordedTrial)
    ]

    assert [call["supersede_older"] for call in tracker.logged] == [True, True]
    assert [call["parent"] for call in tracker.logged] == ["sweep-1", "sweep-2"]
    assert [call["tags"]["search_round"] for call in tracker.logged] == ["1", "2"]
    assert [item.search_round for item in recorded] == [1, 2]


def test_a_retry_skips_the_trials_its_earlier_attempts_recorded_and_runs_the_rest(tmp_path, scripted_engine, caplog):
    """A retry of a killed run: what the killed attempt stored is shown already (by it, or by recovery), so it is
    neither rerun nor yielded; a result it stored on other inputs is stale, so that trial runs again."""
    script, inputs_of = scripted_engine
    inputs = _sweep(tmp_path, rounds={})
    inputs_of.append(inputs)
    first, second = list(inputs.trials)
    store = ResultStore(inputs.paths.results)
    for key, fingerprint in ((first, inputs.fingerprint), (second, "older-inputs")):
        stored = _scored(inputs, key, 0.5).result
        stored.fingerprint, stored.tags = fingerprint, {"mlflow_run_id": "m", "dagster_run_id": "killed-attempt"}
        store.save(stored, np.zeros(N_DOCUMENTS, dtype=np.int32))
    script += [(second, 0.4)]
    tracker = RecordingTracker()
    log = logging.getLogger("test.retry")

    with caplog.at_level(logging.INFO, logger="test.retry"):
        *recorded, summary = run_trial_batch(
            inputs, [first, second], tracker, "retry", log=log, earlier_attempts={"root", "killed-attempt"}
        )

    assert [item.key for item in recorded] == [second] and summary.trials == 1
    assert [call["key"] for call in tracker.logged] == [second]
    assert store.load(first).tags["dagster_run_id"] == "killed-attempt"
    assert store.load(second).tags["dagster_run_id"] == "retry"
    assert (
        "1 trial(s) of this run are skipped, neither rerun nor materialised again: an earlier attempt of this run "
        "(killed-attempt) recorded them on the same inputs" in caplog.text
    )
    # A first attempt (no earlier ones) runs every trial it is given, as before.
    script[:] = [(first, 0.6), (second, 0.4)]
    *recorded, _ = run_trial_batch(inputs, [first, second], RecordingTracker(), "other-run")
    assert [item.key for item in recorded] == [first, second]


def test_failures_and_progress_are_logged_and_the_progress_file_kept_current(tmp_path, scripted_engine, caplog):
    script, inputs_of = scripted_engine
    inputs = _sweep(tmp_path, rounds={})
    inputs_of.append(inputs)
    first, second = list(inputs.trials)
    script += [(first, 0.7), (second, None)]
    progress_file = tmp_path / "progress.json"
    log = logging.getLogger("test_trials")

    with caplog.at_level(logging.INFO, logger="test_trials"):
        list(run_trial_batch(inputs, [first, second], RecordingTracker(), "run", log=log, progress_file=progress_file))

    messages = [record.getMessage() for record in caplog.records]
    assert f"{second} failed: HDBSCAN broke" in messages
    assert any(
        message.startswith("trials 2/2 (1 failed)") and f"best so far ari 0.700 ({first})" in message
        for message in messages
    )
    assert messages[-1].startswith("2 trials in 0.0s (1 failed)")
    progress = SweepProgress.load(progress_file)
    assert (progress.done, progress.failed, progress.best_key) == (2, 1, first)


def test_a_progress_file_that_cannot_be_written_stops_nothing(tmp_path, scripted_engine, caplog):
    script, inputs_of = scripted_engine
    inputs = _sweep(tmp_path, rounds={})
    inputs_of.append(inputs)
    script += [(key, 0.5) for key in inputs.trials]
    blocked = tmp_path / "a-file"
    blocked.write_text("")

    with caplog.at_level(logging.WARNING):
        outcomes = list(
            run_trial_batch(
                inputs, list(inputs.trials), RecordingTracker(), "run", progress_file=blocked / "progress.json"
            )
        )

    assert len(outcomes) == 3  # every trial recorded, and the batch's figures
    assert any(
        record.getMessage().startswith(f"progress file {blocked / 'progress.json'} not written")
        for record in caplog.records
    )


def test_a_consumer_that_stops_stops_the_sweep(tmp_path, monkeypatch):
    inputs = _sweep(tmp_path, rounds={})
    first = next(iter(inputs.trials))
    stopped = threading.Event()

    def run_trials(trials, sources, texts, sample, fingerprint, seed, language, cache_dir, on_result, **options):
        try:
            while True:
                on_result(_scored(inputs, first, 0.5))
        except SweepAbandoned:
            stopped.set()
            raise

    monkeypatch.setattr(trials_module, "run_trials", run_trials)
    batch = run_trial_batch(inputs, [first], RecordingTracker(), "run")
    assert next(batch).key == first
    batch.close()
    assert stopped.wait(timeout=10), "the sweep went on after its consumer stopped"


def test_a_real_batch_scores_and_stores_every_trial(tmp_path):
    inputs = _sweep(tmp_path, rounds={})
    keys = list(inputs.trials)

    *recorded, summary = run_trial_batch(inputs, keys, RecordingTracker(), "run")

    assert sorted(item.key for item in recorded) == sorted(keys)
    assert all(item.result.status == STATUS_OK and "ari" in item.result.metrics for item in recorded)
    assert summary.trials == 2 and summary.failed == [] and summary.stats.trials == 2
    status = grid_status(inputs.config, inputs.manifest, inputs.corpus.content_hash, inputs.labels.content_hash)
    assert status.pending == set() and status.fingerprint == inputs.fingerprint


def test_the_grid_status_names_what_is_due(tmp_path):
    inputs = _sweep(tmp_path, rounds={})
    first, second = list(inputs.trials)
    corpus_hash, labels_hash = inputs.corpus.content_hash, inputs.labels.content_hash
    [set_key] = inputs.manifest["embedding_sets"]

    status = grid_status(inputs.config, inputs.manifest, corpus_hash, labels_hash)
    assert status.ready_sets == {set_key} and status.unready_sets == []
    assert status.pending == {first, second} and status.runnable(in_flight={second}) == {first}

    ResultStore(inputs.paths.results).save(_scored(inputs, first, 0.3).result, np.zeros(N_DOCUMENTS, dtype=np.int32))
    status = grid_status(inputs.config, inputs.manifest, corpus_hash, labels_hash)
    assert status.pending == {second} and status.results[first].metrics == {"ari": 0.3}
    # Other corpus: no embeddings cached for it, no result current on it.
    other = grid_status(inputs.config, inputs.manifest, "other-corpus", labels_hash)
    assert (
        other.unready_sets == [set_key]
        and other.runnable(in_flight=set()) == set()
        and other.pending == {first, second}
    )


def test_what_a_stopped_run_finished(tmp_path):
    inputs = _sweep(tmp_path, rounds={})
    first, second = list(inputs.trials)
    store = ResultStore(inputs.paths.results)
    for key, run_id in ((first, "stopped"), (second, "other")):
        result = _scored(inputs, key, 0.5).result
        result.tags = {"dagster_run_id": run_id}
        store.save(result, np.zeros(N_DOCUMENTS, dtype=np.int32))

    assert list(trials_finished_by(store, "stopped", [first, second, "never-run"], set())) == [first]
    assert trials_finished_by(store, "stopped", [first, second], already_recorded={first}) == {}

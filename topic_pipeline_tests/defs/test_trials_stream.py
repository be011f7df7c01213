"""``as_they_finish``: the trials asset streams a sweep's trials from a thread as they finish."""

import threading
import time

import pytest

from topic_pipeline.engine.fast import SweepStats
from topic_pipeline.workflow.trials import SweepAbandoned, as_they_finish


def test_trials_arrive_in_order_then_the_stats():
    def sweep(on_result):
        for number in range(3):
            on_result(number)
        return SweepStats(trials=3)

    assert list(as_they_finish(sweep)) == [0, 1, 2, SweepStats(trials=3)]


def test_an_error_in_the_sweep_reaches_the_consumer():
    def sweep(on_result):
        on_result("first")
        raise ValueError("bad grid file 'grid.json'")

    stream = as_they_finish(sweep)
    assert next(stream) == "first"
    with pytest.raises(ValueError, match="grid.json"):
        next(stream)


def test_a_consumer_that_stops_stops_the_sweep():
    stopped = threading.Event()

    def sweep(on_result):
        try:
            for number in range(1000):
                on_result(number)
                time.sleep(0.01)  # trials take time to finish
        except SweepAbandoned:
            stopped.set()
            raise
        return SweepStats()

    stream = as_they_finish(sweep)
    assert next(stream) == 0
    stream.close()  # what Dagster does to a step's generator when the step stops
    assert stopped.wait(timeout=10), "the sweep went on after its consumer stopped"


def test_a_trial_partition_lists_its_mlflow_link_and_ranking_scores_first_rounded():
    """A partition shows its MLflow link, then the selection part's scores (what ranks), then the held-out and
    all-label families: not the three interleaved with the link last, and no 16-digit floats."""
    import dagster as dg

    from topic_pipeline.defs.assets.trials import trial_metadata
    from topic_pipeline.domain.results import STATUS_OK, TrialResult

    metrics = {"all_ari": 0.5, "heldout_ami": 0.25, "ami": 0.123456789, "heldout_ari": 0.4, "ari": 0.7071067811865476}
    result = TrialResult("k", {}, "fp", STATUS_OK, metrics=metrics, tags={"mlflow_run_id": "r"})
    shown = trial_metadata(result, "http://mlflow/#/experiments/1/runs/r?workflowType=machine_learning")
    assert list(shown)[:7] == ["mlflow_run", "status", "ari", "ami", "heldout_ari", "heldout_ami", "all_ari"]
    assert isinstance(shown["mlflow_run"], dg.UrlMetadataValue)
    assert shown["ari"] == 0.7071 and shown["ami"] == 0.1235
    assert "mlflow_run" not in trial_metadata(result)

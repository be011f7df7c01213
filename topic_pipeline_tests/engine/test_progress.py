"""A batch's progress record: counts, rate, best score, time left, and its file round trip."""

from topic_pipeline.engine.progress import SweepProgress


def test_progress_counts_the_best_score_and_failures_and_estimates_the_time_left(tmp_path):
    progress = SweepProgress(total=4, rank_by="ari", started_at=1000.0)
    assert progress.describe(now=1001.0) == "trials 0/4, 0.0/min, no score yet"
    progress.add("a", 0.4)
    progress.add("b", None)  # failed
    progress.add("c", 0.7)
    progress.add("d", float("nan"))  # a metric that could not be computed counts as failed, never as best
    assert (progress.done, progress.failed, progress.best_key, progress.best_score) == (4, 2, "c", 0.7)
    assert progress.finished
    assert progress.describe(now=1060.0) == "trials 4/4 (2 failed), 4.0/min, best so far ari 0.700 (c)"

    starting = SweepProgress(total=100, rank_by="ari", started_at=0.0)
    for key in "abcd":
        starting.add(key, 0.5)
    assert starting.seconds_left(now=60.0) is None  # 4 of 100: the workers' start still dominates the rate
    starting.add("e", 0.5)
    assert starting.seconds_left(now=60.0) == 60.0 * 95 / 5

    halfway = SweepProgress(total=10, rank_by="ami", round=2, started_at=0.0)
    for key in "abcde":
        halfway.add(key, 0.5)
    # Five trials in a minute: five more take about another minute.
    assert halfway.seconds_left(now=60.0) == 60.0
    assert halfway.describe(now=60.0) == "round 2: trials 5/10, 5.0/min, best so far ami 0.500 (a), about 60 s left"


def test_progress_round_trips_through_its_file_and_a_missing_or_foreign_file_reads_as_none(tmp_path):
    path = tmp_path / "progress.json"
    assert SweepProgress.load(path) is None
    progress = SweepProgress(total=3, rank_by="ari", round=1)
    progress.add("a", 0.25)
    progress.save(path)
    assert SweepProgress.load(path) == progress
    path.write_text('{"something": "else"}')
    assert SweepProgress.load(path) is None
    path.write_text('{"total": 3, "rank')  # never half-written (atomic writes), but never a crash either
    assert SweepProgress.load(path) is None


def test_best_so_far_starts_from_earlier_batches_and_never_falls():
    """A search's third round must not show a lower "best" than its second: earlier trials count."""
    progress = SweepProgress(total=2, rank_by="ari", round=3, started_at=0.0)
    progress.add_earlier("round2-leader", 0.795)
    progress.add_earlier("failed-earlier", None)
    progress.add("x", 0.777)
    assert (progress.done, progress.best_key, progress.best_score) == (1, "round2-leader", 0.795)
    progress.add("y", 0.80)
    assert progress.best_text() == "best so far ari 0.800 (y)"

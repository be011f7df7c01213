"""Leaderboard ranking, the per-trial result store and atomic JSON writes (fast; no models)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from topic_pipeline.domain.results import (
    STATUS_FAILED,
    STATUS_MISSING,
    STATUS_OK,
    TrialResult,
    inputs_fingerprint,
    results_digest,
)
from topic_pipeline.inputs.grid import ParamGrid
from topic_pipeline.inputs.ground_truth import GroundTruth
from topic_pipeline.scoring.leaderboard import (
    build_leaderboard,
    configurations,
    leaderboard_warnings,
    read_leaderboard_warnings,
    tie_break_order,
    to_markdown,
    write_leaderboard_warnings,
)
from topic_pipeline.scoring.metrics import METRIC_NAMES, REPORTED_NAMES
from topic_pipeline.storage.files import read_json, remove_stale_temporaries, write_atomically, write_json
from topic_pipeline.storage.paths import DataPaths
from topic_pipeline.storage.results import ResultStore

FP = "f" * 16


def grid_trials(n: int = 6) -> dict[str, dict]:
    trials = ParamGrid.from_mapping({"hdbscan_min_cluster_size": list(range(2, 2 + n))}).trials()
    return {t.key: t.to_dict() for t in trials}


def metrics(**overrides: float) -> dict[str, float]:
    values = {name: 0.5 for name in METRIC_NAMES}
    values.update(outlier_fraction=0.1, topic_count=4.0, labelled_documents=20.0)
    values.update(overrides)
    return values


def ok(key: str, params: dict, finished_at: float = 1.0, **overrides: float) -> TrialResult:
    return TrialResult(
        key,
        params,
        FP,
        STATUS_OK,
        metrics=metrics(**overrides),
        finished_at=finished_at,
        tags={"mlflow_run_id": f"run-{key[-3:]}"},
    )


def failed(key: str, params: dict, error: str = "ValueError: boom") -> TrialResult:
    return TrialResult(key, params, FP, STATUS_FAILED, error=error, finished_at=2.0)


# --- ranking --------------------------------------------------------------------------------------


def test_ranked_by_chosen_metric_with_failed_and_missing_after() -> None:
    trials = grid_trials(6)
    k = list(trials)
    results = {
        k[0]: ok(k[0], trials[k[0]], ari=0.2, nmi=0.9),
        k[1]: failed(k[1], trials[k[1]], "ValueError: k must be less than n"),
        k[2]: ok(k[2], trials[k[2]], ari=0.8, nmi=0.1),
        k[3]: None,  # not run on these inputs
        # k[4] absent from results altogether: missing as well
        k[5]: ok(k[5], trials[k[5]], ari=0.5, nmi=0.5),
    }
    board = build_leaderboard(trials, results)
    assert board["trial"].tolist() == [k[2], k[5], k[0], k[1], k[3], k[4]]
    assert board["status"].tolist() == [STATUS_OK] * 3 + [STATUS_FAILED, STATUS_MISSING, STATUS_MISSING]
    assert board["rank"].tolist()[:3] == [1, 2, 3]
    assert board["rank"].iloc[3:].isna().all()
    assert str(board["rank"].dtype) == "Int64"
    # Error text kept for the failed trial; metrics empty for failed and missing ones.
    assert board.loc[board["trial"] == k[1], "error"].item() == "ValueError: k must be less than n"
    assert board.loc[board["status"] != STATUS_OK, "ari"].isna().all()
    assert board.loc[board["trial"] == k[2], "mlflow_run_id"].item() == f"run-{k[2][-3:]}"
    # Params are columns.
    assert board.loc[board["trial"] == k[2], "hdbscan_min_cluster_size"].item() == 4
    assert list(board.columns[:3]) == ["rank", "trial", "status"]
    for name in REPORTED_NAMES:
        assert name in board.columns

    by_nmi = build_leaderboard(trials, results, rank_by="nmi")
    assert by_nmi["trial"].tolist()[:3] == [k[0], k[5], k[2]]


def test_ties_broken_by_next_metric_then_trial_key() -> None:
    trials = grid_trials(5)
    k = list(trials)
    results = {
        # Equal ARI: AMI decides.
        k[0]: ok(k[0], trials[k[0]], ari=0.7, ami=0.3),
        k[1]: ok(k[1], trials[k[1]], ari=0.7, ami=0.6),
        # Equal ARI and AMI: NMI (next in METRIC_NAMES) decides, even though f1_macro points the other way.
        k[2]: ok(k[2], trials[k[2]], ari=0.9, ami=0.5, nmi=0.2, f1_macro=0.9),
        k[3]: ok(k[3], trials[k[3]], ari=0.9, ami=0.5, nmi=0.4, f1_macro=0.1),
        # Equal to k[0] on every metric: the trial key decides (ascending).
        k[4]: ok(k[4], trials[k[4]], ari=0.7, ami=0.3),
    }
    board = build_leaderboard(trials, results)
    assert board["trial"].tolist() == [k[3], k[2], k[1], k[0], k[4]]
    assert board["rank"].tolist() == [1, 2, 3, 4, 5]
    # With another primary metric the rest keep METRIC_NAMES order: rank by ami, then ari.
    by_ami = build_leaderboard(trials, results, rank_by="ami")
    assert by_ami["trial"].tolist() == [k[1], k[3], k[2], k[0], k[4]]


def test_tie_break_order() -> None:
    assert tie_break_order("ari") == list(METRIC_NAMES)
    assert tie_break_order("f1_macro") == ["f1_macro", *[m for m in METRIC_NAMES if m != "f1_macro"]]


@pytest.mark.parametrize("name", ["accuracy", "outlier_fraction", "topic_count", "ARI", ""])
def test_unknown_ranking_metric(name: str) -> None:
    trials = grid_trials(1)
    with pytest.raises(ValueError) as info:
        build_leaderboard(trials, {}, rank_by=name)
    message = str(info.value)
    assert f"'{name}'" in message
    for choice in METRIC_NAMES:
        assert choice in message


def test_all_unscored_and_empty_grids() -> None:
    trials = grid_trials(2)
    k = list(trials)
    board = build_leaderboard(trials, {k[0]: failed(k[0], trials[k[0]])})
    assert board["trial"].tolist() == [k[0], k[1]]
    assert board["status"].tolist() == [STATUS_FAILED, STATUS_MISSING]
    assert board["rank"].isna().all()
    empty = build_leaderboard({}, {})
    assert len(empty) == 0
    assert "rank" in empty.columns


def test_markdown_lists_configurations_then_unscored_trials() -> None:
    trials = grid_trials(4)
    k = list(trials)
    results = {
        k[0]: ok(k[0], trials[k[0]], ari=0.25, ami=0.5, nmi=0.75, f1_macro=0.125, topic_count=7.0),
        k[1]: failed(k[1], trials[k[1]]),
        k[2]: ok(k[2], trials[k[2]], ari=0.9),
    }
    lines = to_markdown(build_leaderboard(trials, results)).splitlines()
    assert lines[0] == (
        "| rank | configuration (best seed) | ranked by | seeds | ari mean | std | min - max "
        "| in-sample estimate [95 % CI] | ami | nmi | f1_macro | outlier_fraction | topic_count |"
    )
    # With a held-out part, the estimate is named for it.
    held_out = {k[0]: ok(k[0], trials[k[0]], heldout_ari=0.2)}
    assert "| held-out estimate [95 % CI] |" in to_markdown(build_leaderboard(trials, held_out)).splitlines()[0]
    assert lines[2].startswith(f"| 1 | `{k[2]}` | 0.900 | 1 | 0.900 |")
    assert lines[3] == f"| 2 | `{k[0]}` | 0.250 | 1 | 0.250 |  |  |  | 0.500 | 0.750 | 0.125 | 0.100 | 7 |"
    assert lines[5:] == [
        "| trial | status | error |",
        "|---|---|---|",
        f"| `{k[1]}` | failed | ValueError: boom |",
        f"| `{k[3]}` | missing |  |",
    ]


def test_markdown_limit_keeps_unscored_rows_and_counts_hidden_configurations() -> None:
    trials = grid_trials(5)
    k = list(trials)
    results = {key: ok(key, trials[key], ari=i / 10) for i, key in enumerate(k[:4])}
    text = to_markdown(
        build_leaderboard(trials, results), limit=2, link=lambda key: f"/assets/grid_trials?partition={key}"
    )
    assert f"[`{k[3]}`](/assets/grid_trials?partition={k[3]})" in text and f"`{k[2]}`" in text
    assert f"`{k[1]}`" not in text and f"`{k[0]}`" not in text
    assert f"`{k[4]}` | missing" in text
    assert "2 more configuration(s) in the CSV." in text


def test_markdown_shows_the_search_round_of_each_configuration_when_a_search_proposed_them() -> None:
    trials = grid_trials(3)
    k = list(trials)
    results = {key: ok(key, trials[key], ari=i / 10) for i, key in enumerate(k)}
    lines = to_markdown(build_leaderboard(trials, results, rounds={k[0]: 1, k[1]: 1, k[2]: 2})).splitlines()
    assert lines[0].startswith("| rank | configuration (best seed) | round | ranked by |")
    assert lines[2].startswith(f"| 1 | `{k[2]}` | 2 | 0.200 |")


def test_seed_replicates_fold_into_one_row_per_configuration_with_the_value_they_rank_by() -> None:
    """Rank 6 of the trials can score above rank 1: the rows are ranked by their configuration's seed mean,
    which the ``ranking_value`` column shows; folded, the configurations read in order."""
    default = ParamGrid.from_mapping({}).trials()[0]
    base = dataclasses.replace(default, umap_n_neighbors=10)
    other = dataclasses.replace(default, umap_n_neighbors=20)
    trials, results = {}, {}
    for configuration, scores in ((base, [0.79, 0.80, 0.78]), (other, [0.95, 0.40])):
        for replicate, ari in enumerate(scores):
            params = dataclasses.replace(configuration, seed_replicate=replicate)
            trials[params.key] = params.to_dict()
            results[params.key] = ok(params.key, params.to_dict(), ari=ari)
    board = build_leaderboard(trials, results)
    assert board["ranking_value"].tolist()[:3] == pytest.approx([0.79] * 3)
    assert board.loc[3, "ari"] == 0.95 and board.loc[3, "ranking_value"] == pytest.approx(0.675)
    folded = configurations(board, "ari")
    assert folded["configuration"].tolist() == [base.configuration.key, other.configuration.key]
    assert folded["rank"].tolist() == [1, 2] and folded["seeds"].tolist() == [3, 2]
    assert folded.loc[0, "trial"] == board.loc[0, "trial"] and folded.loc[0, "ari"] == pytest.approx(0.79)
    assert folded.loc[1, ["min", "max"]].tolist() == [0.40, 0.95] and folded.loc[1, "unstable"]
    assert configurations(board.iloc[0:0], "ari").empty


# --- digests and fingerprints ---------------------------------------------------------------------


def test_results_digest_tracks_finished_at() -> None:
    trials = grid_trials(2)
    k = list(trials)
    results = {k[0]: ok(k[0], trials[k[0]], finished_at=100.0), k[1]: None}
    digest = results_digest("grid", FP, results)
    assert results_digest("grid", FP, dict(reversed(list(results.items())))) == digest
    rerun = {k[0]: ok(k[0], trials[k[0]], finished_at=101.0), k[1]: None}
    assert results_digest("grid", FP, rerun) != digest
    now_run = {k[0]: results[k[0]], k[1]: ok(k[1], trials[k[1]], finished_at=5.0)}
    assert results_digest("grid", FP, now_run) != digest
    assert results_digest("other grid", FP, results) != digest
    assert results_digest("grid", "other", results) != digest


def test_inputs_fingerprint_changes_with_each_input() -> None:
    def fingerprint(*args, holdout_fraction: float = 0.3, holdout_seed: int = 42) -> str:
        return inputs_fingerprint(*args, holdout_fraction=holdout_fraction, holdout_seed=holdout_seed)

    base = fingerprint("corpus", "labels", 42, "english")
    assert base == fingerprint("corpus", "labels", 42, "english")
    assert (
        len(
            {
                base,
                fingerprint("corpus2", "labels", 42, "english"),
                fingerprint("corpus", "labels2", 42, "english"),
                fingerprint("corpus", "labels", 43, "english"),
                fingerprint("corpus", "labels", 42, "german"),
                fingerprint("corpus", "labels", 42, "english", holdout_fraction=0.2),
                fingerprint("corpus", "labels", 42, "english", holdout_seed=7),
                fingerprint("corpus", "labels", 42, "english", holdout_fraction=0),
            }
        )
        == 8
    )
    # Without a split every metric covers all labelled documents, as before the split existed: its seed
    # changes nothing, and results recorded then stay current.
    assert fingerprint("corpus", "labels", 42, "english", holdout_fraction=0) == fingerprint(
        "corpus", "labels", 42, "english", holdout_fraction=0, holdout_seed=7
    )
    from topic_pipeline.domain.versions import TRIAL_LIBRARIES, cache_key

    before_the_split = cache_key(
        "inputs", {"corpus": "corpus", "ground_truth": "labels", "seed": 42, "stopwords": "english"}, TRIAL_LIBRARIES
    )
    assert fingerprint("corpus", "labels", 42, "english", holdout_fraction=0) == before_the_split


# --- ResultStore ----------------------------------------------------------------------------------


def test_result_store_save_load_current(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "results")
    trials = grid_trials(1)
    (key,) = trials
    assert store.load(key) is None
    result = ok(key, trials[key], finished_at=123.5, ari=0.42)
    store.save(result)
    assert store.path(key) == tmp_path / "results" / f"{key}.json"
    assert store.load(key) == result
    assert store.current(key, FP, trials[key]) == result
    assert store.current(key, "0" * 16, trials[key]) is None  # computed from other inputs: stale
    other_model = {**trials[key], "embedding_model": "another-org/" + trials[key]["embedding_model"].split("/")[-1]}
    assert store.current(key, FP, other_model) is None  # same key, different parameters: not this trial's result
    assert store.current("no-such-key", FP, trials[key]) is None
    # Saving again replaces the row.
    store.save(failed(key, trials[key], "RuntimeError: later"))
    assert store.load(key).status == STATUS_FAILED
    assert store.load(key).error == "RuntimeError: later"
    assert [p.name for p in (tmp_path / "results").iterdir()] == [f"{key}.json"]


def test_result_store_ignores_unknown_fields(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    result = failed("k1", {})
    row = result.to_dict() | {"added_in_a_later_version": 1}
    (tmp_path / "k1.json").write_text(json.dumps(row))
    assert store.load("k1") == result


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b'{"key": "k1"}', b"[]", b'"text"', b"null", b"\xff\xfe\x00garbage"],
    ids=["malformed", "empty", "missing-fields", "list", "string", "null", "not-utf8"],
)
def test_result_store_unreadable_file_is_none(tmp_path: Path, content: bytes) -> None:
    store = ResultStore(tmp_path)
    store.path("k1").write_bytes(content)
    assert store.load("k1") is None
    assert store.current("k1", FP, {}) is None


def test_result_store_keeps_a_trials_labels_and_rejects_other_shapes(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    result = ok("k1", {}, ari=0.5)
    labels = np.array([0, 1, -1, 1, 0], dtype=np.int64)
    store.save(result, labels)
    np.testing.assert_array_equal(store.labels("k1", 5), labels)
    assert store.labels("k1", 6) is None  # another corpus's labels
    assert store.labels("k2", 5) is None
    store.labels_path("k1").write_bytes(b"not an npy file")
    assert store.labels("k1", 5) is None


# --- storage --------------------------------------------------------------------------------------


def test_write_json_roundtrip_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "value.json"
    write_json(target, {"b": [1, 2], "a": Path("/x")})
    assert read_json(target) == {"a": "/x", "b": [1, 2]}
    write_json(target, {"c": 3})
    assert read_json(target) == {"c": 3}
    assert [p.name for p in target.parent.iterdir()] == ["value.json"]


def test_failed_write_keeps_previous_file_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "value.json"
    write_json(target, {"version": 1})
    before = target.read_bytes()

    def half_then_crash(stream) -> None:
        stream.write(b'{"version": 2, "trunc')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, half_then_crash)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["value.json"]

    # Interrupts (BaseException) clean up too.
    def interrupted(stream) -> None:
        stream.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, interrupted)
    assert read_json(target) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["value.json"]


def test_failed_first_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "fresh.json"

    def crash(stream) -> None:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        write_atomically(target, crash)
    assert list(tmp_path.iterdir()) == []


def test_only_old_temporary_files_are_removed(tmp_path: Path) -> None:
    import os
    import time

    old = tmp_path / "results" / ".k1.json.abc.topic-pipeline.tmp"
    young = tmp_path / "cache" / ".umap-x.npz.def.topic-pipeline.tmp"
    # Not ours, however old: a result, a user's file without the dot, a user's hidden .tmp file beside ours.
    kept = [young, tmp_path / "results" / "k1.json", tmp_path / "results" / "notes.tmp", tmp_path / ".editor-swap.tmp"]
    for path in [old, *kept]:
        path.parent.mkdir(exist_ok=True)
        path.write_text("x")
    for path in [old, *kept[1:]]:
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    assert remove_stale_temporaries(tmp_path, 3600) == [old]
    assert not old.exists() and all(path.exists() for path in kept)


# --- warnings about the top of a leaderboard ------------------------------------------------------

WHERE = "ground truth file 'labels.json'"
# Three classes of two documents: pairs to score, the smallest sample that can rank trials.
PAIRED = GroundTruth.from_mapping({"a": [1, 2], "b": [3, 4], "c": [5, 6]})
ONE_PER_CLASS = GroundTruth.from_mapping({"a": [1], "b": [2], "c": [3]})


def test_a_normal_leaderboard_has_no_warnings() -> None:
    trials = grid_trials(3)
    k = list(trials)
    results = {
        k[0]: ok(k[0], trials[k[0]], ari=0.4),
        k[1]: ok(k[1], trials[k[1]], ari=0.7),
        k[2]: failed(k[2], trials[k[2]]),
    }
    assert leaderboard_warnings(build_leaderboard(trials, results), "ari", PAIRED, WHERE) == []
    # Leaders tying is normal (trials that cluster the labelled documents alike score alike).
    results[k[2]] = ok(k[2], trials[k[2]], ari=0.7)
    assert leaderboard_warnings(build_leaderboard(trials, results), "ari", PAIRED, WHERE) == []
    # Nothing scored: nothing to warn about the top.
    assert leaderboard_warnings(build_leaderboard(trials, {}), "ari", PAIRED, WHERE) == []


def test_a_first_trial_without_topics_is_named_with_what_to_do() -> None:
    trials = grid_trials(3)
    k = list(trials)
    results = {
        k[0]: ok(k[0], trials[k[0]], ari=0.9, topic_count=0.0, outlier_fraction=1.0),
        k[1]: ok(k[1], trials[k[1]], ari=0.8, topic_count=3.0, outlier_fraction=1.0),  # labelled ones all outliers
        k[2]: ok(k[2], trials[k[2]], ari=0.3, topic_count=4.0),
    }
    board = build_leaderboard(trials, results)
    (warning,) = leaderboard_warnings(board, "ari", PAIRED, WHERE)
    assert warning.startswith(
        f"trial '{k[0]}' ranks first but found no topic: HDBSCAN left every document an outlier (-1)"
    )
    assert "lower hdbscan_min_cluster_size or hdbscan_min_samples" in warning
    assert warning.endswith(f"is '{k[2]}' (rank 3): export it with --trial {k[2]}")

    # Topics, but none holding a labelled document.
    del results[k[0]]
    (warning,) = leaderboard_warnings(build_leaderboard(trials, results), "ari", PAIRED, WHERE)
    assert warning.startswith(f"trial '{k[1]}' ranks first but left every labelled document an outlier (-1)")


def test_one_document_per_class_cannot_rank_trials() -> None:
    trials = grid_trials(3)
    k = list(trials)
    # With singleton classes ARI is 1 for any trial that keeps the labelled documents apart, else 0.
    results = {
        k[0]: ok(k[0], trials[k[0]], ari=1.0, topic_count=0.0, outlier_fraction=1.0),
        k[1]: ok(k[1], trials[k[1]], ari=1.0),
        k[2]: ok(k[2], trials[k[2]], ari=0.0),
    }
    board = build_leaderboard(trials, results)
    no_topic, sample = leaderboard_warnings(board, "ari", ONE_PER_CLASS, WHERE)
    assert no_topic.startswith(f"trial '{board['trial'].iloc[0]}' ranks first but found no topic")
    assert sample.startswith(f"{WHERE} cannot rank trials: each of its 3 classes holds one document")
    assert f"trial '{board['trial'].iloc[0]}'" in sample
    assert sample.endswith("Label at least two documents per class, better several, and rerun the sweep")


def test_every_scored_trial_tying_on_the_ranking_metric_warns_unless_they_share_a_clustering() -> None:
    trials = grid_trials(3)
    k = list(trials)
    results = {key: ok(key, trials[key], ari=1.0, ami=0.9 - i / 10) for i, key in enumerate(k)}
    board = build_leaderboard(trials, results)
    (warning,) = leaderboard_warnings(board, "ari", PAIRED, WHERE)
    assert warning.startswith(
        f"all 3 scored trials score ari 1.000, trial '{k[0]}' among them: the labelled sample in {WHERE}"
    )
    assert "Label more documents, several per class" in warning
    # Ranked by another metric that does separate them: no warning.
    assert leaderboard_warnings(build_leaderboard(trials, results, rank_by="ami"), "ami", PAIRED, WHERE) == []
    # Trials that differ only in the n-gram range share one clustering: their tie is no news.
    ngrams = {t.key: t.to_dict() for t in ParamGrid.from_mapping({"n_gram_max": [1, 2, 3]}).trials()}
    tied = {key: ok(key, params, ari=0.6) for key, params in ngrams.items()}
    assert leaderboard_warnings(build_leaderboard(ngrams, tied), "ari", PAIRED, WHERE) == []
    # Unless an outlier strategy compares c-TF-IDF vectors: then the n-gram range changes the labels, and a tie
    # of different clusterings is news again.
    for strategy, warns in (("c-tf-idf", True), ("distributions", True), ("embeddings", False)):
        grid = ParamGrid.from_mapping(
            {"n_gram_max": [1, 2], "outlier_reduction": [strategy], "outlier_threshold": [0.1]}
        )
        variants = {t.key: t.to_dict() for t in grid.trials()}
        tied = {key: ok(key, params, ari=0.6) for key, params in variants.items()}
        assert bool(leaderboard_warnings(build_leaderboard(variants, tied), "ari", PAIRED, WHERE)) == warns, strategy


def test_warnings_beside_the_csv_are_read_back_only_for_that_csv(tmp_path: Path) -> None:
    paths = DataPaths(tmp_path)
    assert read_leaderboard_warnings(paths) == []  # no leaderboard yet
    csv_path = paths.leaderboard / "leaderboard.csv"
    write_atomically(csv_path, lambda stream: stream.write(b"rank,trial\n1,a\n"))
    write_leaderboard_warnings(paths, ["trial 'a' ranks first but found no topic"])
    assert read_leaderboard_warnings(paths) == ["trial 'a' ranks first but found no topic"]
    # A newer CSV whose warnings were never written: the old ones describe another leaderboard.
    write_atomically(csv_path, lambda stream: stream.write(b"rank,trial\n1,b\n"))
    assert read_leaderboard_warnings(paths) == []
    write_leaderboard_warnings(paths, [])
    assert read_leaderboard_warnings(paths) == []
    (paths.leaderboard / "warnings.json").write_text("{not json")
    assert read_leaderboard_warnings(paths) == []


def test_the_trust_summary_beside_the_csv_is_read_back_only_for_that_csv(tmp_path: Path) -> None:
    from topic_pipeline.scoring.leaderboard import read_leaderboard_trust

    paths = DataPaths(tmp_path)
    assert read_leaderboard_trust(paths) is None
    csv_path = paths.leaderboard / "leaderboard.csv"
    write_atomically(csv_path, lambda stream: stream.write(b"rank,trial\n1,a\n"))
    write_leaderboard_warnings(paths, [], {"rank_by": "ari", "heldout_score": 0.5})
    assert read_leaderboard_trust(paths) == {"rank_by": "ari", "heldout_score": 0.5}
    write_atomically(csv_path, lambda stream: stream.write(b"rank,trial\n1,b\n"))
    assert read_leaderboard_trust(paths) is None
    write_leaderboard_warnings(paths, ["w"])
    assert read_leaderboard_trust(paths) is None and read_leaderboard_warnings(paths) == ["w"]

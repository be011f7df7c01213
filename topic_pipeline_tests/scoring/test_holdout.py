"""The held-out split, scores per part, seed-robust ranking, bootstrap intervals (fast; no models)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from topic_pipeline.domain.results import STATUS_OK, TrialResult, inputs_fingerprint
from topic_pipeline.domain.trials import TrialParams
from topic_pipeline.engine.sweep import LabelledSample, labels_metrics
from topic_pipeline.inputs.grid import ParamGrid
from topic_pipeline.inputs.ground_truth import GroundTruth
from topic_pipeline.scoring.confidence import (
    CI_HIGH,
    CI_LOW,
    ESTIMATE,
    LOWER,
    NOT_DISTINGUISHABLE,
    RECOMMENDED,
    VERSUS,
    add_intervals,
    bootstrap_draws,
    percentile_interval,
    resampled_metric,
    trust_lines,
    trust_summary,
)
from topic_pipeline.scoring.holdout import MIN_PER_CLASS_AND_SIDE, HoldoutSplit, score_parts, split_labels
from topic_pipeline.scoring.leaderboard import build_leaderboard
from topic_pipeline.scoring.metrics import METRIC_NAMES, score
from topic_pipeline.search.coarse_to_fine import SearchSpec, advance, start_search


def labels_of_sizes(*sizes: int, start: int = 1000) -> GroundTruth:
    mapping, next_id = {}, start
    for index, size in enumerate(sizes):
        mapping[f"class{index}"] = list(range(next_id, next_id + size))
        next_id += size + 7  # ids need not be contiguous
    return GroundTruth.from_mapping(mapping)


# --- the split -------------------------------------------------------------------------------------


def test_split_is_stratified_disjoint_complete_and_deterministic() -> None:
    labels = labels_of_sizes(40, 100, 37)
    split = split_labels(labels, 0.3, seed=5)
    assert split.active and split.warning is None
    by_class = labels.to_mapping()
    for ids, expected in zip(by_class.values(), (12, 30, 11)):
        assert len(split.heldout_ids & set(ids)) == expected  # round(0.3 * size) of every class
    assert split.heldout_ids <= set(labels.cluster_of)
    assert split.selection_count + len(split.heldout_ids) == len(labels.cluster_of)
    assert split_labels(labels, 0.3, seed=5) == split
    assert split_labels(labels, 0.3, seed=6).heldout_ids != split.heldout_ids
    assert len(split_labels(labels, 0.5, seed=5).heldout_ids) == 20 + 50 + 19

    ids = np.array(sorted(labels.cluster_of), dtype=np.int64)
    mask = split.mask(ids)
    assert mask.sum() == len(split.heldout_ids)
    assert set(ids[mask]) == split.heldout_ids and not set(ids[~mask]) & split.heldout_ids


def test_a_sample_too_small_to_split_falls_back_with_a_warning_and_zero_means_no_split() -> None:
    labels = labels_of_sizes(100, 100, 25)  # 0.3 * 25 rounds to 8 held out: fewer than 10
    split = split_labels(labels, 0.3, seed=1)
    assert not split.active and split.mask(np.array([1000])) is None
    assert split.selection_count == 225
    assert f"1 of 3 classes are too small to keep {MIN_PER_CLASS_AND_SIDE} documents on each side" in split.warning
    # 32 is the smallest class that splits at 30 %: 10 held out (9.6 rounded), 22 kept; 31 holds out 9.
    assert "class 'class2' has 25" in split.warning and "Label at least 32 documents per class" in split.warning
    assert not split_labels(labels_of_sizes(32, 32), 0.3).warning
    assert split_labels(labels_of_sizes(32, 31), 0.3).warning
    none = split_labels(labels, 0.0)
    assert not none.active and none.warning is None
    with pytest.raises(ValueError, match="below 1"):
        split_labels(labels, 1.0)


def test_the_split_is_part_of_the_inputs_fingerprint() -> None:
    def fingerprint(fraction: float, seed: int) -> str:
        return inputs_fingerprint("corpus", "labels", 42, "english", holdout_fraction=fraction, holdout_seed=seed)

    assert fingerprint(0.3, 42) == fingerprint(0.3, 42)
    assert len({fingerprint(0.3, 42), fingerprint(0.2, 42), fingerprint(0.3, 7), fingerprint(0.0, 42)}) == 4


def test_the_settings_take_the_split_from_the_environment(monkeypatch) -> None:
    from topic_pipeline.definitions import build_resources
    from topic_pipeline.errors import TopicPipelineError

    monkeypatch.delenv("TOPIC_PIPELINE_HOLDOUT_FRACTION", raising=False)
    monkeypatch.delenv("TOPIC_PIPELINE_HOLDOUT_SEED", raising=False)
    default = build_resources()["settings"]
    assert (default.holdout_fraction, default.holdout_seed) == (0.3, 42)
    monkeypatch.setenv("TOPIC_PIPELINE_HOLDOUT_FRACTION", "0.25")
    monkeypatch.setenv("TOPIC_PIPELINE_HOLDOUT_SEED", "7")
    settings = build_resources()["settings"]
    assert settings.holdout_split(labels_of_sizes(80, 80)) == split_labels(labels_of_sizes(80, 80), 0.25, 7)
    assert settings.inputs_fingerprint("c", "l") != default.inputs_fingerprint("c", "l")
    for bad in ("1", "-0.1", "a third"):
        monkeypatch.setenv("TOPIC_PIPELINE_HOLDOUT_FRACTION", bad)
        with pytest.raises(TopicPipelineError, match=f"TOPIC_PIPELINE_HOLDOUT_FRACTION='{bad}'"):
            build_resources()


# --- scores per part -------------------------------------------------------------------------------


def test_each_part_is_scored_from_the_same_labels() -> None:
    rng = np.random.default_rng(0)
    classes = np.repeat(np.arange(4), 30)
    predicted = np.where(rng.random(120) < 0.7, classes, rng.integers(-1, 6, 120))
    heldout = np.zeros(120, dtype=bool)
    heldout[rng.permutation(120)[:36]] = True
    metrics = score_parts(classes, predicted, heldout, topic_count=9)
    assert {k: metrics[k] for k in score(classes, predicted)} == score(
        classes[~heldout], predicted[~heldout], topic_count=9
    )
    assert metrics["heldout_ari"] == score(classes[heldout], predicted[heldout])["ari"]
    assert metrics["all_f1_macro"] == score(classes, predicted)["f1_macro"]
    assert metrics["labelled_documents"] == 84 and metrics["heldout_labelled_documents"] == 36
    assert metrics["all_labelled_documents"] == 120
    assert "heldout_topic_count" not in metrics and metrics["topic_count"] == 9
    # No split: the plain names cover every labelled document, and nothing else is recorded.
    assert score_parts(classes, predicted, None, topic_count=9) == score(classes, predicted, topic_count=9)


# --- ranking never reads held-out labels -----------------------------------------------------------


def _synthetic_trials(n_configurations: int = 12, seeds: int = 3):
    """Trials of a broad round on 150 labelled documents, the first configurations re-run with more seeds."""
    rng = np.random.default_rng(3)
    corpus_size = 400
    positions = np.sort(rng.choice(corpus_size, 150, replace=False))
    classes = rng.integers(0, 5, 150)
    truth = np.full(corpus_size, -2)
    truth[positions] = classes
    base = ParamGrid.from_mapping({"hdbscan_min_cluster_size": list(range(2, 2 + n_configurations))}).trials()
    trials: list[TrialParams] = []
    labels: dict[str, np.ndarray] = {}
    for index, params in enumerate(base):
        for replicate in range(seeds if index < 4 else 1):
            trial = dataclasses.replace(params, seed_replicate=replicate)
            noise = 0.2 + 0.5 * rng.random()  # quality differs by configuration and seed
            topics = np.where(rng.random(corpus_size) < noise, rng.integers(-1, 8, corpus_size), np.maximum(truth, 0))
            trials.append(trial)
            labels[trial.key] = topics.astype(np.int32)
    return trials, labels, positions, classes


def _results(trials, labels, sample) -> dict[str, TrialResult]:
    return {
        t.key: TrialResult(t.key, t.to_dict(), "fp", STATUS_OK, metrics=labels_metrics(labels[t.key], sample))
        for t in trials
    }


def test_shuffling_the_held_out_labels_changes_no_ranking_decision() -> None:
    trials, labels, positions, classes = _synthetic_trials()
    heldout = np.zeros(len(classes), dtype=bool)
    heldout[np.random.default_rng(1).permutation(len(classes))[:45]] = True
    shuffled = classes.copy()
    shuffled[heldout] = np.random.default_rng(2).permutation(classes[heldout])
    assert (shuffled != classes).any()
    original = _results(trials, labels, LabelledSample(positions, classes, heldout))
    other = _results(trials, labels, LabelledSample(positions, shuffled, heldout))
    # The held-out scores did change: the test would notice a ranking that read them.
    assert any(original[k].metrics["heldout_ari"] != other[k].metrics["heldout_ari"] for k in original)

    grid = {t.key: t.to_dict() for t in trials}
    for rank_by in METRIC_NAMES:
        for stability in (False, True):
            a = build_leaderboard(grid, original, rank_by=rank_by, rank_by_stability=stability)
            b = build_leaderboard(grid, other, rank_by=rank_by, rank_by_stability=stability)
            assert a["trial"].tolist() == b["trial"].tolist()
            pd.testing.assert_frame_equal(
                a[["rank", "seed_averaged", f"{rank_by}_mean", "unstable"]],
                b[["rank", "seed_averaged", f"{rank_by}_mean", "unstable"]],
            )

    # The search's decisions: the next round (refinement or stability) proposes the same trials.
    def next_round(results):
        state = start_search(SearchSpec(stability_top=3, stability_seeds=3), 2000, "inputs", now=0.0)
        keys = state.rounds[0].trial_keys
        scores = {key: results[trials[i % len(trials)].key].metrics["ari"] for i, key in enumerate(keys)}
        following = advance(state, scores, now=1.0)
        return following.kind, following.trial_keys

    assert next_round(original) == next_round(other)


# --- seed-robust choice ----------------------------------------------------------------------------


def test_seed_averaged_configurations_rank_first_by_their_mean_and_single_seed_rows_as_before() -> None:
    base = ParamGrid.from_mapping({"hdbscan_min_cluster_size": [2, 3, 4, 5]}).trials()
    lucky, steady, single_high, single_low = base
    scores = {lucky: [0.90, 0.50, 0.52], steady: [0.80, 0.78, 0.79], single_high: [0.85], single_low: [0.30]}
    grid, results = {}, {}
    for configuration, values in scores.items():
        for replicate, value in enumerate(values):
            params = dataclasses.replace(configuration, seed_replicate=replicate)
            grid[params.key] = params.to_dict()
            metrics = {name: value for name in METRIC_NAMES} | {"outlier_fraction": 0.0, "topic_count": 5.0}
            results[params.key] = TrialResult(params.key, params.to_dict(), "fp", STATUS_OK, metrics=metrics)
    board = build_leaderboard(grid, results)
    assert board["configuration"].tolist() == [steady.key] * 3 + [lucky.key] * 3 + [single_high.key, single_low.key]
    # The first row, what an export takes by default, is the recommended configuration's best trial.
    assert board.iloc[0]["trial"] == steady.key and board.iloc[0]["ari"] == 0.80
    assert board["seed_averaged"].tolist() == [True] * 6 + [False, False]
    assert board["rank"].tolist() == list(range(1, 9))


# --- bootstrap intervals ---------------------------------------------------------------------------


def test_the_vectorised_resampled_ari_is_the_ari_of_each_resample() -> None:
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 4, 90)
    predicted = np.where(rng.random(90) < 0.6, truth, rng.integers(-1, 5, 90))  # outliers included
    draws = bootstrap_draws(90, replicates=25, seed=1)
    fast = resampled_metric(truth, predicted, draws, "ari")
    slow = [score(truth[rows], predicted[rows])["ari"] for rows in draws]
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
    # The other metrics, resample by resample (skipping what the one metric does not need), agree too.
    for name in ("nmi", "ami", "f1_macro"):
        np.testing.assert_allclose(
            resampled_metric(truth, predicted, draws[:5], name),
            [score(truth[rows], predicted[rows])[name] for rows in draws[:5]],
        )
    assert set(score(truth, predicted, only="nmi")) == set(score(truth, predicted)) - {"ami", "f1_macro", "f1_weighted"}


def test_the_interval_covers_the_true_value_at_about_the_nominal_rate() -> None:
    # A population whose ARI is known; each experiment labels a fresh sample of it and bootstraps.
    rng = np.random.default_rng(11)
    population = 20_000
    truth = rng.integers(0, 5, population)
    predicted = np.where(rng.random(population) < 0.6, truth, rng.integers(-1, 7, population))
    true_ari = score(truth, predicted)["ari"]
    experiments, covered = 200, 0
    for experiment in range(experiments):
        sample = rng.choice(population, 300, replace=False)
        draws = bootstrap_draws(300, replicates=300, seed=experiment)
        low, high = percentile_interval(resampled_metric(truth[sample], predicted[sample], draws, "ari"))
        covered += low <= true_ari <= high
    assert 0.88 <= covered / experiments <= 0.99


def _board_with_labels():
    trials, labels, positions, classes = _synthetic_trials(n_configurations=6)
    heldout = np.zeros(len(classes), dtype=bool)
    heldout[::3] = True
    results = _results(trials, labels, LabelledSample(positions, classes, heldout))
    board = build_leaderboard({t.key: t.to_dict() for t in trials}, results)
    return board, labels, positions[heldout], classes[heldout]


def test_intervals_for_the_leading_configurations_and_which_are_distinguishable() -> None:
    board, labels, positions, classes = _board_with_labels()
    ranked = add_intervals(board, "ari", labels.get, classes, positions, split_active=True, top=4, replicates=200)
    configurations = list(dict.fromkeys(ranked["configuration"]))
    first = ranked[ranked["configuration"] == configurations[0]]
    assert (first[VERSUS] == RECOMMENDED).all() and len(first) == 3
    # The estimate is the configuration's held-out score averaged over its seeds, inside its interval.
    assert first[ESTIMATE].iloc[0] == pytest.approx(first["heldout_ari"].mean())
    assert (first[CI_LOW] <= first[ESTIMATE]).all() and (first[ESTIMATE] <= first[CI_HIGH]).all()
    shown = ranked[ranked["configuration"].isin(configurations[:4])]
    assert shown[CI_LOW].notna().all() and ranked.loc[~ranked.index.isin(shown.index), CI_LOW].isna().all()
    reference = first.iloc[0]
    for _, row in shown[shown[VERSUS] != RECOMMENDED].iterrows():
        overlaps = row[CI_HIGH] >= reference[CI_LOW] and row[CI_LOW] <= reference[CI_HIGH]
        assert row[VERSUS] == (
            NOT_DISTINGUISHABLE if overlaps else LOWER if row[CI_HIGH] < reference[CI_LOW] else "higher"
        )
    # A trial whose labels are not stored leaves its configuration without an interval.
    missing = add_intervals(
        board,
        "ari",
        lambda key: None if key == board.iloc[0]["trial"] else labels[key],
        classes,
        positions,
        split_active=True,
        top=4,
        replicates=50,
    )
    assert missing.loc[missing["configuration"] == configurations[0], CI_LOW].isna().all()
    assert missing[VERSUS].isna().all()


def test_the_trust_summary_says_what_to_expect() -> None:
    board, labels, positions, classes = _board_with_labels()
    ranked = add_intervals(board, "ari", labels.get, classes, positions, split_active=True, replicates=200)
    split = HoldoutSplit(0.3, 42, frozenset(range(50)), 100)
    summary = trust_summary(ranked, "ari", split)
    first = ranked.iloc[0]
    assert summary["recommended_trial"] == first["trial"] and summary["seeds"] == 3
    assert summary["heldout_score"] == pytest.approx(first[ESTIMATE])
    assert summary["gap"] == pytest.approx(first["ari_mean"] - first[ESTIMATE])
    assert summary["seed_std"] == pytest.approx(first["ari_std"])
    assert (summary["ci_low"], summary["ci_high"]) == (first[CI_LOW], first[CI_HIGH])
    text = "\n".join(trust_lines(summary))
    assert "100 used for selection, 50 held out (30% per class, seed 42)" in text
    assert f"recommended configuration: {first['configuration']} (mean over 3 UMAP seeds)" in text
    assert f"expected ari (held out): {first[ESTIMATE]:.3f}, 95% interval" in text
    assert "not distinguishable from it (intervals overlap)" in text

    unsplit = trust_summary(ranked, "ari", HoldoutSplit(0.3, 42, frozenset(), 150, "too small"))
    assert unsplit["heldout_score"] is None and "gap" not in unsplit
    assert "ari (in-sample, no held-out estimate)" in "\n".join(trust_lines(unsplit))
    assert trust_summary(ranked.iloc[0:0], "ari", split) is None and trust_lines(None) == []


def test_the_command_line_prints_the_verdict_then_one_row_per_configuration_then_the_summary(
    tmp_path, monkeypatch, capsys
) -> None:
    from topic_pipeline.cli import print_leaderboard
    from topic_pipeline.scoring.leaderboard import write_leaderboard_warnings
    from topic_pipeline.storage.files import write_atomically
    from topic_pipeline.storage.paths import DataPaths

    board, labels, positions, classes = _board_with_labels()
    ranked = add_intervals(board, "ari", labels.get, classes, positions, split_active=True, replicates=100)
    summary = trust_summary(ranked, "ari", HoldoutSplit(0.3, 42, frozenset(range(50)), 100))
    monkeypatch.setenv("TOPIC_PIPELINE_DATA_DIR", str(tmp_path))
    paths = DataPaths(tmp_path)
    write_atomically(paths.leaderboard / "leaderboard.csv", lambda stream: ranked.to_csv(stream, index=False))
    write_leaderboard_warnings(paths, [], summary)
    print_leaderboard()
    printed = capsys.readouterr().out
    verdict, rest = printed.split("\n", 1)
    assert verdict.startswith(f"Recommended (ari): {summary['recommended_configuration']}: ari ")
    table, after = rest.split("How much to trust this:")
    # One row per configuration, seeds folded, with the value each is ranked by.
    header, *rows = [line for line in table.splitlines() if line.strip()]
    assert header.split()[:5] == ["rank", "trial", "ranking_value", "seeds", "ari_mean"] and "heldout_ari" in header
    assert len(rows) == ranked["configuration"].nunique()
    assert rows[0].split()[1] == summary["recommended_trial"] and rows[0].split()[3] == "3"
    assert [line.strip() for line in after.splitlines()[1 : len(trust_lines(summary)) + 1]] == trust_lines(summary)


def test_an_export_of_another_trial_states_its_own_expectation_not_the_recommendations() -> None:
    from topic_pipeline.scoring.confidence import exported_trust

    frame = pd.DataFrame(
        {
            "trial": ["a1", "a2", "b"],
            "configuration": ["A", "A", "B"],
            "heldout_ari": [0.70, 0.66, 0.61],
            "estimate": [0.68, 0.68, None],
            "ci_low": [0.6, 0.6, None],
            "ci_high": [0.75, 0.75, None],
            "versus_recommended": ["recommended", "recommended", None],
        }
    )
    recommended = {"recommended_configuration": "A", "heldout_score": 0.68, "ci_low": 0.6, "ci_high": 0.75}
    assert exported_trust(frame, "a2", "ari", recommended) == {
        "configuration": "A",
        "is_recommended": True,
        "expected": 0.68,
        "ci_low": 0.6,
        "ci_high": 0.75,
    }
    other = exported_trust(frame, "b", "ari", recommended)
    assert other["is_recommended"] is False and other["expected"] == 0.61 and other["ci_low"] is None

"""Parameter importance: fANOVA main effects of a random-forest surrogate, on synthetic leaderboards whose
metric depends on known parameters (fast; no models)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from topic_pipeline.domain.results import STATUS_FAILED, STATUS_OK, TrialResult
from topic_pipeline.domain.trials import TrialParams
from topic_pipeline.inputs.grid import ParamGrid
from topic_pipeline.scoring.importance import METHOD, MIN_TRIALS, PRODUCT_POINTS, parameter_importance
from topic_pipeline.scoring.leaderboard import build_leaderboard
from topic_pipeline.scoring.metrics import METRIC_NAMES

FP = "f" * 16
GRID = {
    "umap_n_neighbors": [5, 15, 50],
    "hdbscan_min_cluster_size": [5, 10, 30],
    "hdbscan_min_samples": [None, 2, 10],
    "n_gram_max": [1, 2],
}


def leaderboard(
    score: Callable[[TrialParams], float],
    grid: dict | None = None,
    keep: Callable[[int], bool] = lambda _: True,
    seeds: int = 0,
    failed: int = 0,
) -> pd.DataFrame:
    """The leaderboard of ``grid``'s trials (those ``keep`` keeps by position), scored by ``score``; the first
    ``seeds`` trials also run with two more UMAP seeds (scored far off, to show they are left out), and the
    first ``failed`` trials failed."""
    params = [p for index, p in enumerate(ParamGrid.from_mapping(grid or GRID).trials()) if keep(index)]
    params += [dataclasses.replace(p, seed_replicate=r) for p in params[:seeds] for r in (1, 2)]
    results = {}
    for index, p in enumerate(params):
        if index < failed:
            results[p.key] = TrialResult(p.key, p.to_dict(), FP, STATUS_FAILED, error="boom")
        else:
            value = -5.0 if p.seed_replicate else score(p)
            metrics = {name: value for name in METRIC_NAMES} | {"outlier_fraction": 0.1, "topic_count": 4.0}
            results[p.key] = TrialResult(p.key, p.to_dict(), FP, STATUS_OK, metrics=metrics)
    return build_leaderboard({p.key: p.to_dict() for p in params}, results, rank_by="ari")


def shares(frame: pd.DataFrame) -> dict[str, float]:
    result = parameter_importance(frame, "ari")
    assert result.reason is None and result.method == METHOD
    return dict(zip(result.table["parameter"], result.table["importance"]))


def test_a_metric_of_one_parameter_gives_it_nearly_all_the_importance() -> None:
    found = shares(leaderboard(lambda p: 0.3 + 0.01 * p.hdbscan_min_cluster_size))
    assert found["hdbscan_min_cluster_size"] > 0.95
    assert sum(found.values()) <= 1 + 1e-9 and min(found.values()) >= 0


def test_two_parameters_of_known_effect_come_in_the_order_of_their_effects() -> None:
    def score(p: TrialParams) -> float:
        return 0.5 + {5: 0.0, 15: 0.1, 50: 0.2}[p.umap_n_neighbors] + 0.03 * (p.n_gram_max - 1)

    found = shares(leaderboard(score))
    assert list(found)[:2] == ["umap_n_neighbors", "n_gram_max"]
    # Additive effects: the main effects explain everything, in the ratio of their variances.
    assert found["umap_n_neighbors"] + found["n_gram_max"] > 0.95
    variances = np.var([0.0, 0.1, 0.2]), np.var([0.0, 0.03])
    assert found["umap_n_neighbors"] / found["n_gram_max"] == pytest.approx(variances[0] / variances[1], rel=0.1)


def test_on_a_full_factorial_grid_it_is_close_to_the_exact_main_effects() -> None:
    rng = np.random.default_rng(3)
    noise = {}

    def score(p: TrialParams) -> float:
        ms = p.hdbscan_min_samples or 0
        value = 0.02 * p.umap_n_neighbors / 5 - 0.004 * p.hdbscan_min_cluster_size + 0.001 * ms * p.n_gram_max
        return value + noise.setdefault(p.key, rng.normal(0, 0.005))

    frame = leaderboard(score)
    found = shares(frame)
    scored = frame[frame["status"] == STATUS_OK]
    total = scored["ari"].var(ddof=0)
    for key in GRID:  # a full factorial: each parameter's marginal means over the table are its exact main effect
        exact = scored.groupby(scored[key].astype(str))["ari"].mean().var(ddof=0) / total
        assert found[key] == pytest.approx(exact, abs=0.02), key


def test_a_search_s_uneven_trials_still_find_the_parameter_that_matters() -> None:
    rng = np.random.default_rng(0)
    kept = set(np.flatnonzero(rng.random(54) < 0.5).tolist())
    frame = leaderboard(lambda p: 0.2 + 0.1 * (p.hdbscan_min_samples is None), keep=kept.__contains__)
    found = shares(frame)
    assert max(found, key=found.get) == "hdbscan_min_samples" and found["hdbscan_min_samples"] > 0.9


def test_categorical_and_missing_values_are_categories() -> None:
    grid = {
        "embedding_model": ["sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers/all-mpnet-base-v2"],
        "hdbscan_min_samples": [None, 3],
        "nr_topics": ["none", 10, "auto"],
        "umap_n_neighbors": [5, 15],
    }
    frame = leaderboard(lambda p: 0.4 + (0.2 if p.nr_topics == "auto" else 0.0), grid=grid)
    found = shares(frame)
    assert set(found) == set(grid) and found["nr_topics"] > 0.95


def test_one_value_parameters_extra_seeds_and_failed_trials_are_left_out() -> None:
    frame = leaderboard(lambda p: 0.01 * p.umap_n_neighbors, seeds=4, failed=3)
    result = parameter_importance(frame, "ari")
    assert set(result.table["parameter"]) == set(GRID)  # umap_n_components and the rest took one value
    assert result.trials == 54 - 3  # the configured seed's scored trials: no replicate, no failure
    assert result.table["parameter"].iloc[0] == "umap_n_neighbors"


def test_a_product_too_big_to_enumerate_is_sampled_and_said_to_be() -> None:
    values = {
        "umap_n_neighbors": [5, 10, 15, 20, 30, 50],
        "umap_n_components": [2, 3, 5, 8, 10],
        "umap_min_dist": [0.0, 0.1, 0.5],
        "hdbscan_min_cluster_size": [5, 10, 20, 30, 40, 60],
        "hdbscan_min_samples": [None, 1, 2, 5, 10],
        "hdbscan_cluster_selection_epsilon": [0.0, 0.1, 0.2, 0.3, 0.5],
        "n_gram_max": [1, 2, 3],
        "nr_topics": ["none", 10, 20],
    }
    rng = np.random.default_rng(1)
    # A search-like leaderboard's columns only: what the importance reads.
    rows = [{key: options[rng.integers(len(options))] for key, options in values.items()} for _ in range(400)]
    frame = pd.DataFrame(rows).assign(status=STATUS_OK, seed_replicate=0)
    frame["ari"] = 0.01 * frame["umap_n_components"] + rng.normal(0, 0.001, len(frame))
    result = parameter_importance(frame, "ari")
    assert result.combinations == math.prod(len(options) for options in values.values()) > PRODUCT_POINTS
    assert f"a uniform sample (seed 0) of 50,000 of the {result.combinations:,} combinations" in result.describe()
    assert result.table["parameter"].iloc[0] == "umap_n_components" and result.table["importance"].iloc[0] > 0.9
    assert result.table["importance"].sum() <= 1 + 1e-9


def test_too_few_scored_trials_give_no_importance_and_say_why() -> None:
    frame = leaderboard(lambda p: 0.01 * p.umap_n_neighbors, keep=lambda index: index < MIN_TRIALS - 1)
    result = parameter_importance(frame, "ari")
    assert result.table.empty and list(result.table.columns) == ["parameter", "importance"]
    assert result.reason == f"{MIN_TRIALS - 1} scored trial(s) at the configured seed; at least {MIN_TRIALS} needed"
    assert parameter_importance(build_leaderboard({}, {}, rank_by="ari"), "ari").reason.startswith("0 scored")


def test_equal_scores_or_one_configuration_give_no_importance() -> None:
    assert parameter_importance(leaderboard(lambda p: 0.5), "ari").reason == "every scored trial has the same ari"
    grid = {"hdbscan_min_cluster_size": [10]}
    frame = leaderboard(lambda p: 0.5, grid=grid, seeds=1)
    assert parameter_importance(frame, "ari").reason.startswith("1 scored trial(s)")


def test_the_answer_as_data_names_its_method() -> None:
    result = parameter_importance(leaderboard(lambda p: 0.01 * p.hdbscan_min_cluster_size), "ari")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["method"] == METHOD == "fANOVA main effects of a random-forest surrogate"
    assert data["rank_by"] == "ari" and data["trials"] == data["combinations"] == 54 and data["reason"] is None
    assert [row["parameter"] for row in data["importances"]] == result.table["parameter"].tolist()
    assert 0 <= data["interactions"] <= 1 and METHOD in data["description"]
    # The same leaderboard gives the same answer: the forest is seeded.
    again = parameter_importance(leaderboard(lambda p: 0.01 * p.hdbscan_min_cluster_size), "ari")
    pd.testing.assert_frame_equal(result.table, again.table)

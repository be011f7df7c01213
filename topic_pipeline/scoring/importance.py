"""Which grid parameters moved the ranking metric most on this corpus: a functional-ANOVA main-effect split.

The scored trials (at the configured UMAP seed) train a random-forest surrogate of the ranking metric
over the parameters that took several values; each parameter's value is a category (its code in the
values' natural order: ``None`` first, then ascending). The surrogate is then evaluated on the product of
the values each parameter was seen with, which a full-factorial grid already is and a search's trials
are not. A parameter's importance is the variance of its marginal prediction (the mean prediction with
that parameter held at each of its values, all others spanning the product) over the variance of all
predictions on the product: the main effect of Hutter, Hoos and Leyton-Brown's fANOVA. The shares
sum to at most one; the rest is interactions between parameters. One method for a grid and a search
alike: on a full-factorial grid the surrogate reproduces the observed cells closely, so its shares are
close to those of the table's own marginal means.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from topic_pipeline.domain.results import STATUS_OK
from topic_pipeline.domain.trials import GRID_KEYS

METHOD = "fANOVA main effects of a random-forest surrogate"
TREES = 100
SEED = 0
# Below this many scored trials a surrogate of the metric is guesswork: no answer rather than a wrong one.
MIN_TRIALS = 8
# Points of the product space evaluated at most; a larger product is sampled uniformly, seeded.
PRODUCT_POINTS = 50_000
COLUMNS = ["parameter", "importance"]


@dataclasses.dataclass(frozen=True)
class ParameterImportance:
    """Main-effect shares of the ranking metric's variance, largest first (empty, with ``reason``, when there
    is no answer)."""

    rank_by: str
    table: pd.DataFrame  # COLUMNS: one row per parameter that took several values
    trials: int  # scored trials the surrogate was fitted on
    reason: str | None = None  # why the table is empty
    combinations: int = 0  # of the varying parameters' values: the product the surrogate is evaluated on

    method: str = METHOD

    @classmethod
    def none(cls, rank_by: str, reason: str, trials: int = 0) -> ParameterImportance:
        """No answer, and why."""
        return cls(rank_by, pd.DataFrame(columns=COLUMNS), trials, reason)

    @property
    def interactions(self) -> float:
        """The share of the predictions' variance no single parameter explains."""
        return max(0.0, 1.0 - float(self.table["importance"].sum())) if len(self.table) else 0.0

    def describe(self) -> str:
        """The method in one sentence, for a caption."""
        over = (
            f"all {self.combinations:,} combinations"
            if self.combinations <= PRODUCT_POINTS
            else f"a uniform sample (seed {SEED}) of {PRODUCT_POINTS:,} of the {self.combinations:,} combinations"
        )
        return (
            f"{self.method} ({TREES} trees, seed {SEED}), fitted on {self.trials} scored trials at the configured "
            f"UMAP seed and evaluated over {over} of the values each parameter was run with: a parameter's share "
            f"is the variance of the mean predicted {self.rank_by} across its values over the variance of all "
            "predictions"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "description": self.describe(),
            "rank_by": self.rank_by,
            "trials": self.trials,
            "combinations": self.combinations,
            "reason": self.reason,
            "interactions": round(self.interactions, 6),
            "importances": [
                {"parameter": str(row.parameter), "importance": round(float(row.importance), 6)}
                for row in self.table.itertuples()
            ],
        }


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def value_order(values: Sequence[Any]) -> list[Any]:
    """Distinct values in their natural order: one missing value (None) first, then ascending (as text when
    the kinds are mixed, e.g. nr_topics "none" and 20)."""
    distinct = list(dict.fromkeys(values))
    missing = [v for v in distinct if _is_missing(v)]
    present = [v for v in distinct if not _is_missing(v)]
    try:
        present.sort()
    except TypeError:
        present.sort(key=str)
    return missing[:1] + present


def category_codes(values: Sequence[Any], order: Sequence[Any]) -> np.ndarray:
    """Each value's position in ``order`` (missing values all at the missing one's)."""
    index = {value: code for code, value in enumerate(order) if not _is_missing(value)}
    missing = next((code for code, value in enumerate(order) if _is_missing(value)), -1)
    return np.array([missing if _is_missing(v) else index[v] for v in values], dtype=np.int64)


def varying_parameters(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """The grid keys that take more than one value in ``frame``, each with its values in order."""
    varying = {}
    for key in GRID_KEYS:
        if key in frame.columns:
            order = value_order(frame[key].astype("object").tolist())
            if len(order) > 1:
                varying[key] = order
    return varying


def scored_trials(frame: pd.DataFrame, rank_by: str) -> pd.DataFrame:
    """The rows an importance (and the report's parallel coordinates) read: scored, with a finite score, at
    the configured UMAP seed (the stability round's extra seeds would weigh its best configurations
    several times over)."""
    rows = frame[frame["status"] == STATUS_OK]
    if "seed_replicate" in rows.columns:
        rows = rows[rows["seed_replicate"].fillna(0).astype(int) == 0]
    return rows[np.isfinite(pd.to_numeric(rows[rank_by], errors="coerce").to_numpy(dtype=float))]


def _product_points(sizes: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Every combination of the category codes, or a uniform sample of ``PRODUCT_POINTS`` of them."""
    if math.prod(sizes) <= PRODUCT_POINTS:
        return np.array(list(itertools.product(*(range(n) for n in sizes))), dtype=np.int64)
    return np.column_stack([rng.integers(0, n, PRODUCT_POINTS) for n in sizes])


def parameter_importance(frame: pd.DataFrame, rank_by: str) -> ParameterImportance:
    """The importance of each grid parameter that took several values among ``frame``'s scored trials (as
    ``build_leaderboard`` makes it) for ``rank_by``."""
    from sklearn.ensemble import RandomForestRegressor

    rows = scored_trials(frame, rank_by)
    if len(rows) < MIN_TRIALS:
        return ParameterImportance.none(
            rank_by, f"{len(rows)} scored trial(s) at the configured seed; at least {MIN_TRIALS} needed", len(rows)
        )
    varying = varying_parameters(rows)
    if not varying:
        return ParameterImportance.none(rank_by, "every scored trial used the same value of each parameter", len(rows))
    scores = pd.to_numeric(rows[rank_by]).to_numpy(dtype=float)
    if np.ptp(scores) == 0:
        return ParameterImportance.none(rank_by, f"every scored trial has the same {rank_by}", len(rows))
    codes = np.column_stack(
        [category_codes(rows[key].astype("object").tolist(), order) for key, order in varying.items()]
    )
    model = RandomForestRegressor(n_estimators=TREES, random_state=SEED, n_jobs=1).fit(codes, scores)
    sizes = [len(order) for order in varying.values()]
    points = _product_points(sizes, np.random.default_rng(SEED))
    predicted = model.predict(points)
    total = float(np.var(predicted))
    if total <= 0:
        return ParameterImportance.none(rank_by, f"the surrogate predicts the same {rank_by} everywhere", len(rows))
    shares = []
    for column, size in enumerate(sizes):
        counts = np.bincount(points[:, column], minlength=size)
        marginal = np.bincount(points[:, column], weights=predicted, minlength=size)[counts > 0] / counts[counts > 0]
        shares.append(float(np.var(marginal)) / total)
    # Exact on the enumerated product; a sampled product's estimate may overshoot one by a little.
    scale = max(1.0, sum(shares))
    table = pd.DataFrame({"parameter": list(varying), "importance": [share / scale for share in shares]})
    table = table.sort_values("importance", ascending=False, kind="mergesort").reset_index(drop=True)
    return ParameterImportance(rank_by, table, len(rows), combinations=math.prod(sizes))

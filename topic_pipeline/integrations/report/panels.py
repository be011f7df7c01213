"""What each plot of the report shows, as plain tables computed from the leaderboard.

Kept apart from drawing so the static images (matplotlib) and the HTML page (plotly) draw the very
same numbers, and so the choices (which trials count, in which order) are made in one place. Each
function returns None, or an empty result, when its plot has nothing to show; the caller then writes
a note instead of the plot.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from topic_pipeline.domain.results import STATUS_FAILED, STATUS_OK
from topic_pipeline.domain.trials import GRID_KEYS, model_slug
from topic_pipeline.integrations.report import style
from topic_pipeline.integrations.report.topic_map import TopicMap
from topic_pipeline.scoring.topic_words import TopicSummary

HELDOUT_PREFIX = "heldout_"  # the held-out scores' column prefix (scoring.holdout), read if present
TOP_CONFIGURATIONS = 10
# The UMAP reduction a trial clusters is fixed by these (plus the seed); HDBSCAN varies on top of it.
REDUCTION_KEYS = ("embedding_model", "remove_stopwords", "umap_n_neighbors", "umap_n_components", "umap_min_dist")


def _scored(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == STATUS_OK]


def _first_seed(frame: pd.DataFrame) -> pd.DataFrame:
    """Trials at the configured UMAP seed: the stability round's extra seeds would count its five best
    configurations five times over in a comparison of parameter values."""
    if "seed_replicate" not in frame.columns:
        return frame
    return frame[frame["seed_replicate"].fillna(0).astype(int) == 0]


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _same_value(a: Any, b: Any) -> bool:
    return _is_missing(b) if _is_missing(a) else (not _is_missing(b) and a == b)


def value_label(key: str, value: Any) -> str:
    """A parameter value as an axis label: model names shortened as in trial keys, None as 'none'."""
    if _is_missing(value):
        return "none"
    if key == "embedding_model":
        return model_slug(str(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if key not in ("umap_min_dist", "hdbscan_cluster_selection_epsilon") else f"{value:g}"
    return str(value)


def _value_order(values: pd.Series) -> list[Any]:
    """Distinct values in their natural order (numbers ascending, 'none' first), labels not yet applied."""
    distinct = list(dict.fromkeys(values.tolist()))
    missing = [v for v in distinct if _is_missing(v)]
    present = [v for v in distinct if not _is_missing(v)]
    try:
        present.sort()
    except TypeError:  # mixed kinds, e.g. nr_topics "none" and 20: as text
        present.sort(key=str)
    return missing[:1] + present


# --- 1. convergence ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Convergence:
    """Every finished trial (scored or failed) in the order it finished, with the best score so far."""

    trials: pd.DataFrame  # trial, status, round, round_label, score, number (1..n), elapsed_s (NaN untimed), best
    timed: bool  # whether the order and elapsed_s come from finishing times
    round_starts: list[tuple[int, str]]  # (trial number where a round starts, its label)


def round_label(number: Any, round_kinds: Mapping[int, str] | None) -> str:
    if number is None or pd.isna(number):
        return "sweep"
    kind = (round_kinds or {}).get(int(number))
    return f"round {int(number)}" + (f" ({kind})" if kind else "")


def convergence(
    frame: pd.DataFrame,
    rank_by: str,
    finished_at: Mapping[str, float] | None = None,
    durations_s: Mapping[str, float] | None = None,
    round_kinds: Mapping[int, str] | None = None,
) -> Convergence | None:
    """None when no trial finished. Without a finishing time for every finished trial, trials are taken
    round by round in key order (the order within a round is then unknown) and no time axis is drawn."""
    done = frame[frame["status"].isin([STATUS_OK, STATUS_FAILED])]
    if done.empty:
        return None
    rounds = done["round"] if "round" in done.columns else pd.Series([pd.NA] * len(done), index=done.index)
    table = pd.DataFrame(
        {
            "trial": done["trial"].astype(str).to_numpy(),
            "status": done["status"].to_numpy(),
            "round": pd.array(rounds.to_numpy(), dtype="Int64"),
            "score": pd.to_numeric(done[rank_by], errors="coerce").to_numpy(dtype=float),
        }
    )
    # A result written without a finishing time holds 0: such a time would only mislead.
    timed = finished_at is not None and all(float(finished_at.get(key) or 0.0) > 0 for key in table["trial"])
    if timed:
        table["finished_at"] = [float(finished_at[key]) for key in table["trial"]]
        starts = table["finished_at"] - [float((durations_s or {}).get(key, 0.0)) for key in table["trial"]]
        table["elapsed_s"] = table["finished_at"] - float(starts.min())
        table = table.sort_values(["finished_at", "trial"], kind="mergesort")
    else:
        table["elapsed_s"] = np.nan
        table = table.sort_values(["round", "trial"], kind="mergesort", na_position="first")
    table = table.reset_index(drop=True)
    table["number"] = np.arange(1, len(table) + 1)
    # A failed trial has no score: the best so far carries over it.
    table["best"] = table["score"].cummax().ffill()
    table["round_label"] = [round_label(number, round_kinds) for number in table["round"].astype("object")]
    # Rounds run one after another, so each starts where its label first changes.
    changes = table["round_label"] != table["round_label"].shift()
    starts_at = [(int(row.number), str(row.round_label)) for row in table[changes].itertuples()]
    return Convergence(
        table[["trial", "status", "round", "round_label", "score", "number", "elapsed_s", "best"]], timed, starts_at
    )


def time_unit(seconds: float) -> tuple[float, str]:
    """A divisor and unit name that keep an elapsed-time axis readable."""
    if seconds < 120:
        return 1.0, "s"
    if seconds < 2 * 3600:
        return 60.0, "min"
    return 3600.0, "h"


# --- 2. marginal effects and the HDBSCAN heatmap --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ParameterEffect:
    parameter: str
    labels: list[str]  # the values, in order
    scores: list[list[float]]  # the ranking metric of every trial with each value
    trials: list[list[str]]


def parameter_effects(frame: pd.DataFrame, rank_by: str) -> list[ParameterEffect]:
    """One entry per grid parameter that takes more than one value among the scored trials."""
    scored = _first_seed(_scored(frame))
    effects = []
    for key in GRID_KEYS:
        if key not in scored.columns:
            continue
        order = _value_order(scored[key].astype("object"))
        if len(order) < 2:
            continue
        labels, scores, trials = [], [], []
        column = scored[key].astype("object")
        for value in order:
            rows = scored[column.map(lambda found, value=value: _same_value(value, found))]
            labels.append(value_label(key, value))
            scores.append(pd.to_numeric(rows[rank_by], errors="coerce").dropna().astype(float).tolist())
            trials.append(rows["trial"].astype(str).tolist())
        effects.append(ParameterEffect(key, labels, scores, trials))
    return effects


@dataclasses.dataclass(frozen=True)
class Heatmap:
    reduction: dict[str, Any]  # the best trial's REDUCTION_KEYS values
    min_cluster_sizes: list[str]  # rows
    min_samples: list[str]  # columns
    scores: np.ndarray  # best ranking metric per cell over the other settings; NaN where none ran
    best_cell: tuple[int, int]


def cluster_heatmap(frame: pd.DataFrame, rank_by: str) -> Heatmap | None:
    """hdbscan_min_cluster_size x hdbscan_min_samples on the reduction of the best trial; None if no trial scored."""
    scored = _first_seed(_scored(frame))
    if scored.empty:
        scored = _scored(frame)
    if scored.empty:
        return None
    best = scored.iloc[0]
    reduction = {key: best[key] for key in REDUCTION_KEYS if key in scored.columns}
    same = scored
    for key, value in reduction.items():
        same = same[same[key].astype("object").map(lambda found, value=value: _same_value(value, found))]
    sizes = _value_order(same["hdbscan_min_cluster_size"].astype("object"))
    samples = _value_order(same["hdbscan_min_samples"].astype("object"))
    grid = np.full((len(sizes), len(samples)), np.nan)
    for _, row in same.iterrows():
        i = next(n for n, v in enumerate(sizes) if _same_value(v, row["hdbscan_min_cluster_size"]))
        j = next(n for n, v in enumerate(samples) if _same_value(v, row["hdbscan_min_samples"]))
        score = pd.to_numeric(row[rank_by], errors="coerce")
        if pd.notna(score) and not (grid[i, j] >= score):
            grid[i, j] = float(score)
    best_cell = np.unravel_index(np.nanargmax(grid), grid.shape) if np.isfinite(grid).any() else (0, 0)
    return Heatmap(
        reduction,
        [value_label("hdbscan_min_cluster_size", v) for v in sizes],
        [value_label("hdbscan_min_samples", v) for v in samples],
        grid,
        (int(best_cell[0]), int(best_cell[1])),
    )


def describe_reduction(reduction: Mapping[str, Any]) -> str:
    return ", ".join(f"{key} {value_label(key, value)}" for key, value in reduction.items())


# --- 3. top configurations ------------------------------------------------------------------------------


def top_configurations(frame: pd.DataFrame, rank_by: str, limit: int = TOP_CONFIGURATIONS) -> pd.DataFrame:
    """The best ``limit`` configurations in leaderboard order, one row each: rank (of its best trial),
    configuration, seeds, mean and std of ``rank_by`` over its seeds (std NaN with one seed), and the
    same for the held-out score where the leaderboard has a ``heldout_<rank_by>`` column."""
    scored = _scored(frame)
    heldout = f"{HELDOUT_PREFIX}{rank_by}"
    # The column may exist empty (no split configured): then there is nothing to show beside the scores.
    has_heldout = heldout in scored.columns and pd.to_numeric(scored[heldout], errors="coerce").notna().any()
    key = "configuration" if "configuration" in scored.columns else "trial"
    rows = []
    for configuration, group in scored.groupby(key, sort=False):
        values = pd.to_numeric(group[rank_by], errors="coerce").dropna()
        row = {
            "rank": group["rank"].iloc[0] if "rank" in group.columns else len(rows) + 1,
            "configuration": str(configuration),
            "seeds": int(len(values)),
            "mean": float(values.mean()) if len(values) else np.nan,
            "std": float(values.std()) if len(values) > 1 else np.nan,
        }
        if has_heldout:
            held = pd.to_numeric(group[heldout], errors="coerce").dropna()
            row["heldout_mean"] = float(held.mean()) if len(held) else np.nan
            row["heldout_std"] = float(held.std()) if len(held) > 1 else np.nan
        rows.append(row)
        if len(rows) == limit:
            break
    return pd.DataFrame(rows)


def short_keys(keys: list[str]) -> tuple[list[str], str]:
    """Configuration keys without the embedding-set prefix when they all share it (then returned too)."""
    prefixes = {key.split("__", 1)[0] for key in keys if "__" in key}
    if len(prefixes) == 1 and all("__" in key for key in keys):
        return [key.split("__", 1)[1] for key in keys], prefixes.pop()
    return list(keys), ""


# --- 4. the topic map -----------------------------------------------------------------------------------

# Topics labelled with their words on the map at most (the largest): more labels cover the points.
LABELLED_TOPICS = 30
LABEL_WORDS = 3


@dataclasses.dataclass(frozen=True)
class TopicLabel:
    topic: int
    size: int  # documents drawn
    x: float
    y: float
    text: str


def topic_labels(topic_map: TopicMap, summaries: Sequence[TopicSummary] | None) -> list[TopicLabel]:
    """A label at the median point of each of the largest topics drawn: its id and first words."""
    words = {summary.topic: summary.top_words for summary in summaries or ()}
    topics, counts = np.unique(topic_map.topics[topic_map.topics != -1], return_counts=True)
    labels = []
    for index in np.argsort(-counts, kind="stable")[:LABELLED_TOPICS]:
        topic = int(topics[index])
        points = topic_map.coordinates[topic_map.topics == topic]
        top = ", ".join(words.get(topic, [])[:LABEL_WORDS])
        labels.append(
            TopicLabel(
                topic,
                int(counts[index]),
                float(np.median(points[:, 0])),
                float(np.median(points[:, 1])),
                f"{topic}: {top}" if top else str(topic),
            )
        )
    return labels


def topic_order(topic_map: TopicMap) -> list[tuple[int, str]]:
    """(topic, colour) of each topic drawn, outliers (-1) first so that they lie beneath the topics."""
    topics = sorted({int(t) for t in topic_map.topics.tolist()})
    colours = iter(range(len(topics)))
    return [(topic, style.BACKGROUND if topic == -1 else style.colour(next(colours))) for topic in topics]


def class_order(topic_map: TopicMap) -> list[str]:
    return sorted({c for c in topic_map.classes if c is not None})

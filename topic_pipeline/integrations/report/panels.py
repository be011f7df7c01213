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
from topic_pipeline.integrations.report.topic_map import TopicMap, sample_documents
from topic_pipeline.scoring.confidence import CI_HIGH, CI_LOW, ESTIMATE
from topic_pipeline.scoring.importance import (
    ParameterImportance,
    category_codes,
    scored_trials,
    value_order,
    varying_parameters,
)
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
    return value_order(values.tolist())


# --- 1. convergence ---------------------------------------------------------------------------------


# Without a trial running for longer than this, the trials after the pause are a later run (a backfill, a
# grid extended the next day): its own labelled segment, and the pause cut out of the time axis.
IDLE_GAP_S = 600.0
# Round labels closer than this share of an axis's span to the previous label would overlap: left out.
LABEL_SPACING = 0.035


@dataclasses.dataclass(frozen=True)
class Convergence:
    """Every finished trial (scored or failed) in the order it finished, with the best trial so far."""

    # trial, status, round, round_label, score, number (1..n), run (0: the first run of trials; later runs
    # follow an idle pause), elapsed_s (wall-clock since the first start), active_s (the same with each
    # pause cut out; NaN when untimed), best (the best trial so far: the running maximum of score)
    trials: pd.DataFrame
    timed: bool  # whether the order and the times come from finishing times
    round_starts: list[tuple[int, str]]  # (trial number where a round or a later run starts, its label)
    idle_cuts: list[tuple[int, float]]  # (trial number that starts a later run, idle seconds cut out before it)


def round_label(number: Any, round_kinds: Mapping[int, str] | None) -> str:
    if number is None or pd.isna(number):
        return "sweep"
    kind = (round_kinds or {}).get(int(number))
    return f"round {int(number)}" + (f" ({kind})" if kind else "")


def idle_text(seconds: float) -> str:
    divisor, unit = time_unit(seconds)
    return f"{seconds / divisor:.1f} {unit} idle"


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
    idle = np.zeros(len(table))  # the pause cut out before each trial: on the first of a later run only
    if timed:
        table["finished_at"] = [float(finished_at[key]) for key in table["trial"]]
        table["started_at"] = table["finished_at"] - [
            float((durations_s or {}).get(key, 0.0)) for key in table["trial"]
        ]
        table = table.sort_values(["finished_at", "trial"], kind="mergesort").reset_index(drop=True)
        table["elapsed_s"] = table["finished_at"] - float(table["started_at"].min())
        pauses = idle_pauses(table["started_at"].to_numpy(), table["finished_at"].to_numpy())
        # No trial runs through a pause, so each trial lies wholly before or after it: after it when it started after.
        ends = np.array([end for _, end in pauses])
        lengths = np.array([end - start for start, end in pauses])
        after = table["started_at"].to_numpy()[:, None] >= ends[None, :]
        table["run"] = after.sum(axis=1)
        table["active_s"] = table["elapsed_s"] - (after * lengths[None, :]).sum(axis=1)
        opens = (table["run"] != table["run"].shift()).to_numpy() & (table["run"] > 0).to_numpy()
        idle[opens] = lengths[table.loc[opens, "run"].to_numpy() - 1]
    else:
        table["elapsed_s"] = np.nan
        table["active_s"] = np.nan
        table["run"] = 0
        table = table.sort_values(["round", "trial"], kind="mergesort", na_position="first").reset_index(drop=True)
    table["number"] = np.arange(1, len(table) + 1)
    # A failed trial has no score: the best so far carries over it.
    table["best"] = table["score"].cummax().ffill()
    table["round_label"] = [round_label(number, round_kinds) for number in table["round"].astype("object")]
    # A round starts at its first trial of each run (trials of two rounds may finish interleaved); a later
    # run is named as such, whatever its rounds, so a backfill never reads as a new round.
    firsts = table.drop_duplicates(["run", "round_label"])
    starts_at = [
        (
            int(row.number),
            (f"run {row.run + 1}, after {idle_text(idle[row.Index])}: " if idle[row.Index] else "")
            + str(row.round_label),
        )
        for row in firsts.itertuples()
    ]
    cuts = [(int(number), float(seconds)) for number, seconds in zip(table["number"], idle) if seconds > 0]
    columns = ["trial", "status", "round", "round_label", "score", "number", "run", "elapsed_s", "active_s", "best"]
    return Convergence(table[columns], timed, starts_at, cuts)


def idle_pauses(started_at: np.ndarray, finished_at: np.ndarray) -> list[tuple[float, float]]:
    """(start, end) of each stretch over ``IDLE_GAP_S`` in which no trial ran, in time order."""
    pauses, busy_until = [], -math.inf
    for start, finish in sorted(zip(started_at.tolist(), finished_at.tolist())):
        if start - busy_until > IDLE_GAP_S and busy_until > -math.inf:
            pauses.append((busy_until, start))
        busy_until = max(busy_until, finish)
    return pauses


def convergence_axes(data: Convergence) -> list[tuple[str, str, float]]:
    """(column, axis title, divisor) of each panel: trials in finishing order, and wall-clock time when timed."""
    axes = [("number", "trials finished", 1.0)]
    if data.timed:
        divisor, unit = time_unit(float(data.trials["active_s"].max()))
        cut = f", idle pauses over {IDLE_GAP_S / 60:.0f} min cut out" if data.idle_cuts else ""
        axes.append(("active_s", f"wall-clock time since the first trial started{cut} ({unit})", divisor))
    return axes


def label_fits(
    positions: Sequence[float], span: float, first: Sequence[bool] = (), spacing: float = LABEL_SPACING
) -> list[bool]:
    """Which of these label positions get their label: each at least ``spacing`` of ``span`` from every other
    label shown, so none overlap. Those marked in ``first`` (a later run's start) are placed before the rest,
    each group from left to right."""
    ahead = list(first) + [False] * (len(positions) - len(first))
    fits, placed = [False] * len(positions), []
    for index in sorted(range(len(positions)), key=lambda i: (not ahead[i], positions[i])):
        if all(abs(positions[index] - other) >= spacing * span for other in placed):
            fits[index] = True
            placed.append(positions[index])
    return fits


def run_starts(data: Convergence) -> list[bool]:
    """For each of ``data.round_starts``: whether it starts a later run (its line is drawn solid, its label first)."""
    numbers = {number for number, _ in data.idle_cuts}
    return [number in numbers for number, _ in data.round_starts]


@dataclasses.dataclass(frozen=True)
class BestFigures:
    """The three figures the report calls "best", each for what it is."""

    best_trial: str | None  # the best trial so far: the highest score of any one trial (the running maximum's end)
    best_score: float | None
    recommended: str | None  # the recommended configuration (the leaderboard's first row)
    recommended_mean: float | None  # its ``<rank_by>_mean``: the mean over the UMAP seeds it ran with
    seeds: int
    estimate: float | None  # its held-out estimate (``scoring.confidence``), None where not computed
    ci_low: float | None
    ci_high: float | None


def _number(row: pd.Series, column: str) -> float | None:
    value = pd.to_numeric(row.get(column), errors="coerce")
    return float(value) if value is not None and np.isfinite(value) else None


def best_figures(frame: pd.DataFrame, rank_by: str) -> BestFigures | None:
    """None when no trial is scored."""
    scored = _scored(frame)
    scores = pd.to_numeric(scored[rank_by], errors="coerce") if not scored.empty else pd.Series(dtype=float)
    if scores.notna().sum() == 0:
        return None
    top = scored.loc[scores.idxmax()]
    first = scored.iloc[0]
    seeds = _number(first, f"{rank_by}_seeds")
    # Without a held-out part the leaderboard's estimate is the in-sample score: no held-out estimate to draw.
    heldout = _number(first, f"heldout_{rank_by}") is not None
    return BestFigures(
        best_trial=str(top["trial"]),
        best_score=float(scores.max()),
        recommended=str(first.get("configuration", first["trial"])),
        recommended_mean=next(
            (value for value in (_number(first, f"{rank_by}_mean"), _number(first, rank_by)) if value is not None), None
        ),
        seeds=int(seeds) if seeds else 1,
        estimate=_number(first, ESTIMATE) if heldout else None,
        ci_low=_number(first, CI_LOW) if heldout else None,
        ci_high=_number(first, CI_HIGH) if heldout else None,
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


# --- parameter importance and parallel coordinates ----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ParallelAxis:
    name: str
    values: np.ndarray  # one per trial: a parameter's category code, or the metric itself
    ticks: list[float]  # where the labels go; empty for the metric's own numeric axis
    labels: list[str]


@dataclasses.dataclass(frozen=True)
class Parallel:
    """The scored trials at the configured seed across the varying parameters, the metric last."""

    axes: list[ParallelAxis]
    scores: np.ndarray  # the ranking metric, one per trial: the colour


def parallel_coordinates(frame: pd.DataFrame, rank_by: str, importance: ParameterImportance | None) -> Parallel | None:
    """None when no parameter varies among the scored trials. Parameters in order of importance (where it
    was computed), the most important beside the metric; else in grid order."""
    rows = scored_trials(frame, rank_by)
    varying = varying_parameters(rows)
    if not varying:
        return None
    rising = list(importance.table["parameter"])[::-1] if importance is not None else []  # least important first
    keys = [key for key in varying if key not in rising] + [key for key in rising if key in varying]
    scores = pd.to_numeric(rows[rank_by]).to_numpy(dtype=float)
    axes = [
        ParallelAxis(
            key,
            category_codes(rows[key].astype("object").tolist(), varying[key]).astype(float),
            [float(code) for code in range(len(varying[key]))],
            [value_label(key, value) for value in varying[key]],
        )
        for key in keys
    ]
    return Parallel([*axes, ParallelAxis(rank_by, scores, [], [])], scores)


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

# Documents the page's map draws at most (the PNG draws all of the map's): beyond this many plotly's points
# slow the page's opening and add little to read. Labelled documents first, as in the map's own sample.
PAGE_MAP_POINTS = 5_000
# An axis's span over this is the resolution a page's coordinate keeps: finer than a screen shows.
COORDINATE_STEPS = 10_000


def page_points(topic_map: TopicMap) -> TopicMap:
    """The documents of ``topic_map`` the page draws: all, or ``PAGE_MAP_POINTS`` of them (seeded)."""
    if len(topic_map.topics) <= PAGE_MAP_POINTS:
        return topic_map
    chosen = sample_documents(topic_map.classes, PAGE_MAP_POINTS, seed=0)
    return dataclasses.replace(
        topic_map,
        coordinates=topic_map.coordinates[chosen],
        topics=topic_map.topics[chosen],
        classes=tuple(topic_map.classes[i] for i in chosen),
    )


def coordinate_digits(coordinates: np.ndarray) -> int:
    """Decimals that resolve ``COORDINATE_STEPS`` steps across the wider axis of these points."""
    span = float(np.ptp(coordinates, axis=0).max()) if len(coordinates) else 0.0
    return max(0, math.ceil(-math.log10(span / COORDINATE_STEPS))) if span > 0 else 0


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

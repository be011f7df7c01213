"""Rank the trials of the current grid."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from topic_pipeline.grid import GRID_KEYS, TrialParams
from topic_pipeline.metrics import METRIC_NAMES, REPORTED_NAMES
from topic_pipeline.results import STATUS_MISSING, STATUS_OK, TrialResult


def tie_break_order(primary: str) -> list[str]:
    if primary not in METRIC_NAMES:
        raise ValueError(f"unknown ranking metric '{primary}'; choose one of {', '.join(METRIC_NAMES)}")
    return [primary] + [name for name in METRIC_NAMES if name != primary]


# Spread of the main metric across UMAP seeds above which a configuration is flagged unstable.
UNSTABLE_STD = 0.05


def build_leaderboard(
    trials: Mapping[str, Mapping[str, Any]],
    results: Mapping[str, TrialResult | None],
    rank_by: str = "ari",
    rounds: Mapping[str, int] | None = None,
    rank_by_stability: bool = False,
) -> pd.DataFrame:
    """One row per trial of the grid: scored trials ranked first, then failed, then missing.

    ``trials`` maps every key of the current grid to its params; ``results`` holds the current
    result per key (None when the trial has not run on these inputs); ``rounds`` the search round
    that proposed each key, if a search did.

    Trials that replicate one configuration with other UMAP seeds share a ``configuration``; each of
    its rows carries the seeds' count, mean and standard deviation of ``rank_by`` and the
    stability-aware score mean minus one standard deviation. With ``rank_by_stability`` that score
    ranks first (configurations run with one seed only have none and come after).
    """
    order = tie_break_order(rank_by)
    rows = []
    for key, params in trials.items():
        result = results.get(key)
        row: dict[str, Any] = {
            "trial": key,
            "configuration": TrialParams.from_dict(params).configuration.key,
            "round": (rounds or {}).get(key),
            "status": result.status if result else STATUS_MISSING,
        }
        row.update({name: (result.metrics.get(name) if result else None) for name in REPORTED_NAMES})
        row["error"] = result.error if result else None
        row["mlflow_run_id"] = result.tags.get("mlflow_run_id") if result else None
        row.update({name: params[name] for name in GRID_KEYS})
        row["seed_replicate"] = params.get("seed_replicate", 0)
        rows.append(row)
    stability = [f"{rank_by}_seeds", f"{rank_by}_mean", f"{rank_by}_std", f"{rank_by}_stable", "unstable"]
    columns = ["rank", "trial", "status", *REPORTED_NAMES, *stability, "configuration", "round", "seed_replicate",
               *GRID_KEYS, "error", "mlflow_run_id"]
    frame = pd.DataFrame(rows, columns=[c for c in columns if c not in ("rank", *stability)])
    frame["round"] = frame["round"].astype("Int64")
    frame["seed_replicate"] = frame["seed_replicate"].fillna(0).astype(int)
    seeds = frame[frame["status"] == STATUS_OK].groupby("configuration")[rank_by].agg(["count", "mean", "std"])
    frame[f"{rank_by}_seeds"] = frame["configuration"].map(seeds["count"]).fillna(0).astype(int)
    frame[f"{rank_by}_mean"] = frame["configuration"].map(seeds["mean"])
    # One seed tells nothing about the spread: std (and the stable score) stay empty.
    frame[f"{rank_by}_std"] = frame["configuration"].map(seeds["std"])
    frame[f"{rank_by}_stable"] = frame[f"{rank_by}_mean"] - frame[f"{rank_by}_std"]
    frame["unstable"] = frame[f"{rank_by}_std"] > UNSTABLE_STD
    frame = frame[[c for c in columns if c != "rank"]]
    sort_keys = ([f"{rank_by}_stable"] if rank_by_stability else []) + order
    scored = frame[frame["status"] == STATUS_OK].sort_values(
        sort_keys + ["trial"], ascending=[False] * len(sort_keys) + [True], kind="mergesort", na_position="last"
    )
    unscored = frame[frame["status"] != STATUS_OK].sort_values(["status", "trial"], kind="mergesort")
    ranked = pd.concat([scored, unscored], ignore_index=True)
    ranked.insert(0, "rank", [i + 1 for i in range(len(scored))] + [None] * len(unscored))
    ranked["rank"] = ranked["rank"].astype("Int64")
    return ranked


def to_markdown(frame: pd.DataFrame, limit: int = 20, metrics: Iterable[str] = ("ari", "ami", "nmi", "f1_macro")) -> str:
    """A compact table for the Dagster UI: the top ``limit`` rows, then failed and missing trials."""
    shown = list(metrics) + ["outlier_fraction", "topic_count"]
    header = ["rank", "trial", "status", *shown]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    ok = frame[frame["status"] == STATUS_OK].head(limit)
    rest = frame[frame["status"] != STATUS_OK]
    for _, row in pd.concat([ok, rest]).iterrows():
        cells = [str(row["rank"]) if pd.notna(row["rank"]) else "", f"`{row['trial']}`", row["status"]]
        for name in shown:
            value = row[name]
            cells.append("" if value is None or pd.isna(value) else (f"{int(value)}" if name == "topic_count" else f"{value:.3f}"))
        lines.append("| " + " | ".join(cells) + " |")
    hidden = int((frame["status"] == STATUS_OK).sum()) - len(ok)
    if hidden > 0:
        lines.append(f"\n{hidden} more scored trial(s) in the CSV.")
    return "\n".join(lines)


def stability_markdown(frame: pd.DataFrame, rank_by: str, limit: int = 10) -> str:
    """Configurations run with several UMAP seeds: mean, spread and range of ``rank_by``."""
    replicated = frame[(frame["status"] == STATUS_OK) & (frame[f"{rank_by}_seeds"] > 1)]
    if replicated.empty:
        return ""
    summary = (
        replicated.groupby("configuration")[rank_by]
        .agg(["count", "mean", "std", "min", "max"])
        .sort_values(["mean"], ascending=False)
        .head(limit)
    )
    lines = [
        f"| configuration | seeds | {rank_by} mean | std | min | max | mean - std | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for configuration, row in summary.iterrows():
        flag = "**unstable**" if row["std"] > UNSTABLE_STD else ""
        lines.append(
            f"| `{configuration}` | {int(row['count'])} | {row['mean']:.3f} | {row['std']:.3f} | {row['min']:.3f} "
            f"| {row['max']:.3f} | {row['mean'] - row['std']:.3f} | {flag} |"
        )
    return "\n".join(lines)

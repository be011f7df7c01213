"""Rank the trials of the current grid."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from topic_pipeline.grid import GRID_KEYS
from topic_pipeline.metrics import METRIC_NAMES, REPORTED_NAMES
from topic_pipeline.results import STATUS_MISSING, STATUS_OK, TrialResult


def tie_break_order(primary: str) -> list[str]:
    if primary not in METRIC_NAMES:
        raise ValueError(f"unknown ranking metric '{primary}'; choose one of {', '.join(METRIC_NAMES)}")
    return [primary] + [name for name in METRIC_NAMES if name != primary]


def build_leaderboard(
    trials: Mapping[str, Mapping[str, Any]],
    results: Mapping[str, TrialResult | None],
    rank_by: str = "ari",
) -> pd.DataFrame:
    """One row per trial of the grid: scored trials ranked first, then failed, then missing.

    ``trials`` maps every key of the current grid to its params; ``results`` holds the current
    result per key (None when the trial has not run on these inputs).
    """
    order = tie_break_order(rank_by)
    rows = []
    for key, params in trials.items():
        result = results.get(key)
        row: dict[str, Any] = {"trial": key, "status": result.status if result else STATUS_MISSING}
        row.update({name: (result.metrics.get(name) if result else None) for name in REPORTED_NAMES})
        row["error"] = result.error if result else None
        row["mlflow_run_id"] = result.tags.get("mlflow_run_id") if result else None
        row.update({name: params[name] for name in GRID_KEYS})
        rows.append(row)
    columns = ["rank", "trial", "status", *REPORTED_NAMES, *GRID_KEYS, "error", "mlflow_run_id"]
    frame = pd.DataFrame(rows, columns=[c for c in columns if c != "rank"])
    scored = frame[frame["status"] == STATUS_OK].sort_values(
        order + ["trial"], ascending=[False] * len(order) + [True], kind="mergesort"
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

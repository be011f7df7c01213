"""How much to trust the leaderboard's choice: bootstrap intervals and a short summary.

For the leading configurations the ranking metric's held-out score gets a 95 % percentile bootstrap
interval: the held-out documents are resampled with replacement and the metric recomputed from each
trial's stored labels (no clustering is redone). A configuration run with several UMAP seeds is
scored by its seeds' mean, each replicate resampling the same documents for every seed, and every
configuration is resampled with the same documents, so their intervals compare like with like.
Configurations whose interval overlaps the recommended one's are not distinguishable from it on
these labels. Without a held-out part the interval is over all labelled documents, in-sample.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from topic_pipeline.domain.results import STATUS_OK
from topic_pipeline.scoring.holdout import HELDOUT_PREFIX, HoldoutSplit
from topic_pipeline.scoring.leaderboard import tie_break_order
from topic_pipeline.scoring.metrics import OUTLIER, adjusted_rand, score

CONFIDENCE = 0.95
REPLICATES = 1000
# Metrics other than ARI are recomputed resample by resample (AMI's expected mutual information alone
# takes milliseconds): fewer resamples keep a leaderboard of fifty seeded trials within seconds to a minute.
SLOW_REPLICATES = 200
TOP_CONFIGURATIONS = 10
BOOTSTRAP_SEED = 0

# Leaderboard columns (see docs/metrics.md): the configuration's held-out score of the ranking metric
# (mean over its seeds), its interval, and how it compares with the recommended configuration.
ESTIMATE, CI_LOW, CI_HIGH, VERSUS = "estimate", "ci_low", "ci_high", "versus_recommended"
RECOMMENDED, NOT_DISTINGUISHABLE, LOWER, HIGHER = "recommended", "not distinguishable", "lower", "higher"


def bootstrap_draws(n_documents: int, replicates: int = REPLICATES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """``replicates`` resamples (rows) of document indices, with replacement."""
    return np.random.default_rng(seed).integers(0, n_documents, size=(replicates, n_documents))


def _pair_sums(codes: np.ndarray, size: int, draws: np.ndarray, counted: np.ndarray | None = None) -> np.ndarray:
    """Per resample: the sum over groups of C(group size, 2), counting only documents in ``counted``."""
    replicates = draws.shape[0]
    flat = codes[draws] + np.arange(replicates)[:, None] * size
    if counted is not None:
        flat = flat[counted[draws]]
    counts = np.bincount(flat.ravel(), minlength=replicates * size).reshape(replicates, size).astype(np.float64)
    return (counts * (counts - 1) / 2).sum(axis=1)


# Resamples computed together: memory grows with this times the labelled documents, not with all of them.
_CHUNK = 100


def _resampled_ari(truth: np.ndarray, predicted: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """ARI of every resample, as ``score`` computes it: each outlier (a copy of one included) its own
    singleton cluster, so outliers add no pair to the cells or the cluster sizes."""
    _, classes = np.unique(truth, return_inverse=True)
    clustered = predicted != OUTLIER
    _, clusters = np.unique(predicted, return_inverse=True)
    n_classes, n_clusters = int(classes.max()) + 1, int(clusters.max()) + 1
    # Only the (class, cluster) cells that occur, numbered densely: at most one per document.
    occurring, cells = np.unique(classes * n_clusters + clusters, return_inverse=True)
    scores = []
    for start in range(0, draws.shape[0], _CHUNK):
        chunk = draws[start : start + _CHUNK]
        scores.append(
            adjusted_rand(
                _pair_sums(cells, len(occurring), chunk, clustered),
                _pair_sums(classes, n_classes, chunk),
                _pair_sums(clusters, n_clusters, chunk, clustered),
                draws.shape[1],
            )
        )
    return np.concatenate(scores)


def resampled_metric(truth: np.ndarray, predicted: np.ndarray, draws: np.ndarray, name: str) -> np.ndarray:
    """``name`` (a metric of ``scoring.metrics.score``) on each resample of (truth, predicted)."""
    truth, predicted = np.asarray(truth), np.asarray(predicted, dtype=np.int64)
    if name == "ari":
        return _resampled_ari(truth, predicted, draws)
    return np.array([score(truth[rows], predicted[rows], only=name)[name] for rows in draws])


def percentile_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def estimate_column(rank_by: str, split_active: bool) -> str:
    """The per-trial metric a configuration's estimate averages: held-out, or all labelled without a split."""
    return f"{HELDOUT_PREFIX}{rank_by}" if split_active else rank_by


def add_intervals(
    frame: pd.DataFrame,
    rank_by: str,
    labels_of: Callable[[str], np.ndarray | None],
    classes: np.ndarray,
    positions: np.ndarray,
    split_active: bool,
    top: int = TOP_CONFIGURATIONS,
    replicates: int | None = None,
    seed: int = BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """``frame`` (as ``build_leaderboard`` ranks it) with ``estimate``, ``ci_low``, ``ci_high`` and
    ``versus_recommended`` for the rows of its first ``top`` configurations.

    ``labels_of`` gives a trial's stored topic per corpus document (None if not stored); ``positions``
    are the corpus positions of the documents scored (the held-out part, or every labelled document
    without a split) and ``classes`` their classes. A configuration with a trial whose labels are
    missing gets no interval. ``replicates``: default ``REPLICATES`` for ARI, else ``SLOW_REPLICATES``.
    """
    frame = frame.copy()
    for column in (ESTIMATE, CI_LOW, CI_HIGH):
        frame[column] = np.nan
    frame[VERSUS] = None
    scored = frame[frame["status"] == STATUS_OK]
    if scored.empty or len(positions) == 0:
        return frame
    if replicates is None:
        replicates = REPLICATES if rank_by == "ari" else SLOW_REPLICATES
    draws = bootstrap_draws(len(positions), replicates, seed)
    column = estimate_column(rank_by, split_active)
    ok = frame["status"] == STATUS_OK
    for configuration in list(dict.fromkeys(scored["configuration"]))[:top]:
        rows = scored["configuration"] == configuration
        labels = [labels_of(trial) for trial in scored.loc[rows, "trial"]]
        if any(trial_labels is None for trial_labels in labels):
            continue
        resampled = np.mean(
            [resampled_metric(classes, trial_labels[positions], draws, rank_by) for trial_labels in labels], axis=0
        )
        low, high = percentile_interval(resampled)
        where = (frame["configuration"] == configuration) & ok
        frame.loc[where, CI_LOW], frame.loc[where, CI_HIGH] = low, high
        frame.loc[where, ESTIMATE] = float(scored.loc[rows, column].astype(float).mean())
    first = scored.iloc[0]["configuration"]
    reference = frame.loc[frame["configuration"] == first, [CI_LOW, CI_HIGH]].iloc[0]
    if pd.notna(reference[CI_LOW]):
        has_interval = frame[CI_LOW].notna()
        frame.loc[has_interval, VERSUS] = NOT_DISTINGUISHABLE
        frame.loc[has_interval & (frame[CI_HIGH] < reference[CI_LOW]), VERSUS] = LOWER
        frame.loc[has_interval & (frame[CI_LOW] > reference[CI_HIGH]), VERSUS] = HIGHER
        frame.loc[(frame["configuration"] == first) & ok, VERSUS] = RECOMMENDED
    return frame


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def trust_summary(frame: pd.DataFrame, rank_by: str, split: HoldoutSplit) -> dict[str, Any] | None:
    """What the leaderboard's recommendation is worth, as plain JSON data (shown in the UI, printed by
    the command line, recorded in an export's tuning.json); None when nothing is scored."""
    scored = frame[frame["status"] == STATUS_OK]
    if scored.empty:
        return None
    first = scored.iloc[0]
    configuration = first["configuration"]
    rows = scored[scored["configuration"] == configuration]
    top_configurations = list(dict.fromkeys(scored["configuration"]))[:TOP_CONFIGURATIONS]
    versus = (
        scored.drop_duplicates("configuration").set_index("configuration")[VERSUS]
        if VERSUS in scored
        else pd.Series(dtype=object)
    )
    heldout = f"{HELDOUT_PREFIX}{rank_by}"
    order = tie_break_order(rank_by)
    top_trial = scored.sort_values(order + ["trial"], ascending=[False] * len(order) + [True], kind="mergesort").iloc[0]
    summary: dict[str, Any] = {
        "rank_by": rank_by,
        "split": split.active,
        "holdout_fraction": split.fraction,
        "holdout_seed": split.seed,
        "selection_documents": split.selection_count,
        "heldout_documents": len(split.heldout_ids),
        "no_split_reason": split.warning,
        "recommended_configuration": str(configuration),
        "recommended_trial": str(first["trial"]),
        "seeds": int(len(rows)),
        "selection_score": float(rows[rank_by].astype(float).mean()),
        "heldout_score": _number(rows[heldout].astype(float).mean()) if split.active and heldout in rows else None,
        "ci_low": _number(first.get(CI_LOW)),
        "ci_high": _number(first.get(CI_HIGH)),
        "confidence": CONFIDENCE,
        "interval_over": "held-out documents" if split.active else "all labelled documents (in-sample)",
        "seed_std": _number(rows[rank_by].astype(float).std()) if len(rows) > 1 else None,
        "seed_min": float(rows[rank_by].min()),
        "seed_max": float(rows[rank_by].max()),
        "not_distinguishable": [str(c) for c in top_configurations if versus.get(c) == NOT_DISTINGUISHABLE],
        "compared_configurations": max(0, int(sum(pd.notna(versus.get(c)) for c in top_configurations)) - 1),
        # The single best trial on the selection part: what a ranking by best seed would have chosen.
        "top_trial": str(top_trial["trial"]),
        "top_trial_selection_score": float(top_trial[rank_by]),
        "top_trial_heldout_score": _number(top_trial.get(heldout)) if split.active else None,
    }
    if summary["heldout_score"] is not None:
        summary["gap"] = summary["selection_score"] - summary["heldout_score"]
    return summary


def exported_trust(leaderboard: pd.DataFrame, trial_key: str, rank_by: str, recommended: dict | None) -> dict:
    """What to expect from the exported trial: the recommended configuration's held-out estimate when the
    trial is of that configuration, else the trial's own held-out score (and its configuration's interval
    where the leaderboard computed one), never the recommendation's figures under another trial's name."""
    rows = leaderboard[leaderboard["trial"] == trial_key]
    row = rows.iloc[0] if len(rows) else {}
    configuration = str(row.get("configuration", ""))
    if recommended and configuration == recommended["recommended_configuration"]:
        return {
            "configuration": configuration,
            "is_recommended": True,
            "expected": recommended["heldout_score"],
            "ci_low": recommended["ci_low"],
            "ci_high": recommended["ci_high"],
        }

    def number(name: str) -> float | None:
        value = row.get(name)
        return None if value is None or pd.isna(value) else float(value)

    # The configuration's estimate (its seeds' held-out mean) where the leaderboard computed one, else the
    # trial's own held-out score.
    expected = number(ESTIMATE) if number(ESTIMATE) is not None else number(f"{HELDOUT_PREFIX}{rank_by}")
    versus = row.get(VERSUS)
    return {
        "configuration": configuration,
        "is_recommended": False,
        "expected": expected,
        "ci_low": number(CI_LOW),
        "ci_high": number(CI_HIGH),
        "versus_recommended": versus if isinstance(versus, str) else None,
    }


def trust_lines(summary: Mapping[str, Any] | None) -> list[str]:
    """The summary in sentences, one per line."""
    if not summary:
        return []
    rank_by = summary["rank_by"]
    lines = []
    if summary["split"]:
        lines.append(
            f"labelled documents: {summary['selection_documents']} used for selection, {summary['heldout_documents']} held out "
            f"({summary['holdout_fraction']:.0%} per class, seed {summary['holdout_seed']}); no ranking or search decision reads the held-out ones"
        )
    else:
        lines.append(f"labelled documents: all {summary['selection_documents']} used for selection, none held out")
    seeds = summary["seeds"]
    over = f"mean over {seeds} UMAP seeds" if seeds > 1 else "one UMAP seed"
    lines.append(
        f"recommended configuration: {summary['recommended_configuration']} ({over}); its best trial, exported by default: {summary['recommended_trial']}"
    )
    interval = ""
    if summary["ci_low"] is not None:
        interval = f", {summary['confidence']:.0%} interval {summary['ci_low']:.3f} to {summary['ci_high']:.3f} over {summary['interval_over']}"
    if summary["heldout_score"] is not None:
        lines.append(f"expected {rank_by} (held out): {summary['heldout_score']:.3f}{interval}")
        lines.append(
            f"selection {rank_by}: {summary['selection_score']:.3f}; selection minus held out: {summary['gap']:+.3f}"
        )
    else:
        lines.append(f"{rank_by} (in-sample, no held-out estimate): {summary['selection_score']:.3f}{interval}")
    if seeds > 1:
        lines.append(
            f"seed spread of {rank_by}: std {summary['seed_std']:.3f}, range {summary['seed_min']:.3f} to {summary['seed_max']:.3f}"
        )
    else:
        lines.append("seed spread: unknown, this configuration ran with one UMAP seed")
    if summary["compared_configurations"] > 0:
        tied = summary["not_distinguishable"]
        named = ", ".join(tied[:5]) + (f" and {len(tied) - 5} more" if len(tied) > 5 else "")
        lines.append(
            f"not distinguishable from it (intervals overlap): {len(tied)} of the next {summary['compared_configurations']} configurations"
            + (f" ({named})" if tied else "")
        )
    if summary["top_trial"] != summary["recommended_trial"] and summary["top_trial_heldout_score"] is not None:
        lines.append(
            f"the single best trial on the selection part, {summary['top_trial']}, scores {summary['top_trial_selection_score']:.3f} "
            f"there and {summary['top_trial_heldout_score']:.3f} held out"
        )
    return lines


def verdict_line(summary: Mapping[str, Any]) -> str:
    """The trust summary in one line, the answer first: which configuration, what it scores, how sure."""
    rank_by, seeds = summary["rank_by"], summary["seeds"]
    spread = f" ± {summary['seed_std']:.3f}" if summary.get("seed_std") is not None else ""
    parts = [
        f"{summary['recommended_configuration']}: {rank_by} {summary['selection_score']:.3f}{spread} "
        + (f"(mean over {seeds} UMAP seeds)" if seeds > 1 else "(one UMAP seed)")
    ]
    interval = f" [{summary['ci_low']:.3f}, {summary['ci_high']:.3f}]" if summary.get("ci_low") is not None else ""
    if summary.get("heldout_score") is not None:
        parts.append(f"expected held out {summary['heldout_score']:.3f}{interval}")
    elif interval:
        parts.append(f"in-sample interval{interval}")
    if summary.get("compared_configurations", 0) > 0:
        parts.append(
            f"{len(summary['not_distinguishable'])} of the next {summary['compared_configurations']} "
            "configurations not distinguishable from it"
        )
    return "; ".join(parts)


def trust_markdown(summary: Mapping[str, Any] | None) -> str:
    lines = trust_lines(summary)
    return "\n".join(f"- {line}" for line in lines)

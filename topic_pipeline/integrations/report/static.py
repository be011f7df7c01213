"""The report's plots as PNG images, drawn with matplotlib.

Figures are built with ``matplotlib.figure.Figure`` and saved through the Agg canvas directly, never
through ``pyplot``: pyplot keeps global state (the current figure, the backend chosen for a display)
that a step running inside Dagster or a test must not touch or depend on.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from topic_pipeline.integrations.report import panels, style
from topic_pipeline.integrations.report.topic_map import TopicMap
from topic_pipeline.scoring.importance import ParameterImportance
from topic_pipeline.scoring.topic_words import TopicSummary

DPI = 110


def png_bytes(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def _mark_rounds(axis, data: panels.Convergence, x_of_number, span: float) -> None:
    """A dashed line where each search round starts and a solid one where a later run starts (nothing for a plain
    grid in one run), named where the name fits beside the others."""
    starts = data.round_starts
    if len(starts) < 2 and (not starts or starts[0][1] == "sweep"):
        return
    positions = [float(x_of_number(number)) for number, _ in starts]
    runs = panels.run_starts(data)
    for x, (_, label), fits, run in zip(positions, starts, panels.label_fits(positions, span, runs), runs):
        axis.axvline(x, color="#555555" if run else "#999999", linestyle="-" if run else "--", linewidth=0.8)
        if fits:
            axis.annotate(
                label,
                (x, 0.02),
                xycoords=("data", "axes fraction"),
                rotation=90,
                va="bottom",
                ha="right",
                fontsize=7,
                color="#555555",
            )


def _levels(axis, figures: panels.BestFigures | None) -> None:
    """The recommended configuration's seed mean and its held-out estimate (with its interval), as levels."""
    if figures is None:
        return
    if figures.recommended_mean is not None:
        axis.axhline(
            figures.recommended_mean,
            color=style.RECOMMENDED_COLOUR,
            linestyle="--",
            linewidth=1.2,
            label=style.RECOMMENDED_MEAN,
        )
    if figures.estimate is not None:
        axis.axhline(
            figures.estimate, color=style.ESTIMATE_COLOUR, linestyle=":", linewidth=1.4, label=style.HELDOUT_ESTIMATE
        )
        if figures.ci_low is not None and figures.ci_high is not None:
            axis.axhspan(figures.ci_low, figures.ci_high, color=style.ESTIMATE_COLOUR, alpha=0.12, linewidth=0)


def convergence(data: panels.Convergence, rank_by: str, figures: panels.BestFigures | None = None) -> Figure:
    trials = data.trials
    axes_count = 2 if data.timed else 1
    figure = Figure(figsize=(6.5 * axes_count, 4.2))
    figure.suptitle(style.CONVERGENCE[1])
    for position, (column, label, scale) in enumerate(panels.convergence_axes(data), start=1):
        axis = figure.add_subplot(1, axes_count, position)
        x = trials[column].to_numpy(dtype=float) / scale
        scored = trials["status"] == "ok"
        for round_label, group in trials[scored].groupby("round_label", sort=False):
            axis.scatter(group[column] / scale, group["score"], s=8, alpha=0.45, label=str(round_label))
        failed = trials[~scored]
        if len(failed):
            floor = float(np.nanmin(trials["score"])) if scored.any() else 0.0
            axis.scatter(
                failed[column] / scale,
                [floor] * len(failed),
                marker="x",
                s=14,
                color=style.FAILED_COLOUR,
                label=f"failed ({len(failed)})",
            )
        axis.step(x, trials["best"], where="post", color="black", linewidth=1.6, label=style.BEST_SO_FAR)
        _levels(axis, figures)
        numbers = trials["number"].to_numpy()
        span = float(np.nanmax(x) - np.nanmin(x)) if len(x) else 0.0
        _mark_rounds(axis, data, lambda n, x=x, numbers=numbers: x[np.searchsorted(numbers, n)], span)
        axis.set_xlabel(label)
        axis.set_ylabel(rank_by)
        axis.grid(alpha=0.3)
        if position == 1:
            axis.legend(fontsize=7, loc="lower right")
    return figure


def parameters(effects: Sequence[panels.ParameterEffect], rank_by: str) -> Figure:
    columns = min(3, len(effects))
    rows = -(-len(effects) // columns)
    figure = Figure(figsize=(4.4 * columns, 3.4 * rows))
    figure.suptitle(f"{style.PARAMETERS[1]} ({rank_by})")
    rng = np.random.default_rng(0)  # jitter only: fixed so the image is reproducible
    for index, effect in enumerate(effects, start=1):
        axis = figure.add_subplot(rows, columns, index)
        positions = np.arange(1, len(effect.labels) + 1)
        filled = [scores if scores else [np.nan] for scores in effect.scores]
        axis.boxplot(filled, positions=positions, widths=0.6, showfliers=False)
        for position, scores in zip(positions, effect.scores):
            axis.scatter(
                position + rng.uniform(-0.18, 0.18, len(scores)), scores, s=6, alpha=0.35, color=style.SCORE_COLOUR
            )
        axis.set_xticks(positions, effect.labels, rotation=45 if len(effect.labels) > 6 else 0, fontsize=8)
        axis.set_title(effect.parameter, fontsize=9)
        axis.set_ylabel(rank_by, fontsize=8)
        axis.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    return figure


def importance(data: ParameterImportance) -> Figure:
    table = data.table.iloc[::-1]  # the most important at the top
    figure = Figure(figsize=(7, 0.4 * len(table) + 1.6))
    axis = figure.add_subplot(1, 1, 1)
    axis.barh(table["parameter"], table["importance"], color=style.SCORE_COLOUR)
    for y, value in enumerate(table["importance"]):
        axis.annotate(f"{value:.0%}", (value, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    axis.set_xlim(0, 1.08)
    axis.set_xlabel(f"share of the variance of {data.rank_by} (main effect)")
    axis.set_title(f"{style.IMPORTANCE[1]}: {data.method}", fontsize=9)
    axis.grid(alpha=0.3, axis="x")
    return figure


def parallel_coordinates(data: panels.Parallel, rank_by: str) -> Figure:
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    count = len(data.axes)
    figure = Figure(figsize=(max(6.5, 1.6 * count + 1.5), 4.6))
    axis = figure.add_subplot(1, 1, 1)
    # Every axis scaled to [0, 1]: a parameter's values spread evenly, the metric from its lowest to highest.
    scaled = []
    for one in data.axes:
        low, high = (0.0, max(one.ticks)) if one.ticks else (float(np.min(one.values)), float(np.max(one.values)))
        scaled.append((one.values - low) / (high - low) if high > low else np.full(len(one.values), 0.5))
    lines = np.column_stack(scaled)
    norm = Normalize(float(np.min(data.scores)), float(np.max(data.scores)))
    cmap = colormaps[style.METRIC_SCALE]
    positions = np.arange(count)
    for row in np.argsort(data.scores, kind="stable"):  # the best drawn last, on top
        axis.plot(positions, lines[row], color=cmap(norm(data.scores[row])), alpha=0.5, linewidth=0.9)
    for position, one in zip(positions, data.axes):
        axis.axvline(position, color="#444444", linewidth=0.8)
        if one.ticks:
            top = max(one.ticks) or 1.0
            for tick, text in zip(one.ticks, one.labels):
                axis.annotate(
                    text, (position, tick / top), xytext=(3, 0), textcoords="offset points", fontsize=7, va="center"
                )
        else:
            low, high = float(np.min(one.values)), float(np.max(one.values))
            for fraction in (0.0, 0.5, 1.0):
                axis.annotate(
                    f"{low + fraction * (high - low):.3f}",
                    (position, fraction),
                    xytext=(3, 0),
                    textcoords="offset points",
                    fontsize=7,
                    va="center",
                )
    axis.set_xticks(positions, [one.name for one in data.axes], rotation=20, ha="right", fontsize=8)
    axis.set_yticks([])
    axis.set_xlim(-0.2, count - 0.6)
    for side in ("left", "right", "top"):
        axis.spines[side].set_visible(False)
    figure.colorbar(ScalarMappable(norm, cmap), ax=axis, label=rank_by)
    axis.set_title(style.PARALLEL[1], fontsize=10)
    return figure


def heatmap(data: panels.Heatmap, rank_by: str) -> Figure:
    rows, columns = data.scores.shape
    figure = Figure(figsize=(max(4.5, 0.7 * columns + 2.5), max(3.5, 0.4 * rows + 2)))
    axis = figure.add_subplot(1, 1, 1)
    image = axis.imshow(np.ma.masked_invalid(data.scores), cmap="viridis", aspect="auto", origin="lower")
    figure.colorbar(image, ax=axis, label=f"best {rank_by}")
    axis.set_xticks(range(columns), data.min_samples)
    axis.set_yticks(range(rows), data.min_cluster_sizes)
    axis.set_xlabel("hdbscan_min_samples")
    axis.set_ylabel("hdbscan_min_cluster_size")
    if rows * columns <= 400:  # beyond that the numbers no longer fit their cells
        middle = float(np.nanmin(data.scores) + np.nanmax(data.scores)) / 2
        for (i, j), value in np.ndenumerate(data.scores):
            if np.isfinite(value):  # dark text on viridis' light (high) end, light text on its dark end
                axis.text(
                    j,
                    i,
                    f"{value:.3f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="black" if value > middle else "white",
                )
    axis.add_patch(_cell_outline(*data.best_cell))
    axis.set_title(f"{style.HEATMAP[1]}\n{panels.describe_reduction(data.reduction)}", fontsize=9)
    return figure


def _cell_outline(i: int, j: int):
    from matplotlib.patches import Rectangle

    return Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2)


def top_configurations(table: pd.DataFrame, rank_by: str) -> Figure:
    labels, prefix = panels.short_keys(table["configuration"].tolist())
    labels = [f"#{rank} {label}" for rank, label in zip(table["rank"], labels)]
    figure = Figure(figsize=(9, 0.45 * len(table) + 1.6))
    axis = figure.add_subplot(1, 1, 1)
    y = np.arange(len(table))[::-1].astype(float)  # the best at the top
    heldout = "heldout_mean" in table.columns
    offset = 0.15 if heldout else 0.0
    axis.errorbar(
        table["mean"],
        y + offset,
        xerr=table["std"].fillna(0),
        fmt="o",
        color=style.SCORE_COLOUR,
        capsize=3,
        label=f"{rank_by} (mean ± std over UMAP seeds)",
    )
    if heldout:
        axis.errorbar(
            table["heldout_mean"],
            y - offset,
            xerr=table["heldout_std"].fillna(0),
            fmt="D",
            color=style.HELDOUT_COLOUR,
            capsize=3,
            label=f"held-out {rank_by}",
        )
    axis.set_yticks(y, labels, fontsize=7)
    axis.set_xlabel(rank_by)
    axis.grid(alpha=0.3, axis="x")
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.08), ncol=2, frameon=False)
    axis.set_title(style.TOP[1] + (f" ({prefix})" if prefix else ""))
    return figure


def topic_map(data: TopicMap, summaries: Sequence[TopicSummary] | None) -> Figure:
    figure = Figure(figsize=(14, 6.5))
    figure.suptitle(f"{style.TOPIC_MAP[1]}: {data.trial}", fontsize=10)
    size = 4 if len(data.topics) > 5000 else 10
    left = figure.add_subplot(1, 2, 1)
    for topic, colour in panels.topic_order(data):
        points = data.coordinates[data.topics == topic]
        left.scatter(points[:, 0], points[:, 1], s=size, color=colour, alpha=0.6, linewidths=0)
    for label in panels.topic_labels(data, summaries):
        left.annotate(
            label.text,
            (label.x, label.y),
            fontsize=7,
            ha="center",
            bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.75, "linewidth": 0},
        )
    left.set_title("coloured by topic (grey: outliers)", fontsize=9)
    right = figure.add_subplot(1, 2, 2, sharex=left, sharey=left)
    labelled = np.fromiter((c is not None for c in data.classes), dtype=bool, count=len(data.classes))
    right.scatter(
        data.coordinates[~labelled, 0],
        data.coordinates[~labelled, 1],
        s=size,
        color=style.BACKGROUND,
        alpha=0.4,
        linewidths=0,
    )
    classes = panels.class_order(data)
    for index, name in enumerate(classes):
        mask = np.fromiter((c == name for c in data.classes), dtype=bool, count=len(data.classes))
        right.scatter(
            data.coordinates[mask, 0],
            data.coordinates[mask, 1],
            s=size * 2,
            color=style.colour(index),
            label=name,
            linewidths=0,
        )
    if 0 < len(classes) <= 25:
        right.legend(fontsize=6, markerscale=2, loc="best", title="class", title_fontsize=7)
    right.set_title("the labelled sample's classes (grey: unlabelled)", fontsize=9)
    for axis in (left, right):
        axis.set_xticks([])
        axis.set_yticks([])
    return figure

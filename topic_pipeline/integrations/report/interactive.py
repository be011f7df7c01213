"""The report's plots as plotly figures, for the HTML page.

plotly rather than a second set of images: a reader of a sweep of a thousand trials wants to hover
over a point to learn which trial it is, and to zoom into one corner of the topic map. The page
carries plotly.js inline (once), so it opens without a network.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from topic_pipeline.integrations.report import panels, style
from topic_pipeline.integrations.report.topic_map import TopicMap
from topic_pipeline.scoring.topic_words import TopicSummary

_LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 60, "b": 50}}


def _round_lines(figure: go.Figure, starts: list[tuple[int, str]], x_of_number, column: int) -> None:
    if len(starts) < 2 and (not starts or starts[0][1] == "sweep"):
        return
    for number, label in starts:
        figure.add_vline(
            x=x_of_number(number),
            line_dash="dash",
            line_color="#999999",
            line_width=1,
            annotation_text=label,
            annotation_textangle=-90,
            annotation_position="bottom right",
            annotation_font_size=9,
            row=1,
            col=column,
        )


def convergence(data: panels.Convergence, rank_by: str) -> go.Figure:
    trials = data.trials
    x_columns = [("number", "trials finished", 1.0)]
    if data.timed:
        divisor, unit = panels.time_unit(float(trials["elapsed_s"].max()))
        x_columns.append(("elapsed_s", f"wall-clock time since the first trial started ({unit})", divisor))
    figure = make_subplots(rows=1, cols=len(x_columns), shared_yaxes=True)
    scored = trials["status"] == "ok"
    numbers = trials["number"].to_numpy()
    for column_index, (column, label, scale) in enumerate(x_columns, start=1):
        x = trials[column].to_numpy(dtype=float) / scale
        first = column_index == 1  # one legend entry per series, not one per panel
        for index, (round_label, group) in enumerate(trials[scored].groupby("round_label", sort=False)):
            figure.add_trace(
                go.Scatter(
                    x=group[column] / scale,
                    y=group["score"],
                    mode="markers",
                    name=str(round_label),
                    legendgroup=str(round_label),
                    showlegend=first,
                    text=group["trial"],
                    opacity=0.5,
                    marker={"size": 5, "color": style.colour(index)},
                    hovertemplate="%{text}<br>" + rank_by + " %{y:.3f}<extra></extra>",
                ),
                row=1,
                col=column_index,
            )
        failed = trials[~scored]
        if len(failed):
            floor = float(np.nanmin(trials["score"])) if scored.any() else 0.0
            figure.add_trace(
                go.Scatter(
                    x=failed[column] / scale,
                    y=[floor] * len(failed),
                    mode="markers",
                    name=f"failed ({len(failed)})",
                    legendgroup="failed",
                    showlegend=first,
                    text=failed["trial"],
                    marker={"symbol": "x", "size": 6, "color": style.FAILED_COLOUR},
                    hovertemplate="%{text} failed<extra></extra>",
                ),
                row=1,
                col=column_index,
            )
        figure.add_trace(
            go.Scatter(
                x=x,
                y=trials["best"],
                mode="lines",
                line={"shape": "hv", "color": "black", "width": 2},
                name="best so far",
                legendgroup="best",
                showlegend=first,
                hoverinfo="skip",
            ),
            row=1,
            col=column_index,
        )
        _round_lines(figure, data.round_starts, lambda n, x=x: float(x[np.searchsorted(numbers, n)]), column_index)
        figure.update_xaxes(title_text=label, row=1, col=column_index)
    figure.update_yaxes(title_text=rank_by, row=1, col=1)
    figure.update_layout(title=style.CONVERGENCE[1], height=430, **_LAYOUT)
    return figure


def parameters(effects: Sequence[panels.ParameterEffect], rank_by: str) -> go.Figure:
    columns = min(3, len(effects))
    rows = -(-len(effects) // columns)
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=[effect.parameter for effect in effects])
    for index, effect in enumerate(effects):
        row, column = divmod(index, columns)
        xs = [label for label, scores in zip(effect.labels, effect.scores) for _ in scores]
        ys = [score for scores in effect.scores for score in scores]
        names = [trial for trials in effect.trials for trial in trials]
        figure.add_trace(
            go.Box(
                x=xs,
                y=ys,
                text=names,
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                showlegend=False,
                marker={"size": 3, "opacity": 0.4, "color": style.SCORE_COLOUR},
                line={"width": 1},
                hovertemplate="%{text}<br>" + rank_by + " %{y:.3f}<extra></extra>",
            ),
            row=row + 1,
            col=column + 1,
        )
        figure.update_xaxes(
            type="category", categoryorder="array", categoryarray=effect.labels, row=row + 1, col=column + 1
        )
        figure.update_yaxes(title_text=rank_by if column == 0 else None, row=row + 1, col=column + 1)
    figure.update_layout(title=f"{style.PARAMETERS[1]} ({rank_by})", height=max(380, 300 * rows), **_LAYOUT)
    return figure


def heatmap(data: panels.Heatmap, rank_by: str) -> go.Figure:
    text = [[f"{v:.3f}" if np.isfinite(v) else "" for v in row] for row in data.scores]
    figure = go.Figure(
        go.Heatmap(
            z=np.where(np.isfinite(data.scores), data.scores, None).tolist(),
            x=data.min_samples,
            y=data.min_cluster_sizes,
            text=text,
            texttemplate="%{text}" if data.scores.size <= 400 else None,
            colorscale="Viridis",
            colorbar={"title": {"text": f"best {rank_by}"}},
            hoverongaps=False,
            hovertemplate="min_cluster_size %{y}<br>min_samples %{x}<br>" + rank_by + " %{z:.3f}<extra></extra>",
        )
    )
    i, j = data.best_cell
    figure.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5, line={"color": "red", "width": 2})
    figure.update_xaxes(title_text="hdbscan_min_samples", type="category")
    figure.update_yaxes(title_text="hdbscan_min_cluster_size", type="category")
    figure.update_layout(
        title=f"{style.HEATMAP[1]}<br><sub>{panels.describe_reduction(data.reduction)}</sub>",
        height=max(380, 26 * len(data.min_cluster_sizes) + 160),
        **_LAYOUT,
    )
    return figure


def top_configurations(table: pd.DataFrame, rank_by: str) -> go.Figure:
    labels, prefix = panels.short_keys(table["configuration"].tolist())
    labels = [f"#{rank} {label}" for rank, label in zip(table["rank"], labels)]
    hover = [f"{key}<br>seeds {seeds}" for key, seeds in zip(table["configuration"], table["seeds"])]
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=table["mean"],
            y=labels,
            mode="markers",
            name=f"{rank_by} (mean ± std over UMAP seeds)",
            error_x={"type": "data", "array": table["std"].fillna(0).tolist(), "visible": True},
            marker={"size": 9, "color": style.SCORE_COLOUR},
            text=hover,
            hovertemplate="%{text}<br>" + rank_by + " %{x:.3f}<extra></extra>",
        )
    )
    if "heldout_mean" in table.columns:
        figure.add_trace(
            go.Scatter(
                x=table["heldout_mean"],
                y=labels,
                mode="markers",
                name=f"held-out {rank_by}",
                error_x={"type": "data", "array": table["heldout_std"].fillna(0).tolist(), "visible": True},
                marker={"size": 9, "symbol": "diamond", "color": style.HELDOUT_COLOUR},
                text=hover,
                hovertemplate="%{text}<br>held-out " + rank_by + " %{x:.3f}<extra></extra>",
            )
        )
    figure.update_yaxes(autorange="reversed", type="category")
    figure.update_xaxes(title_text=rank_by)
    figure.update_layout(
        title=style.TOP[1] + (f" ({prefix})" if prefix else ""),
        height=34 * len(table) + 170,
        legend={"orientation": "h", "y": -0.2},
        **_LAYOUT,
    )
    return figure


def topic_map(data: TopicMap, summaries: Sequence[TopicSummary] | None) -> go.Figure:
    figure = make_subplots(
        rows=1,
        cols=2,
        shared_xaxes=True,
        shared_yaxes=True,
        horizontal_spacing=0.03,
        subplot_titles=["coloured by topic (grey: outliers)", "the labelled sample's classes (grey: unlabelled)"],
    )
    words = {summary.topic: ", ".join(summary.top_words[:8]) for summary in summaries or ()}
    size = 3 if len(data.topics) > 5000 else 5
    drawn = panels.topic_order(data)
    for index, (topic, colour) in enumerate(drawn):
        points = data.coordinates[data.topics == topic]
        name = "outliers" if topic == -1 else f"topic {topic}"
        figure.add_trace(
            go.Scatter(
                x=points[:, 0],
                y=points[:, 1],
                mode="markers",
                name=name,
                legendgroup="topics",
                legendgrouptitle_text="topics" if index == 0 else None,
                showlegend=len(drawn) <= 40,
                marker={"size": size, "opacity": 0.6, "color": colour},
                hovertemplate=f"{name}: {words.get(topic, '')}<extra></extra>",
            ),
            row=1,
            col=1,
        )
    for label in panels.topic_labels(data, summaries):
        figure.add_annotation(
            x=label.x,
            y=label.y,
            text=label.text,
            showarrow=False,
            font={"size": 10},
            bgcolor="rgba(255,255,255,0.75)",
            row=1,
            col=1,
        )
    labelled = np.fromiter((c is not None for c in data.classes), dtype=bool, count=len(data.classes))
    figure.add_trace(
        go.Scatter(
            x=data.coordinates[~labelled, 0],
            y=data.coordinates[~labelled, 1],
            mode="markers",
            name="unlabelled",
            legendgroup="classes",
            marker={"size": size, "opacity": 0.4, "color": style.BACKGROUND},
            hoverinfo="skip",
        ),
        row=1,
        col=2,
    )
    for index, name in enumerate(panels.class_order(data)):
        mask = np.fromiter((c == name for c in data.classes), dtype=bool, count=len(data.classes))
        figure.add_trace(
            go.Scatter(
                x=data.coordinates[mask, 0],
                y=data.coordinates[mask, 1],
                mode="markers",
                name=f"class {name}",
                legendgroup="classes",
                marker={"size": size + 2, "color": style.colour(index)},
                hoverinfo="name",
            ),  # a class name is the user's text: never parsed as a template
            row=1,
            col=2,
        )
    figure.update_xaxes(showticklabels=False)
    figure.update_yaxes(showticklabels=False)
    figure.update_layout(title=f"{style.TOPIC_MAP[1]}: {data.trial}", height=640, **_LAYOUT)
    return figure

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
from topic_pipeline.scoring.importance import ParameterImportance
from topic_pipeline.scoring.topic_words import TopicSummary

_LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 20, "t": 60, "b": 50}}
# Decimals a score or an axis value keeps in the page: the captions and hovers show three.
DIGITS = 4


def _rounded(values: np.ndarray, digits: int = DIGITS) -> list[float | None]:
    """Plain, rounded numbers for a figure's JSON (NaN as null): the page carries no digit nobody reads."""
    return [None if not np.isfinite(v) else round(float(v), digits) for v in np.asarray(values, dtype=float)]


def _round_lines(figure: go.Figure, data: panels.Convergence, positions: list[float], span: float, column: int) -> None:
    """A dashed line where each search round starts and a solid one where a later run starts, named where the
    name fits."""
    starts = data.round_starts
    if len(starts) < 2 and (not starts or starts[0][1] == "sweep"):
        return
    runs = panels.run_starts(data)
    for x, (_, label), fits, run in zip(positions, starts, panels.label_fits(positions, span, runs), runs):
        named = {
            "annotation_text": label,
            "annotation_textangle": -90,
            "annotation_position": "bottom right",
            "annotation_font_size": 9,
        }
        figure.add_vline(
            x=x,
            line_dash="solid" if run else "dash",
            line_color="#555555" if run else "#999999",
            line_width=1,
            row=1,
            col=column,
            **(named if fits else {}),
        )


def _levels(figure: go.Figure, figures: panels.BestFigures | None, x: np.ndarray, column: int, first: bool) -> None:
    """The recommended configuration's seed mean and its held-out estimate (its interval shaded), as levels."""
    if figures is None or not len(x):
        return
    ends = [float(np.nanmin(x)), float(np.nanmax(x))]

    def level(value: float, name: str, line: dict, group: str) -> None:
        figure.add_trace(
            go.Scatter(
                x=ends,
                y=[value] * 2,
                mode="lines",
                line=line,
                name=name,
                legendgroup=group,
                showlegend=first,
                hovertemplate=f"{name} %{{y:.3f}}<extra></extra>",
            ),
            row=1,
            col=column,
        )

    if figures.recommended_mean is not None:
        level(
            figures.recommended_mean,
            style.RECOMMENDED_MEAN,
            {"color": style.RECOMMENDED_COLOUR, "dash": "dash", "width": 1.5},
            "recommended",
        )
    if figures.estimate is not None:
        if figures.ci_low is not None and figures.ci_high is not None:
            figure.add_trace(
                go.Scatter(
                    x=[*ends, *ends[::-1]],
                    y=[figures.ci_low, figures.ci_low, figures.ci_high, figures.ci_high],
                    fill="toself",
                    fillcolor=style.ESTIMATE_COLOUR,
                    opacity=0.12,
                    line={"width": 0},
                    mode="lines",
                    name="its 95 % interval",
                    legendgroup="estimate",
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=1,
                col=column,
            )
        level(
            figures.estimate,
            style.HELDOUT_ESTIMATE,
            {"color": style.ESTIMATE_COLOUR, "dash": "dot", "width": 2},
            "estimate",
        )


def convergence(data: panels.Convergence, rank_by: str, figures: panels.BestFigures | None = None) -> go.Figure:
    trials = data.trials
    x_columns = panels.convergence_axes(data)
    figure = make_subplots(rows=1, cols=len(x_columns), shared_yaxes=True)
    scored = trials["status"] == "ok"
    numbers = trials["number"].to_numpy()
    for column_index, (column, label, scale) in enumerate(x_columns, start=1):
        x = _rounded(trials[column].to_numpy(dtype=float) / scale)
        first = column_index == 1  # one legend entry per series, not one per panel
        for index, (round_label, group) in enumerate(trials[scored].groupby("round_label", sort=False)):
            figure.add_trace(
                go.Scatter(
                    x=_rounded(group[column].to_numpy(dtype=float) / scale),
                    y=_rounded(group["score"].to_numpy(dtype=float)),
                    mode="markers",
                    name=str(round_label),
                    legendgroup=str(round_label),
                    showlegend=first,
                    text=group["trial"].tolist(),
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
                    x=_rounded(failed[column].to_numpy(dtype=float) / scale),
                    y=[round(floor, DIGITS)] * len(failed),
                    mode="markers",
                    name=f"failed ({len(failed)})",
                    legendgroup="failed",
                    showlegend=first,
                    text=failed["trial"].tolist(),
                    marker={"symbol": "x", "size": 6, "color": style.FAILED_COLOUR},
                    hovertemplate="%{text} failed<extra></extra>",
                ),
                row=1,
                col=column_index,
            )
        figure.add_trace(
            go.Scatter(
                x=x,
                y=_rounded(trials["best"].to_numpy(dtype=float)),
                mode="lines",
                line={"shape": "hv", "color": "black", "width": 2},
                name=style.BEST_SO_FAR,
                legendgroup="best",
                showlegend=first,
                hoverinfo="skip",
            ),
            row=1,
            col=column_index,
        )
        _levels(figure, figures, x, column_index, first)
        positions = [float(x[np.searchsorted(numbers, n)]) for n, _ in data.round_starts]
        span = float(np.nanmax(x) - np.nanmin(x)) if len(x) else 0.0
        _round_lines(figure, data, positions, span, column_index)
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
                y=_rounded(np.asarray(ys, dtype=float)),
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


def importance(data: ParameterImportance) -> go.Figure:
    table = data.table
    figure = go.Figure(
        go.Bar(
            x=_rounded(table["importance"].to_numpy(dtype=float)),
            y=table["parameter"].tolist(),
            orientation="h",
            marker={"color": style.SCORE_COLOUR},
            text=[f"{value:.0%}" for value in table["importance"]],
            textposition="outside",
            hovertemplate="%{y}: %{x:.1%} of the variance<extra></extra>",
        )
    )
    figure.update_yaxes(autorange="reversed", type="category")
    figure.update_xaxes(
        title_text=f"share of the variance of {data.rank_by} (main effect)", range=[0, 1.1], tickformat=".0%"
    )
    figure.update_layout(
        title=f"{style.IMPORTANCE[1]}: {data.method}", height=34 * len(table) + 170, showlegend=False, **_LAYOUT
    )
    return figure


def parallel_coordinates(data: panels.Parallel, rank_by: str) -> go.Figure:
    dimensions = [
        {"label": one.name, "values": _rounded(one.values), "tickvals": one.ticks, "ticktext": one.labels}
        if one.ticks
        else {"label": one.name, "values": _rounded(one.values)}
        for one in data.axes
    ]
    figure = go.Figure(
        go.Parcoords(
            dimensions=dimensions,
            domain={"x": [0, 0.9]},  # the colour bar's room, right of the metric's tick labels
            line={
                "color": _rounded(data.scores),
                "colorscale": style.METRIC_SCALE.capitalize(),
                "showscale": True,
                "colorbar": {"title": {"text": rank_by}},
            },
        )
    )
    figure.update_layout(
        title=style.PARALLEL[1], height=460, **{**_LAYOUT, "margin": {"l": 80, "r": 40, "t": 90, "b": 40}}
    )
    return figure


def heatmap(data: panels.Heatmap, rank_by: str) -> go.Figure:
    text = [[f"{v:.3f}" if np.isfinite(v) else "" for v in row] for row in data.scores]
    figure = go.Figure(
        go.Heatmap(
            z=[_rounded(row) for row in data.scores],
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
            x=_rounded(table["mean"].to_numpy(dtype=float)),
            y=labels,
            mode="markers",
            name=f"{rank_by} (mean ± std over UMAP seeds)",
            error_x={"type": "data", "array": _rounded(table["std"].fillna(0).to_numpy(dtype=float)), "visible": True},
            marker={"size": 9, "color": style.SCORE_COLOUR},
            text=hover,
            hovertemplate="%{text}<br>" + rank_by + " %{x:.3f}<extra></extra>",
        )
    )
    if "heldout_mean" in table.columns:
        figure.add_trace(
            go.Scatter(
                x=_rounded(table["heldout_mean"].to_numpy(dtype=float)),
                y=labels,
                mode="markers",
                name=f"held-out {rank_by}",
                error_x={
                    "type": "data",
                    "array": _rounded(table["heldout_std"].fillna(0).to_numpy(dtype=float)),
                    "visible": True,
                },
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
    drawn_map = panels.page_points(data)
    digits = panels.coordinate_digits(drawn_map.coordinates)

    def xy(mask: np.ndarray) -> dict[str, list[float | None]]:
        points = drawn_map.coordinates[mask]
        return {"x": _rounded(points[:, 0], digits), "y": _rounded(points[:, 1], digits)}

    size = 3 if len(drawn_map.topics) > 2000 else 5
    drawn = panels.topic_order(data)  # colours as in the PNG, whatever the page leaves out
    for index, (topic, colour) in enumerate(drawn):
        name = "outliers" if topic == -1 else f"topic {topic}"
        figure.add_trace(
            go.Scatter(
                **xy(drawn_map.topics == topic),
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
    for label in panels.topic_labels(data, summaries):  # placed from every document of the map, as in the PNG
        figure.add_annotation(
            x=round(label.x, digits),
            y=round(label.y, digits),
            text=label.text,
            showarrow=False,
            font={"size": 10},
            bgcolor="rgba(255,255,255,0.75)",
            row=1,
            col=1,
        )
    labelled = np.fromiter((c is not None for c in drawn_map.classes), dtype=bool, count=len(drawn_map.classes))
    figure.add_trace(
        go.Scatter(
            **xy(~labelled),
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
        mask = np.fromiter((c == name for c in drawn_map.classes), dtype=bool, count=len(drawn_map.classes))
        figure.add_trace(
            go.Scatter(
                **xy(mask),
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

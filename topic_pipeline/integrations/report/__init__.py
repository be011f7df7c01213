"""The sweep report: one self-contained HTML page and a PNG image of each of its plots.

``write_report`` takes plain data (the leaderboard frame, the trials' finishing times, the chosen
trial's topics and a ``TopicMap`` of its documents) and replaces one folder with the report, whole: a
reader never sees the page of one leaderboard beside the images of another. ``build_topic_map`` (and
``cached_trial_reduction``, ``classes_of``) make the map's data; a layout it fits is cached.

Plots, each drawn twice from the same numbers (``panels``): with plotly for the page (hover names
the trial; zoom), with matplotlib for the images (``static``). Neither library is imported until a
report is written. The parameters' importance (``scoring.importance``) is a plot and a file of its own,
``importances.json``, that travels with the page.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from topic_pipeline.domain.results import STATUS_FAILED, STATUS_MISSING, STATUS_OK
from topic_pipeline.integrations.report import page, panels, style
from topic_pipeline.integrations.report.page import Section
from topic_pipeline.integrations.report.topic_map import (
    MAX_DOCUMENTS,
    TopicMap,
    build_topic_map,
    cached_trial_reduction,
    classes_of,
)
from topic_pipeline.scoring.importance import ParameterImportance, parameter_importance
from topic_pipeline.scoring.topic_words import TopicSummary
from topic_pipeline.storage.files import replace_folder, staging_folder, write_atomically, write_json

__all__ = [
    "IMPORTANCE_FILE",
    "MAX_DOCUMENTS",
    "REPORT_FILE",
    "ReportFiles",
    "TopicMap",
    "build_topic_map",
    "cached_trial_reduction",
    "classes_of",
    "write_report",
]

REPORT_FILE = "report.html"
# The parameters' importance as data, beside the page (and with it on the sweep's MLflow run).
IMPORTANCE_FILE = "importances.json"
# The ownership marker's kind: the report folder is replaced only if it holds an earlier report.
REPORT_KIND = "report"
# Topics listed in the table under the map (the largest).
TOPICS_LISTED = 20


@dataclasses.dataclass(frozen=True)
class ReportFiles:
    directory: Path
    html: Path
    images: dict[str, Path]  # plot name (``style.PLOTS``) -> its PNG, for each plot drawn
    problems: list[str]  # plots that could not be drawn, with the error: worth a warning in the log
    importance: ParameterImportance  # empty, with its reason, when there is none

    @property
    def importance_file(self) -> Path:
        return self.directory / IMPORTANCE_FILE

    @property
    def paths(self) -> list[Path]:
        return [self.html, self.importance_file, *self.images.values()]


def write_report(
    directory: Path,
    leaderboard: pd.DataFrame,
    rank_by: str,
    *,
    finished_at: Mapping[str, float] | None = None,
    durations_s: Mapping[str, float] | None = None,
    round_kinds: Mapping[int, str] | None = None,
    topics: Sequence[TopicSummary] | None = None,
    topic_map: TopicMap | None = None,
    warnings: Sequence[str] = (),
    title: str = "topic_pipeline sweep report",
) -> ReportFiles:
    """Replace ``directory`` with the report of ``leaderboard`` (as ``build_leaderboard`` makes it).

    ``finished_at`` and ``durations_s`` (per trial key, seconds; ``TrialResult.finished_at`` and
    ``duration_s``) give the convergence plot its order and time axis; ``round_kinds`` names the search
    rounds (``SearchRound.kind`` by number). ``topics`` and ``topic_map`` are the chosen trial's.
    ``warnings`` (the leaderboard's) head the page. Whatever is missing becomes a note on the page.

    ``directory`` must be absent, empty or an earlier report (else ``FolderNotOursError``); it is
    written whole beside itself and renamed into place, so nothing is left outside it afterwards.
    """
    directory = Path(directory)
    problems: list[str] = []
    images: dict[str, bytes] = {}
    importance = _importance(leaderboard, rank_by, problems)
    figures = panels.best_figures(leaderboard, rank_by)
    sections = [
        _convergence_section(leaderboard, rank_by, finished_at, durations_s, round_kinds, figures, images, problems),
        _parameters_section(leaderboard, rank_by, images, problems),
        _importance_section(importance, images, problems),
        _parallel_section(leaderboard, rank_by, importance, images, problems),
        _heatmap_section(leaderboard, rank_by, images, problems),
        _top_section(leaderboard, rank_by, images, problems),
        _topic_map_section(topic_map, topics, images, problems),
    ]
    document = page.render(title, _summary(leaderboard, rank_by, figures), warnings, sections).encode("utf-8")

    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_folder(directory)
    try:
        for name, data in images.items():
            write_atomically(staging / name, lambda stream, data=data: stream.write(data))
        write_json(staging / IMPORTANCE_FILE, importance.to_dict())
        write_atomically(staging / REPORT_FILE, lambda stream: stream.write(document))
        replace_folder(staging, directory, REPORT_KIND)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ReportFiles(
        directory=directory,
        html=directory / REPORT_FILE,
        images={name.removesuffix(".png"): directory / name for name in images},
        problems=problems,
        importance=importance,
    )


# --- the sections, one per plot -----------------------------------------------------------------------


def _draw(
    section: Section,
    interactive: Callable[[], Any],
    static: Callable[[], Any],
    images: dict[str, bytes],
    problems: list[str],
) -> None:
    """Draw one plot both ways. A plot that fails is reported, not raised: the rest of the report, and
    the sweep it describes, are worth more than one picture."""
    from topic_pipeline.integrations.report import static as static_images

    try:
        section.figure_html = page.figure_div(interactive(), section.anchor)
    except Exception as exc:  # see the docstring
        problems.append(f"{section.title} (HTML): {type(exc).__name__}: {exc}")
        section.notes.append(f"This plot could not be drawn ({type(exc).__name__}: {exc}).")
    try:
        name = f"{section.anchor}.png"
        images[name] = static_images.png_bytes(static())
        section.image = name
    except Exception as exc:
        problems.append(f"{section.title} (PNG): {type(exc).__name__}: {exc}")


def _interactive():
    from topic_pipeline.integrations.report import interactive

    return interactive


def _static():
    from topic_pipeline.integrations.report import static

    return static


def _no_scored_trial(frame: pd.DataFrame) -> str | None:
    if frame.empty:
        return "The leaderboard has no trial yet."
    if not (frame["status"] == STATUS_OK).any():
        return "No trial has been scored yet (every trial failed or has not run)."
    return None


def _convergence_section(frame, rank_by, finished_at, durations_s, round_kinds, figures, images, problems) -> Section:
    anchor, title = style.CONVERGENCE
    section = Section(anchor, title)
    data = panels.convergence(frame, rank_by, finished_at, durations_s, round_kinds)
    if data is None:
        section.notes.append("No trial has finished yet: nothing to plot.")
        return section
    order = (
        "Trials in the order they finished; the right panel puts them on wall-clock time"
        + (
            f", each idle pause of over {panels.IDLE_GAP_S / 60:.0f} minutes cut out: the trials after one are a "
            "later run (a backfill, say), named as such."
            if data.idle_cuts
            else "."
        )
        if data.timed
        else "The trials' finishing times were not given: trials are taken round by round, in key order within a "
        "round, so only the order of the rounds is real, and there is no time axis."
    )
    failed = int((data.trials["status"] == STATUS_FAILED).sum())
    section.caption = (
        f"Every finished trial's {rank_by} (dots, one colour per search round) and the {style.BEST_SO_FAR} (black "
        f"line: the highest {rank_by} of any one trial so far, which never falls). Beside it two levels: the "
        f"{style.RECOMMENDED_MEAN} (dashed dark green line), the leaderboard's first configuration's {rank_by} "
        f"averaged over its UMAP seeds, and {style.HELDOUT_ESTIMATE} (dotted dark orange line, its 95 % interval "
        f"shaded) where the leaderboard has one. {order} Grey lines mark where a search round (dashed) or a later "
        "run (solid) starts, named where the name fits."
        + (f" {failed} failed trial(s) are marked with a red x at the bottom." if failed else "")
    )
    if not (data.trials["status"] == STATUS_OK).any():
        section.notes.append("Every finished trial failed: there is no score to plot.")
    _draw(
        section,
        lambda: _interactive().convergence(data, rank_by, figures),
        lambda: _static().convergence(data, rank_by, figures),
        images,
        problems,
    )
    return section


def _parameters_section(frame, rank_by, images, problems) -> Section:
    anchor, title = style.PARAMETERS
    section = Section(anchor, title)
    missing = _no_scored_trial(frame)
    if missing:
        section.notes.append(missing)
        return section
    effects = panels.parameter_effects(frame, rank_by)
    if not effects:
        section.notes.append("Every scored trial used the same value of each parameter: no effect to show.")
        return section
    varied = {effect.parameter for effect in effects}
    fixed = [key for key in panels.GRID_KEYS if key not in varied]
    section.caption = (
        f"Each trial's {rank_by} by the value of one parameter, all the others varying as the sweep varied them: "
        "a marginal view, so a value that looks weak here may still be best in the right combination. Trials at the "
        "configured UMAP seed only (the stability round's extra seeds would count its best configurations several "
        "times)." + (f" Not shown, one value only: {', '.join(fixed)}." if fixed else "")
    )
    _draw(
        section,
        lambda: _interactive().parameters(effects, rank_by),
        lambda: _static().parameters(effects, rank_by),
        images,
        problems,
    )
    return section


def _importance(frame: pd.DataFrame, rank_by: str, problems: list[str]) -> ParameterImportance:
    try:
        return parameter_importance(frame, rank_by)
    except Exception as exc:  # a display aid, as a plot is
        problems.append(f"{style.IMPORTANCE[1]}: {type(exc).__name__}: {exc}")
        return ParameterImportance.none(rank_by, f"it could not be computed ({type(exc).__name__}: {exc})")


def _importance_section(importance: ParameterImportance, images, problems) -> Section:
    anchor, title = style.IMPORTANCE
    section = Section(anchor, title)
    if importance.reason:
        section.notes.append(f"No importance: {importance.reason}.")
        return section
    section.caption = (
        f"How much of the variation of {importance.rank_by} across the trials each parameter explains on its own. "
        f"Method: {importance.describe()}. The remaining {importance.interactions:.0%} is interactions between "
        f"parameters. A parameter with a large share is worth tuning on this corpus; one near zero is not, over the "
        f"values tried. Also in {IMPORTANCE_FILE} beside this page."
    )
    _draw(
        section,
        lambda: _interactive().importance(importance),
        lambda: _static().importance(importance),
        images,
        problems,
    )
    shown = importance.table.assign(importance=importance.table["importance"].map(lambda v: f"{v:.1%}"))
    section.table_html = page.table_html(shown)
    return section


def _parallel_section(frame, rank_by, importance, images, problems) -> Section:
    anchor, title = style.PARALLEL
    section = Section(anchor, title)
    missing = _no_scored_trial(frame)
    data = None if missing else panels.parallel_coordinates(frame, rank_by, importance)
    if data is None:
        section.notes.append(missing or "Every scored trial used the same value of each parameter: nothing to show.")
        return section
    ordered = "in order of importance, the most important beside it" if len(importance.table) else "in grid order"
    section.caption = (
        f"Each scored trial at the configured UMAP seed as one line through its value of each parameter that varied "
        f"({ordered}) to its {rank_by} on the last axis, coloured by {rank_by}: the best trials' "
        "values stand out as the bright bundle. In the page, drag along an axis to keep only the lines through a "
        f"range. Importance method: {importance.method}."
    )
    _draw(
        section,
        lambda: _interactive().parallel_coordinates(data, rank_by),
        lambda: _static().parallel_coordinates(data, rank_by),
        images,
        problems,
    )
    return section


def _heatmap_section(frame, rank_by, images, problems) -> Section:
    anchor, title = style.HEATMAP
    section = Section(anchor, title)
    missing = _no_scored_trial(frame)
    data = None if missing else panels.cluster_heatmap(frame, rank_by)
    if data is None:
        section.notes.append(missing or "No trial has been scored yet.")
        return section
    section.caption = (
        f"Trials on the UMAP reduction of the best trial ({panels.describe_reduction(data.reduction)}), configured "
        f"seed: each cell the best {rank_by} over the settings that are neither UMAP's nor these two (such as "
        "cluster_selection_epsilon or nr_topics); outlined in red, the best cell; empty cells were not run."
    )
    if data.scores.shape == (1, 1):
        section.notes.append(
            "Only one min_cluster_size and one min_samples were run on this reduction: nothing to compare."
        )
        return section
    _draw(
        section,
        lambda: _interactive().heatmap(data, rank_by),
        lambda: _static().heatmap(data, rank_by),
        images,
        problems,
    )
    return section


def _top_section(frame, rank_by, images, problems) -> Section:
    anchor, title = style.TOP
    section = Section(anchor, title)
    missing = _no_scored_trial(frame)
    if missing:
        section.notes.append(missing)
        return section
    table = panels.top_configurations(frame, rank_by)
    heldout = "heldout_mean" in table.columns
    section.caption = (
        f"The {len(table)} best configurations in leaderboard order. Dot: the mean {rank_by} over the UMAP seeds it "
        "ran with, the bar one standard deviation either way, where it ran with several seeds (the search's "
        "stability round); otherwise its one score."
        + (
            f" Diamond: the same on the held-out labels, which no ranking decision reads: a leader far above its "
            f"held-out {rank_by} was chosen partly for fitting the selection labels' noise."
            if heldout
            else " This leaderboard has no held-out scores."
        )
    )
    _draw(
        section,
        lambda: _interactive().top_configurations(table, rank_by),
        lambda: _static().top_configurations(table, rank_by),
        images,
        problems,
    )
    shown = table.rename(
        columns={
            "mean": f"{rank_by} mean",
            "std": f"{rank_by} std",
            "heldout_mean": f"held-out {rank_by} mean",
            "heldout_std": f"held-out {rank_by} std",
        }
    )
    section.table_html = page.table_html(shown)
    return section


def _topic_map_section(topic_map, topics, images, problems) -> Section:
    anchor, title = style.TOPIC_MAP
    section = Section(anchor, title)
    if topic_map is None:
        section.notes.append("No topic map: no trial was chosen, or its labels are not stored.")
    elif len(topic_map.topics) == 0:
        section.notes.append(f"No topic map: trial '{topic_map.trial}' has no document to draw.")
    else:
        section.caption = (
            f"Left: the documents of trial {topic_map.trial} coloured by topic, the largest topics labelled with "
            "their top words; right: the same points, the labelled sample's documents coloured by their class, for "
            "comparison (the two panels' colours are chosen independently: a topic and a class of the same colour "
            f"are not matched). Coordinates: {topic_map.method}."
            + (
                f" The page draws {panels.PAGE_MAP_POINTS:,} of these {len(topic_map.topics):,} documents (every "
                "labelled one first, the rest at random, seeded), so that it opens quickly; the PNG draws them all."
                if len(topic_map.topics) > panels.PAGE_MAP_POINTS
                else ""
            )
        )
        if topics is None:
            section.notes.append("The topics' words were not given: topics are labelled by number only.")
        _draw(
            section,
            lambda: _interactive().topic_map(topic_map, topics),
            lambda: _static().topic_map(topic_map, topics),
            images,
            problems,
        )
    if topics:
        listed = sorted((t for t in topics if t.topic != -1), key=lambda t: -t.size)[:TOPICS_LISTED]
        outliers = next((t.size for t in topics if t.topic == -1), 0)
        table = pd.DataFrame(
            [{"topic": t.topic, "documents": t.size, "top words": ", ".join(t.top_words)} for t in listed],
            columns=["topic", "documents", "top words"],
        )
        section.table_html = page.table_html(table) + (
            f"<p>{outliers} documents are outliers (topic -1).</p>" if outliers else ""
        )
    return section


def _summary(frame: pd.DataFrame, rank_by: str, figures: panels.BestFigures | None) -> list[str]:
    counts = frame["status"].value_counts().to_dict() if not frame.empty else {}
    lines = [
        f"Ranked by {rank_by}: {counts.get(STATUS_OK, 0)} trial(s) scored, {counts.get(STATUS_FAILED, 0)} failed, "
        f"{counts.get(STATUS_MISSING, 0)} not run, of {len(frame)} in the current sweep."
    ]
    if figures is not None:
        seeds = f"over {figures.seeds} UMAP seeds" if figures.seeds > 1 else "one UMAP seed"
        lines.append(
            f"{style.BEST_SO_FAR.capitalize()}: {rank_by} {figures.best_score:.3f} (trial {figures.best_trial}): the "
            "highest score of any one trial."
        )
        if figures.recommended_mean is not None:
            lines.append(
                f"{style.RECOMMENDED_MEAN.capitalize()}: {rank_by} {figures.recommended_mean:.3f} ({seeds}; "
                f"{figures.recommended}, the leaderboard's first row)."
            )
        if figures.estimate is not None:
            interval = (
                f", 95 % interval {figures.ci_low:.3f} to {figures.ci_high:.3f}"
                if figures.ci_low is not None and figures.ci_high is not None
                else ""
            )
            lines.append(f"{style.HELDOUT_ESTIMATE.capitalize()}: {rank_by} {figures.estimate:.3f}{interval}.")
        else:
            lines.append(f"{style.HELDOUT_ESTIMATE.capitalize()}: not computed for this leaderboard.")
    if "round" in frame.columns and frame["round"].notna().any():
        lines.append(f"Search rounds: {int(frame['round'].dropna().nunique())}.")
    lines.append(f"Written {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}.")
    return lines

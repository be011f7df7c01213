"""The sweep report: files written whole into their folder, a self-contained page, valid images, and
a page (with notes) for every degenerate leaderboard. Fast: synthetic leaderboards, no models."""

from __future__ import annotations

import ast
import dataclasses
import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from topic_pipeline.domain.results import STATUS_FAILED, STATUS_OK, TrialResult
from topic_pipeline.domain.trials import TrialParams
from topic_pipeline.engine.reduction import ReductionSpec, reduction_cache_key
from topic_pipeline.inputs.grid import ParamGrid
from topic_pipeline.integrations import report as report_package
from topic_pipeline.integrations.report import (
    IMPORTANCE_FILE,
    MAX_DOCUMENTS,
    REPORT_FILE,
    TopicMap,
    build_topic_map,
    cached_trial_reduction,
    classes_of,
    panels,
    style,
    write_report,
)
from topic_pipeline.integrations.report import page as report_page
from topic_pipeline.integrations.report.topic_map import coordinates_2d, sample_documents
from topic_pipeline.scoring.confidence import CI_HIGH, CI_LOW, ESTIMATE
from topic_pipeline.scoring.importance import METHOD
from topic_pipeline.scoring.leaderboard import build_leaderboard
from topic_pipeline.scoring.metrics import METRIC_NAMES
from topic_pipeline.scoring.topic_words import TopicSummary
from topic_pipeline.storage.array_cache import ArrayCache
from topic_pipeline.storage.files import OWNERSHIP_MARKER, FolderNotOursError

FP = "f" * 16
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROUND_KINDS = {0: "broad", 1: "refine", 2: "stability"}


def _metrics(score: float) -> dict[str, float]:
    values = {name: score for name in METRIC_NAMES}
    values.update(outlier_fraction=0.1, topic_count=4.0, labelled_documents=20.0)
    return values


def _score(params: TrialParams) -> float:
    """A made-up score with a clear optimum, so every plot has something to show."""
    ms = params.hdbscan_min_samples or 0
    return round(
        0.9
        - abs(params.hdbscan_min_cluster_size - 5) * 0.03
        - ms * 0.02
        - params.umap_n_neighbors * 0.002
        + params.seed_replicate * 0.01,
        6,
    )


@dataclasses.dataclass
class Sweep:
    frame: pd.DataFrame
    finished_at: dict[str, float]
    durations_s: dict[str, float]


def make_sweep(grid: dict | None = None, failed: int = 1, replicate_top: int = 2) -> Sweep:
    """A search-like sweep: a broad round, a refine round, and extra seeds for the best configurations."""
    grid = grid or {
        "umap_n_neighbors": [5, 15],
        "hdbscan_min_cluster_size": [3, 5, 10],
        "hdbscan_min_samples": [None, 2],
        "hdbscan_cluster_selection_epsilon": [0.0, 0.1],
    }
    params = ParamGrid.from_mapping(grid).trials()
    best = sorted(params, key=_score, reverse=True)[:replicate_top]
    params += [dataclasses.replace(p, seed_replicate=r) for p in best for r in (1, 2)]
    trials = {p.key: p.to_dict() for p in params}
    results, rounds, finished_at, durations = {}, {}, {}, {}
    half = max(1, len(params) // 2)
    for index, p in enumerate(params):
        rounds[p.key] = 2 if p.seed_replicate else (0 if index < half else 1)
        finished_at[p.key] = 1_000.0 + 7.0 * index
        durations[p.key] = 5.0
        if index < failed:
            results[p.key] = TrialResult(
                p.key, p.to_dict(), FP, STATUS_FAILED, error="ValueError: boom", finished_at=finished_at[p.key]
            )
        else:
            results[p.key] = TrialResult(
                p.key, p.to_dict(), FP, STATUS_OK, metrics=_metrics(_score(p)), finished_at=finished_at[p.key]
            )
    frame = build_leaderboard(trials, results, rank_by="ari", rounds=rounds)
    return Sweep(frame, finished_at, durations)


def make_topic_map(n: int = 400, dims: int = 5, trial: str = "the-trial") -> tuple[TopicMap, list[TopicSummary]]:
    rng = np.random.default_rng(1)
    topics = rng.integers(-1, 4, n)
    centres = rng.normal(0, 5, (5, dims))
    reduction = (centres[topics + 1] + rng.normal(0, 0.5, (n, dims))).astype(np.float32)
    classes = [f"class-{t % 3}" if i % 4 == 0 else None for i, t in enumerate(topics)]
    summaries = [
        TopicSummary(int(t), int((topics == t).sum()), [f"word{t}a", f"word{t}b", f"word{t}c"], [])
        for t in range(-1, 4)
    ]
    return build_topic_map(trial, topics, classes, reduction=reduction), summaries


def full_report(directory: Path, sweep: Sweep | None = None, **overrides):
    sweep = sweep or make_sweep()
    topic_map, summaries = make_topic_map()
    sweep.frame["heldout_ari"] = sweep.frame["ari"] - 0.05
    arguments = dict(
        finished_at=sweep.finished_at,
        durations_s=sweep.durations_s,
        round_kinds=ROUND_KINDS,
        topics=summaries,
        topic_map=topic_map,
        warnings=["trial 'x' ranks first but <b>found no topic</b>"],
    )
    arguments.update(overrides)
    return write_report(directory, sweep.frame, "ari", **arguments)


def map_only(directory: Path, topic_map: TopicMap | None, topics: list[TopicSummary] | None = None, **overrides):
    """A report of an empty leaderboard with a map: only the map is drawn (quick)."""
    return write_report(
        directory, build_leaderboard({}, {}, rank_by="ari"), "ari", topic_map=topic_map, topics=topics, **overrides
    )


def figures(text: str) -> dict[str, dict]:
    """Each figure of a page (plot name -> plotly's figure JSON), unpacked as the browser unpacks it."""
    found = re.findall(r'<div id="plot-([^"]+)" class="plot"[^>]* data-figure="([^"]+)"', text)
    return {name: json.loads(report_page.unpack(payload)) for name, payload in found}


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    return full_report(tmp_path_factory.mktemp("full") / "report")


# --- the files ------------------------------------------------------------------------------------------


def test_full_report_writes_a_self_contained_page_and_a_png_per_plot(full) -> None:
    files = full

    assert files.problems == []
    assert files.html == files.directory / REPORT_FILE and files.html.is_file()
    assert set(files.images) == {name for name, _ in style.PLOTS}
    for path in files.images.values():
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 2_000
    page = files.html.read_text(encoding="utf-8")
    for name, title in style.PLOTS:
        assert title in page, title
        assert f'id="plot-{name}"' in page and f'href="{name}.png"' in page
    # Self-contained: plotly.js inline once, no script or stylesheet fetched from anywhere.
    assert not re.search(r"<script[^>]*\ssrc\s*=", page, re.IGNORECASE)
    assert not re.search(r"<link[^>]*href\s*=\s*[\"']?https?:", page, re.IGNORECASE)
    assert page.count('id="plotly-js"') == 1 and page.count("data-figure=") == len(style.PLOTS)
    assert "Plotly.newPlot(" in page and "DecompressionStream" in page
    drawn = figures(page)
    assert set(drawn) == {name for name, _ in style.PLOTS}
    # The held-out scores, the search rounds and the topics' words are shown.
    assert "held-out ari" in page and "word2a, word2b, word2c" in page
    assert "round 1 (refine)" in json.dumps(drawn["convergence"])
    # The warnings head the page, escaped.
    assert "&lt;b&gt;found no topic&lt;/b&gt;" in page and "<b>found no topic</b>" not in page


def test_the_pngs_decode_as_images(full) -> None:
    from matplotlib.image import imread

    for path in full.images.values():
        image = imread(path)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_nothing_is_written_outside_the_folder_and_a_rerun_replaces_it(tmp_path: Path) -> None:
    parent = tmp_path / "leaderboard"
    parent.mkdir()
    (parent / "leaderboard.csv").write_text("kept")
    full_report(parent / "report")
    files = map_only(parent / "report", None)  # the second report has no plot at all

    assert sorted(p.name for p in parent.iterdir()) == ["leaderboard.csv", "report"]
    assert (parent / "leaderboard.csv").read_text() == "kept"
    written = {p.name for p in (parent / "report").iterdir()}
    assert written == {REPORT_FILE, IMPORTANCE_FILE, OWNERSHIP_MARKER, *(p.name for p in files.images.values())}
    # The first report's images went with it.
    assert files.images == {} and written == {REPORT_FILE, IMPORTANCE_FILE, OWNERSHIP_MARKER}


def test_a_folder_holding_something_else_is_refused_and_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(FolderNotOursError):
        map_only(target, None)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # no staging folder left behind


# --- degenerate inputs -------------------------------------------------------------------------------------


def _page(files) -> str:
    assert files.problems == []
    return files.html.read_text(encoding="utf-8")


def test_every_trial_failed(tmp_path: Path) -> None:
    sweep = make_sweep(failed=10_000, replicate_top=0)
    page = _page(write_report(tmp_path / "r", sweep.frame, "ari", finished_at=sweep.finished_at))
    assert "Every finished trial failed" in page and "No trial has been scored yet" in page
    for _, title in style.PLOTS:
        assert title in page


def test_no_trial_has_run(tmp_path: Path) -> None:
    params = ParamGrid.from_mapping({"hdbscan_min_cluster_size": [3, 5]}).trials()
    frame = build_leaderboard({p.key: p.to_dict() for p in params}, {}, rank_by="ari")
    files = write_report(tmp_path / "r", frame, "ari")
    page = _page(files)
    assert files.images == {} and "Plotly.newPlot(" not in page
    assert "No trial has finished yet" in page and "No topic map" in page


def test_an_empty_leaderboard(tmp_path: Path) -> None:
    frame = build_leaderboard({}, {}, rank_by="ari")
    page = _page(write_report(tmp_path / "r", frame, "ari"))
    assert "The leaderboard has no trial yet" in page


def test_one_trial_one_value_each_no_times_no_rounds_no_failures(tmp_path: Path) -> None:
    (params,) = ParamGrid.from_mapping({}).trials()
    result = TrialResult(params.key, params.to_dict(), FP, STATUS_OK, metrics=_metrics(0.4))
    frame = build_leaderboard({params.key: params.to_dict()}, {params.key: result}, rank_by="ari")
    files = write_report(tmp_path / "r", frame, "ari")
    page = _page(files)
    assert "no effect to show" in page and "nothing to compare" in page and "finishing times were not given" in page
    assert set(files.images) == {"convergence", "top_configurations"}


def test_a_map_without_topic_words_and_without_labelled_documents(tmp_path: Path) -> None:
    topic_map = build_topic_map(
        "t", np.array([0, 0, 1, 1, -1]), [None] * 5, reduction=np.random.default_rng(0).normal(size=(5, 2))
    )
    files = map_only(tmp_path / "r", topic_map)
    assert set(files.images) == {"topic_map"} and "labelled by number only" in _page(files)


def test_a_map_of_one_document_and_one_of_none(tmp_path: Path) -> None:
    one = build_topic_map("t", np.array([-1]), ["a"], reduction=np.zeros((1, 5), dtype=np.float32))
    assert set(map_only(tmp_path / "one", one, topics=[]).images) == {"topic_map"}
    empty = build_topic_map("t", np.array([], dtype=int), [], reduction=np.zeros((0, 5), dtype=np.float32))
    assert "has no document to draw" in _page(map_only(tmp_path / "none", empty))


def test_user_text_is_escaped(tmp_path: Path) -> None:
    topics = np.array([0, 1, 0, 1])
    topic_map = build_topic_map("t", topics, ["<script>alert(1)</script>", None, "b", "b"], reduction=np.eye(4)[:, :3])
    page = _page(map_only(tmp_path / "r", topic_map, warnings=["<script>alert(2)</script>"]))
    assert "<script>alert(1)</script>" not in page and "<script>alert(2)</script>" not in page


def test_a_plot_that_fails_leaves_a_note_and_a_problem_not_an_exception(tmp_path: Path, monkeypatch) -> None:
    from topic_pipeline.integrations.report import interactive

    def broken(*_args):
        raise RuntimeError("no")

    monkeypatch.setattr(interactive, "heatmap", broken)
    files = full_report(tmp_path / "r", topic_map=None)
    assert files.problems == [f"{style.HEATMAP[1]} (HTML): RuntimeError: no"]
    assert "This plot could not be drawn (RuntimeError: no)" in files.html.read_text(encoding="utf-8")
    assert "cluster_heatmap" in files.images  # the image did not depend on the HTML figure


# --- what each plot shows ----------------------------------------------------------------------------------


def test_convergence_follows_finishing_times_and_never_decreases() -> None:
    sweep = make_sweep()
    reversed_times = {key: 10_000 - value for key, value in sweep.finished_at.items()}
    data = panels.convergence(sweep.frame, "ari", reversed_times, None, ROUND_KINDS)
    assert data.timed
    assert list(data.trials["trial"]) == sorted(sweep.finished_at, key=lambda k: -sweep.finished_at[k])
    best = data.trials["best"].dropna().to_numpy()
    assert (np.diff(best) >= 0).all() and best[-1] == pytest.approx(sweep.frame["ari"].max())
    assert data.trials["elapsed_s"].min() >= 0
    # Results written without finishing times (0) give no time axis.
    assert not panels.convergence(sweep.frame, "ari", dict.fromkeys(sweep.finished_at, 0.0)).timed


def test_convergence_without_times_goes_round_by_round() -> None:
    sweep = make_sweep()
    data = panels.convergence(sweep.frame, "ari", None, None, ROUND_KINDS)
    assert not data.timed and data.trials["elapsed_s"].isna().all()
    assert list(data.trials["round"]) == sorted(data.trials["round"])
    assert [label for _, label in data.round_starts] == ["round 0 (broad)", "round 1 (refine)", "round 2 (stability)"]


def test_parameter_effects_leave_out_fixed_parameters_and_extra_seeds() -> None:
    frame = make_sweep().frame
    effects = {effect.parameter: effect for effect in panels.parameter_effects(frame, "ari")}
    assert set(effects) == {
        "umap_n_neighbors",
        "hdbscan_min_cluster_size",
        "hdbscan_min_samples",
        "hdbscan_cluster_selection_epsilon",
    }
    assert effects["hdbscan_min_samples"].labels == ["none", "2"]
    assert effects["hdbscan_min_cluster_size"].labels == ["3", "5", "10"]
    first_seed_scored = ((frame["status"] == STATUS_OK) & (frame["seed_replicate"] == 0)).sum()
    assert sum(len(s) for s in effects["umap_n_neighbors"].scores) == first_seed_scored


def test_heatmap_is_on_the_best_reduction_and_outlines_the_best_cell() -> None:
    frame = make_sweep().frame
    data = panels.cluster_heatmap(frame, "ari")
    assert data.reduction["umap_n_neighbors"] == 5  # the made-up score prefers fewer neighbours
    assert data.min_cluster_sizes == ["3", "5", "10"] and data.min_samples == ["none", "2"]
    assert data.best_cell == (1, 0) and data.scores[1, 0] == pytest.approx(0.9 - 5 * 0.002)


def test_top_configurations_carry_the_seed_spread_and_held_out_scores() -> None:
    frame = make_sweep().frame
    frame["heldout_ari"] = frame["ari"] - 0.05
    table = panels.top_configurations(frame, "ari", limit=4)
    assert len(table) == 4 and table["configuration"].is_unique
    replicated = table[table["seeds"] == 3]
    assert len(replicated) == 2 and (replicated["std"] > 0).all()
    assert table.loc[table["seeds"] == 1, "std"].isna().all()
    assert np.allclose(table["heldout_mean"], table["mean"] - 0.05)
    assert "heldout_mean" not in panels.top_configurations(make_sweep().frame, "ari").columns


def _with_estimate(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a held-out estimate and interval on its first configuration's rows, as ``add_intervals``
    writes them."""
    frame = frame.copy()
    first = frame["configuration"] == frame["configuration"].iloc[0]
    frame[ESTIMATE], frame[CI_LOW], frame[CI_HIGH] = np.nan, np.nan, np.nan
    frame.loc[first, [ESTIMATE, CI_LOW, CI_HIGH]] = [0.81, 0.76, 0.86]
    frame["heldout_ari"] = frame["ari"] - 0.01  # a held-out part: the estimate is over held-out documents
    return frame


def test_the_three_best_figures_are_named_for_what_they_are_and_drawn_each_as_a_series(tmp_path: Path) -> None:
    sweep = make_sweep()
    frame = _with_estimate(sweep.frame)
    first = frame.iloc[0]
    figures_ = panels.best_figures(frame, "ari")
    # The leader is chosen by its seeds' mean, so a single seed can score above it: the two are not the same figure.
    assert figures_.best_score == pytest.approx(frame["ari"].max())
    assert figures_.best_score > figures_.recommended_mean
    assert figures_.recommended_mean == pytest.approx(first["ari_mean"]) and figures_.seeds == 3
    assert (figures_.estimate, figures_.ci_low, figures_.ci_high) == (0.81, 0.76, 0.86)
    files = write_report(tmp_path / "r", frame, "ari", finished_at=sweep.finished_at, round_kinds=ROUND_KINDS)
    text = files.html.read_text(encoding="utf-8")
    header = html.unescape(re.search(r"<ul>(.*?)</ul>", text, re.S).group(1))
    assert f"Best trial so far: ari {figures_.best_score:.3f} (trial {figures_.best_trial})" in header
    assert (
        f"Recommended configuration, mean over seeds: ari {figures_.recommended_mean:.3f} (over 3 UMAP seeds" in header
    )
    assert "Its held-out estimate: ari 0.810, 95 % interval 0.760 to 0.860." in header
    drawn = figures(text)["convergence"]
    names = [trace.get("name") for trace in drawn["data"]]
    for name in (style.BEST_SO_FAR, style.RECOMMENDED_MEAN, style.HELDOUT_ESTIMATE):
        assert name in names, name
    best = next(trace for trace in drawn["data"] if trace.get("name") == style.BEST_SO_FAR)
    running = [value for value in best["y"] if value is not None]  # none before the first scored trial
    assert np.all(np.diff(running) >= 0) and running[-1] == pytest.approx(figures_.best_score, abs=1e-4)
    level = next(trace for trace in drawn["data"] if trace.get("name") == style.RECOMMENDED_MEAN)
    assert level["y"] == [figures_.recommended_mean] * 2
    # Without a held-out estimate the header says so instead of naming another figure.
    no_estimate = _page(write_report(tmp_path / "n", sweep.frame, "ari"))
    assert "Its held-out estimate: not computed for this leaderboard." in html.unescape(no_estimate)
    # An estimate over all labelled documents (no held-out part) is in-sample: not drawn or named as held out.
    in_sample = _with_estimate(sweep.frame).drop(columns="heldout_ari")
    assert panels.best_figures(in_sample, "ari").estimate is None


def test_a_backfill_hours_later_is_a_labelled_run_of_its_own_and_its_pause_is_cut_out(tmp_path: Path) -> None:
    sweep = make_sweep()
    order = sorted(sweep.finished_at, key=sweep.finished_at.get)
    later = set(order[-4:])  # the last four trials (the stability round's) rerun five hours later
    finished_at = {key: t + (5 * 3600 if key in later else 0) for key, t in sweep.finished_at.items()}
    data = panels.convergence(sweep.frame, "ari", finished_at, sweep.durations_s, ROUND_KINDS)
    trials = data.trials
    assert trials.loc[trials["trial"].isin(later), "run"].eq(1).all() and trials["run"].max() == 1
    [(number, idle)] = data.idle_cuts
    assert number == len(trials) - 3 and idle == pytest.approx(5 * 3600 + 2.0)  # no trial running: the pause
    assert trials["active_s"].max() < 600 and np.all(np.diff(trials["active_s"]) >= 0)
    labels = [label for _, label in data.round_starts]
    # The later run is named as such, never a second start of a round already under way.
    assert labels == ["round 0 (broad)", "round 1 (refine)", "run 2, after 5.0 h idle: round 2 (stability)"]
    assert "idle pauses over 10 min cut out" in panels.convergence_axes(data)[1][1]
    text = _page(write_report(tmp_path / "r", sweep.frame, "ari", finished_at=finished_at, round_kinds=ROUND_KINDS))
    assert "a later run (a backfill, say), named as such" in text
    drawn = figures(text)["convergence"]
    assert "run 2, after 5.0 h idle" in json.dumps(drawn)
    assert panels.run_starts(data) == [False, False, True]
    assert [shape["line"]["dash"] for shape in drawn["layout"]["shapes"]] == ["dash", "dash", "solid"] * 2


def test_a_long_trial_running_through_a_quiet_stretch_keeps_one_run() -> None:
    sweep = make_sweep()
    keys = sorted(sweep.finished_at, key=sweep.finished_at.get)
    finished_at = {key: 1_000.0 + 7.0 * index + (3 * 3600 if index >= 10 else 0) for index, key in enumerate(keys)}
    durations = dict.fromkeys(keys, 5.0)
    durations[keys[-1]] = finished_at[keys[-1]] - 1_000.0  # it started with the first and ran throughout
    data = panels.convergence(sweep.frame, "ari", finished_at, durations, ROUND_KINDS)
    assert data.idle_cuts == [] and data.trials["run"].eq(0).all()
    del durations[keys[-1]]
    assert len(panels.convergence(sweep.frame, "ari", finished_at, durations, ROUND_KINDS).idle_cuts) == 1


def test_interleaved_rounds_start_once_per_run() -> None:
    sweep = make_sweep()
    # The two first rounds' trials finish alternately, as parallel workers may finish them.
    keys = sorted(sweep.finished_at, key=sweep.finished_at.get)
    finished_at = {key: 1_000.0 + 7.0 * ((index % 2) * len(keys) + index) / 2 for index, key in enumerate(keys)}
    data = panels.convergence(sweep.frame, "ari", finished_at, None, ROUND_KINDS)
    labels = [label for _, label in data.round_starts]
    assert len(labels) == len(set(labels)) == 3


def test_round_labels_are_left_out_where_they_would_overlap() -> None:
    assert panels.label_fits([0.0, 1.0, 2.0, 50.0, 52.0, 100.0], 100.0) == [True, False, False, True, False, True]
    assert panels.label_fits([], 0.0) == []
    # A later run's start is named first; a round's start too close to it goes unnamed.
    assert panels.label_fits([0.0, 49.0, 50.0], 100.0, [False, False, True]) == [True, False, True]
    grid = {
        "umap_n_neighbors": [5, 15, 30, 50],
        "hdbscan_min_cluster_size": [3, 5, 10, 20],
        "hdbscan_min_samples": [None, 2, 4],
        "hdbscan_cluster_selection_epsilon": [0.0, 0.1, 0.2],
    }
    data = panels.convergence(make_sweep(grid).frame, "ari", None, None, ROUND_KINDS)
    starts = [(1, "round 0 (broad)"), (3, "round 1 (refine)"), (100, "round 2 (stability)")]
    crowded = dataclasses.replace(data, round_starts=starts)
    from topic_pipeline.integrations.report import interactive

    figure = interactive.convergence(crowded, "ari")
    assert len(figure.layout.shapes) == 3 and [a.text for a in figure.layout.annotations] == [
        "round 0 (broad)",
        "round 2 (stability)",
    ]


def test_importance_is_drawn_captioned_with_its_method_and_written_beside_the_page(full) -> None:
    importance = full.importance
    assert importance.reason is None and importance.method == METHOD and len(importance.table) == 4
    assert full.importance_file in full.paths and full.importance_file.name == IMPORTANCE_FILE
    assert json.loads(full.importance_file.read_text(encoding="utf-8")) == json.loads(json.dumps(importance.to_dict()))
    text = html.unescape(full.html.read_text(encoding="utf-8"))
    assert f"Method: {METHOD} (100 trees, seed 0), fitted on {importance.trials} scored trials" in text
    assert "evaluated over all 24 combinations of the values each parameter was run with" in text
    bars = figures(full.html.read_text(encoding="utf-8"))["importance"]["data"][0]
    assert bars["type"] == "bar" and bars["y"] == importance.table["parameter"].tolist()
    # The made-up score moves most with min_cluster_size and least with the selection epsilon, which it ignores.
    assert importance.table["parameter"].iloc[0] == "hdbscan_min_cluster_size"
    assert importance.table["parameter"].iloc[-1] == "hdbscan_cluster_selection_epsilon"


def test_too_few_trials_for_an_importance_leave_a_note_and_a_reason_in_the_file(tmp_path: Path) -> None:
    sweep = make_sweep({"hdbscan_min_cluster_size": [3, 5, 10]}, failed=0, replicate_top=0)
    files = write_report(tmp_path / "r", sweep.frame, "ari")
    assert "No importance: 3 scored trial(s) at the configured seed; at least 8 needed." in html.unescape(_page(files))
    written = json.loads(files.importance_file.read_text(encoding="utf-8"))
    assert written["importances"] == [] and written["reason"].startswith("3 scored") and written["method"] == METHOD
    assert "importance" not in files.images and "parallel_coordinates" in files.images


def test_parallel_coordinates_cross_the_varying_parameters_to_the_metric(full) -> None:
    frame = make_sweep().frame
    importance = full.importance
    data = panels.parallel_coordinates(frame, "ari", importance)
    names = [axis.name for axis in data.axes]
    assert names == [*importance.table["parameter"][::-1], "ari"]  # the most important beside the metric
    configured = frame[(frame["status"] == STATUS_OK) & (frame["seed_replicate"] == 0)]
    assert len(data.scores) == len(configured) and sorted(data.scores) == sorted(configured["ari"])
    samples = data.axes[names.index("hdbscan_min_samples")]
    assert samples.labels == ["none", "2"] and samples.ticks == [0.0, 1.0] and set(samples.values) == {0.0, 1.0}
    drawn = figures(full.html.read_text(encoding="utf-8"))["parallel_coordinates"]["data"][0]
    assert drawn["type"] == "parcoords" and [d["label"] for d in drawn["dimensions"]] == names
    assert drawn["line"]["color"] == drawn["dimensions"][-1]["values"]  # coloured by the metric
    assert panels.parallel_coordinates(frame, "ari", None).axes[0].name == "umap_n_neighbors"  # grid order


def test_the_page_carries_plotly_js_once_packed_and_rounded_figures(full) -> None:
    from plotly.offline import get_plotlyjs

    text = full.html.read_text(encoding="utf-8")
    packed = re.findall(r'<script type="application/octet-stream" id="plotly-js">([^<]+)</script>', text)
    assert len(packed) == 1 and report_page.unpack(packed[0]) == get_plotlyjs()
    assert len(text.encode("utf-8")) < len(get_plotlyjs()) / 2
    for trace in figures(text)["convergence"]["data"]:
        for value in [*trace.get("x", []), *trace.get("y", [])]:
            assert value is None or round(value, 4) == value


def test_the_page_draws_a_capped_sample_of_a_big_map_and_the_png_all_of_it() -> None:
    n = panels.PAGE_MAP_POINTS + 1_000
    classes = tuple("c" if i % 50 == 0 else None for i in range(n))
    coordinates = np.random.default_rng(0).normal(size=(n, 2)) * 10
    topic_map = TopicMap("t", coordinates, np.arange(n) % 5, classes, "m", n)
    drawn = panels.page_points(topic_map)
    assert len(drawn.topics) == panels.PAGE_MAP_POINTS and sum(c is not None for c in drawn.classes) == n // 50
    assert panels.page_points(drawn) is drawn
    assert panels.coordinate_digits(coordinates) == 3 and panels.coordinate_digits(np.zeros((3, 2))) == 0


# --- the map's data ----------------------------------------------------------------------------------------


def test_sampling_keeps_every_labelled_document_and_is_reproducible() -> None:
    classes = [("c" if i % 10 == 0 else None) for i in range(1_000)]
    chosen = sample_documents(classes, max_documents=300, seed=3)
    assert len(chosen) == 300 and set(range(0, 1_000, 10)) <= set(chosen.tolist())
    assert np.array_equal(chosen, sample_documents(classes, max_documents=300, seed=3))
    assert len(sample_documents(["c"] * 50, max_documents=20)) == 20
    assert np.array_equal(sample_documents(classes, max_documents=5_000), np.arange(1_000))


def test_a_capped_map_says_how_many_documents_it_draws() -> None:
    topics = np.arange(100) % 4
    topic_map = build_topic_map(
        "t", topics, [None] * 100, reduction=np.random.default_rng(0).normal(size=(100, 3)), max_documents=30
    )
    assert (
        len(topic_map.topics) == 30 and topic_map.total_documents == 100 and "30 of 100 documents" in topic_map.method
    )


def test_coordinates_come_from_the_reduction_when_there_is_one() -> None:
    flat = np.random.default_rng(0).normal(size=(20, 2))
    coordinates, method = coordinates_2d(flat, None)
    assert np.allclose(coordinates, flat) and "own 2-component UMAP" in method
    coordinates, method = coordinates_2d(np.random.default_rng(0).normal(size=(20, 6)), None)
    assert coordinates.shape == (20, 2) and "principal components of the trial's 6-component" in method
    coordinates, method = coordinates_2d(None, np.random.default_rng(0).normal(size=(5, 8)))
    assert coordinates.shape == (5, 2) and "too few documents for UMAP" in method
    with pytest.raises(ValueError):
        coordinates_2d(None, None)


def test_a_topic_map_checks_its_shapes() -> None:
    with pytest.raises(ValueError):
        TopicMap("t", np.zeros((3, 2)), np.zeros(2, dtype=int), (None, None), "m", 3)


def test_classes_of_maps_ids_to_the_labelled_sample() -> None:
    assert classes_of(np.array([1, 2, 3]), {1: "a", 3: "b"}) == ("a", None, "b")


def test_the_cached_reduction_is_read_never_computed(tmp_path: Path) -> None:
    params = dataclasses.replace(ParamGrid.from_mapping({}).trials()[0], seed_replicate=2)
    spec = ReductionSpec(params.umap_n_neighbors, params.umap_n_components, params.umap_min_dist, 42 + 2)
    assert cached_trial_reduction(tmp_path, "emb-key", params, 42, 10) is None
    reduction = np.random.default_rng(0).normal(size=(10, params.umap_n_components)).astype(np.float32)
    ArrayCache(tmp_path).store(reduction_cache_key("emb-key", spec), {"reduction": reduction})
    assert np.array_equal(cached_trial_reduction(tmp_path, "emb-key", params, 42, 10), reduction)
    assert cached_trial_reduction(tmp_path, "emb-key", params, 42, 11) is None  # another corpus size
    assert cached_trial_reduction(tmp_path, "emb-key", params, 41, 10) is None  # another seed


def test_a_corpus_above_the_threshold_is_drawn_as_a_sample_of_the_threshold_size() -> None:
    n = MAX_DOCUMENTS + 500
    classes = [("c" if i % 100 == 0 else None) for i in range(n)]
    reduction = np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32)
    topic_map = build_topic_map("t", np.arange(n) % 7, classes, reduction=reduction)
    assert len(topic_map.topics) == MAX_DOCUMENTS == len(topic_map.coordinates) and topic_map.total_documents == n
    assert sum(c is not None for c in topic_map.classes) == len(range(0, n, 100))  # every labelled one
    assert f"a sample of {MAX_DOCUMENTS:,} of {n:,} documents drawn" in topic_map.method


def test_a_layout_fitted_on_the_embeddings_is_cached_and_reused(tmp_path: Path, monkeypatch) -> None:
    from topic_pipeline.integrations.report import topic_map as topic_map_module

    fits: list[int] = []

    def fake_umap(embeddings, seed):
        fits.append(seed)
        return np.asarray(embeddings, dtype=np.float64)[:, :2] * seed

    monkeypatch.setattr(topic_map_module, "_umap_2d", fake_umap)
    embeddings = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    loads: list[int] = []

    def load() -> np.ndarray:
        loads.append(1)
        return embeddings

    def draw(trial: str, seed: int = 42, key: str = "emb-key", cache: Path | None = tmp_path, **options):
        return build_topic_map(
            trial,
            np.arange(50) % 3,
            [None] * 50,
            embeddings=load,
            seed=seed,
            layout_cache=cache,
            embeddings_key=key,
            **options,
        )

    first = draw("a")
    assert not first.layout_cached and fits == [42] and "kept in the cache" in first.method
    # Another trial of the same embedding set draws the same documents: the layout is read, the embeddings
    # never loaded.
    second = draw("b")
    assert (
        second.layout_cached and np.array_equal(second.coordinates, first.coordinates) and fits == [42] and loads == [1]
    )
    # Another seed, another embedding set, another sample or no cache: fitted again.
    draw("a", seed=7)
    draw("a", key="other-key")
    draw("a", max_documents=20)
    draw("a", cache=None)
    assert fits == [42, 7, 42, 42, 42]


@pytest.mark.slow
def test_without_a_reduction_the_map_fits_a_2d_umap_of_the_embeddings() -> None:
    rng = np.random.default_rng(0)
    embeddings = np.concatenate([rng.normal(c, 0.1, (30, 16)) for c in (-1, 1)]).astype(np.float32)
    topic_map = build_topic_map("t", np.repeat([0, 1], 30), [None] * 60, embeddings=embeddings)
    assert topic_map.coordinates.shape == (60, 2) and "2-component UMAP (cosine" in topic_map.method


def test_the_report_package_never_imports_dagster() -> None:
    for path in Path(report_package.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [name for name in names if name.split(".")[0] == "dagster"], path

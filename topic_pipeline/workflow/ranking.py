"""The leaderboard stage: every trial of the current grid ranked, with what a reader needs beside the ranking.

``rank_sweep`` ranks the current results, adds the bootstrap intervals and the trust summary, names what
makes the first row doubtful (the warnings), computes the leaders' topic words, writes the CSV and its
warnings beside it, and logs the leaderboard to the sweep's MLflow run. It returns a plain ``Ranking``,
which the Dagster layer maps onto the asset's metadata and checks. The HTML report is another stage
(``workflow.report``): ranking never waits on plots.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from topic_pipeline.domain.results import STATUS_FAILED, STATUS_MISSING, STATUS_OK, TrialResult, results_digest
from topic_pipeline.domain.trials import GRID_KEYS, TrialParams
from topic_pipeline.errors import GridError
from topic_pipeline.inputs.embeddings import EmbeddingCache
from topic_pipeline.integrations.mlflow_tracking import MlflowTracker
from topic_pipeline.scoring.confidence import add_intervals, trust_markdown, trust_summary, verdict_line
from topic_pipeline.scoring.leaderboard import (
    build_leaderboard,
    leaderboard_warnings,
    to_markdown,
    write_leaderboard_warnings,
)
from topic_pipeline.scoring.topic_words import TopicSummary, leader_topics, topic_word_warnings, topics_markdown
from topic_pipeline.storage.files import read_json, write_atomically, write_json
from topic_pipeline.storage.paths import DataPaths, sweep_id
from topic_pipeline.workflow.sweep_inputs import SweepInputs

# The leaders whose topic words are computed and logged (topics.json on their MLflow runs).
TOPIC_WORDS_FOR_LEADERS = 10
# Beside the CSV: the best trial's topics, for the report (which would otherwise compute them again).
BEST_TOPICS_FILE = "best_topics.json"
# The metrics beside the ranking metric in the Markdown copy of the leaderboard (MLflow has no table view).
MARKDOWN_METRICS = ("ari", "ami", "nmi", "f1_macro")


@dataclasses.dataclass(frozen=True)
class Ranking:
    """One leaderboard: the ranked frame and everything said about it."""

    frame: pd.DataFrame  # one row per trial of the grid: scored trials ranked, then failed, then missing
    rank_by: str
    rank_by_stability: bool
    warnings: list[str]  # what makes the first row doubtful; also in warnings.json beside the CSV
    trust: dict[str, Any] | None  # ``confidence.trust_summary``; None when nothing is scored
    summary: list[str]  # Markdown parts: the verdict, the warnings, the trust summary, the best trial's topics
    markdown: str  # the summary and the top configurations, as logged on the sweep's MLflow run
    best: dict[str, Any]  # the first row ({} when nothing is scored)
    topics: dict[str, list[TopicSummary]]  # the leaders' topics, by trial key
    csv_path: Path
    grid_fingerprint: str
    inputs_fingerprint: str
    results_digest: str  # the state of the results it ranks: the planner's "is the leaderboard current"
    heldout_documents: int
    mlflow_run_id: str  # the sweep's run
    mlflow_run_url: str | None

    @property
    def recommended_trial(self) -> str | None:
        """The first row: the recommended configuration's best seed, what an export takes by default."""
        return str(self.best["trial"]) if self.best else None

    @property
    def best_trial_score(self) -> float:
        """The highest ``rank_by`` of any scored trial: as trials are added it never falls (NaN when none)."""
        scores = self.frame.loc[self.frame["status"] == STATUS_OK, self.rank_by].astype(float)
        return float(scores.max()) if len(scores) else float("nan")

    @property
    def recommended_mean(self) -> float:
        """The recommended configuration's ``rank_by``, mean over its seeds (NaN when nothing is scored)."""
        return float(self.trust["selection_score"]) if self.trust else float("nan")

    @property
    def verdict(self) -> str:
        """One line: the recommended configuration, its scores and how far to trust them."""
        return verdict_line(self.trust) if self.trust else "no trial is scored yet"

    @property
    def counts(self) -> dict[str, int]:
        """Trials by status: ``ok`` (scored), ``failed``, ``missing``."""
        found = self.frame["status"].value_counts().to_dict()
        return {status: int(found.get(status, 0)) for status in (STATUS_OK, STATUS_FAILED, STATUS_MISSING)}

    @property
    def recommended_heldout(self) -> float:
        """The recommended configuration's held-out estimate (NaN when there is none)."""
        score = self.trust.get("heldout_score") if self.trust else None
        return float("nan") if score is None else float(score)

    @property
    def varying(self) -> list[str]:
        """The grid parameters that take more than one value in this sweep."""
        return [name for name in GRID_KEYS if self.frame[name].astype(str).nunique() > 1]


def embeddings_loader(inputs: SweepInputs) -> Callable[[TrialParams], np.ndarray]:
    """The corpus's embeddings of a trial's embedding set, each set read once (leaders mostly share one)."""
    cache = EmbeddingCache(inputs.paths.embeddings)
    loaded: dict[str, np.ndarray] = {}

    def embeddings_of(params: TrialParams) -> np.ndarray:
        embedding_set = params.embedding_set
        if embedding_set.key not in loaded:
            _, loaded[embedding_set.key] = cache.require_for_corpus(
                embedding_set, inputs.corpus.content_hash, len(inputs.corpus), inputs.config.stopwords_language
            )
        return loaded[embedding_set.key]

    return embeddings_of


def rank_sweep(inputs: SweepInputs, tracker: MlflowTracker, dagster_run_id: str) -> Ranking:
    """Rank the current grid's trials on ``inputs``; write the CSV (and its warnings, the best trial's topics)
    under the data directory's ``leaderboard/`` and log it to the sweep's run on ``tracker``.

    The current grid is read from the data directory: a search's refinement rounds add trials after the
    grid was first expanded. The leaders' topic words are computed here, where they are shown: in the
    summary (the best trial's) and as ``topics.json`` on each leader's MLflow run.
    """
    config, paths = inputs.config, inputs.paths
    if not inputs.manifest:
        raise GridError(f"no current grid in {paths.root}: expand the grid (materialise param_grid) before ranking")
    results = inputs.current_results()
    frame = _ranked_with_intervals(inputs, results)
    best = frame.iloc[0].to_dict() if (frame["status"] == STATUS_OK).any() else {}
    leaders = [results[key] for key in frame.loc[frame["status"] == STATUS_OK, "trial"].head(TOPIC_WORDS_FOR_LEADERS)]
    topics = leader_topics(
        leaders, inputs.store, inputs.corpus.texts, embeddings_loader(inputs), config.stopwords_language
    )
    trust = trust_summary(frame, config.rank_by, inputs.split)
    where = f"ground truth file '{config.ground_truth_file}'" if config.ground_truth_file else "the ground truth"
    warnings = leaderboard_warnings(frame, config.rank_by, inputs.labels, where=where)
    warnings += [inputs.split.warning] if inputs.split.warning else []
    # The best trial's only: the leaders mostly share its topics, and ten near-identical warnings say no more.
    if best and best["trial"] in topics:
        warnings += topic_word_warnings({best["trial"]: topics[best["trial"]]})

    csv_path = paths.leaderboard / "leaderboard.csv"
    write_atomically(csv_path, lambda stream: frame.to_csv(stream, index=False))
    # Beside the CSV, for whatever reads the leaderboard outside Dagster: the command line, the report.
    write_leaderboard_warnings(paths, warnings, trust)
    write_best_topics(paths, str(best["trial"]) if best else None, topics.get(best["trial"]) if best else None)
    summary = _summary(config.rank_by, warnings, trust, best, topics)
    markdown = "\n\n".join([*summary, to_markdown(frame, config.rank_by, metrics=MARKDOWN_METRICS)])

    digest = results_digest(inputs.manifest["grid_fingerprint"], inputs.fingerprint, results)
    run_id = _log(inputs, tracker, frame, leaders, topics, best, trust, markdown, csv_path, dagster_run_id)
    return Ranking(
        frame=frame,
        rank_by=config.rank_by,
        rank_by_stability=config.rank_by_stability,
        warnings=warnings,
        trust=trust,
        summary=summary,
        markdown=markdown,
        best=best,
        topics=topics,
        csv_path=csv_path,
        grid_fingerprint=inputs.manifest["grid_fingerprint"],
        inputs_fingerprint=inputs.fingerprint,
        results_digest=digest,
        heldout_documents=len(inputs.split.heldout_ids),
        mlflow_run_id=run_id,
        mlflow_run_url=tracker.run_url(run_id),
    )


def _ranked_with_intervals(inputs: SweepInputs, results: dict[str, TrialResult | None]) -> pd.DataFrame:
    """The leaderboard frame, with bootstrap intervals over the held-out documents (all labelled ones
    without a split), from the stored labels."""
    config = inputs.config
    frame = build_leaderboard(
        inputs.trials, results, rank_by=config.rank_by, rounds=inputs.rounds, rank_by_stability=config.rank_by_stability
    )
    positions, classes, heldout = inputs.labelled()
    if heldout is not None:
        positions, classes = positions[heldout], classes[heldout]
    n = len(inputs.corpus)
    return add_intervals(
        frame, config.rank_by, lambda key: inputs.store.labels(key, n), classes, positions, inputs.split.active
    )


def _summary(
    rank_by: str,
    warnings: list[str],
    trust: dict[str, Any] | None,
    best: dict[str, Any],
    topics: dict[str, list[TopicSummary]],
) -> list[str]:
    """What a table cannot say, in Markdown: the verdict, then the warnings (when the first row is not a winner
    to trust), how much to trust it, and the best trial's topics."""
    summary = [f"**Recommended** ({rank_by}): {verdict_line(trust)}"] if trust else []
    if warnings:
        summary.append("**Warnings**\n\n" + "\n".join(f"- {warning}" for warning in warnings))
    if trust:
        summary.append(f"**How much to trust this** ({rank_by})\n\n{trust_markdown(trust)}")
    if best and best["trial"] in topics:
        summary.append(f"**Topics of the best trial** ({best['trial']}):\n\n{topics_markdown(topics[best['trial']])}")
    return summary


def _log(
    inputs: SweepInputs,
    tracker: MlflowTracker,
    frame: pd.DataFrame,
    leaders: list[TrialResult],
    topics: dict[str, list[TopicSummary]],
    best: dict[str, Any],
    trust: dict[str, Any] | None,
    markdown: str,
    csv_path: Path,
    dagster_run_id: str,
) -> str:
    """The leaders' topics on their runs, the leaderboard on the sweep's run (whose id it returns)."""
    for result in leaders:
        if result.key in topics and result.tags.get("mlflow_run_id"):
            tracker.log_topics(result.tags["mlflow_run_id"], topics[result.key])
    rank_by = inputs.config.rank_by
    run_id = tracker.sweep_run(sweep_id(inputs.manifest["grid"], inputs.fingerprint))
    tracker.log_leaderboard(
        run_id,
        csv_path,
        markdown,
        leaderboard_series(frame, rank_by, trust),
        {
            "recommended_trial": str(best.get("trial", "none")),
            "dagster_run_id": dagster_run_id,
            "grid_fingerprint": inputs.manifest["grid_fingerprint"],
            "inputs_fingerprint": inputs.fingerprint,
        },
    )
    return run_id


def leaderboard_series(frame: pd.DataFrame, rank_by: str, trust: dict[str, Any] | None) -> dict[str, float]:
    """The figures a sweep's history plots, one series each, named for what they are: the best trial so far
    (never falls as trials are added), the recommended configuration's mean over its seeds, and its held-out
    estimate. The last two may fall: a later trial can change which configuration is recommended."""
    scores = frame.loc[frame["status"] == STATUS_OK, rank_by].astype(float)
    series = {f"best_trial_{rank_by}": float(scores.max())} if len(scores) else {}
    if trust:
        series[f"recommended_mean_{rank_by}"] = float(trust["selection_score"])
        if trust.get("heldout_score") is not None:
            series[f"recommended_heldout_{rank_by}"] = float(trust["heldout_score"])
    return series


# --- the best trial's topics beside the CSV -------------------------------------------------------------


def _csv_digest(paths: DataPaths) -> str | None:
    try:
        return hashlib.sha256((paths.leaderboard / "leaderboard.csv").read_bytes()).hexdigest()
    except OSError:
        return None


def write_best_topics(paths: DataPaths, trial: str | None, topics: list[TopicSummary] | None) -> None:
    """The best trial's topics beside the leaderboard CSV (written first), tied to that CSV's content."""
    write_json(
        paths.leaderboard / BEST_TOPICS_FILE,
        {
            "leaderboard_sha256": _csv_digest(paths),
            "trial": trial,
            "topics": None if topics is None else [dataclasses.asdict(topic) for topic in topics],
        },
    )


def read_best_topics(paths: DataPaths) -> tuple[str, list[TopicSummary]] | None:
    """The current leaderboard CSV's best trial and its topics; None when none were recorded for this CSV."""
    try:
        stored = read_json(paths.leaderboard / BEST_TOPICS_FILE)
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("leaderboard_sha256") != _csv_digest(paths):
        return None
    if not stored.get("trial") or not isinstance(stored.get("topics"), list):
        return None
    try:
        return str(stored["trial"]), [TopicSummary(**topic) for topic in stored["topics"]]
    except TypeError:  # written by another version
        return None

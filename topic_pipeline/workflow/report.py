"""The report stage: the sweep's HTML report and its images, from the leaderboard the ranking stage wrote.

A stage of its own, after the ranking: the ranking never waits on plots, and a report that cannot be
written never costs the leaderboard. It reads what the ranking left beside the CSV (its warnings, the
best trial's topics), draws the best trial's documents on a map (on the trial's cached UMAP reduction
where there is one, else on a 2-D UMAP of a sample of the embeddings, itself cached), writes the report
folder whole (the page, its images and the parameters' importance, ``importances.json``) and logs its
files to the sweep's MLflow run.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from topic_pipeline.domain.results import STATUS_OK
from topic_pipeline.domain.trials import TrialParams
from topic_pipeline.errors import GridError, error_text
from topic_pipeline.inputs.embeddings import EmbeddingCache
from topic_pipeline.integrations.mlflow_tracking import REPORT_ARTIFACTS, MlflowTracker
from topic_pipeline.integrations.report import (
    MAX_DOCUMENTS,
    ReportFiles,
    TopicMap,
    build_topic_map,
    cached_trial_reduction,
    classes_of,
    write_report,
)
from topic_pipeline.scoring.leaderboard import read_leaderboard_warnings
from topic_pipeline.search.coarse_to_fine import SearchState
from topic_pipeline.storage.paths import sweep_id
from topic_pipeline.workflow.ranking import embeddings_loader, read_best_topics
from topic_pipeline.workflow.sweep_inputs import SweepInputs

REPORT_FOLDER = "report"  # under the data directory's leaderboard/


@dataclasses.dataclass(frozen=True)
class SweepReport:
    files: ReportFiles  # the page and its images
    chosen: str | None  # the trial the map shows: the leaderboard's first (None: nothing is scored)
    map_documents: int  # drawn on the map (0: no map)
    total_documents: int  # in the corpus
    map_layout: str  # where the map's coordinates come from, in words
    mlflow_run_id: str | None  # the sweep's run its files were logged to; None: not logged
    mlflow_run_url: str | None
    mlflow_report_url: str | None  # the page among the run's artifacts, where MLflow's UI offers its download
    problems: list[str]  # plots not drawn, a map not made, files not logged: each worth a warning

    @property
    def sampled(self) -> bool:
        return 0 < self.map_documents < self.total_documents


def write_sweep_report(
    inputs: SweepInputs,
    frame: pd.DataFrame,
    tracker: MlflowTracker | None = None,
    *,
    max_map_documents: int = MAX_DOCUMENTS,
) -> SweepReport:
    """Replace ``<data dir>/leaderboard/report/`` with the report of ``frame`` (the leaderboard, as the
    ranking stage built it) and log its files to the sweep's run on ``tracker`` (if given).

    Raises only when the folder cannot be written (``FolderNotOursError``, a full disk): a plot, the map
    or the MLflow upload that fails is a problem in the result, the rest of the report still written.
    """
    paths, config = inputs.paths, inputs.config
    problems: list[str] = []
    scored = frame[frame["status"] == STATUS_OK]
    chosen = str(scored["trial"].iloc[0]) if not scored.empty else None
    results = {key: result for key, result in inputs.current_results().items() if result is not None}
    stored_topics = read_best_topics(paths)
    topics = stored_topics[1] if stored_topics and stored_topics[0] == chosen else None
    topic_map, layout = None, "none"
    if chosen is not None:
        try:
            topic_map, layout = _topic_map(inputs, chosen, max_map_documents)
        except Exception as error:  # one picture less, never the report
            problems.append(f"topic map of trial '{chosen}': {error_text(error)}")
    files = write_report(
        paths.leaderboard / REPORT_FOLDER,
        frame,
        config.rank_by,
        finished_at={key: result.finished_at for key, result in results.items()},
        durations_s={key: result.duration_s for key, result in results.items()},
        round_kinds=_round_kinds(inputs),
        topics=topics,
        topic_map=topic_map,
        warnings=read_leaderboard_warnings(paths),
    )
    problems += files.problems
    run_id = url = report_url = None
    if tracker is not None:
        try:
            run_id = tracker.sweep_run(sweep_id(inputs.manifest["grid"], inputs.fingerprint))
            tracker.log_report(run_id, files.paths)
            url = tracker.run_url(run_id)
            report_url = tracker.run_url(run_id, f"{REPORT_ARTIFACTS}/{files.html.name}")
        except Exception as error:  # the report stands on disk whatever MLflow does
            problems.append(f"not logged to MLflow: {error_text(error)}")
            run_id = url = report_url = None
    return SweepReport(
        files=files,
        chosen=chosen,
        map_documents=0 if topic_map is None else len(topic_map.topics),
        total_documents=len(inputs.corpus),
        map_layout=layout,
        mlflow_run_id=run_id,
        mlflow_run_url=url,
        mlflow_report_url=report_url,
        problems=problems,
    )


def _topic_map(inputs: SweepInputs, chosen: str, max_documents: int) -> tuple[TopicMap | None, str]:
    """The chosen trial's map and where its coordinates come from; (None, why) without its stored labels."""
    paths, config, corpus = inputs.paths, inputs.config, inputs.corpus
    labels = inputs.store.labels(chosen, len(corpus))
    if labels is None:
        return None, "none: the trial's labels are not stored"
    params = TrialParams.from_dict(inputs.trials[chosen]) if chosen in inputs.trials else inputs.params(chosen)
    embeddings_key = EmbeddingCache(paths.embeddings).key(
        params.embedding_set, corpus.content_hash, config.stopwords_language
    )
    reduction = cached_trial_reduction(paths.reductions, embeddings_key, params, config.umap_seed, len(corpus))
    load = embeddings_loader(inputs)

    def embeddings() -> np.ndarray:
        return load(params)

    topic_map = build_topic_map(
        chosen,
        labels,
        classes_of(corpus.ids, inputs.labels.cluster_of),
        reduction=reduction,
        embeddings=None if reduction is not None else embeddings,
        max_documents=max_documents,
        seed=config.umap_seed,
        layout_cache=paths.reductions,
        embeddings_key=embeddings_key,
    )
    if reduction is not None:
        layout = "the trial's cached UMAP reduction"
    else:
        layout = "a layout of the embeddings " + (
            "read from the cache" if topic_map.layout_cached else "fitted now (and cached)"
        )
    return topic_map, layout


def _round_kinds(inputs: SweepInputs) -> dict[int, str] | None:
    try:
        state = SearchState.load(inputs.paths.search_state)
    except (OSError, ValueError, KeyError, TypeError, GridError):
        return None  # a search state of another version: the report shows no round kinds
    return {r.number: r.kind for r in state.rounds} if state else None

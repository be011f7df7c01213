"""The leaderboard of the current grid."""

from collections.abc import Iterator

import dagster as dg
import numpy as np
import pandas as pd

from topic_pipeline.inputs.corpus import Corpus
from topic_pipeline.defs.assets.inputs import param_grid
from topic_pipeline.inputs.embeddings import EmbeddingCache
from topic_pipeline.defs.assets.trials import grid_trials
from topic_pipeline.defs.checks import leaderboard_check_results, leaderboard_check_specs
from topic_pipeline.domain.trials import GRID_KEYS, TrialParams
from topic_pipeline.inputs.ground_truth import GroundTruth
from topic_pipeline.scoring.confidence import add_intervals, trust_markdown, trust_summary
from topic_pipeline.scoring.leaderboard import (
    build_leaderboard,
    leaderboard_warnings,
    stability_markdown,
    to_markdown,
    write_leaderboard_warnings,
)
from topic_pipeline.defs.resources.mlflow import MlflowTracking
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.storage.results import ResultStore
from topic_pipeline.domain.results import STATUS_OK, results_digest
from topic_pipeline.storage.files import read_json, write_atomically
from topic_pipeline.storage.paths import sweep_id
from topic_pipeline.errors import GridError, error_text
from topic_pipeline.integrations.report import ReportFiles, build_topic_map, cached_trial_reduction, classes_of, write_report
from topic_pipeline.search.coarse_to_fine import SearchState
from topic_pipeline.scoring.topic_words import leader_topics, topics_markdown

# The leaders whose topic words are computed and logged (topics.json on their MLflow runs).
TOPIC_WORDS_FOR_LEADERS = 10
# Rows of the leaderboard's table in the Dagster UI: the scored leaders, then every failed or missing
# trial (up to as many again); the CSV has them all.
TABLE_ROWS = 100
TABLE_METRICS = ("ari", "ami", "nmi", "f1_macro", "f1_weighted", "outlier_fraction")


def leaderboard_table(frame: pd.DataFrame, rank_by: str, varying: list[str]) -> dg.TableMetadataValue:
    """The leaderboard as a table the Dagster UI renders and sorts: rank, trial, search round, the metrics
    (three decimals) and the grid parameters that vary in this sweep."""
    metrics = [rank_by] + [name for name in TABLE_METRICS if name != rank_by]
    seeds = f"{rank_by}_seeds"
    columns = [
        dg.TableColumn("rank", "int"),
        dg.TableColumn("trial", "string"),
        dg.TableColumn("status", "string"),
        dg.TableColumn("round", "int", description="the search round that proposed the trial"),
        *(dg.TableColumn(name, "float") for name in metrics),
        dg.TableColumn("topic_count", "int"),
        dg.TableColumn(f"heldout_{rank_by}", "float", description="on the held-out labels, which no ranking reads"),
        dg.TableColumn("estimate", "float", description="the configuration's held-out score (its seeds' mean)"),
        dg.TableColumn("ci_low", "float", description="95 % bootstrap interval of the estimate, low end"),
        dg.TableColumn("ci_high", "float", description="95 % bootstrap interval of the estimate, high end"),
        dg.TableColumn("versus_recommended", "string", description="whether its interval overlaps the recommended one's"),
        dg.TableColumn("seed_averaged", "bool", description="ranked by its seeds' mean"),
        dg.TableColumn(f"{rank_by}_seed_mean", "float", description="mean over the configuration's UMAP seeds"),
        dg.TableColumn(seeds, "int", description="UMAP seeds the configuration ran with"),
        *(dg.TableColumn(name, "string") for name in varying),
    ]

    def value(row: pd.Series, name: str, kind: str) -> object:
        cell = row.get(name)
        if cell is None or (not isinstance(cell, str) and pd.isna(cell)):
            return None
        return {"int": int, "float": lambda v: round(float(v), 3), "string": str, "bool": bool}[kind](cell)

    shown = pd.concat([frame[frame["status"] == STATUS_OK].head(TABLE_ROWS), frame[frame["status"] != STATUS_OK].head(TABLE_ROWS)])
    sources = {f"{rank_by}_seed_mean": f"{rank_by}_mean"}
    records = [
        dg.TableRecord({column.name: value(row, sources.get(column.name, column.name), column.type) for column in columns})
        for _, row in shown.iterrows()
    ]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns))


@dg.asset(group_name="sweep", deps=[grid_trials, param_grid], kinds={"csv", "mlflow"}, check_specs=leaderboard_check_specs())
def leaderboard(
    context: dg.AssetExecutionContext,
    documents: pd.DataFrame,
    ground_truth: dict,
    settings: PipelineSettings,
    mlflow: MlflowTracking,
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
    """Every trial of the current sweep, ranked; failed and not-yet-run trials listed as such.

    The current sweep is read from the data directory, not from ``param_grid``'s value: a search's
    refinement rounds add trials after ``param_grid`` was materialised. The topic words of the leading
    trials are computed here, where they are shown: in this asset's metadata (the best trial's topics)
    and as ``topics.json`` on each leader's MLflow run.
    """
    paths = settings.paths
    corpus = Corpus.from_frame(documents)
    labels = GroundTruth.from_mapping(ground_truth)
    fingerprint = settings.inputs_fingerprint(corpus.content_hash, labels.content_hash)
    store = ResultStore(paths.results)
    manifest = read_json(paths.current_grid)
    trials = manifest["trials"]
    results = {key: store.current(key, fingerprint, params) for key, params in trials.items()}
    frame = build_leaderboard(
        trials, results, rank_by=settings.rank_by, rounds=manifest.get("rounds"), rank_by_stability=settings.rank_by_stability
    )
    # Intervals over the held-out documents (all labelled ones without a split), from the stored labels.
    split = settings.holdout_split(labels)
    positions, classes = labels.aligned(corpus.ids)
    heldout = split.mask(corpus.ids[positions])
    if heldout is not None:
        positions, classes = positions[heldout], classes[heldout]
    frame = add_intervals(frame, settings.rank_by, lambda key: store.labels(key, len(corpus)), classes, positions, split.active)
    trust = trust_summary(frame, settings.rank_by, split)

    warnings = leaderboard_warnings(frame, settings.rank_by, labels, where=f"ground truth file '{settings.ground_truth_file()}'")
    warnings += [split.warning] if split.warning else []
    for warning in warnings:
        context.log.warning(warning)

    csv_path = paths.leaderboard / "leaderboard.csv"
    write_atomically(csv_path, lambda stream: frame.to_csv(stream, index=False))
    # Beside the CSV, for whatever prints the leaderboard outside Dagster (the CLI).
    write_leaderboard_warnings(paths, warnings, trust)
    # The UI shows the ranking as a table (metadata "leaderboard"); what a table cannot say is in the
    # Markdown summary beside it, warnings first: then the first row is not a winner to trust.
    summary = []
    if warnings:
        summary.append("**Warnings**\n\n" + "\n".join(f"- {warning}" for warning in warnings))
    if trust:
        summary.append(f"**How much to trust this** ({settings.rank_by})\n\n{trust_markdown(trust)}")
    stability = stability_markdown(frame, settings.rank_by)
    if stability:
        summary.append(f"**Stability across UMAP seeds** ({settings.rank_by}):\n\n{stability}")
    counts = frame["status"].value_counts().to_dict()
    best = frame.iloc[0].to_dict() if counts.get(STATUS_OK) else {}
    tracker = mlflow.tracker(paths)

    embedding_cache = EmbeddingCache(paths.embeddings)
    loaded: dict[str, np.ndarray] = {}  # by embedding set: the leaders mostly share one

    def embeddings_of(params: TrialParams) -> np.ndarray:
        embedding_set = params.embedding_set
        if embedding_set.key not in loaded:
            _, loaded[embedding_set.key] = embedding_cache.require_for_corpus(
                embedding_set, corpus.content_hash, len(corpus), settings.stopwords_language
            )
        return loaded[embedding_set.key]

    leaders = [results[key] for key in frame.loc[frame["status"] == STATUS_OK, "trial"].head(TOPIC_WORDS_FOR_LEADERS)]
    topics = leader_topics(leaders, store, corpus.texts, embeddings_of, settings.stopwords_language)
    for result in leaders:
        if result.key in topics and result.tags.get("mlflow_run_id"):
            tracker.log_topics(result.tags["mlflow_run_id"], topics[result.key])
    if best and best["trial"] in topics:
        summary.append(f"**Topics of the best trial** ({best['trial']}):\n\n{topics_markdown(topics[best['trial']])}")
    # MLflow's copy has no table view: the summary and the top rows in Markdown.
    ranking = to_markdown(frame, metrics=[settings.rank_by] + [m for m in ("ari", "ami", "nmi", "f1_macro") if m != settings.rank_by][:3])

    try:
        report = write_sweep_report(
            context, frame, trials, results, store, corpus, labels, settings, topics, warnings, embeddings_of,
            chosen=str(best["trial"]) if best else None,
        )
    except Exception as error:  # noqa: BLE001 - a display aid: never a reason to lose the ranking
        context.log.warning(f"no report written: {error_text(error)}")
        report = None

    run_id = tracker.sweep_run(sweep_id(manifest["grid"], fingerprint))
    tracker.log_leaderboard(
        run_id,
        csv_path,
        "\n\n".join([*summary, ranking]),
        {key: best[key] for key in ("trial", settings.rank_by, "ami", "nmi", "f1_macro", f"heldout_{settings.rank_by}")
         if key in best and not pd.isna(best[key])},
        {"dagster_run_id": context.run.run_id, "grid_fingerprint": manifest["grid_fingerprint"], "inputs_fingerprint": fingerprint},
        report=report.paths if report else (),
    )
    varying = [name for name in GRID_KEYS if frame[name].astype(str).nunique() > 1]
    metadata = {
        "leaderboard": leaderboard_table(frame, settings.rank_by, varying),
        "summary": dg.MetadataValue.md("\n\n".join(summary) if summary else "No warnings."),
        "csv": dg.MetadataValue.path(str(csv_path)),
        "report": dg.MetadataValue.path(str(report.html)) if report else "none (see the run's log)",
        "best_trial": str(best.get("trial", "none")),
        f"best_{settings.rank_by}": float(best[settings.rank_by]) if best else float("nan"),
        "scored": int(counts.get(STATUS_OK, 0)),
        "failed": int(counts.get("failed", 0)),
        "missing": int(counts.get("missing", 0)),
        "rank_by": settings.rank_by,
        "rank_by_stability": settings.rank_by_stability,
        "grid_fingerprint": manifest["grid_fingerprint"],
        "inputs_fingerprint": fingerprint,
        "results_digest": results_digest(manifest["grid_fingerprint"], fingerprint, results),
        "mlflow_run_id": run_id,
        "warnings": dg.MetadataValue.text("\n".join(warnings) if warnings else "none"),
        "heldout_documents": len(split.heldout_ids),
        f"expected_{settings.rank_by}": float("nan") if not trust or trust["heldout_score"] is None else trust["heldout_score"],
    }
    url = tracker.run_url(run_id)
    if url:
        metadata["mlflow_run"] = dg.MetadataValue.url(url)
    yield dg.Output(frame, metadata=metadata)
    yield from leaderboard_check_results(frame, labels, settings)


def write_sweep_report(
    context: dg.AssetExecutionContext,
    frame: pd.DataFrame,
    trials: dict,
    results: dict,
    store: ResultStore,
    corpus: Corpus,
    labels: GroundTruth,
    settings: PipelineSettings,
    topics: dict,
    warnings: list[str],
    embeddings_of,
    chosen: str | None,
) -> ReportFiles:
    """The HTML report with its plots, in ``<data dir>/leaderboard/report/``; the map shows ``chosen``, the
    trial an export takes by default, on its cached UMAP reduction where there is one."""
    paths = settings.paths
    topic_map = None
    chosen_labels = store.labels(chosen, len(corpus)) if chosen else None
    if chosen_labels is not None:
        params = TrialParams.from_dict(trials[chosen])
        embeddings_key = EmbeddingCache(paths.embeddings).key(params.embedding_set, corpus.content_hash, settings.stopwords_language)
        reduction = cached_trial_reduction(paths.reductions, embeddings_key, params, settings.umap_seed, len(corpus))
        topic_map = build_topic_map(
            chosen, chosen_labels, classes_of(corpus.ids, labels.cluster_of), reduction=reduction,
            embeddings=None if reduction is not None else embeddings_of(params), seed=settings.umap_seed,
        )
    try:
        state = SearchState.load(paths.search_state)
    except (OSError, ValueError, KeyError, TypeError, GridError):
        state = None  # a search state of another version: the report shows no round kinds
    report = write_report(
        paths.leaderboard / "report", frame, settings.rank_by,
        finished_at={key: result.finished_at for key, result in results.items() if result},
        durations_s={key: result.duration_s for key, result in results.items() if result},
        round_kinds={r.number: r.kind for r in state.rounds} if state else None,
        topics=topics.get(chosen) if chosen else None, topic_map=topic_map, warnings=warnings,
    )
    for problem in report.problems:
        context.log.warning(f"report: {problem}")
    return report

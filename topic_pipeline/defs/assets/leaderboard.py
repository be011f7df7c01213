"""The leaderboard of the current grid."""


import dagster as dg
import numpy as np
import pandas as pd

from topic_pipeline.inputs.corpus import Corpus
from topic_pipeline.defs.assets.inputs import param_grid
from topic_pipeline.inputs.embeddings import EmbeddingCache
from topic_pipeline.defs.assets.trials import grid_trials
from topic_pipeline.inputs.grid import TrialParams
from topic_pipeline.inputs.ground_truth import GroundTruth
from topic_pipeline.scoring.leaderboard import (
    build_leaderboard,
    leaderboard_warnings,
    stability_markdown,
    to_markdown,
    write_leaderboard_warnings,
)
from topic_pipeline.defs.resources.mlflow import MlflowTracking
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.storage.results import STATUS_OK, ResultStore, results_digest
from topic_pipeline.storage.files import read_json, write_atomically
from topic_pipeline.scoring.topic_words import leader_topics, topics_markdown

# The leaders whose topic words are computed and logged (topics.json on their MLflow runs).
TOPIC_WORDS_FOR_LEADERS = 10


@dg.asset(group_name="sweep", deps=[grid_trials, param_grid], kinds={"csv", "mlflow"})
def leaderboard(
    context: dg.AssetExecutionContext,
    documents: pd.DataFrame,
    ground_truth: dict,
    settings: PipelineSettings,
    mlflow: MlflowTracking,
) -> dg.Output[pd.DataFrame]:
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

    warnings = leaderboard_warnings(frame, settings.rank_by, labels, where=f"ground truth file '{settings.ground_truth_file()}'")
    for warning in warnings:
        context.log.warning(warning)

    csv_path = paths.leaderboard / "leaderboard.csv"
    write_atomically(csv_path, lambda stream: frame.to_csv(stream, index=False))
    # Beside the CSV, for whatever prints the leaderboard outside Dagster (the CLI).
    write_leaderboard_warnings(paths, warnings)
    markdown = to_markdown(frame, metrics=[settings.rank_by] + [m for m in ("ari", "ami", "nmi", "f1_macro") if m != settings.rank_by][:3])
    stability = stability_markdown(frame, settings.rank_by)
    if stability:
        markdown += f"\n\n**Stability across UMAP seeds** ({settings.rank_by}):\n\n{stability}"
    if warnings:
        # Above the table: the first row is not a winner to trust.
        markdown = "**Warnings**\n\n" + "\n".join(f"- {warning}" for warning in warnings) + "\n\n" + markdown
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
        markdown += f"\n\n**Topics of the best trial** ({best['trial']}):\n\n{topics_markdown(topics[best['trial']])}"

    run_id = tracker.log_leaderboard(
        csv_path,
        markdown,
        {key: best[key] for key in ("trial", settings.rank_by, "ami", "nmi", "f1_macro") if key in best},
        {"dagster_run_id": context.run.run_id, "grid_fingerprint": manifest["grid_fingerprint"], "inputs_fingerprint": fingerprint},
    )
    metadata = {
        "leaderboard": dg.MetadataValue.md(markdown),
        "csv": dg.MetadataValue.path(str(csv_path)),
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
    }
    url = tracker.run_url(run_id)
    if url:
        metadata["mlflow_run"] = dg.MetadataValue.url(url)
    return dg.Output(frame, metadata=metadata)

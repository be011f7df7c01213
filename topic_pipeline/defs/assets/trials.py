"""Grid trials: one partition per combination, scored against the labelled sample."""

import dagster as dg
import pandas as pd

from topic_pipeline.corpus import Corpus
from topic_pipeline.defs.assets.embeddings import embeddings
from topic_pipeline.defs.partitions import trial_partitions
from topic_pipeline.embeddings import EmbeddingCache
from topic_pipeline.engine import EmbeddingSource
from topic_pipeline.ground_truth import GroundTruth
from topic_pipeline.resources.mlflow import MlflowTracking
from topic_pipeline.resources.settings import PipelineSettings
from topic_pipeline.results import STATUS_OK, ResultStore, TrialResult
from topic_pipeline.storage import read_json
from topic_pipeline.sweep import LabelledSample, ScoredTrial, run_trials

# A backfill runs as few runs of up to this many partitions each: every run starts its worker pool
# (imports, numba compilation) once, and trials sharing a UMAP reduction stay in one run.
TRIALS_PER_RUN = 1000


def trial_metadata(result: TrialResult) -> dict[str, object]:
    """A trial partition's materialisation metadata, from its stored result row."""
    metadata: dict[str, object] = {
        "status": result.status,
        "duration_s": round(result.duration_s, 3),
        "mlflow_run_id": result.tags.get("mlflow_run_id", ""),
        "inputs_fingerprint": result.fingerprint,
        "params": dg.MetadataValue.json(result.params),
    }
    if result.status == STATUS_OK:
        metadata.update({name: float(value) for name, value in result.metrics.items()})
    else:
        metadata["error"] = dg.MetadataValue.text(result.error or "")
    return metadata


@dg.asset(
    group_name="sweep",
    partitions_def=trial_partitions,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=TRIALS_PER_RUN),
    deps=[dg.AssetDep(embeddings, partition_mapping=dg.AllPartitionMapping())],
    kinds={"python"},
)
def grid_trials(
    context: dg.AssetExecutionContext,
    documents: pd.DataFrame,
    ground_truth: dict,
    settings: PipelineSettings,
    mlflow: MlflowTracking,
) -> dg.MaterializeResult:
    """UMAP -> HDBSCAN -> BERTopic labels on the cached embeddings, scored against the labelled sample.

    Every partition of the run gets its own materialisation metadata and MLflow run. A failing
    combination is recorded as failed (here, in MLflow and on the leaderboard); the others go on.
    """
    layout = settings.layout
    corpus = Corpus.from_frame(documents)
    labels = GroundTruth.from_mapping(ground_truth)
    positions, classes = labels.aligned(corpus.ids)
    fingerprint = settings.inputs_fingerprint(corpus.content_hash, labels.content_hash)
    trials = [(key, layout.trial_params(key)) for key in context.partition_keys]
    # The search round that proposed each trial, so the UI and MLflow show why a trial exists.
    rounds = read_json(layout.current_grid).get("rounds", {}) if layout.current_grid.exists() else {}

    cache = EmbeddingCache(layout.embeddings)
    sources: dict[str, EmbeddingSource] = {}
    for _, params in trials:
        embedding_set = params.embedding_set
        if embedding_set.key not in sources:
            cache_key = cache.key(embedding_set, corpus.content_hash, settings.stopwords_language)
            cache.require(cache_key, len(corpus), embedding_set)
            sources[embedding_set.key] = EmbeddingSource(str(cache.path(cache_key)), cache_key, len(corpus))

    store = ResultStore(layout.results)
    tracker = mlflow.tracker(layout)
    finished = {"ok": 0, "failed": 0}

    def record(scored: ScoredTrial) -> None:
        result = scored.result
        origin = {"search_round": str(rounds[result.key])} if result.key in rounds else {}
        run_id = tracker.log_trial(
            result,
            scored.topics,
            {"dagster_run_id": context.run.run_id, "dagster_partition_key": result.key, "inputs_fingerprint": fingerprint,
             **origin},
        )
        result.tags = {"mlflow_run_id": run_id, "dagster_run_id": context.run.run_id}
        store.save(result)
        metadata = trial_metadata(result)
        metadata.update({name: int(value) for name, value in origin.items()})
        url = tracker.run_url(run_id)
        if url:
            metadata["mlflow_run"] = dg.MetadataValue.url(url)
        done = finished["ok"] + finished["failed"] + 1
        if result.status == STATUS_OK:
            finished["ok"] += 1
            context.log.info("[%d/%d] %s: ARI %.3f", done, len(trials), result.key, result.metrics["ari"])
        else:
            finished["failed"] += 1
            context.log.error("[%d/%d] %s failed: %s", done, len(trials), result.key, result.error)
        context.add_asset_metadata(metadata, partition_key=result.key)

    stats = run_trials(
        trials,
        sources,
        corpus.texts,
        LabelledSample(positions, classes),
        fingerprint,
        settings.umap_seed,
        settings.stopwords_language,
        layout.reductions,
        record,
        engine=settings.engine,
        workers=settings.workers or None,
        # MLflow's import and its store's first connection cost seconds: paid while the workers start.
        meanwhile=lambda: tracker.experiment_id,
    )
    context.log.info(
        "%d trials in %.1fs: %d UMAP reductions computed, %d reused from cache, %d HDBSCAN trees, %d worker(s)",
        stats.trials, stats.seconds, stats.reductions_computed, stats.reductions_reused, stats.trees_built, stats.workers,
    )
    return dg.MaterializeResult(
        metadata={
            "trials_in_run": len(trials),
            "failed_in_run": finished["failed"],
            "engine": settings.engine,
            "run_seconds": round(stats.seconds, 2),
            "umap_reductions_computed": stats.reductions_computed,
            "umap_reductions_reused": stats.reductions_reused,
            "hdbscan_trees_built": stats.trees_built,
        }
    )

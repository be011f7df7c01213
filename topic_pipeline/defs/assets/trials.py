"""Grid trials: one partition per combination, scored against the labelled sample."""


import dagster as dg
import pandas as pd

from topic_pipeline.corpus import Corpus
from topic_pipeline.defs.assets.embeddings import embeddings
from topic_pipeline.defs.partitions import trial_partitions
from topic_pipeline.embeddings import EmbeddingCache
from topic_pipeline.ground_truth import GroundTruth
from topic_pipeline.resources.mlflow import MlflowTracking
from topic_pipeline.resources.settings import PipelineSettings
from topic_pipeline.results import STATUS_OK, ResultStore, inputs_fingerprint, score_trial

# A backfill of many trials runs as few runs of up to this many partitions each: every run pays
# process start-up and numba compilation once, not once per trial.
TRIALS_PER_RUN = 50


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
    """UMAP -> HDBSCAN -> BERTopic on the cached embeddings, scored against the labelled sample.

    A failing combination is recorded as failed (here, in MLflow and on the leaderboard) and the
    other trials of the run go on.
    """
    layout = settings.layout
    corpus = Corpus.from_frame(documents)
    labels = GroundTruth.from_mapping(ground_truth)
    positions, classes = labels.aligned(corpus.ids)
    fingerprint = inputs_fingerprint(corpus.content_hash, labels.content_hash, settings.umap_seed, settings.stopwords_language)
    cache = EmbeddingCache(layout.embeddings)
    store = ResultStore(layout.results)
    tracker = mlflow.tracker(layout)
    loaded: dict[str, object] = {}
    failed = 0
    keys = context.partition_keys
    for number, key in enumerate(keys, start=1):
        params = layout.trial_params(key)
        embedding_set = params.embedding_set
        if embedding_set.key not in loaded:
            cache_key = cache.key(embedding_set, corpus.content_hash, settings.stopwords_language)
            loaded = {embedding_set.key: cache.require(cache_key, len(corpus), embedding_set)}
        scored = score_trial(
            key, params, loaded[embedding_set.key], corpus.texts, positions, classes,
            fingerprint, settings.umap_seed, settings.stopwords_language,
        )
        result = scored.result
        run_id = tracker.log_trial(
            result,
            scored.outcome.topics if scored.outcome else None,
            {"dagster_run_id": context.run.run_id, "dagster_partition_key": key, "inputs_fingerprint": fingerprint},
        )
        result.tags = {"mlflow_run_id": run_id, "dagster_run_id": context.run.run_id}
        store.save(result)
        metadata: dict[str, object] = {
            "status": result.status,
            "duration_s": round(result.duration_s, 2),
            "mlflow_run_id": run_id,
            "inputs_fingerprint": fingerprint,
            "params": dg.MetadataValue.json(result.params),
        }
        url = tracker.run_url(run_id)
        if url:
            metadata["mlflow_run"] = dg.MetadataValue.url(url)
        if result.status == STATUS_OK:
            metadata.update({name: float(value) for name, value in result.metrics.items()})
            context.log.info("[%d/%d] %s: ARI %.3f", number, len(keys), key, result.metrics["ari"])
        else:
            failed += 1
            metadata["error"] = dg.MetadataValue.text(result.error or "")
            context.log.error("[%d/%d] %s failed: %s", number, len(keys), key, result.error)
        context.add_asset_metadata(metadata, partition_key=key)
    return dg.MaterializeResult(metadata={"trials_in_run": len(keys), "failed_in_run": failed})

"""The chosen trial as a production BERTopic model, and its optional push to the Hugging Face Hub."""

import os
from pathlib import Path

import dagster as dg
import pandas as pd

from topic_pipeline.inputs.corpus import Corpus
from topic_pipeline.inputs.embeddings import EmbeddingCache
from topic_pipeline.engine.fast import EmbeddingSource
from topic_pipeline.inputs.ground_truth import GroundTruth
from topic_pipeline.integrations.export import (
    ExportError,
    build_topic_model,
    embedding_model_pointer,
    library_versions,
    push_to_hub,
    save_export,
    trial_labels,
)
from topic_pipeline.scoring.confidence import exported_trust, trust_summary
from topic_pipeline.scoring.leaderboard import best_sound_trial, has_no_topic, sample_warnings, trial_problem
from topic_pipeline.defs.resources.mlflow import MlflowTracking
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.storage.results import ResultStore
from topic_pipeline.domain.results import STATUS_OK
from topic_pipeline.storage.files import read_json


class TopicModelConfig(dg.Config):
    """Launch configuration: which trial to export and how."""

    trial_key: str = ""  # empty: the leaderboard's first, the recommended configuration's best trial
    serialization: str = "safetensors"  # or "pytorch", "pickle"
    target_dir: str = ""  # empty: <data dir>/models/<trial key>


def _topic_table(model) -> str:
    info = model.get_topic_info()
    lines = ["| topic | size | top words |", "|---|---|---|"]
    for _, row in info.iterrows():
        words = ", ".join(word for word, _ in (model.get_topic(row["Topic"]) or [])[:8])
        lines.append(f"| {row['Topic']} | {row['Count']} | {words} |")
    return "\n".join(lines)


def _nan_if_none(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def export_warnings(
    trial_key: str,
    metrics: dict,
    leaderboard: pd.DataFrame,
    rank_by: str,
    labels: GroundTruth,
    named: bool,
    where: str = "the ground truth",
) -> list[str]:
    """What is wrong with exporting ``trial_key``, to record with the export.

    Refuses (ExportError) a trial without any topic that was taken by default as the leaderboard's
    first: a user who names it has seen the warning; one who took the default would get an empty
    model presented as the winner.
    """
    problem = trial_problem(metrics, rank_by)
    if problem and has_no_topic(metrics) and not named:
        sound = best_sound_trial(leaderboard, rank_by)
        alternative = f" The best trial whose topics hold labelled documents is '{sound[0]}' (rank {sound[1]})." if sound else ""
        raise ExportError(
            f"trial '{trial_key}' is the leaderboard's first but {problem}.{alternative} Nothing was exported; to "
            f"export this trial anyway, name it: topic-pipeline export --trial {trial_key} (launch config trial_key)"
        )
    warnings = [f"trial '{trial_key}' {problem}"] if problem else []
    return warnings + sample_warnings(leaderboard, rank_by, labels, where, trial=trial_key)


@dg.asset(group_name="export", kinds={"bertopic", "safetensors"})
def topic_model(
    context: dg.AssetExecutionContext,
    config: TopicModelConfig,
    documents: pd.DataFrame,
    ground_truth: dict,
    leaderboard: pd.DataFrame,
    settings: PipelineSettings,
    mlflow: MlflowTracking,
) -> dg.MaterializeResult:
    """A BERTopic model whose topics are exactly the chosen trial's labels, saved with BERTopic's serialisation."""
    paths = settings.paths
    corpus = Corpus.from_frame(documents)
    labels_sample = GroundTruth.from_mapping(ground_truth)
    fingerprint = settings.inputs_fingerprint(corpus.content_hash, labels_sample.content_hash)
    ranked = leaderboard[leaderboard["status"] == STATUS_OK]
    trial_key = config.trial_key or (str(ranked.iloc[0]["trial"]) if len(ranked) else "")
    ranked_keys = set(leaderboard["trial"])
    if config.trial_key and trial_key not in ranked_keys:
        # A key given in its first form (storage.migrations) names the same trial.
        resolved = paths.current_key(trial_key)
        if resolved in ranked_keys:
            context.log.info("trial key '%s' is the first form of '%s'", trial_key, resolved)
            trial_key = resolved
    if not trial_key:
        raise ExportError("the leaderboard has no scored trial to export; run the sweep first or give trial_key")
    if trial_key not in ranked_keys:
        raise ExportError(f"trial key '{trial_key}' is not in the current leaderboard; choose one of its 'trial' values")
    try:
        params = paths.trial_params(trial_key)
    except KeyError as exc:
        raise ExportError(str(exc.args[0])) from None
    result = ResultStore(paths.results).current(trial_key, fingerprint, params.to_dict())
    if result is None:
        raise ExportError(f"trial '{trial_key}' has no result on the current inputs; materialise its partition first")
    if result.status != STATUS_OK:
        raise ExportError(f"trial '{trial_key}' failed ({result.error}); choose a trial that succeeded")
    warnings = export_warnings(
        trial_key, result.metrics, leaderboard, settings.rank_by, labels_sample, named=bool(config.trial_key),
        where=f"ground truth file '{settings.ground_truth_file()}'",
    )
    split = settings.holdout_split(labels_sample)
    warnings += [split.warning] if split.warning else []
    for warning in warnings:
        context.log.warning(warning)

    pointer = embedding_model_pointer(params.embedding_model)
    cache = EmbeddingCache(paths.embeddings)
    cache_key, embeddings = cache.require_for_corpus(
        params.embedding_set, corpus.content_hash, len(corpus), settings.stopwords_language
    )
    source = EmbeddingSource(str(cache.path(cache_key)), cache_key, len(corpus))
    labels = trial_labels(params, source, corpus.texts, settings.umap_seed, paths.reductions, settings.stopwords_language)
    model = build_topic_model(corpus.texts, embeddings, labels, params, settings.stopwords_language)

    record = {
        "trial_key": trial_key,
        "params": params.to_dict(),
        "umap": params.umap_settings(settings.umap_seed),
        "hdbscan": params.hdbscan_settings(),
        # Its stop words are the language's whatever remove_stopwords (what was embedded) says.
        "vectorizer": {"ngram_range": [1, params.n_gram_max], "stop_words": settings.stopwords_language},
        # BERTopic.reduce_outliers(docs, topics, strategy=..., threshold=...) after the fit; "none": not called.
        "outlier_reduction": {"strategy": params.outlier_reduction, "threshold": params.outlier_threshold},
        "metrics": result.metrics,
        # What to expect, on labels no choice read (docs/metrics.md): from the leaderboard's recommended
        # configuration, and from this trial, which may be another one (export --trial).
        "trust": trust_summary(leaderboard, settings.rank_by, split),
        "corpus_hash": corpus.content_hash,
        "ground_truth_hash": labels_sample.content_hash,
        "trial_mlflow_run_id": result.tags.get("mlflow_run_id"),
        "versions": library_versions(),
        "warnings": warnings,
    }
    record["exported_trial_trust"] = exported_trust(leaderboard, trial_key, settings.rank_by, record["trust"])
    target = Path(config.target_dir) if config.target_dir else paths.root / "models" / trial_key
    exported = save_export(model, target, config.serialization, pointer, record)

    tracker = mlflow.tracker(paths)
    run_id = tracker.log_export(exported.directory, trial_key, result.tags.get("mlflow_run_id"), {"dagster_run_id": context.run.run_id})
    metadata = {
        "trial": trial_key,
        "path": dg.MetadataValue.path(str(exported.model_path)),
        "serialization": config.serialization,
        "size_bytes": exported.size_bytes,
        "size_mb": round(exported.size_bytes / 2**20, 3),
        "topics": dg.MetadataValue.md(_topic_table(model)),
        "embedding_model": pointer,
        "ari": float(result.metrics["ari"]),
        # This trial's held-out estimate: what to expect from it (NaN without a held-out part).
        f"expected_{settings.rank_by}": _nan_if_none(record["exported_trial_trust"]["expected"]),
        "mlflow_run_id": run_id,
        "warnings": dg.MetadataValue.text("\n".join(warnings) if warnings else "none"),
    }
    url = tracker.run_url(run_id)
    if url:
        metadata["mlflow_run"] = dg.MetadataValue.url(url)
    return dg.MaterializeResult(metadata=metadata)


class HubPushConfig(dg.Config):
    repo_id: str
    private: bool = True
    export_dir: str = ""  # empty: the latest topic_model export


@dg.asset(group_name="export", deps=[topic_model], kinds={"huggingface"})
def hub_model(context: dg.AssetExecutionContext, config: HubPushConfig) -> dg.MaterializeResult:
    """Pushes the exported model to the Hugging Face Hub. Only ever materialised on request."""
    folder = Path(config.export_dir) if config.export_dir else None
    if folder is None:
        event = context.instance.get_latest_materialization_event(dg.AssetKey("topic_model"))
        if event is None:
            raise ExportError("topic_model has not been materialised: export a model before pushing it")
        folder = Path(event.asset_materialization.metadata["path"].value).parent
    record = read_json(folder / "tuning.json")
    if record.get("serialization") != "safetensors":
        raise ExportError(f"only safetensors exports are pushed to the Hub; '{folder}' holds a {record.get('serialization')} export")
    url = push_to_hub(folder, config.repo_id, config.private, os.environ.get("HF_TOKEN"))
    return dg.MaterializeResult(metadata={"repo": dg.MetadataValue.url(url), "private": config.private, "trial": record["trial_key"]})

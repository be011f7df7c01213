"""The chosen trial exported as a production BERTopic model: which trial (the leaderboard's first unless one is
named), what is wrong with exporting it, the model built and saved with its record, and the export logged."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from topic_pipeline.domain.results import STATUS_OK, TrialResult
from topic_pipeline.domain.trials import TrialParams
from topic_pipeline.engine.fast import EmbeddingSource
from topic_pipeline.inputs.embeddings import EmbeddingCache
from topic_pipeline.inputs.ground_truth import GroundTruth
from topic_pipeline.integrations.export import (
    ExportedModel,
    ExportError,
    build_topic_model,
    embedding_model_pointer,
    library_versions,
    save_export,
    trial_labels,
)
from topic_pipeline.integrations.mlflow_tracking import MlflowTracker
from topic_pipeline.scoring.confidence import exported_trust, trust_summary
from topic_pipeline.scoring.leaderboard import best_sound_trial, has_no_topic, sample_warnings, trial_problem
from topic_pipeline.workflow.sweep_inputs import SweepInputs

_logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """An export: the trial, where its model was saved, what it records, and its MLflow run."""

    trial_key: str
    serialization: str
    exported: ExportedModel
    embedding_model: str  # the pointer the model records (a hub name or an absolute path)
    metrics: dict[str, float]
    expected: float | None  # this trial's held-out estimate of the ranking metric (None: no held-out part)
    warnings: list[str]
    topic_table: str  # the model's topics as a Markdown table
    mlflow_run_id: str
    run_url: str | None = None


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
        alternative = (
            f" The best trial whose topics hold labelled documents is '{sound[0]}' (rank {sound[1]})." if sound else ""
        )
        raise ExportError(
            f"trial '{trial_key}' is the leaderboard's first but {problem}.{alternative} Nothing was exported; to "
            f"export this trial anyway, name it: topic-pipeline export --trial {trial_key} (launch config trial_key)"
        )
    warnings = [f"trial '{trial_key}' {problem}"] if problem else []
    return warnings + sample_warnings(leaderboard, rank_by, labels, where, trial=trial_key)


def chosen_trial(leaderboard: pd.DataFrame, trial_key: str = "") -> str:
    """The trial to export: ``trial_key``, or the leaderboard's first scored trial."""
    ranked = leaderboard[leaderboard["status"] == STATUS_OK]
    chosen = trial_key or (str(ranked.iloc[0]["trial"]) if len(ranked) else "")
    ranked_keys = set(leaderboard["trial"])
    if not chosen:
        raise ExportError("the leaderboard has no scored trial to export; run the sweep first or give trial_key")
    if chosen not in ranked_keys:
        raise ExportError(f"trial key '{chosen}' is not in the current leaderboard; choose one of its 'trial' values")
    return chosen


def _current_result(inputs: SweepInputs, trial_key: str) -> tuple[TrialParams, TrialResult]:
    """The trial's parameters and its result on the current inputs, which must have succeeded."""
    try:
        params = inputs.params(trial_key)
    except KeyError as exc:
        raise ExportError(str(exc.args[0])) from None
    result = inputs.store.current(trial_key, inputs.fingerprint, params.to_dict())
    if result is None:
        raise ExportError(f"trial '{trial_key}' has no result on the current inputs; materialise its partition first")
    if result.status != STATUS_OK:
        raise ExportError(f"trial '{trial_key}' failed ({result.error}); choose a trial that succeeded")
    return params, result


def _topic_model(inputs: SweepInputs, params: TrialParams) -> Any:
    """A BERTopic model whose topics are exactly the trial's labels, recomputed through the engine's caches."""
    config, corpus = inputs.config, inputs.corpus
    cache = EmbeddingCache(inputs.paths.embeddings)
    cache_key, embeddings = cache.require_for_corpus(
        params.embedding_set, corpus.content_hash, len(corpus), config.stopwords_language
    )
    source = EmbeddingSource(str(cache.path(cache_key)), cache_key, len(corpus))
    labels = trial_labels(
        params, source, corpus.texts, config.umap_seed, inputs.paths.reductions, config.stopwords_language
    )
    return build_topic_model(corpus.texts, embeddings, labels, params, config.stopwords_language)


def _export_record(
    inputs: SweepInputs,
    leaderboard: pd.DataFrame,
    trial_key: str,
    params: TrialParams,
    result: TrialResult,
    warnings: list[str],
) -> dict[str, Any]:
    """What ``tuning.json`` records beside the model: what BERTopic's own config drops, and what to expect."""
    config = inputs.config
    record = {
        "trial_key": trial_key,
        "params": params.to_dict(),
        "umap": params.umap_settings(config.umap_seed),
        "hdbscan": params.hdbscan_settings(),
        # Its stop words are the language's whatever remove_stopwords (what was embedded) says.
        "vectorizer": {"ngram_range": [1, params.n_gram_max], "stop_words": config.stopwords_language},
        # BERTopic.reduce_outliers(docs, topics, strategy=..., threshold=...) after the fit; "none": not called.
        "outlier_reduction": {"strategy": params.outlier_reduction, "threshold": params.outlier_threshold},
        "metrics": result.metrics,
        # What to expect, on labels no choice read (docs/metrics.md): from the leaderboard's recommended
        # configuration, and from this trial, which may be another one (export --trial).
        "trust": trust_summary(leaderboard, config.rank_by, inputs.split),
        "corpus_hash": inputs.corpus.content_hash,
        "ground_truth_hash": inputs.labels.content_hash,
        "trial_mlflow_run_id": result.tags.get("mlflow_run_id"),
        "versions": library_versions(),
        "warnings": warnings,
    }
    record["exported_trial_trust"] = exported_trust(leaderboard, trial_key, config.rank_by, record["trust"])
    return record


def topic_table(model: Any) -> str:
    """The model's topics, their sizes and top words, as a Markdown table."""
    info = model.get_topic_info()
    lines = ["| topic | size | top words |", "|---|---|---|"]
    for _, row in info.iterrows():
        words = ", ".join(word for word, _ in (model.get_topic(row["Topic"]) or [])[:8])
        lines.append(f"| {row['Topic']} | {row['Count']} | {words} |")
    return "\n".join(lines)


def export_trial(
    inputs: SweepInputs,
    leaderboard: pd.DataFrame,
    tracker: MlflowTracker,
    dagster_run_id: str,
    trial_key: str = "",
    serialization: str = "safetensors",
    target_dir: str | Path | None = None,
    log: logging.Logger = _logger,
) -> ExportResult:
    """Export ``trial_key`` (empty: the leaderboard's first scored trial) as a BERTopic model whose topics are
    exactly the trial's labels, saved with BERTopic's serialisation under ``target_dir`` (empty: <data
    dir>/models/<trial key>) and logged to MLflow. Raises ``ExportError`` for a trial that cannot be exported."""
    config = inputs.config
    named = bool(trial_key)  # a user who names a trial has seen what is wrong with it
    trial_key = chosen_trial(leaderboard, trial_key)
    params, result = _current_result(inputs, trial_key)
    warnings = export_warnings(
        trial_key,
        result.metrics,
        leaderboard,
        config.rank_by,
        inputs.labels,
        named=named,
        where=f"ground truth file '{config.ground_truth_file}'",
    )
    warnings += [inputs.split.warning] if inputs.split.warning else []
    for warning in warnings:
        log.warning(warning)

    pointer = embedding_model_pointer(params.embedding_model)
    model = _topic_model(inputs, params)
    record = _export_record(inputs, leaderboard, trial_key, params, result, warnings)
    target = Path(target_dir) if target_dir else inputs.paths.root / "models" / trial_key
    exported = save_export(model, target, serialization, pointer, record)
    run_id = tracker.log_export(
        exported.directory, trial_key, result.tags.get("mlflow_run_id"), {"dagster_run_id": dagster_run_id}
    )
    return ExportResult(
        trial_key=trial_key,
        serialization=serialization,
        exported=exported,
        embedding_model=pointer,
        metrics=result.metrics,
        expected=record["exported_trial_trust"]["expected"],
        warnings=warnings,
        topic_table=topic_table(model),
        mlflow_run_id=run_id,
        run_url=tracker.run_url(run_id),
    )

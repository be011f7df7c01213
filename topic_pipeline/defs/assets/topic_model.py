"""The chosen trial as a production BERTopic model, and its optional push to the Hugging Face Hub."""

import os
from pathlib import Path

import dagster as dg
import pandas as pd

from topic_pipeline.defs.resources.mlflow import MlflowTracking
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.integrations.export import ExportError, push_to_hub
from topic_pipeline.storage.files import read_json
from topic_pipeline.workflow.export import ExportResult, export_trial
from topic_pipeline.workflow.sweep_inputs import SweepInputs


class TopicModelConfig(dg.Config):
    """Launch configuration: which trial to export and how."""

    trial_key: str = ""  # empty: the leaderboard's first, the recommended configuration's best trial
    serialization: str = "safetensors"  # or "pytorch", "pickle"
    target_dir: str = ""  # empty: <data dir>/models/<trial key>


def _nan_if_none(value: float | None) -> float:
    """Shown rounded: the UI prints every digit of a float."""
    return float("nan") if value is None else round(float(value), 4)


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
    inputs = SweepInputs.load(settings.sweep_config(), documents, ground_truth)
    export = export_trial(
        inputs,
        leaderboard,
        mlflow.tracker(inputs.paths),
        context.run.run_id,
        trial_key=config.trial_key,
        serialization=config.serialization,
        target_dir=config.target_dir or None,
        log=context.log,
    )
    return dg.MaterializeResult(metadata=export_metadata(export, settings.rank_by))


def export_metadata(export: ExportResult, rank_by: str) -> dict[str, object]:
    exported = export.exported
    metadata = {
        "trial": export.trial_key,
        "path": dg.MetadataValue.path(str(exported.model_path)),
        "serialization": export.serialization,
        "size_bytes": exported.size_bytes,
        "size_mb": round(exported.size_bytes / 2**20, 3),
        "topics": dg.MetadataValue.md(export.topic_table),
        "embedding_model": export.embedding_model,
        "ari": round(float(export.metrics["ari"]), 4),
        # This trial's held-out estimate: what to expect from it (NaN without a held-out part).
        f"expected_{rank_by}": _nan_if_none(export.expected),
        "mlflow_run_id": export.mlflow_run_id,
        "warnings": dg.MetadataValue.text("\n".join(export.warnings) if export.warnings else "none"),
    }
    if export.run_url:
        metadata["mlflow_run"] = dg.MetadataValue.url(export.run_url)
    return metadata


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
        raise ExportError(
            f"only safetensors exports are pushed to the Hub; '{folder}' holds a {record.get('serialization')} export"
        )
    url = push_to_hub(folder, config.repo_id, config.private, os.environ.get("HF_TOKEN"))
    return dg.MaterializeResult(
        metadata={"repo": dg.MetadataValue.url(url), "private": config.private, "trial": record["trial_key"]}
    )

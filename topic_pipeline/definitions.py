"""The code location: the defs folder plus resources and the executor, which it does not collect."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from topic_pipeline.errors import TopicPipelineError
from topic_pipeline.defs.resources.database import DocumentsDatabase
from topic_pipeline.defs.resources.io_manager import ParquetJsonIOManager
from topic_pipeline.defs.resources.mlflow import MlflowTracking
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.storage.files import read_user_text


# Data versions on outputs are a beta API in Dagster 1.13; they are what makes staleness follow content hashes.
warnings.filterwarnings("ignore", category=dg.BetaWarning)


def _secret(name: str) -> str | dg.EnvVar:
    """A value that may hold credentials: read from the environment at run time, never shown in the UI."""
    return dg.EnvVar(name) if os.environ.get(name) else ""


def _int_setting(name: str, default: int, minimum: int | None = None) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise TopicPipelineError(f"{name}='{value}' is not an integer (default {default})") from None
    if minimum is not None and number < minimum:
        raise TopicPipelineError(f"{name}='{value}' must be at least {minimum} (default {default})")
    return number


def _fraction_setting(name: str, default: float, check: Callable[[float], float]) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise TopicPipelineError(f"{name}='{value}' is not a number (default {default})") from None
    try:
        return check(number)
    except ValueError as exc:
        raise TopicPipelineError(f"{name}='{value}': {exc} (default {default})") from None


def _choice_setting(name: str, default: str, choices: tuple[str, ...]) -> str:
    """Checked when the code location loads, not hours later in the step that uses it."""
    value = os.environ.get(name, default)
    if value not in choices:
        raise TopicPipelineError(f"{name}='{value}' is not one of {', '.join(choices)}")
    return value


def build_resources() -> dict[str, object]:
    from topic_pipeline.inputs.grid import DEFAULT_MAX_GRID_TRIALS, MAX_GRID_TRIALS_SETTING
    from topic_pipeline.inputs.ground_truth import DEFAULT_MIN_FOUND_SHARE, MIN_FOUND_SHARE_SETTING, check_found_share
    from topic_pipeline.scoring.holdout import DEFAULT_HOLDOUT_FRACTION, DEFAULT_HOLDOUT_SEED, check_fraction
    from topic_pipeline.scoring.metrics import METRIC_NAMES
    from topic_pipeline.engine.sweep import ENGINES

    data_dir = os.environ.get("TOPIC_PIPELINE_DATA_DIR", "")
    return {
        "settings": PipelineSettings(
            data_dir=data_dir,
            ground_truth_path=os.environ.get("TOPIC_PIPELINE_GROUND_TRUTH", ""),
            grid_path=os.environ.get("TOPIC_PIPELINE_GRID", ""),
            rank_by=_choice_setting("TOPIC_PIPELINE_RANK_BY", "ari", tuple(METRIC_NAMES)),
            rank_by_stability=os.environ.get("TOPIC_PIPELINE_RANK_BY_STABILITY", "") in {"1", "true", "TRUE", "yes"},
            umap_seed=_int_setting("TOPIC_PIPELINE_UMAP_SEED", 42),
            stopwords_language=os.environ.get("TOPIC_PIPELINE_STOPWORDS_LANGUAGE", "english"),
            embedding_device=os.environ.get("TOPIC_PIPELINE_EMBEDDING_DEVICE", "auto"),
            embedding_batch_size=_int_setting("TOPIC_PIPELINE_EMBEDDING_BATCH_SIZE", 64),
            engine=_choice_setting("TOPIC_PIPELINE_ENGINE", "fast", ENGINES),
            workers=_int_setting("TOPIC_PIPELINE_WORKERS", 0),
            embedding_local_files_only=os.environ.get("HF_HUB_OFFLINE", "") in {"1", "true", "TRUE", "yes"},
            max_grid_trials=_int_setting(MAX_GRID_TRIALS_SETTING, DEFAULT_MAX_GRID_TRIALS, minimum=1),
            holdout_fraction=_fraction_setting("TOPIC_PIPELINE_HOLDOUT_FRACTION", DEFAULT_HOLDOUT_FRACTION, check_fraction),
            holdout_seed=_int_setting("TOPIC_PIPELINE_HOLDOUT_SEED", DEFAULT_HOLDOUT_SEED),
            min_labels_found=_fraction_setting(MIN_FOUND_SHARE_SETTING, DEFAULT_MIN_FOUND_SHARE, check_found_share),
        ),
        "database": DocumentsDatabase(
            url=_secret("TOPIC_PIPELINE_DATABASE_URL"),
            table=os.environ.get("TOPIC_PIPELINE_DOCUMENTS_TABLE", "documents"),
            query=os.environ.get("TOPIC_PIPELINE_DOCUMENTS_QUERY", ""),
            id_column=os.environ.get("TOPIC_PIPELINE_ID_COLUMN", "id"),
            text_column=os.environ.get("TOPIC_PIPELINE_TEXT_COLUMN", "text"),
            date_column=os.environ.get("TOPIC_PIPELINE_DATE_COLUMN", ""),
            window_start=os.environ.get("TOPIC_PIPELINE_WINDOW_START", ""),
            window_end=os.environ.get("TOPIC_PIPELINE_WINDOW_END", ""),
            window_days=_int_setting("TOPIC_PIPELINE_WINDOW_DAYS", 0),
        ),
        "mlflow": MlflowTracking(
            tracking_uri=_secret("MLFLOW_TRACKING_URI"),
            experiment_name=os.environ.get("TOPIC_PIPELINE_EXPERIMENT", "topic_pipeline"),
            ui_url=os.environ.get("TOPIC_PIPELINE_MLFLOW_UI_URL", "http://127.0.0.1:5000"),
        ),
        "io_manager": ParquetJsonIOManager(data_dir=data_dir),
    }


def executor_kind() -> str:
    """``TOPIC_PIPELINE_EXECUTOR``: ``multiprocess`` (default) runs each step in a process of the run;
    ``k8s`` runs each step as its own Kubernetes Job (dagster-k8s), configured by the YAML file named in
    ``TOPIC_PIPELINE_K8S_EXECUTOR_CONFIG`` (see deploy/k8s/executor.yaml: per-step resources, the GPU)."""
    kind = os.environ.get("TOPIC_PIPELINE_EXECUTOR", "multiprocess")
    if kind not in {"multiprocess", "k8s"}:
        raise TopicPipelineError(f"TOPIC_PIPELINE_EXECUTOR must be 'multiprocess' or 'k8s', got '{kind}'")
    return kind


def build_executor() -> dg.ExecutorDefinition:
    if executor_kind() == "multiprocess":
        return dg.multiprocess_executor
    import yaml
    from dagster_k8s import k8s_job_executor

    setting = os.environ.get("TOPIC_PIPELINE_K8S_EXECUTOR_CONFIG", "")
    path = Path(setting)
    if not setting or not path.is_file():
        raise TopicPipelineError(
            "TOPIC_PIPELINE_EXECUTOR=k8s needs TOPIC_PIPELINE_K8S_EXECUTOR_CONFIG, the path of the executor's YAML file "
            f"(deploy/k8s/executor.yaml); {f'{setting!r} is not a file' if setting else 'it is not set'}"
        )
    text = read_user_text(path, "executor config file", TopicPipelineError)
    return k8s_job_executor.configured(yaml.safe_load(text) or {}, name="k8s")


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(resources=build_resources(), executor=build_executor()),
    )

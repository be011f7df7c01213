"""The code location: the defs folder plus resources and the executor, which it does not collect."""

from __future__ import annotations

import warnings
from pathlib import Path

import dagster as dg

from topic_pipeline.defs.resources.database import DocumentsDatabase
from topic_pipeline.defs.resources.io_manager import ParquetJsonIOManager
from topic_pipeline.defs.resources.mlflow import MlflowTracking
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.errors import TopicPipelineError
from topic_pipeline.settings import Settings
from topic_pipeline.storage.files import read_user_text

# Data versions on outputs are a beta API in Dagster 1.13; they are what makes staleness follow content hashes.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

# The code location as pyproject's [tool.dg.project] declares it (code_location_name, code_location_target_module):
# runs the command line executes itself are created as runs of this location, so the UI lists them with its own.
CODE_LOCATION = "topic_pipeline"
CODE_LOCATION_MODULE = __name__
# On a cluster (deploy/celery/): the run tag naming the Celery worker that executed the run, set by the worker
# ("which machine ran this?" is a question a person asks of a run).
WORKER_TAG = "topic_pipeline/worker"


def _secret(settings: Settings, field_name: str) -> str | dg.EnvVar:
    """A value that may hold credentials: read from the environment at run time, never shown in the UI."""
    return dg.EnvVar(Settings.env_name(field_name)) if getattr(settings, field_name).get_secret_value() else ""


def build_resources(settings: Settings | None = None) -> dict[str, object]:
    """The Dagster resources of ``settings`` (read from the environment, and checked, if None)."""
    settings = settings or Settings.load()
    data_dir = str(settings.data_dir)
    return {
        "settings": PipelineSettings(
            data_dir=data_dir,
            ground_truth_path=str(settings.ground_truth or ""),
            grid_path=str(settings.grid or ""),
            rank_by=settings.rank_by,
            rank_by_stability=settings.rank_by_stability,
            umap_seed=settings.umap_seed,
            stopwords_language=settings.stopwords_language,
            embedding_device=settings.embedding_device,
            embedding_batch_size=settings.embedding_batch_size,
            engine=settings.engine,
            workers=settings.workers,
            sweep_runs=settings.sweep_runs,
            embedding_local_files_only=settings.hf_hub_offline,
            max_grid_trials=settings.max_grid_trials,
            holdout_fraction=settings.holdout_fraction,
            holdout_seed=settings.holdout_seed,
            min_labels_found=settings.min_labels_found,
        ),
        "database": DocumentsDatabase(
            url=_secret(settings, "database_url"),
            table=settings.documents_table,
            query=settings.documents_query,
            id_column=settings.id_column,
            text_column=settings.text_column,
            date_column=settings.date_column,
            window_start=settings.window_start,
            window_end=settings.window_end,
            window_days=settings.window_days,
        ),
        "mlflow": MlflowTracking(
            tracking_uri=_secret(settings, "mlflow_tracking_uri"),
            experiment_name=settings.experiment,
            ui_url=settings.mlflow_ui_url,
        ),
        "io_manager": ParquetJsonIOManager(data_dir=data_dir),
    }


def build_executor(settings: Settings | None = None) -> dg.ExecutorDefinition:
    """``multiprocess`` (default) runs each step in a process of the run; ``k8s`` runs each step as its own
    Kubernetes Job (dagster-k8s), configured by the YAML file named in ``TOPIC_PIPELINE_K8S_EXECUTOR_CONFIG``
    (see deploy/k8s/executor.yaml: per-step resources, the GPU)."""
    settings = settings or Settings.load()
    if settings.executor == "multiprocess":
        return dg.multiprocess_executor
    import yaml
    from dagster_k8s import k8s_job_executor

    text = read_user_text(settings.k8s_executor_config, "executor config file", TopicPipelineError)
    return k8s_job_executor.configured(yaml.safe_load(text) or {}, name="k8s")


@dg.definitions
def defs() -> dg.Definitions:
    settings = Settings.load()  # every setting checked before anything is built
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(resources=build_resources(settings), executor=build_executor(settings)),
    )

"""Pipeline settings: where data lives, which labels and grid to use, how trials run."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from topic_pipeline.domain.versions import environment_versions
from topic_pipeline.engine.reference import DEFAULT_SEED
from topic_pipeline.inputs.demo_data import ensure_demo_data
from topic_pipeline.inputs.embeddings import EmbeddingSettings
from topic_pipeline.inputs.grid import DEFAULT_MAX_GRID_TRIALS
from topic_pipeline.inputs.ground_truth import DEFAULT_MIN_FOUND_SHARE, GroundTruth
from topic_pipeline.scoring.holdout import DEFAULT_HOLDOUT_FRACTION, DEFAULT_HOLDOUT_SEED, HoldoutSplit
from topic_pipeline.storage.data_directory import verify
from topic_pipeline.storage.paths import DataPaths
from topic_pipeline.workflow import SweepConfig

# Set by a cluster worker (the Celery worker, to its name) in the processes that execute runs: only there can the
# data directory be another machine's mount, or missing.
CLUSTER_WORKER_ENV = "TOPIC_PIPELINE_CLUSTER_WORKER"


class PipelineSettings(dg.ConfigurableResource):
    """Empty paths mean the embedded sample (created under ``data_dir`` on first use)."""

    data_dir: str = ""
    ground_truth_path: str = ""
    grid_path: str = ""
    rank_by: str = "ari"
    # Rank configurations replicated over UMAP seeds by mean minus one standard deviation first.
    rank_by_stability: bool = False
    umap_seed: int = DEFAULT_SEED
    stopwords_language: str = "english"
    embedding_device: str = "auto"
    embedding_batch_size: int = 64
    # "fast" (shared caches, worker pool) or "reference" (one plain BERTopic fit per trial).
    engine: str = "fast"
    # Worker processes for the fast engine; 0 means one per CPU core.
    workers: int = 0
    # Trials runs a sweep's runnable trials are split into, sharing no neighbour graph (fewer with fewer
    # graphs); 1 means as few runs as possible.
    sweep_runs: int = 1
    # True where no model hub can be reached: only local paths and cached models load.
    embedding_local_files_only: bool = False
    # A grid file with more combinations is refused before it is expanded or registered.
    max_grid_trials: int = DEFAULT_MAX_GRID_TRIALS
    # Share of each class's labelled documents held out from every ranking decision (0: none), and the
    # seed that picks them.
    holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION
    holdout_seed: int = DEFAULT_HOLDOUT_SEED
    # Share of the labelled text ids the export must hold; the others are left out of scoring.
    min_labels_found: float = DEFAULT_MIN_FOUND_SHARE

    @property
    def paths(self) -> DataPaths:
        return DataPaths(self.data_dir or None)

    def check_shared_data_directory(self, where: str) -> None:
        """On a cluster worker (``TOPIC_PIPELINE_CLUSTER_WORKER`` set): refuse, writing nothing, unless the data
        directory is the one the instance claimed, in the same environment (``storage.data_directory``).
        ``where`` says what is checked (a run, say); the worker's name goes before it in the message."""
        worker = os.environ.get(CLUSTER_WORKER_ENV, "").strip()
        if worker:
            verify(self.paths, environment_versions(), f"worker {worker}" + (f", {where}" if where else ""))

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Dagster initialises a step's resources in the step's process before its inputs load, its body runs
        # or its IO manager writes: a worker that would write to the wrong directory stops before any write.
        self.check_shared_data_directory(f"run {context.run_id}" if context.run_id else "")

    def ground_truth_file(self) -> Path:
        if self.ground_truth_path:
            return Path(self.ground_truth_path)
        return ensure_demo_data(self.paths.demo)[1]

    def grid_file(self) -> Path | None:
        """None means no grid was given: the default search runs."""
        return Path(self.grid_path) if self.grid_path else None

    def sweep_config(self) -> SweepConfig:
        """These settings as the library's sweep stages take them."""
        return SweepConfig(
            paths=self.paths,
            rank_by=self.rank_by,
            rank_by_stability=self.rank_by_stability,
            umap_seed=self.umap_seed,
            stopwords_language=self.stopwords_language,
            holdout_fraction=self.holdout_fraction,
            holdout_seed=self.holdout_seed,
            engine=self.engine,
            workers=self.workers,
            ground_truth_file=self.ground_truth_file(),
        )

    def inputs_fingerprint(self, corpus_hash: str, labels_hash: str) -> str:
        return self.sweep_config().inputs_fingerprint(corpus_hash, labels_hash)

    def holdout_split(self, labels: GroundTruth) -> HoldoutSplit:
        return self.sweep_config().holdout_split(labels)

    def embedding_settings(self) -> EmbeddingSettings:
        return EmbeddingSettings(
            device=self.embedding_device,
            batch_size=self.embedding_batch_size,
            stopwords_language=self.stopwords_language,
            local_files_only=self.embedding_local_files_only,
        )

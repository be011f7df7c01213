"""What every stage of a sweep reads, loaded in one place: the exported corpus, the labelled sample and its
held-out split, the fingerprint that ties stored results to them, the result store and the current grid."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from topic_pipeline.domain.results import TrialResult, inputs_fingerprint
from topic_pipeline.domain.trials import TrialParams
from topic_pipeline.inputs.corpus import Corpus
from topic_pipeline.inputs.ground_truth import GroundTruth
from topic_pipeline.scoring.holdout import HoldoutSplit, split_labels
from topic_pipeline.storage.files import read_json
from topic_pipeline.storage.paths import DataPaths
from topic_pipeline.storage.results import ResultStore


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """The settings the stages of a sweep read. The Dagster layer's ``PipelineSettings`` maps onto it."""

    paths: DataPaths
    rank_by: str = "ari"
    rank_by_stability: bool = False
    umap_seed: int = 42
    stopwords_language: str = "english"
    holdout_fraction: float = 0.3
    holdout_seed: int = 42
    engine: str = "fast"
    workers: int = 0  # 0: one per CPU core
    ground_truth_file: Path | None = None  # named in messages about the labels

    def inputs_fingerprint(self, corpus_hash: str, labels_hash: str) -> str:
        """What every trial result depends on besides its parameters: the one place the planner and the stages
        derive it, so they always agree on which results are current."""
        return inputs_fingerprint(
            corpus_hash,
            labels_hash,
            self.umap_seed,
            self.stopwords_language,
            holdout_fraction=self.holdout_fraction,
            holdout_seed=self.holdout_seed,
        )

    def holdout_split(self, labels: GroundTruth) -> HoldoutSplit:
        """The labelled sample's selection and held-out parts: the one place every stage takes them from."""
        return split_labels(labels, self.holdout_fraction, self.holdout_seed)


@dataclasses.dataclass(frozen=True)
class SweepInputs:
    config: SweepConfig
    corpus: Corpus
    labels: GroundTruth
    split: HoldoutSplit
    fingerprint: str
    store: ResultStore

    @functools.cached_property
    def manifest(self) -> dict[str, Any]:
        """The current grid (empty before the first one is expanded), read when first used: the stage that
        writes it (``make_grid_current``) never reads the old one."""
        current = self.paths.current_grid
        return read_json(current) if current.exists() else {}

    @classmethod
    def load(cls, config: SweepConfig, documents: pd.DataFrame, ground_truth: Mapping[str, Any]) -> SweepInputs:
        """From the ``documents`` and ``ground_truth`` assets' values."""
        corpus = Corpus.from_frame(documents)
        labels = GroundTruth.from_mapping(ground_truth)
        paths = config.paths
        return cls(
            config=config,
            corpus=corpus,
            labels=labels,
            split=config.holdout_split(labels),
            fingerprint=config.inputs_fingerprint(corpus.content_hash, labels.content_hash),
            store=ResultStore(paths.results),
        )

    @property
    def paths(self) -> DataPaths:
        return self.config.paths

    @property
    def trials(self) -> dict[str, dict[str, Any]]:
        """Every trial of the current grid: key -> its parameters."""
        return self.manifest.get("trials", {})

    @property
    def rounds(self) -> dict[str, int]:
        """The search round that proposed each trial, for a search."""
        return self.manifest.get("rounds", {})

    def params(self, key: str) -> TrialParams:
        return self.paths.trial_params(key)

    def current_results(self) -> dict[str, TrialResult | None]:
        """Each trial of the current grid's result on these inputs; None where it has none."""
        return {key: self.store.current(key, self.fingerprint, params) for key, params in self.trials.items()}

    def labelled(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The labelled documents' corpus positions, their classes, and which are held out (None: no split)."""
        positions, classes = self.labels.aligned(self.corpus.ids)
        return positions, classes, self.split.mask(self.corpus.ids[positions])

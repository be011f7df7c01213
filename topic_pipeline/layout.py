"""Where the pipeline keeps its files under one data directory."""

from __future__ import annotations

import os
from pathlib import Path

from topic_pipeline.grid import EmbeddingSet, TrialParams
from topic_pipeline.storage import read_json, write_json

DATA_DIR_ENV = "TOPIC_PIPELINE_DATA_DIR"


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, "data")).resolve()


class DataLayout:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).resolve() if root else default_data_dir()

    @property
    def assets(self) -> Path:
        return self.root / "assets"

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings"

    @property
    def reductions(self) -> Path:
        """Neighbour graphs and UMAP reductions (content-addressed .npz)."""
        return self.root / "cache"

    @property
    def results(self) -> Path:
        return self.root / "trials" / "results"

    @property
    def leaderboard(self) -> Path:
        return self.root / "leaderboard"

    @property
    def mlflow(self) -> Path:
        return self.root / "mlflow"

    @property
    def sample(self) -> Path:
        return self.root / "sample"

    @property
    def current_grid(self) -> Path:
        return self.root / "grid" / "current.json"

    # Every key ever registered keeps its parameters here, so a trial of an older grid can still run.
    def trial_params_path(self, key: str) -> Path:
        return self.root / "grid" / "trials" / f"{key}.json"

    def embedding_set_path(self, key: str) -> Path:
        return self.root / "grid" / "embedding_sets" / f"{key}.json"

    def register_trial(self, params: TrialParams) -> bool:
        """Record the params of a key; returns True if the key is new."""
        path = self.trial_params_path(params.key)
        if path.exists() and TrialParams.from_dict(read_json(path)) == params:
            return False
        write_json(path, params.to_dict())
        write_json(self.embedding_set_path(params.embedding_set.key), params.embedding_set.to_dict())
        return True

    def trial_params(self, key: str) -> TrialParams:
        path = self.trial_params_path(key)
        if not path.exists():
            raise KeyError(f"trial key '{key}' is not registered; materialise param_grid with a grid that contains it")
        return TrialParams.from_dict(read_json(path))

    def embedding_set(self, key: str) -> EmbeddingSet:
        path = self.embedding_set_path(key)
        if not path.exists():
            raise KeyError(f"embedding set '{key}' is not registered; materialise param_grid first")
        return EmbeddingSet(**read_json(path))

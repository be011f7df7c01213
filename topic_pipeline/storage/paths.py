"""Where the pipeline keeps its files under one data directory (``DataPaths``)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from topic_pipeline.domain.trials import EmbeddingSet, TrialParams
from topic_pipeline.storage.files import read_json, write_json

DATA_DIR_ENV = "TOPIC_PIPELINE_DATA_DIR"


def default_data_dir() -> Path:
    # An empty or blank value means the default, as the settings read it (topic_pipeline/settings.py).
    return Path(os.environ.get(DATA_DIR_ENV, "").strip() or "data").resolve()


def sweep_id(grid_definition: dict, inputs_fingerprint: str) -> str:
    """One sweep's name across all its runs and, for a search, all its rounds (whose trial keys change the grid
    fingerprint): the grid file's definition and the inputs it runs on."""
    identity = json.dumps([grid_definition, inputs_fingerprint], sort_keys=True).encode()
    return hashlib.sha256(identity).hexdigest()[:12]


class DataPaths:
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
    def run_records(self) -> Path:
        """What processes that execute runs themselves record about them (``run_records.RunRecords``)."""
        return self.root / "runs"

    @property
    def leaderboard(self) -> Path:
        return self.root / "leaderboard"

    @property
    def mlflow(self) -> Path:
        return self.root / "mlflow"

    @property
    def demo(self) -> Path:
        """The embedded demo data (a generated source database and its labels), created on first use."""
        return self.root / "demo"

    @property
    def current_grid(self) -> Path:
        """The trials of the current sweep (an explicit grid, or every round of a search so far)."""
        return self.root / "grid" / "current.json"

    @property
    def search_state(self) -> Path:
        return self.root / "grid" / "search.json"

    def write_current_grid(
        self, source: str, definition: dict, trials: list[TrialParams], rounds: dict[str, int] | None = None
    ) -> tuple[dict, int]:
        """Register ``trials`` and make them the current sweep; returns the manifest and the count of new keys.

        The fingerprint covers the definition and the set of trial keys, so a search round that adds
        trials changes it (and with it the leaderboard's results digest), and the same trials in another
        order do not: a search's state file stores its trials sorted, and a finished search that rewrites
        the same grid must leave the leaderboard current.
        """
        new = sum(self.register_trial(trial) for trial in trials)
        keys = sorted(trial.key for trial in trials)
        identity = json.dumps([definition, keys], sort_keys=True).encode()
        manifest = {
            "grid_fingerprint": hashlib.sha256(identity).hexdigest()[:16],
            "source": source,
            "grid": definition,
            "embedding_sets": {trial.embedding_set.key: trial.embedding_set.to_dict() for trial in trials},
            "trials": {trial.key: trial.to_dict() for trial in trials},
            "rounds": dict(rounds or {}),
        }
        write_json(self.current_grid, manifest)
        return manifest, new

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

    def is_registered(self, key: str) -> bool:
        """Whether a grid registered the trial ``key`` (every trial a grid plans is): a partition that is not was
        added by other means (by hand in the UI) and is never run."""
        return self.trial_params_path(key).exists()

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

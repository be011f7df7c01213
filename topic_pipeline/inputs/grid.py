"""The hyperparameter grid: parsing, validation and expansion.

A grid is JSON whose keys are the names in ``GRID_KEYS``; each holds a list of values. Missing keys
take BERTopic's defaults (``DEFAULT_GRID``). The grid expands to the cross product of its lists; each
combination is a ``TrialParams`` (``domain.trials``, with the rules of its stable key).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from topic_pipeline.domain.trials import DEFAULT_GRID, GRID_KEYS, OUTLIER_STRATEGIES, TrialParams
from topic_pipeline.errors import GridError
from topic_pipeline.storage.files import DuplicateKeyError, read_user_text, reject_duplicate_keys

# Each trial of a grid becomes a Dagster partition with a parameters file, and expanding the grid holds
# every combination in memory: a grid larger than this is refused before anything is expanded.
DEFAULT_MAX_GRID_TRIALS = 5_000
MAX_GRID_TRIALS_SETTING = "TOPIC_PIPELINE_MAX_GRID_TRIALS"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    # json.loads accepts NaN and Infinity; neither is a usable hyperparameter (NaN is not even equal to itself).
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_grid_values(key: str, values: list[Any], where: str) -> list[Any]:
    """Validate one grid list and return its values normalised (floats as float, 'none' for nr_topics)."""

    def fail(value: Any, expected: str) -> GridError:
        return GridError(f"{where}: key '{key}' has value {json.dumps(value)}; expected {expected}")

    checked: list[Any] = []
    # A set beside the list: a list's own membership test would make a long list quadratic to check.
    seen: set[Any] = set()
    for value in values:
        if key == "umap_n_neighbors":
            if not _is_int(value) or value < 2:
                raise fail(value, "an integer >= 2")
        elif key == "umap_n_components":
            if not _is_int(value) or value < 1:
                raise fail(value, "an integer >= 1")
        elif key == "umap_min_dist":
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise fail(value, "a number between 0 and 1 (UMAP's spread is 1)")
            value = float(value)
        elif key == "hdbscan_min_cluster_size":
            if not _is_int(value) or value < 2:
                raise fail(value, "an integer >= 2 (HDBSCAN needs clusters of at least 2 documents)")
        elif key == "hdbscan_min_samples":
            if value is not None and (not _is_int(value) or value < 1):
                raise fail(value, "an integer >= 1, or null for HDBSCAN's default (min_cluster_size)")
        elif key == "hdbscan_cluster_selection_epsilon":
            if not _is_number(value) or value < 0:
                raise fail(value, "a number >= 0")
            value = float(value)
        elif key == "nr_topics":
            if value is None or (isinstance(value, str) and value.lower() == "none"):
                value = "none"
            elif isinstance(value, str) and value.lower() == "auto":
                value = "auto"
            elif not _is_int(value) or value < 2:
                raise fail(value, '"none", "auto" or an integer >= 2')
        elif key == "n_gram_max":
            if not _is_int(value) or not 1 <= value <= 5:
                raise fail(value, "an integer from 1 to 5")
        elif key == "embedding_model":
            if not isinstance(value, str) or not value.strip():
                raise fail(value, "a sentence-transformers model name or local path")
            value = value.strip()
        elif key == "remove_stopwords":
            if not isinstance(value, bool):
                raise fail(value, "true or false")
        elif key == "outlier_reduction":
            names = ("none", *OUTLIER_STRATEGIES)
            if value is None:
                value = "none"
            if not isinstance(value, str) or value.strip().lower() not in names:
                close = difflib.get_close_matches(str(value).strip().lower(), names, n=1, cutoff=0.5)
                hint = f" (did you mean {json.dumps(close[0])}?)" if close else ""
                raise fail(value, f"one of {', '.join(json.dumps(n) for n in names)}{hint}")
            value = value.strip().lower()
        elif key == "outlier_threshold":
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise fail(
                    value,
                    'a number from 0 to 1: the least HDBSCAN membership probability for "probabilities", the least '
                    "cosine similarity to a topic for the other strategies (an outlier below it stays an outlier)",
                )
            value = float(value)
        if value not in seen:
            seen.add(value)
            checked.append(value)
    return checked


def parse_grid_json(text: str, where: str = "grid") -> Any:
    """The JSON of a grid file (an explicit grid or a search), with duplicate keys refused."""
    try:
        return json.loads(text, object_pairs_hook=reject_duplicate_keys)
    except DuplicateKeyError as exc:
        raise GridError(f"{where}: key '{exc.key}' appears more than once; merge its values into one entry") from None
    except json.JSONDecodeError as exc:
        raise GridError(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None


@dataclasses.dataclass(frozen=True)
class ParamGrid:
    """A validated grid: for each key the distinct values, in the order given."""

    values: dict[str, list[Any]]

    def __post_init__(self) -> None:
        # Grids built in code (the search's rounds) may leave out keys: they take the defaults.
        for key, default in DEFAULT_GRID.items():
            self.values.setdefault(key, list(default))

    @classmethod
    def from_mapping(cls, raw: Any, where: str = "grid") -> ParamGrid:
        if not isinstance(raw, Mapping):
            raise GridError(f"{where}: expected a JSON object mapping grid keys to lists, got {type(raw).__name__}")
        values = {key: list(default) for key, default in DEFAULT_GRID.items()}
        for key, given in raw.items():
            if key not in DEFAULT_GRID:
                close = difflib.get_close_matches(str(key), GRID_KEYS, n=1, cutoff=0.5)
                hint = f" Did you mean '{close[0]}'?" if close else f" Known keys: {', '.join(GRID_KEYS)}."
                raise GridError(f"{where}: unknown key '{key}'.{hint}")
            if not isinstance(given, list):
                raise GridError(f"{where}: key '{key}' must be a list of values, got {json.dumps(given)}")
            if not given:
                raise GridError(f"{where}: key '{key}' is an empty list; give at least one value or omit the key")
            values[key] = check_grid_values(key, given, where)
        return cls(values)

    @classmethod
    def from_json_text(cls, text: str, where: str = "grid") -> ParamGrid:
        return cls.from_mapping(parse_grid_json(text, where), where)

    @classmethod
    def from_file(cls, path: str | Path) -> ParamGrid:
        path = Path(path)
        return cls.from_json_text(read_user_text(path, "grid file", GridError), where=f"grid file '{path}'")

    def validate_for_corpus(self, n_documents: int, where: str = "grid") -> None:
        """Checks that need the corpus size: UMAP needs neighbours and components below it."""
        for neighbours in self.values["umap_n_neighbors"]:
            if neighbours >= n_documents:
                raise GridError(
                    f"{where}: umap_n_neighbors={neighbours} must be below the corpus size ({n_documents} documents)"
                )
        for components in self.values["umap_n_components"]:
            if components >= n_documents - 1:
                raise GridError(
                    f"{where}: umap_n_components={components} must be below the corpus size minus one "
                    f"({n_documents} documents)"
                )
        for size in self.values["hdbscan_min_cluster_size"]:
            if size > n_documents:
                raise GridError(
                    f"{where}: hdbscan_min_cluster_size={size} is larger than the corpus ({n_documents} documents)"
                )

    def _outlier_variants(self) -> list[tuple[str, float]]:
        """(strategy, threshold) pairs: "none" once, whatever the thresholds (they mean nothing to it)."""
        return [
            (strategy, threshold if strategy != "none" else 0.0)
            for strategy in self.values["outlier_reduction"]
            for threshold in (self.values["outlier_threshold"] if strategy != "none" else [0.0])
        ]

    @property
    def trial_count(self) -> int:
        """How many combinations the grid has, from the lengths of its lists: nothing is expanded."""
        strategies = self.values["outlier_reduction"]
        variants = ("none" in strategies) + sum(s != "none" for s in strategies) * len(self.values["outlier_threshold"])
        return variants * math.prod(
            len(values) for key, values in self.values.items() if key not in ("outlier_reduction", "outlier_threshold")
        )

    def check_size(self, max_trials: int, where: str = "grid") -> None:
        count = self.trial_count
        if count > max_trials:
            raise GridError(
                f"{where}: {count:,} combinations, more than the limit of {max_trials:,} trials "
                f"({MAX_GRID_TRIALS_SETTING} raises it); give fewer values per key, or let the search find a good "
                'configuration instead (no grid file, or {"search": "auto"} in it: see Search in the README)'
            )

    def trials(self, max_trials: int | None = None, where: str = "grid") -> list[TrialParams]:
        """Every combination, ordered so that trials sharing embeddings and a UMAP reduction are adjacent.

        With ``max_trials``, a grid of more combinations is refused before any is built.
        """
        if max_trials is not None:
            self.check_size(max_trials, where)
        order = (
            "embedding_model",
            "remove_stopwords",
            "umap_n_neighbors",
            "umap_n_components",
            "umap_min_dist",
            "hdbscan_min_samples",
            "hdbscan_min_cluster_size",
            "hdbscan_cluster_selection_epsilon",
            "nr_topics",
            "n_gram_max",
        )
        # Outlier variants last: they share their clustering, and an existing grid (only "none") keeps
        # its order.
        trials = [
            TrialParams(**dict(zip(order, combination)), outlier_reduction=strategy, outlier_threshold=threshold)
            for combination in itertools.product(*(self.values[key] for key in order))
            for strategy, threshold in self._outlier_variants()
        ]
        keys: dict[str, TrialParams] = {}
        for trial in trials:
            if trial.key in keys and keys[trial.key] != trial:
                raise GridError(
                    f"grid: two combinations map to the same trial key '{trial.key}' "
                    f"(embedding models {keys[trial.key].embedding_model!r} and {trial.embedding_model!r} "
                    "share a short name); rename one, e.g. give a local path with a distinct folder name"
                )
            keys[trial.key] = trial
        return trials

    def to_dict(self) -> dict[str, list[Any]]:
        return {key: list(self.values[key]) for key in GRID_KEYS}

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

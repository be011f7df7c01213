"""The hyperparameter grid: parsing, validation, expansion and stable trial keys.

A grid is JSON whose keys are the names in ``GRID_KEYS``; each holds a list of values. Missing keys
take BERTopic's defaults (``DEFAULT_GRID``). The grid expands to the cross product of its lists; each
combination is a ``TrialParams`` with a readable key derived only from its values, so the same
combination always gets the same key and editing the grid only adds keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from topic_pipeline.errors import GridError
from topic_pipeline.storage.files import DuplicateKeyError, read_user_text, reject_duplicate_keys

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# BERTopic 0.17's own defaults, so an omitted key means "what BERTopic would do".
DEFAULT_GRID: dict[str, list[Any]] = {
    "umap_n_neighbors": [15],
    "umap_n_components": [5],
    "umap_min_dist": [0.0],
    "hdbscan_min_cluster_size": [10],
    "hdbscan_min_samples": [None],
    "hdbscan_cluster_selection_epsilon": [0.0],
    "nr_topics": ["none"],
    "n_gram_max": [1],
    "embedding_model": [DEFAULT_EMBEDDING_MODEL],
    "remove_stopwords": [False],
    # What BERTopic users do after clustering: reduce_outliers(strategy, threshold), then update_topics.
    "outlier_reduction": ["none"],
    "outlier_threshold": [0.0],
}
GRID_KEYS = tuple(DEFAULT_GRID)

# BERTopic 0.17's reduce_outliers strategies. Every threshold lies in [0, 1]: "probabilities" compares it
# with HDBSCAN's soft-cluster membership (0 to 1); the others with cosine similarities. Those of
# c-TF-IDF vectors and of topic distributions are never negative; those of embeddings can be, but
# reduce_outliers then assigns an outlier only if its similarities above the threshold sum to more
# than 0, so a negative threshold means "by the sign of a sum", not "least similarity": refused.
OUTLIER_STRATEGIES = ("distributions", "probabilities", "c-tf-idf", "embeddings")
# Strategies whose labels depend on the trial's vectorizer (its n-gram range): they compare
# c-TF-IDF vectors, so for them trials differing only in n_gram_max do not share labels.
VECTORIZER_STRATEGIES = ("distributions", "c-tf-idf")
# How a strategy shows in a trial key (``o<tag><threshold>``, e.g. ``oemb0.25``): short, so the HDBSCAN
# values before it stay in view.
OUTLIER_KEY_TAGS = {"distributions": "dist", "probabilities": "prob", "c-tf-idf": "ctfidf", "embeddings": "emb"}
# Grid keys a trial's stored parameters omit at their defaults: trials of grids from before they existed
# keep their stored parameters, hence their results.
OMITTED_AT_DEFAULT = ("outlier_reduction", "outlier_threshold")

# Each trial of a grid becomes a Dagster partition with a parameters file, and expanding the grid holds
# every combination in memory: a grid larger than this is refused before anything is expanded.
DEFAULT_MAX_GRID_TRIALS = 5_000
MAX_GRID_TRIALS_SETTING = "TOPIC_PIPELINE_MAX_GRID_TRIALS"

_KEY_SAFE = re.compile(r"[^a-z0-9.]+")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    # json.loads accepts NaN and Infinity; neither is a usable hyperparameter (NaN is not even equal to itself).
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _format_number(value: float | int) -> str:
    """Short and exact: ``%g`` where it round-trips (so existing keys never change), else ``repr``.

    ``+ 0`` turns -0.0 into 0.0 (an equal value must get the same key) and the exponent's '+' is dropped
    to keep keys within ``[a-z0-9._-]``.
    """
    value = value + 0
    text = format(value, "g")
    if float(text) != value:
        text = repr(float(value))
    return text.replace("e+", "e")


def n_gram_max_changes_labels(outlier_reduction: str) -> bool:
    """Whether ``n_gram_max`` changes which topic a document gets, not only its topic's words: under an outlier
    strategy that compares c-TF-IDF vectors (``VECTORIZER_STRATEGIES``)."""
    return outlier_reduction in VECTORIZER_STRATEGIES


def model_slug(model_name: str) -> str:
    """A partition-key-safe short name for a model: the last path part, lower-cased."""
    tail = model_name.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1].lower()
    slug = _KEY_SAFE.sub("-", tail)
    slug = re.sub(r"\.{2,}", ".", slug).strip("-.")
    return slug or "model"


@dataclasses.dataclass(frozen=True)
class EmbeddingSet:
    """What determines a set of embeddings: the model and whether stop words are stripped first."""

    embedding_model: str
    remove_stopwords: bool

    @property
    def key(self) -> str:
        suffix = "-nostop" if self.remove_stopwords else ""
        return f"{model_slug(self.embedding_model)}{suffix}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TrialParams:
    """One combination of the grid."""

    umap_n_neighbors: int
    umap_n_components: int
    umap_min_dist: float
    hdbscan_min_cluster_size: int
    hdbscan_min_samples: int | None
    hdbscan_cluster_selection_epsilon: float
    nr_topics: str | int
    n_gram_max: int
    embedding_model: str
    remove_stopwords: bool
    # At their defaults absent from the key and from the stored parameters, so every key and stored
    # result from before these two existed stays current.
    outlier_reduction: str = "none"
    outlier_threshold: float = 0.0  # ignored (kept 0.0) for "none"
    # Not a grid key: the search's stability round re-runs a configuration with UMAP seed
    # ``settings.umap_seed + seed_replicate``. 0 is the configured seed and leaves the key unchanged.
    seed_replicate: int = 0

    def __post_init__(self) -> None:
        # Without a strategy the threshold means nothing: one trial, one key, whatever threshold was given.
        if self.outlier_reduction == "none" and self.outlier_threshold != 0.0:
            object.__setattr__(self, "outlier_threshold", 0.0)

    @property
    def embedding_set(self) -> EmbeddingSet:
        return EmbeddingSet(self.embedding_model, self.remove_stopwords)

    def umap_seed(self, base_seed: int) -> int:
        return base_seed + self.seed_replicate

    @property
    def configuration(self) -> TrialParams:
        """The configuration this trial replicates: the same parameters at the configured seed."""
        return dataclasses.replace(self, seed_replicate=0)

    @property
    def key(self) -> str:
        """Readable and stable: ``<UMAP>__<embedding set>__<HDBSCAN>[_<the rest>]``.

        The Dagster UI shortens a long partition key in its middle, so the values that tell a sweep's
        trials apart sit at the two ends: UMAP's first, HDBSCAN's last, the embedding set (most often one
        for the whole sweep) between them. HDBSCAN's ``min_samples``, ``nr_topics``, ``n_gram_max`` and
        outlier reduction appear only when not at their defaults, then the seed replicate. Uses only
        ``[a-z0-9._-]``, so it is a valid Dagster partition key and a safe file name.
        """
        umap, min_cluster_size, min_samples, epsilon = self._key_values()
        parts = [min_cluster_size]
        if self.hdbscan_min_samples is not None:
            parts.append(min_samples)
        parts.append(epsilon)
        if self.nr_topics != "none":
            parts.append(f"nt{self.nr_topics}")
        if self.n_gram_max != 1:
            parts.append(f"ng{self.n_gram_max}")
        if self.outlier_reduction != "none":
            parts.append(f"o{OUTLIER_KEY_TAGS[self.outlier_reduction]}{_format_number(self.outlier_threshold)}")
        if self.seed_replicate:
            parts.append(f"r{self.seed_replicate}")
        return f"{'_'.join(umap)}__{self.embedding_set.key}__{'_'.join(parts)}"

    def _key_values(self) -> tuple[list[str], str, str, str]:
        """The UMAP values, min_cluster_size, min_samples and epsilon as both forms of keys write them."""
        min_samples = "none" if self.hdbscan_min_samples is None else str(self.hdbscan_min_samples)
        return (
            [f"nn{self.umap_n_neighbors}", f"nc{self.umap_n_components}", f"md{_format_number(self.umap_min_dist)}"],
            f"mcs{self.hdbscan_min_cluster_size}",
            f"ms{min_samples}",
            f"eps{_format_number(self.hdbscan_cluster_selection_epsilon)}",
        )

    @property
    def legacy_key(self) -> str:
        """The key's first form, the embedding set first and every value after it, before ``key`` moved the
        values to the ends. Stored results, search states and user-given keys of that form are carried over
        through it (``storage.migrations``)."""
        umap, min_cluster_size, min_samples, epsilon = self._key_values()
        parts = [*umap, min_cluster_size, min_samples, epsilon, f"nt{self.nr_topics}", f"ng{self.n_gram_max}"]
        if self.outlier_reduction != "none":
            parts += [f"or{self.outlier_reduction}", f"ot{_format_number(self.outlier_threshold)}"]
        if self.seed_replicate:
            parts.append(f"r{self.seed_replicate}")
        return f"{self.embedding_set.key}__{'_'.join(parts)}"

    @property
    def labelling_n_gram_max(self) -> int | None:
        """``n_gram_max`` where it changes which topic a document gets, else None (it changes only topic
        words): an outlier strategy of ``VECTORIZER_STRATEGIES`` compares c-TF-IDF vectors."""
        return self.n_gram_max if n_gram_max_changes_labels(self.outlier_reduction) else None

    @property
    def bertopic_nr_topics(self) -> str | int | None:
        return None if self.nr_topics == "none" else self.nr_topics

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        # Omitted at their defaults, so results stored before these existed stay current.
        if not self.seed_replicate:
            del values["seed_replicate"]
        if self.outlier_reduction == "none":
            del values["outlier_reduction"], values["outlier_threshold"]
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrialParams:
        values = complete_params(values)
        return cls(**{name: values[name] for name in GRID_KEYS}, seed_replicate=int(values.get("seed_replicate", 0)))


def complete_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """A stored trial's parameters with the keys ``TrialParams.to_dict`` omits at their defaults filled in:
    for tables and trackers that show every parameter."""
    return {**{name: DEFAULT_GRID[name][0] for name in OMITTED_AT_DEFAULT}, **values}


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

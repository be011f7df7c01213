"""A trial as every part of the package speaks of it: its parameters (``TrialParams``), the embedding set it
runs on (``EmbeddingSet``), the grid's keys and defaults, the rules of its stable, readable key, and the
settings its UMAP and HDBSCAN take besides the grid's (``TrialParams.umap_settings``,
``TrialParams.hdbscan_settings``).

The same combination of values always gets the same key, derived only from the values, so editing a grid
only adds keys. Parsing and checking a grid file is ``inputs.grid``'s.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

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
# Grid keys a trial's stored parameters omit at their defaults: a trial that does not use them is stored
# (and keyed) as one without them.
OMITTED_AT_DEFAULT = ("outlier_reduction", "outlier_threshold")

# What every trial's UMAP and HDBSCAN take besides the grid's values: BERTopic 0.17's own choices (cosine
# distance between sentence embeddings; HDBSCAN on the reduction with its excess-of-mass selection). The one
# place they are written: the reference fit, the fast engine's reductions, neighbour graphs and trees, its
# warm-up and the report's picture all build their models from these. The metric is part of the neighbour
# graph's and the reduction's cache keys.
UMAP_METRIC = "cosine"
HDBSCAN_METRIC = "euclidean"
HDBSCAN_CLUSTER_SELECTION_METHOD = "eom"

_KEY_SAFE = re.compile(r"[^a-z0-9.]+")


def umap_settings(n_neighbors: int, n_components: int, min_dist: float, random_state: Any) -> dict[str, Any]:
    """The keyword arguments of ``umap.UMAP`` for these values: as BERTopic runs it (cosine), seeded."""
    return {
        "n_neighbors": n_neighbors,
        "n_components": n_components,
        "min_dist": min_dist,
        "metric": UMAP_METRIC,
        "random_state": random_state,
    }


def hdbscan_settings(min_cluster_size: int, min_samples: int | None, epsilon: float) -> dict[str, Any]:
    """The keyword arguments of ``hdbscan.HDBSCAN`` that decide the clusters of these values. A caller that
    needs HDBSCAN's soft clustering (the "probabilities" outlier reduction) adds ``prediction_data=True``,
    which changes no label."""
    return {
        "min_cluster_size": min_cluster_size,
        "min_samples": min_samples,
        "cluster_selection_epsilon": epsilon,
        "metric": HDBSCAN_METRIC,
        "cluster_selection_method": HDBSCAN_CLUSTER_SELECTION_METHOD,
    }


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
    # At their defaults absent from the key and from the stored parameters: a trial without outlier
    # reduction names none.
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

    def umap_settings(self, base_seed: int) -> dict[str, Any]:
        """The keyword arguments of this trial's ``umap.UMAP``; ``base_seed`` is the configured seed, which a
        stability replicate offsets (``umap_seed``)."""
        return umap_settings(
            self.umap_n_neighbors, self.umap_n_components, self.umap_min_dist, self.umap_seed(base_seed)
        )

    def hdbscan_settings(self) -> dict[str, Any]:
        """The keyword arguments of this trial's ``hdbscan.HDBSCAN`` that decide its clusters."""
        return hdbscan_settings(
            self.hdbscan_min_cluster_size, self.hdbscan_min_samples, self.hdbscan_cluster_selection_epsilon
        )

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
        umap, parts = self._key_values()
        if self.seed_replicate:
            parts.append(f"r{self.seed_replicate}")
        return f"{'_'.join(umap)}__{self.embedding_set.key}__{'_'.join(parts)}"

    @property
    def run_name(self) -> str:
        """A short display name, e.g. ``mcs15 ms5 eps0 | nn30 nc5 md0 | all-minilm-l6-v2``: the key's values,
        the HDBSCAN side first.

        MLflow's runs list cuts a long name at its end, where the key keeps the HDBSCAN values (the key is
        laid out for the Dagster UI, which shortens a key in its middle). Here the values that vary most
        within a sweep come first (HDBSCAN's, ``nr_topics``, ``n_gram_max``, the outlier reduction), then
        the UMAP layout and the seed replicate, then the embedding set: names differ where they are cut.
        Written as the key writes each value, and with the same values left out at their defaults, so a
        name reads back to its key; the key itself stays the run's ``trial_key`` tag.
        """
        umap, clustering = self._key_values()
        if self.seed_replicate:
            umap.append(f"r{self.seed_replicate}")
        return " | ".join([" ".join(clustering), " ".join(umap), self.embedding_set.key])

    def _key_values(self) -> tuple[list[str], list[str]]:
        """The UMAP values and the clustering values (HDBSCAN's, then ``nr_topics``, ``n_gram_max`` and the
        outlier reduction where not at their defaults) as ``key`` and ``run_name`` write them."""
        umap = [f"nn{self.umap_n_neighbors}", f"nc{self.umap_n_components}", f"md{_format_number(self.umap_min_dist)}"]
        clustering = [f"mcs{self.hdbscan_min_cluster_size}"]
        if self.hdbscan_min_samples is not None:
            clustering.append(f"ms{self.hdbscan_min_samples}")
        clustering.append(f"eps{_format_number(self.hdbscan_cluster_selection_epsilon)}")
        if self.nr_topics != "none":
            clustering.append(f"nt{self.nr_topics}")
        if self.n_gram_max != 1:
            clustering.append(f"ng{self.n_gram_max}")
        if self.outlier_reduction != "none":
            clustering.append(f"o{OUTLIER_KEY_TAGS[self.outlier_reduction]}{_format_number(self.outlier_threshold)}")
        return umap, clustering

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
        # Omitted at their defaults, as in the key.
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

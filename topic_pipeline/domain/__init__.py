"""The vocabulary every layer speaks: a trial's parameters and key, its result, the library versions results depend on."""

from topic_pipeline.domain.results import (
    STATUS_FAILED,
    STATUS_MISSING,
    STATUS_OK,
    TrialResult,
    inputs_fingerprint,
    results_digest,
)
from topic_pipeline.domain.trials import (
    DEFAULT_EMBEDDING_MODEL,
    DEFAULT_GRID,
    GRID_KEYS,
    HDBSCAN_CLUSTER_SELECTION_METHOD,
    HDBSCAN_METRIC,
    OMITTED_AT_DEFAULT,
    OUTLIER_KEY_TAGS,
    OUTLIER_STRATEGIES,
    UMAP_METRIC,
    VECTORIZER_STRATEGIES,
    EmbeddingSet,
    TrialParams,
    complete_params,
    hdbscan_settings,
    model_slug,
    n_gram_max_changes_labels,
    umap_settings,
)
from topic_pipeline.domain.versions import (
    EMBEDDING_LIBRARIES,
    REDUCTION_LIBRARIES,
    TRIAL_LIBRARIES,
    cache_key,
    package_version,
)

__all__ = [
    # trials
    "DEFAULT_EMBEDDING_MODEL",
    "DEFAULT_GRID",
    "GRID_KEYS",
    "HDBSCAN_CLUSTER_SELECTION_METHOD",
    "HDBSCAN_METRIC",
    "OMITTED_AT_DEFAULT",
    "OUTLIER_KEY_TAGS",
    "OUTLIER_STRATEGIES",
    "UMAP_METRIC",
    "VECTORIZER_STRATEGIES",
    "EmbeddingSet",
    "TrialParams",
    "complete_params",
    "hdbscan_settings",
    "model_slug",
    "n_gram_max_changes_labels",
    "umap_settings",
    # results
    "STATUS_FAILED",
    "STATUS_MISSING",
    "STATUS_OK",
    "TrialResult",
    "inputs_fingerprint",
    "results_digest",
    # versions
    "EMBEDDING_LIBRARIES",
    "REDUCTION_LIBRARIES",
    "TRIAL_LIBRARIES",
    "cache_key",
    "package_version",
]

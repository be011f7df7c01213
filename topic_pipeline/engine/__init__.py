"""The sweep engine: every trial's labels, each shared intermediate computed once."""

from __future__ import annotations

from topic_pipeline.lazy_exports import lazy_exports

# Each public name, by the module that defines it. A name is imported from its module on first use, so
# importing one module of the folder does not import the others (a worker process imports the fast path only).
_EXPORTS: dict[str, tuple[str, ...]] = {
    "sweep": ("ENGINES", "LabelledSample", "ScoredTrial", "labels_metrics", "run_trials", "score_reference_trial"),
    "fast": ("EmbeddingSource", "SweepEngine", "SweepStats", "TrialLabels", "WorkerPool", "plan_groups", "run_group"),
    "reference": ("DEFAULT_SEED", "TrialOutcome", "reference_model", "run_reference_trial"),
    "progress": ("SweepProgress",),
    "warmup": ("warm",),
    "reduction": ("ReductionSpec", "cached_reduction", "fit_reduction", "knn_cache_key", "reduction_cache_key"),
    "neighbors": ("SMALL_DATA_LIMIT", "KnnGraph", "descent_graph", "exact_graph", "prepare"),
    "clustering": ("TreeClusterer", "hdbscan_model", "renumber_by_frequency", "topic_model_from_clusters"),
    "outliers": ("Clustering", "reduce_outliers", "vectorizer_params"),
    "work_queue": ("LayoutQueue", "layout_cost"),
}
# Not here: ``bertopic_model.bertopic_model``, whose name is its module's (``from topic_pipeline.engine import
# bertopic_model`` gives the module).
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

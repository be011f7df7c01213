"""The world outside: MLflow tracking, a trial exported as a BERTopic model, the sweep's report for people."""

from __future__ import annotations

from topic_pipeline.lazy_exports import lazy_exports

# Each public name, by the module that defines it. A name is imported from its module on first use, so
# importing one module of the folder does not import the others (an export needs no MLflow).
_EXPORTS: dict[str, tuple[str, ...]] = {
    "mlflow_tracking": (
        "REACHABLE_TIMEOUT_S",
        "MlflowTracker",
        "TrackingUnavailableError",
        "check_reachable",
        "local_tracking_uri",
    ),
    "export": (
        "SERIALIZATIONS",
        "ExportError",
        "ExportedModel",
        "build_topic_model",
        "embedding_model_pointer",
        "library_versions",
        "push_to_hub",
        "save_export",
        "trial_labels",
    ),
    "report": ("ReportFiles", "TopicMap", "build_topic_map", "cached_trial_reduction", "classes_of", "write_report"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

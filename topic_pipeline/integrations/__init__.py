"""The world outside: MLflow tracking, a trial exported as a BERTopic model, the sweep's report for people."""

from __future__ import annotations

import importlib
from typing import Any

# Each public name, by the module that defines it. A name is imported from its module on first use, so
# importing one module of the folder does not import the others (an export needs no MLflow).
_EXPORTS: dict[str, tuple[str, ...]] = {
    "mlflow_tracking": (
        "REACHABLE_TIMEOUT_S", "MlflowTracker", "TrackingUnavailableError", "check_reachable", "local_tracking_uri",
    ),
    "export": (
        "SERIALIZATIONS", "ExportError", "ExportedModel", "build_topic_model", "embedding_model_pointer",
        "library_versions", "push_to_hub", "save_export", "trial_labels",
    ),
    "report": ("ReportFiles", "TopicMap", "build_topic_map", "cached_trial_reduction", "classes_of", "write_report"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [name for names in _EXPORTS.values() for name in names]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

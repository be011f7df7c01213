"""A sweep's stages as plain functions: each takes the sweep's inputs and settings and returns a plain result
object, which the Dagster layer (``defs``) maps onto assets, metadata and checks. Nothing here knows Dagster."""

from __future__ import annotations

import importlib
from typing import Any

# Each public name, by the module that defines it, imported on first use: the settings resource needs
# ``SweepConfig`` in every process, the ranking's MLflow and plotting imports only where a stage runs.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "sweep_inputs": ("SweepConfig", "SweepInputs"),
    "grid": ("CurrentGrid", "make_grid_current"),
    "trials": ("GridStatus", "RecordedTrial", "TrialBatchSummary", "grid_status", "run_trial_batch"),
    "ranking": ("Ranking", "rank_sweep"),
    "report": ("SweepReport", "write_sweep_report"),
    "search_round": ("SearchRoundError", "SearchRoundOutcome", "close_search_round"),
    "export": ("ExportResult", "export_trial"),
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

"""A sweep's stages as plain functions: each takes the sweep's inputs and settings and returns a plain result
object, which the Dagster layer (``defs``) maps onto assets, metadata and checks. Nothing here knows Dagster."""

from __future__ import annotations

from topic_pipeline.lazy_exports import lazy_exports

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
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

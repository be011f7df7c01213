"""A sweep's stages as plain functions: each takes the sweep's inputs and settings and returns a plain result
object, which the Dagster layer (``defs``) maps onto assets, metadata and checks. Nothing here knows Dagster."""

from topic_pipeline.workflow.sweep_inputs import SweepConfig, SweepInputs

__all__ = ["SweepConfig", "SweepInputs"]

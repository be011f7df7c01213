"""Dagster resources, one module per integration. Provided by ``topic_pipeline.definitions``."""

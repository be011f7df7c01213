"""Dagster definitions, loaded as a defs folder by ``topic_pipeline.definitions``."""

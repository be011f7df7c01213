"""topic_pipeline: find the BERTopic configuration that best reproduces a labelled sample.

The modules at this level are a plain library (no Dagster); ``topic_pipeline.defs`` and
``topic_pipeline.resources`` are the thin Dagster layer over it.
"""

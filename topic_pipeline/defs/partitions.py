"""Partitions, defined once and imported wherever they are used."""

import dagster as dg

# One partition per (embedding model, stop-word setting), e.g. "all-minilm-l6-v2" or "all-minilm-l6-v2-nostop".
embedding_set_partitions = dg.DynamicPartitionsDefinition(name="embedding_sets")

# One partition per grid combination, keyed by its parameters (topic_pipeline.domain.trials.TrialParams.key).
trial_partitions = dg.DynamicPartitionsDefinition(name="trials")

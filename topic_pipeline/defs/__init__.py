"""The Dagster layer, loaded as a defs folder by ``topic_pipeline.definitions``: ``assets``, ``resources``,
``partitions``, ``jobs``, ``checks`` (asset checks), ``automation`` (the sweep sensor and the biweekly schedule),
``planning`` (what the sensor and the command line launch next, partitions included) and ``recovery`` (runs
that stopped half way); the Dagster internals it needs are in ``_compat.dagster``. It wires the library and holds no
tuning logic of its own."""

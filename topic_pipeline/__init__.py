"""topic_pipeline: find the BERTopic configuration that best reproduces a labelled sample.

A tuning library that knows nothing of Dagster, one package per concern: ``inputs``, ``engine``,
``scoring``, ``search``, ``storage``, ``integrations``, with every private name of a third-party
library confined to ``_compat``; ``errors``, ``redaction`` and ``processes`` serve them all.

The Dagster layer only wires the library: ``defs`` (assets, resources, partitions, jobs, sensors and
schedules, asset checks), the code location ``definitions`` and the command line ``cli``. Only these
import Dagster.
"""

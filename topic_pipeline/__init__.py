"""topic_pipeline: find the BERTopic configuration that best reproduces a labelled sample.

A tuning library that knows nothing of Dagster, one package per concern, each importing only from those
below it (``[tool.importlinter]`` in pyproject.toml states the layers; ``lint-imports`` checks them):

* ``settings``: every setting, read from the environment and checked, for the layer above;
* ``integrations``: MLflow, the model export, the report;
* ``engine`` and ``search``: computing trials and proposing them, neither knowing the other;
* ``scoring``, ``inputs``, ``storage``;
* ``_compat`` (every private name of a third-party library the library touches), ``processes`` and
  ``redaction``;
* ``domain``: the vocabulary all of them speak (trial parameters and keys, results, library versions);
* ``errors``.

The Dagster layer only wires the library: ``defs`` (assets, resources, partitions, jobs, sensors and
schedules, asset checks, Dagster's private names), the code location ``definitions`` and the command line
``cli``. Only these import Dagster.
"""

"""The world outside: ``mlflow_tracking`` (one run per trial, leaderboard and export), ``export`` (a trial
as a BERTopic model with safetensors, optionally pushed to the Hugging Face Hub) and ``report`` (the
sweep's HTML report and PNG images, for people).

May import: ``inputs``, ``engine``, ``scoring``, ``storage``, ``redaction``, ``errors``. Never Dagster.
"""

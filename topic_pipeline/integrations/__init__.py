"""The world outside: ``mlflow_tracking`` (one run per trial, leaderboard and export) and ``export`` (a trial
as a BERTopic model with safetensors, optionally pushed to the Hugging Face Hub).

May import: ``inputs``, ``engine``, ``scoring``, ``storage``, ``redaction``, ``errors``. Never Dagster.
"""

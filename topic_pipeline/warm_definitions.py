"""Imported by the step server (``step_server.STEP_MODULES``): builds the definitions and resolves the
jobs once there, so each step forked from the server starts with them built (``definitions.defs``
keeps them for as long as the environment is unchanged, as it is in a forked step)."""

from topic_pipeline.definitions import defs

try:
    for _job in ("embeddings_job", "trials_job", "leaderboard_job"):
        defs().resolve_job_def(_job)
except Exception:  # noqa: BLE001 - a bad setting fails the run that reads it, with its own message, not the server
    pass

"""Step processes forked from a warm server, for the runs that one command line executes.

The multiprocess executor runs a step in a process of its own. Spawned, that process spends about two
seconds importing Dagster, the pipeline, MLflow and scikit-learn, and over a second tearing them down
when it exits, on every run. ``topic-pipeline sweep`` executes every run of a sweep from one process,
so it starts multiprocessing's fork server once, preloaded with those modules, and has the executor
fork its step processes from it (the ``forkserver`` start method): a step then starts with everything
imported and exits without the interpreter's teardown.

A forked step inherits the server's environment and working directory, not those of the moment of the
run: once either has changed, runs get spawned step processes again (the executor's default). Runs
launched from the UI or by the daemon execute in processes of their own, with no server to reuse, and
spawn as before.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver

from topic_pipeline import environment

# What the trials and leaderboard steps import before their work starts.
STEP_MODULES = [
    "dagster._core.executor.multiprocess",
    "topic_pipeline.definitions",
    "mlflow.tracking",
    "mlflow.store.tracking.sqlalchemy_store",
    "sklearn.metrics.cluster",
    "sklearn.feature_extraction.text",
    "topic_pipeline.step_preload",  # last: it freezes what the others loaded
]

_server_context: str | None = None


def start() -> None:
    """Start this process's server, if not yet started. Returns at once: the server imports its modules
    in the background, while this process goes on (a fork request waits for them)."""
    global _server_context
    if _server_context is not None:
        return
    multiprocessing.set_forkserver_preload(STEP_MODULES)
    multiprocessing.forkserver.ensure_running()
    _server_context = environment.digest()


def start_method() -> dict | None:
    """The executor's ``start_method`` config for a run executed now: the warm server, or None (spawn)."""
    if _server_context is None or _server_context != environment.digest():
        return None
    return {"forkserver": {"preload_modules": STEP_MODULES}}

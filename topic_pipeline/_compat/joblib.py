"""joblib's private names: the reusable loky executor a process may have left running.

HDBSCAN computes core distances through joblib, whose loky workers idle for minutes after; a process
that exits while they live waits for them. ``stop_reusable_workers`` shuts them down.

Written for joblib 1.6.0 (``SUPPORTED``), where the executor, if any, is the module global
``reusable_executor._executor``. On any other version it goes through loky's public
``get_reusable_executor``, which creates an (idle, workerless) executor first when there is none.
Neither path touches labels.
"""

from __future__ import annotations

from topic_pipeline._compat import check, installed_versions

SUPPORTED = {"joblib": ("1.6.0",)}
# Read once, at import. A test replaces an entry to make this process take the fallback.
INSTALLED = installed_versions(SUPPORTED)
FALLBACK = "idle loky workers are stopped through loky's public get_reusable_executor"


def supported() -> bool:
    """Whether the private path may run here; the one place this module decides."""
    return check(__name__, SUPPORTED, INSTALLED, FALLBACK)


def stop_reusable_workers() -> None:
    """Shut down joblib's reusable loky executor and kill its workers, if one was started."""
    if supported():
        from joblib.externals.loky import reusable_executor

        executor = reusable_executor._executor
        if executor is not None:
            executor.shutdown(wait=True, kill_workers=True)
        return
    try:
        from joblib.externals.loky import get_reusable_executor
    except ImportError:
        return  # no loky here: nothing of it can be left running
    # reuse=True hands back the running executor whatever it was started with, rather than replacing it.
    get_reusable_executor(reuse=True).shutdown(wait=True, kill_workers=True)

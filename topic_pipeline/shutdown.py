"""Process exit without the interpreter's last garbage collection over every module."""

from __future__ import annotations

import atexit
import gc

_registered = False


def skip_final_collection() -> None:
    """Have this process skip, at exit, the cyclic garbage collection over everything it imported.

    At exit Python collects cycles across every module's objects: over a second for a process that holds
    Dagster, MLflow and SQLAlchemy, half a second for an engine worker, for memory the operating system
    takes back anyway. Freezing the heap first makes that collection pass over it. Python does not
    promise to finalize objects still alive at exit in any case: what the pipeline writes it closes
    itself, and the other exit handlers (logging's flush among them) still run. Once per process: a
    process that runs the trials step many times (tests, in-process runs) registers it once.
    """
    global _registered
    if not _registered:
        atexit.register(gc.freeze)
        _registered = True

"""Process lifetimes: children that do not outlive their parent, and one sweep at a time per place.

* A step process and the engine's workers are multiprocessing children. Killed alone (``kill -9`` of
  ``topic-pipeline sweep``, not its group), a parent would leave them computing trials that nobody
  records, beside the ones a rerun starts. ``exit_with_parent`` has a child exit as soon as the process
  that started it is gone.
* Two sweeps on one Dagster instance or one data directory would plan the same trials and read each
  other's half-written leaderboard. ``exclusive_sweep`` makes the second wait for the first, saying so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import multiprocessing
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

SWEEP_LOCK_FILE = ".topic-pipeline-sweep.lock"
_watching = False


def exit_with_parent() -> None:
    """In a multiprocessing child, exit at once when the parent process is gone; elsewhere do nothing.

    A daemon thread waits on the parent's sentinel (no polling), which multiprocessing keeps for every
    start method, so it also covers step processes forked from a fork server. Idempotent.
    """
    global _watching
    parent = multiprocessing.parent_process()
    if parent is None or _watching:
        return
    _watching = True

    def watch() -> None:
        parent.join()
        # Nobody is left to record what this process would compute; its own children watch it in turn.
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def process_start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart); None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]  # a zombie has exited


def process_identity() -> str:
    """This process as ``host:pid:start``, for another process to ask later whether it still runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{process_start_time(os.getpid()) or ''}"


def identified_process_alive(identity: str) -> bool | None:
    """Whether the process ``process_identity`` named is still running; None if it ran on another host."""
    parts = identity.split(":")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    host, pid, started = parts
    if host != socket.gethostname():
        return None
    now = process_start_time(int(pid))
    return now is not None and (not started or now == started)


def _holder(lock: Path) -> str:
    try:
        holder = json.loads(lock.read_text(encoding="utf-8"))
        return f"pid {holder['pid']} on {holder['host']}, started {holder['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its name yet"


@contextlib.contextmanager
def exclusive_sweep(places: dict[str, Path], wait_seconds: float | None = None, poll_seconds: float = 1.0) -> Iterator[None]:
    """Hold the sweep lock of every place (what -> folder), waiting for another sweep that holds one.

    The locks are ``flock``s: the kernel releases them when their holder exits, killed or not, so a
    crash never leaves one behind. ``wait_seconds`` None waits as long as it takes.
    """
    # One lock per folder, taken in one order by every process: the same folder named twice would wait
    # on itself (two opens of one file block each other), and two orders could deadlock two sweeps.
    folders: dict[Path, str] = {}
    for what, folder in places.items():
        folder.mkdir(parents=True, exist_ok=True)
        folders.setdefault(folder.resolve(), what)
    with contextlib.ExitStack() as held:
        for folder, what in sorted(folders.items(), key=lambda item: str(item[0])):
            lock = folder / SWEEP_LOCK_FILE
            stream = held.enter_context(open(lock, "a+", encoding="utf-8"))  # noqa: SIM115 - closed by the stack
            deadline = None if wait_seconds is None else time.monotonic() + wait_seconds
            announced = False
            while True:
                try:
                    fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not announced:
                        print(f"Another sweep is running on this {what} ({folder}): {_holder(lock)}. "
                              "Waiting for it to finish (Ctrl-C to stop waiting).", file=sys.stderr, flush=True)
                        announced = True
                    if deadline is not None and time.monotonic() > deadline:
                        raise TimeoutError(f"another sweep still holds {lock} ({_holder(lock)})") from None
                    time.sleep(poll_seconds)
            if announced:
                print(f"The other sweep on this {what} has finished; going on.", file=sys.stderr, flush=True)
            stream.seek(0)
            stream.truncate()
            stream.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                     "started": dt.datetime.now().astimezone().isoformat(timespec="seconds")}))
            stream.flush()
        yield


def running_sweep(folder: Path) -> str | None:
    """Who holds ``folder``'s sweep lock now, or None when no sweep does."""
    lock = folder / SWEEP_LOCK_FILE
    if not lock.exists():
        return None
    with open(lock, "a+", encoding="utf-8") as stream:
        try:
            fcntl.flock(stream.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(lock)
        return None

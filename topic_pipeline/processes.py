"""Process lifetimes: children that do not outlive their parent, and one sweep at a time per place.

* A step process and the engine's workers are multiprocessing children. Killed alone (``kill -9`` of
  ``topic-pipeline sweep``, not its group), a parent would leave them computing trials that nobody
  records, beside the ones a rerun starts. ``exit_with_parent`` has a child exit as soon as the process
  that started it is gone.
* Two sweeps on one Dagster instance or one data directory would plan the same trials and read each
  other's half-written leaderboard. ``exclusive_sweep`` makes the second wait for the first, saying so.
* SIGTERM or Ctrl-C must end a sweep wherever its processes are (an MLflow call, a pipe, a lock), not
  only where an orderly shutdown gets through. ``stopped_on_signal`` stops the whole process tree.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from topic_pipeline.errors import TopicPipelineError

T = TypeVar("T")
SWEEP_LOCK_FILE = ".topic-pipeline-sweep.lock"
# How long the processes of a stopped command get to end on SIGTERM before they are killed.
STOP_GRACE_S = 3.0
_watching = False


class Stopped(BaseException):
    """Raised in the main thread when a stop signal arrives; ``signum`` is the signal.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` on the way swallows it."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def _is_resource_tracker(process) -> bool:
    import psutil

    try:
        return any("multiprocessing.resource_tracker" in part for part in process.cmdline())
    except psutil.Error:
        return False


def _descendants() -> list:
    """Every process this one started, however deep, but multiprocessing's resource trackers: they ignore
    SIGTERM on purpose, to remove what the others leave (semaphores, shared memory) once the last of its
    users has exited, which this process's exit is."""
    import psutil

    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return []
    return [child for child in children if not _is_resource_tracker(child)]


def _kill_tree(sig: int) -> list:
    """Send ``sig`` to every process this one started, however deep; returns them."""
    import psutil

    processes = _descendants()
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(sig)
    return processes


def _stop_tree_then_exit(signum: int, grace_s: float) -> None:
    """SIGTERM to the tree, SIGKILL to whatever is left after ``grace_s``, then this process exits."""
    import psutil

    terminated = _kill_tree(signal.SIGTERM)
    _, alive = psutil.wait_procs(terminated, timeout=grace_s)
    # Taken anew: a process started meanwhile is killed too; one whose parent died has been adopted
    # elsewhere, which is why the first list is killed as well.
    for process in {*alive, *_descendants()}:
        with contextlib.suppress(psutil.Error):
            process.kill()
    sys.stderr.flush()
    os._exit(128 + signum)


@contextlib.contextmanager
def stopped_on_signal(grace_s: float = STOP_GRACE_S) -> Iterator[None]:
    """Within the block, SIGTERM or SIGINT (Ctrl-C) ends this process and every process it started.

    The first signal sends SIGTERM to the whole process tree and raises ``Stopped`` here, so that the
    command can unwind (and say so); whatever still runs ``grace_s`` later is killed and this process
    exits with 128 + the signal, wherever its main thread is blocked. A second signal kills everything
    at once. Locks held through ``flock`` are released by the kernel as their holders exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def on_signal(signum: int, _frame) -> None:
        received.append(signum)
        if len(received) > 1:
            _kill_tree(signal.SIGKILL)
            os._exit(128 + signum)
        # The stop first: a print that fails (standard output caught mid-write) must not keep it from starting.
        stopper.append(threading.Thread(target=_stop_tree_then_exit, args=(signum, grace_s), name="stop", daemon=True))
        stopper[0].start()
        with contextlib.suppress(Exception):
            # On standard output: the command line sends standard error to its log file while it runs.
            print(f"Stopping ({signal.Signals(signum).name}); a second signal kills everything at once.", flush=True)
        raise Stopped(signum)

    stopper: list[threading.Thread] = []
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    except Stopped:
        stopper[0].join()  # it ends this process
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def call_in_thread(function: Callable[[], T]) -> T:
    """``function()`` run in a thread while this (main) thread waits for it.

    Dagster takes over SIGINT in the thread that executes a run, and a main thread blocked in a call
    may not run a signal handler for a long time: waiting here, the main thread handles every signal
    at once (``stopped_on_signal``)."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = function()
        except BaseException as error:  # raised again in the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=target, name="run", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


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
    """When the process started (tells a reused pid apart), as text; None if it is gone or a zombie."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # it has exited
            return None
        return f"{process.create_time():.2f}"
    except psutil.Error:
        return None


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
def exclusive_sweep(
    places: dict[str, Path], wait_seconds: float | None = None, poll_seconds: float = 1.0
) -> Iterator[None]:
    """Hold the sweep lock of every place (what -> folder), waiting for another sweep that holds one.

    The locks are ``flock``s: the kernel releases them when their holder exits, killed or not, so a
    crash never leaves one behind. ``wait_seconds`` None waits as long as it takes. Plain ``fcntl`` rather
    than the ``filelock`` package (which takes the same ``flock``): ``running_sweep`` must probe the lock
    through a read-only descriptor, in a data directory this user cannot write, which filelock does not do.
    """
    # One lock per folder, taken in one order by every process: the same folder named twice would wait
    # on itself (two opens of one file block each other), and two orders could deadlock two sweeps.
    folders: dict[Path, str] = {}
    for what, folder in places.items():
        check_writable(folder, what)
        folders.setdefault(folder.resolve(), what)
    with contextlib.ExitStack() as held:
        for folder, what in sorted(folders.items(), key=lambda item: str(item[0])):
            lock = folder / SWEEP_LOCK_FILE
            stream = held.enter_context(open(lock, "a+", encoding="utf-8"))  # closed by the stack
            deadline = None if wait_seconds is None else time.monotonic() + wait_seconds
            announced = False
            while True:
                try:
                    fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not announced:
                        print(
                            f"Another sweep is running on this {what} ({folder}): {_holder(lock)}. "
                            "Waiting for it to finish (Ctrl-C to stop waiting).",
                            file=sys.stderr,
                            flush=True,
                        )
                        announced = True
                    if deadline is not None and time.monotonic() > deadline:
                        raise TimeoutError(f"another sweep still holds {lock} ({_holder(lock)})") from None
                    time.sleep(poll_seconds)
            if announced:
                print(f"The other sweep on this {what} has finished; going on.", file=sys.stderr, flush=True)
            stream.seek(0)
            stream.truncate()
            stream.write(
                json.dumps(
                    {
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                    }
                )
            )
            stream.flush()
        yield


def check_writable(folder: Path, what: str) -> None:
    """Create ``folder`` if needed and make sure files can be written in it, or say in one line why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise TopicPipelineError(
            f"the {what} {folder} cannot be written ({reason}{f': {error.filename}' if error.filename else ''}); "
            "a sweep or an export writes its results there: choose a folder you can write to"
        ) from None


def running_sweep(folder: Path) -> str | None:
    """Who holds ``folder``'s sweep lock now, or None when no sweep does. Only reads: it works in a
    read-only data directory."""
    lock = folder / SWEEP_LOCK_FILE
    try:
        stream = open(lock, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError:  # no lock file (no sweep ever ran here), or one this user may not read
        return None
    with stream:
        try:
            fcntl.flock(stream.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(lock)
        return None

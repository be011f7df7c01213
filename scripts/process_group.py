"""Run a command in a process group of its own; when this wrapper is stopped, stop the whole group.

Usage: python scripts/process_group.py COMMAND [ARG ...]   (``make ui`` runs ``dagster dev`` through it)

Why: ``dagster dev`` stops its webserver, daemon and code servers on SIGINT, and on SIGTERM only because
it copies SIGINT's handler onto SIGTERM. A command started with SIGINT ignored (what a non-interactive
shell does to a background job, ``make ui &``, and what some terminals and task runners pass on) keeps
SIGINT ignored, so then neither Ctrl-C nor SIGTERM stops it or anything it started.

What it does:
* starts the command with SIGINT, SIGTERM and SIGHUP at their defaults, in a new process group;
* on SIGINT, SIGTERM or SIGHUP to this wrapper (make passes SIGTERM on to it; Ctrl-C reaches it
  through the terminal's foreground group) sends SIGINT to the group, which is dagster dev's orderly
  shutdown; whatever is left after ``GRACE_S`` gets SIGTERM, then SIGKILL; a second signal skips to
  SIGKILL;
* when the command exits by itself, stops what it left in the group the same way;
* on Linux, is stopped with SIGTERM when its parent (make) dies, even by SIGKILL, and adopts the
  group's orphans so that it can reap them and tell when the group is empty.
It exits once the group is empty: with the command's status, or 128 + the signal that stopped it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time

# How long the group gets for each step of the shutdown (SIGINT, then SIGTERM) before the next one.
GRACE_S = 20.0
POLL_S = 0.1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# prctl options from <linux/prctl.h>.
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

received: list[int] = []


def _on_signal(signum: int, _frame) -> None:
    received.append(signum)


def _linux_prctl(option: int, value: int) -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _reap(child: int) -> int | None:
    """Reap every exited child (ours and adopted orphans); the command's wait status once it has exited."""
    status = None
    while True:
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == child:
            status = wait_status


def _group_is_empty(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # a member changed its user; it is still there
        return False
    return False


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    parent = os.getppid()
    _linux_prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    _linux_prctl(PR_SET_CHILD_SUBREAPER, 1)
    for signum in STOP_SIGNALS:
        signal.signal(signum, _on_signal)
    if os.getppid() != parent:  # the parent died before the death signal was armed
        received.append(signal.SIGTERM)

    child = os.posix_spawnp(argv[0], argv, os.environ, setpgroup=0, setsigdef=STOP_SIGNALS)
    group = child  # the command leads its own group

    status: int | None = None
    # Shutdown steps still to take: the signal to send the group, and the time allowed after it.
    steps = [(signal.SIGINT, GRACE_S), (signal.SIGTERM, GRACE_S), (signal.SIGKILL, GRACE_S)]
    deadline: float | None = None  # set once shutdown has begun
    handled = 0
    while True:
        exited = _reap(child)
        if exited is not None:
            status = exited
        if status is not None and _group_is_empty(group):
            break
        if len(received) > handled:
            # A second stop request means "now": go straight to SIGKILL.
            if handled and steps:
                steps = steps[-1:]
            handled = len(received)
            deadline = time.monotonic()
        elif status is not None and deadline is None:
            # The command exited by itself and left processes behind: they go as well.
            steps = steps[1:]
            deadline = time.monotonic()
        if deadline is not None and time.monotonic() >= deadline:
            if not steps:
                print(f"process_group: group {group} still has members after SIGKILL", file=sys.stderr)
                break
            signum, grace_s = steps.pop(0)
            _signal_group(group, signum)
            deadline = time.monotonic() + grace_s
        time.sleep(POLL_S)

    if received:
        return 128 + received[0]
    if status is None:
        return 1
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Process lifetimes, with real processes: a child exits with its parent; two sweeps never overlap."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from topic_pipeline.processes import exclusive_sweep, identified_process_alive, process_identity, running_sweep

# A parent that starts a multiprocessing child (which calls exit_with_parent and then would sleep for
# a minute), prints the child's pid and identity, and waits to be killed.
PARENT = textwrap.dedent(
    """
    import multiprocessing, sys, time

    def child(queue):
        from topic_pipeline.processes import exit_with_parent, process_identity
        exit_with_parent()
        queue.put(process_identity())
        time.sleep(60)

    if __name__ == "__main__":
        context = multiprocessing.get_context(sys.argv[1])
        queue = context.Queue()
        process = context.Process(target=child, args=(queue,))
        process.start()
        print(queue.get(), flush=True)
        time.sleep(60)
    """
)


def _wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_child_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    for method in ("spawn", "forkserver"):
        parent = subprocess.Popen([sys.executable, str(script), method], stdout=subprocess.PIPE, text=True)
        identity = parent.stdout.readline().strip()
        assert identified_process_alive(identity) is True
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert _wait_until(lambda: not identified_process_alive(identity), 10), (
            f"{method}: the child outlived its parent"
        )


def test_the_process_identity_tells_a_running_process_from_a_gone_one() -> None:
    assert identified_process_alive(process_identity()) is True
    sleeper = subprocess.Popen(["sleep", "30"])
    host, _, started = process_identity().split(":")
    identity = f"{host}:{sleeper.pid}:"
    assert identified_process_alive(identity) is True
    sleeper.kill()
    sleeper.wait()
    assert identified_process_alive(identity) is False
    assert identified_process_alive(f"{host}:{os.getpid()}:1") is False  # the pid reused by another process
    assert identified_process_alive("another-host:1:1") is None


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from topic_pipeline.processes import exclusive_sweep
    with exclusive_sweep({"data directory": Path(sys.argv[1])}):
        print("holding", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


def test_a_second_sweep_waits_for_the_first_and_says_so(tmp_path: Path, capsys) -> None:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    folder = tmp_path / "data"
    assert running_sweep(folder) is None
    holder = subprocess.Popen([sys.executable, str(script), str(folder), "3"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    assert f"pid {holder.pid}" in running_sweep(folder)
    started = time.monotonic()
    with exclusive_sweep({"data directory": folder}, poll_seconds=0.1):
        waited = time.monotonic() - started
        assert holder.wait(timeout=10) == 0  # the lock came free as the holder left its block
    assert waited > 1
    err = capsys.readouterr().err
    assert f"Another sweep is running on this data directory ({folder}): pid {holder.pid}" in err
    assert "has finished; going on" in err
    assert running_sweep(folder) is None


def test_a_killed_sweep_leaves_no_lock_behind(tmp_path: Path) -> None:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    folder = tmp_path / "data"
    holder = subprocess.Popen([sys.executable, str(script), str(folder), "60"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    holder.kill()
    holder.wait()
    assert running_sweep(folder) is None
    with exclusive_sweep({"data directory": folder}, wait_seconds=0):
        pass

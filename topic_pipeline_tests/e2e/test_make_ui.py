"""`make ui` stops its whole process tree: dagster dev, its webserver, daemon and code servers.

The make tests start the real target on a loopback port, over a temporary Dagster home and data folder,
with SIGINT ignored as a shell does for a background job (the condition under which dagster dev ignored
SIGINT and SIGTERM alike and kept everything running), then stop it as a terminal's Ctrl-C does (SIGINT
to make's process group) or as `kill` does (SIGTERM to make alone). The wrapper tests use plain
processes.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import free_loopback_port, service_process

ROOT = Path(__file__).resolve().parents[2]
WRAPPER = ROOT / "scripts" / "process_group.py"
STOP_WITHIN_S = 30

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")


def _identity(pid: int) -> tuple[int, str] | None:
    """(pid, start time) of a live process, None once it is gone or a zombie (a reused pid differs)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else (pid, fields[19])


def _descendants(root: int) -> dict[tuple[int, str], str]:
    """Every live process under ``root`` (itself included), with its command line."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found: dict[tuple[int, str], str] = {}
    pending = [root]
    while pending:
        pid = pending.pop()
        identity = _identity(pid)
        if identity is None:
            continue
        try:
            found[identity] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        pending.extend(children.get(pid, []))
    return found


def _still_alive(processes) -> list[str]:
    return [command for identity, command in processes.items() if _identity(identity[0]) == identity]


def _wait_gone(processes, timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while (alive := _still_alive(processes)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


def _kill_survivors(processes) -> None:
    for identity in processes:
        if _identity(identity[0]) == identity:
            os.kill(identity[0], signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm-to-make"])
def test_make_ui_stops_its_whole_process_tree(tmp_path, stop):
    port = free_loopback_port()
    # Nothing of the user's: a fresh instance and data folder, the local MLflow store inside it.
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TOPIC_PIPELINE_", "MLFLOW_", "DAGSTER_"))
    }
    environment["TOPIC_PIPELINE_DATA_DIR"] = str(tmp_path / "data")
    # `-o` keeps make from reinstalling the virtualenv should pyproject.toml be newer than its stamp.
    make = f"exec make -C {ROOT} -o .venv/.installed ui DAGSTER_HOME={tmp_path / 'dagster_home'} UI_PORT={port}"
    log = tmp_path / "make-ui.log"
    processes: dict = {}
    with service_process(["sh", "-c", f"trap '' INT; {make}"], log, environment) as process:
        try:
            deadline = time.monotonic() + 180
            while True:
                assert process.poll() is None, f"make ui exited with {process.returncode}:\n{log.read_text()[-3000:]}"
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                assert time.monotonic() < deadline, f"the UI did not serve within 180 s:\n{log.read_text()[-3000:]}"
                time.sleep(0.5)
            processes = _descendants(process.pid)
            commands = " ".join(processes.values())
            for part in ("dagster dev", "dagster_webserver", "dagster._daemon", "code-server", "api grpc"):
                assert part in commands, f"{part} not found in the tree of make ui: {sorted(processes.values())}"

            if stop == "ctrl-c":
                os.killpg(process.pid, signal.SIGINT)  # the terminal's foreground group: make leads it
            else:
                os.kill(process.pid, signal.SIGTERM)  # make alone; it passes SIGTERM on to its recipe
            alive = _wait_gone(processes, STOP_WITHIN_S)
            assert not alive, f"still running {STOP_WITHIN_S} s after {stop}: {alive}\n{log.read_text()[-3000:]}"
            assert process.wait(timeout=5) != 0
            with pytest.raises(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5)
        finally:
            _kill_survivors(processes)


def _wrapped(tmp_path, script: str) -> tuple[subprocess.Popen, int]:
    """The wrapper running ``sh -c script``; the script writes a pid to READY once it is set up."""
    ready = tmp_path / "ready"
    script = script.replace("READY", f"{ready}.tmp && mv {ready}.tmp {ready}")
    process = subprocess.Popen([sys.executable, str(WRAPPER), "sh", "-c", script], start_new_session=True)
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert process.poll() is None and time.monotonic() < deadline, "the wrapped command did not start"
        time.sleep(0.05)
    return process, int(ready.read_text())


def test_wrapper_stops_what_its_command_left_behind(tmp_path):
    process, orphan = _wrapped(tmp_path, "sleep 300 & echo $! > READY; exit 3")
    left = {identity: "sleep" for identity in [_identity(orphan)] if identity}
    try:
        assert process.wait(timeout=STOP_WITHIN_S) == 3  # the command's own status
        assert not _still_alive(left)
    finally:
        _kill_survivors(left)


def test_a_second_signal_kills_a_group_that_ignores_the_first(tmp_path):
    # A command deaf to SIGINT and SIGTERM: the first stop request waits out its grace period, a second
    # one ends the group at once.
    process, _ = _wrapped(tmp_path, "trap '' INT TERM; sleep 300 & echo $$ > READY; wait")
    processes = _descendants(process.pid)
    try:
        assert len(processes) == 3  # the wrapper, sh, sleep
        process.send_signal(signal.SIGTERM)
        time.sleep(1)
        assert process.poll() is None and len(_still_alive(processes)) == 3
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STOP_WITHIN_S) == 128 + signal.SIGTERM
        assert time.monotonic() - started < 5
        assert not _still_alive(processes)
    finally:
        _kill_survivors(processes)

"""SIGTERM and Ctrl-C end `topic-pipeline sweep` and everything it started within seconds, wherever the
sweep is: starting, exporting, embedding, in a trials step, inside a trial's MLflow logging (held on a
locked store), ranking, or waiting for another sweep's lock. A second signal forces the stop. Every time,
every process of the command is gone and the sweep locks are free, and a last sweep completes the work."""

import fcntl
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psutil
import pytest

from conftest import write_tiny_project
from topic_pipeline.processes import SWEEP_LOCK_FILE

pytestmark = pytest.mark.slow

GRID = {"umap_n_neighbors": [10], "umap_n_components": [2, 3, 4, 5, 6, 7], "hdbscan_min_cluster_size": [8, 20]}
TRIALS = 12
EXIT_WITHIN_S = 12.0  # the stop's grace (3 s) plus unwinding, with room for a loaded CI machine
TRIGGER_WITHIN_S = 150.0


class Project:
    def __init__(self, root: Path):
        self.root = root
        self.home = root / "dagster_home"
        self.data = root / "data"
        self.environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TOPIC_PIPELINE_", "MLFLOW_"))},
            **write_tiny_project(root, GRID, experiment="stop_signals"),
            "DAGSTER_HOME": str(self.home),
        }
        self.started = 0
        self.results_before = 0  # trial results stored when the current sweep started

    def start(self) -> tuple[subprocess.Popen, Path]:
        self.started += 1
        self.results_before = self.results()
        log = self.root / f"cli-{self.started}.log"
        with open(log, "wb") as stream:
            process = subprocess.Popen(
                [str(Path(sys.executable).parent / "topic-pipeline"), "sweep", "--verbose"],
                cwd=self.root,
                env=self.environment,
                stdout=stream,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return process, log

    def results(self) -> int:
        return len(list((self.data / "trials" / "results").glob("*.json")))


def _session_members(session: int) -> list[psutil.Process]:
    members = []
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getsid(process.pid) == session and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def _lock_is_free(folder: Path) -> bool:
    lock = folder / SWEEP_LOCK_FILE
    if not lock.exists():
        return True
    with open(lock, "a+") as stream:
        try:
            fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(stream.fileno(), fcntl.LOCK_UN)
        return True


def _assert_everything_ended(
    project: Project, process: subprocess.Popen, log: Path, moment: str, locks_free: bool
) -> None:
    signalled = time.monotonic()
    try:
        process.wait(timeout=EXIT_WITHIN_S)
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"{moment}: the command still runs {EXIT_WITHIN_S:.0f} s after the signal:\n{log.read_text()[-2000:]}"
        )
    # 128 + the signal once the command has set up its stop; killed by it (negative) before, while importing.
    stopped = {128 + signal.SIGTERM, 128 + signal.SIGINT, -signal.SIGTERM, -signal.SIGINT}
    assert process.returncode in stopped, (moment, process.returncode, log.read_text()[-2000:])
    # multiprocessing's resource tracker leaves once its last user has exited: give it a moment.
    deadline = time.monotonic() + 5
    while (left := _session_members(process.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], f"{moment}: still running after the command exited: {[p.cmdline()[:4] for p in left]}"
    if locks_free:
        assert _lock_is_free(project.data) and _lock_is_free(project.home), f"{moment}: a sweep lock is still held"
    print(f"{moment}: everything ended {time.monotonic() - signalled:.1f} s after the signal")


def _log_has(log: Path, *parts: str) -> bool:
    text = log.read_text(errors="replace")
    return any(all(part in line for part in parts) for line in text.splitlines())


Trigger = Callable[[Project, Path], bool]


def _step_started(job: str) -> Trigger:
    return lambda project, log: _log_has(log, job, "STEP_START")


def _progress_shown(project: Project, log: Path) -> bool:
    return any((project.home / "logs").glob("progress-*.json"))


def _more_results(project: Project, log: Path) -> bool:
    return project.results() > project.results_before


def _after(seconds: float, trigger: Trigger = lambda project, log: True) -> Trigger:
    """``seconds`` after ``trigger`` first holds."""
    fired: list[float] = []

    def check(project: Project, log: Path) -> bool:
        if not fired and trigger(project, log):
            fired.append(time.monotonic())
        return bool(fired) and time.monotonic() - fired[0] >= seconds

    return check


def _interrupt(
    project: Project,
    process: subprocess.Popen,
    log: Path,
    moment: str,
    trigger: Trigger,
    send: Callable[[subprocess.Popen], None],
    locks_free: bool = True,
) -> bool:
    """Waits for ``trigger``, then ``send``s the signal; False when the sweep ended before the moment came."""
    started = time.monotonic()
    while not trigger(project, log):
        if process.poll() is not None:
            return False
        assert time.monotonic() - started < TRIGGER_WITHIN_S, f"{moment} never came:\n{log.read_text()[-2000:]}"
        time.sleep(0.05)
    send(process)
    _assert_everything_ended(project, process, log, moment, locks_free)
    return True


def _term(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGTERM)


def _ctrl_c(process: subprocess.Popen) -> None:
    """What a terminal does: SIGINT to the whole foreground process group."""
    os.killpg(process.pid, signal.SIGINT)


def _term_twice(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGTERM)
    time.sleep(0.1)
    os.kill(process.pid, signal.SIGTERM)


def test_a_stopped_sweep_ends_everything_at_every_moment_and_the_next_one_finishes(tmp_path):
    project = Project(tmp_path)
    held: list[tuple[sqlite3.Connection, float]] = []

    def inside_mlflow_logging(project: Project, log: Path) -> bool:
        """A trial result has been saved in this run: hold MLflow's store locked, so that the next trial's
        MLflow logging waits on it, and signal while it does."""
        if not held and _more_results(project, log):
            store = sqlite3.connect(project.data / "mlflow" / "mlflow.db", isolation_level=None, timeout=30)
            store.execute("BEGIN EXCLUSIVE")
            held.append((store, time.monotonic()))
        return bool(held) and time.monotonic() - held[0][1] > 2.0

    moments = [
        ("while starting (imports)", _after(0.8), _term),
        ("in the inputs export step", _step_started("refresh_inputs_job"), _term),
        ("as the embeddings step starts, Ctrl-C", _step_started("embeddings_job"), _ctrl_c),
        ("while embedding", _after(2.5, _step_started("embeddings_job")), _term),
        ("as the trials step starts", _step_started("trials_job"), _term),
        ("while the engine's workers compute", _progress_shown, _term),
        ("after a trial's result, Ctrl-C", _more_results, _ctrl_c),
        ("inside a trial's MLflow logging, on a locked store", inside_mlflow_logging, _term),
        ("after more results, two signals", _more_results, _term_twice),
        ("while ranking", _step_started("leaderboard_job"), _term),
    ]
    delivered = []
    for moment, trigger, send in moments:
        process, log = project.start()
        if _interrupt(project, process, log, moment, trigger, send):
            delivered.append(moment)
        for store, _ in held:
            store.execute("ROLLBACK")
            store.close()
        held.clear()

    # A sweep waiting for another's lock is stopped too, and the one it waited for goes on to finish.
    running, running_log = project.start()
    deadline = time.monotonic() + 60
    while _lock_is_free(project.data) and running.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    waiting, waiting_log = project.start()
    moment = "while waiting for another sweep's lock"
    assert _interrupt(
        project,
        waiting,
        waiting_log,
        moment,
        lambda project, log: "Waiting for it" in log.read_text(),
        _term,
        locks_free=False,
    )  # the first sweep holds them
    delivered.append(moment)
    assert running.wait(timeout=300) == 0, running_log.read_text()[-3000:]

    assert len(delivered) >= 10, f"only {len(delivered)} moments were reached: {delivered}"
    leaderboard = pd.read_csv(project.data / "leaderboard" / "leaderboard.csv")
    assert len(leaderboard) == TRIALS and (leaderboard["status"] == "ok").all()

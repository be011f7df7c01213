"""The command line's step server: the executor forks steps from it only while the environment and
working directory are those it started with (a forked process inherits the server's, not the run's).

Each case runs in a fresh interpreter: the server is one per process, as multiprocessing's is.
"""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import os
    from topic_pipeline import step_server

    forked = {"forkserver": {"preload_modules": step_server.STEP_MODULES}}
    assert step_server.start_method() is None, "no server yet: spawn"
    step_server.start()
    step_server.start()  # once per process
    assert step_server.start_method() == forked
    {change}
    assert step_server.start_method() is None, "changed since the server started: spawn"
    """
)


def _run(change: str) -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT.replace("{change}", change)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_steps_spawn_once_the_environment_changed():
    _run('os.environ["TOPIC_PIPELINE_DATA_DIR"] = "/elsewhere"')


def test_steps_spawn_once_the_working_directory_changed():
    _run('os.chdir("/")')

"""What the command line prints: progress lines from the trials step's progress file, Dagster's output in a
log file. The end-to-end sweep (e2e/test_sweep_faults.py) checks both on a real run."""

import io
import subprocess
import sys
import time
from contextlib import redirect_stdout

from topic_pipeline.cli import TrialsProgress
from topic_pipeline.engine.progress import SweepProgress


def test_non_interactive_progress_prints_plain_lines_and_removes_its_file(tmp_path):
    path = tmp_path / "progress.json"
    shown = io.StringIO()
    with redirect_stdout(shown), TrialsProgress(path, interactive=False):
        progress = SweepProgress(total=2, rank_by="ari")
        progress.add("a", 0.5)
        progress.add("b", 0.75)
        progress.save(path)
    assert shown.getvalue().splitlines()[-1].startswith("  trials 2/2, ")
    assert shown.getvalue().rstrip().endswith("best so far ari 0.750 (b)")
    assert not path.exists()


def test_interactive_progress_draws_a_bar(tmp_path):
    path = tmp_path / "progress.json"
    shown = io.StringIO()
    with redirect_stdout(shown), TrialsProgress(path, interactive=True):
        progress = SweepProgress(total=4, rank_by="ari", round=3)
        progress.add("a", 0.5)
        progress.save(path)
    assert (
        "round 3" in shown.getvalue() and "1/4" in shown.getvalue() and "best so far ari 0.500 (a)" in shown.getvalue()
    )


def test_a_resumed_batch_shows_no_rate_for_the_trials_it_started_with(tmp_path):
    """Trials already done when the bar first shows are where it starts, not work done in no time."""
    import re

    path = tmp_path / "progress.json"
    shown = io.StringIO()
    with redirect_stdout(shown), TrialsProgress(path, interactive=True):
        progress = SweepProgress(total=50, rank_by="ari")
        for key in range(40):
            progress.add(str(key), 0.5)
        progress.save(path)
        time.sleep(1.2)  # the bar's first look, then one more trial
        progress.add("40", 0.5)
        progress.save(path)
    assert "41/50" in shown.getvalue()
    rates = [float(rate) for rate in re.findall(r"([0-9.]+)trial/s", shown.getvalue())]
    assert all(rate < 1000 for rate in rates), shown.getvalue()


def test_dagster_output_goes_to_the_log_file_with_child_processes_and_standard_error_comes_back(tmp_path):
    # In a process of its own: pytest replaces this one's sys.stderr.
    log = tmp_path / "logs" / "run.log"
    script = f"""
import subprocess, sys
from pathlib import Path
from topic_pipeline.cli import dagster_output_to
with dagster_output_to(Path({str(log)!r})):
    print("from this process", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-c", "import sys; print('from a child', file=sys.stderr)"], check=True)
    print("to the terminal", flush=True)
print("after", file=sys.stderr)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert log.read_text() == "from this process\nfrom a child\n"
    assert result.stdout == "to the terminal\n" and result.stderr == "after\n"


def test_progress_files_of_gone_command_lines_are_removed(tmp_path):
    from topic_pipeline.cli import progress_file_of, remove_stale_progress_files

    # A process that has exited: its pid names no running process (until the pid is reused).
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale, alive = progress_file_of(tmp_path, gone.pid), progress_file_of(tmp_path, 1)
    other_host, other = tmp_path / f"progress-elsewhere-{gone.pid}.json", tmp_path / "progress-notes.json"
    for path in (stale, alive, other_host, other):
        path.write_text("{}")
    remove_stale_progress_files(tmp_path)
    assert not stale.exists() and alive.exists() and other_host.exists() and other.exists()


def test_a_sweep_in_which_every_trial_failed_exits_non_zero_with_the_first_error_and_its_count(tmp_path, monkeypatch):
    """Real sweeps where every trial fails are now mostly refused before they start (settings, grid checks),
    so the end of the command is checked on the leaderboard such a sweep writes."""
    import pytest

    from topic_pipeline.cli import finish_sweep

    monkeypatch.setenv("TOPIC_PIPELINE_DATA_DIR", str(tmp_path))
    board = tmp_path / "leaderboard" / "leaderboard.csv"
    board.parent.mkdir(parents=True)
    board.write_text(
        "rank,trial,status,ari,error\n"
        ",a,failed,,ValueError: k must be less than n\n"
        ",b,failed,,ValueError: k must be less than n\n"
        ",c,failed,,MemoryError: cannot allocate\n"
    )
    with pytest.raises(SystemExit) as stopped:
        finish_sweep(12.0)
    assert str(stopped.value) == (
        "Sweep failed after 12 s: all 3 trials that ran failed; 2 of them with: ValueError: k must be less than n. "
        f"Each trial's error is in {board}, column 'error'."
    )
    board.write_text("rank,trial,status,ari,error\n1,a,ok,0.5,\n,b,failed,,ValueError: k must be less than n\n")
    shown = io.StringIO()
    with redirect_stdout(shown):
        finish_sweep(12.0)
    assert shown.getvalue().startswith("Sweep finished in 12 s.")

"""ruff's lint and format checks (configured in pyproject.toml's [tool.ruff]) pass on the whole repository."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).parent / "ruff"


def test_ruff_finds_nothing_to_lint():
    done = subprocess.run(
        [str(RUFF), "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_finds_nothing_to_reformat():
    done = subprocess.run(
        [str(RUFF), "format", "--check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, "run `.venv/bin/ruff format .`:\n" + done.stdout + done.stderr

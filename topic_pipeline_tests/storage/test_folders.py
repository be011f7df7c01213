"""``replace_folder``: a folder the project wrote is replaced only while it holds nothing but what the project
wrote, unchanged. A file added is a foreign file; a file the project wrote and someone changed since is the
user's now, and is refused the same way (exports: ``test_export.py``)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from topic_pipeline.storage.files import OWNERSHIP_MARKER, TEMPORARY_SUFFIX, FolderNotOursError, replace_folder


def _write(target: Path, files: dict[str, bytes], kind: str = "report", **options) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=TEMPORARY_SUFFIX, dir=target.parent))
    for name, data in files.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_bytes(data)
    try:
        replace_folder(staging, target, kind, **options)
    finally:  # as every caller does: a refused staging folder is removed
        shutil.rmtree(staging, ignore_errors=True)


def _snapshot(folder: Path) -> dict[str, tuple[bytes | None, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def test_a_changed_file_is_refused_and_kept_an_unchanged_folder_replaced(tmp_path):
    target = tmp_path / "report"
    _write(target, {"report.html": b"first", "plots/a.png": b"\x89PNG"})
    marker = json.loads((target / OWNERSHIP_MARKER).read_text())
    assert set(marker["sha256"]) == {"report.html", "plots/a.png"}
    _write(target, {"report.html": b"second", "plots/a.png": b"\x89PNG"})  # unchanged since written: replaced
    assert (target / "report.html").read_bytes() == b"second"

    (target / "plots" / "a.png").write_bytes(b"my own picture")
    before = _snapshot(target)
    with pytest.raises(FolderNotOursError) as refused:
        _write(target, {"report.html": b"third"})
    assert str(refused.value) == (
        f"'{target}' holds a file changed since topic_pipeline's report wrote it: plots/a.png; nothing in it was "
        "touched: remove the changed file yourself (move it elsewhere to keep it)"
    )
    assert refused.value.changed == ("plots/a.png",)
    assert _snapshot(target) == before

    (target / "report.html").write_bytes(b"")  # emptied is changed too
    with pytest.raises(
        FolderNotOursError,
        match=r"holds 2 files changed .*: plots/a\.png, report\.html; .*"
        r"choose another folder, or remove the changed files yourself$",
    ):
        _write(target, {"report.html": b"third"}, another_folder="choose another folder")
    assert _snapshot(target) == {**before, "report.html": (b"", _snapshot(target)["report.html"][1])}

    (target / "plots" / "a.png").unlink()
    (target / "report.html").unlink()
    _write(target, {"report.html": b"third"})
    assert sorted(p.name for p in target.iterdir()) == [OWNERSHIP_MARKER, "report.html"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(TEMPORARY_SUFFIX)]


def test_a_link_retargeted_is_changed(tmp_path):
    (tmp_path / "elsewhere").write_text("x")
    staging = Path(tempfile.mkdtemp(suffix=TEMPORARY_SUFFIX, dir=tmp_path))
    (staging / "latest").symlink_to("report.html")
    (staging / "report.html").write_text("r")
    replace_folder(staging, tmp_path / "out", "report")
    (tmp_path / "out" / "latest").unlink()
    (tmp_path / "out" / "latest").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FolderNotOursError, match="latest"):
        _write(tmp_path / "out", {"report.html": b"r"})
    assert (tmp_path / "elsewhere").read_text() == "x" and (tmp_path / "out" / "latest").is_symlink()


def test_a_folder_marked_without_digests_is_replaced_as_ours(tmp_path):
    """A marker without digests (a report or export folder written before they were recorded) still says which
    files were written: the folder is ours and replaced, without a content check."""
    target = tmp_path / "export"
    _write(target, {"tuning.json": b"{}"}, kind="export")
    marker_path = target / OWNERSHIP_MARKER
    marker = json.loads(marker_path.read_text())
    del marker["sha256"]
    marker_path.write_text(json.dumps(marker))
    (target / "tuning.json").write_bytes(b'{"edited": true}')
    _write(target, {"tuning.json": b"{}"}, kind="export")
    assert (target / "tuning.json").read_bytes() == b"{}"


def test_written_files_and_folders_follow_the_umask(tmp_path):
    """A colleague, a web server or an MLflow server running as another user can read what we write; a
    private umask keeps it private. Each in a process started with that umask (read once, at import)."""
    import os
    import stat
    import subprocess
    import sys

    script = (
        "import sys; from pathlib import Path; from topic_pipeline.storage.files import staging_folder, write_atomically; "
        "root = Path(sys.argv[1]); write_atomically(root / 'leaderboard.csv', lambda stream: stream.write(b'rank')); "
        "print(staging_folder(root / 'report'))"
    )
    for umask, file_mode, folder_mode in ((0o022, 0o644, 0o755), (0o077, 0o600, 0o700)):
        root = tmp_path / f"umask-{umask:03o}"
        root.mkdir()
        done = subprocess.run(
            [sys.executable, "-c", script, str(root)],
            capture_output=True,
            text=True,
            check=True,
            preexec_fn=lambda umask=umask: os.umask(umask),
        )
        folder = Path(done.stdout.strip())
        assert stat.S_IMODE((root / "leaderboard.csv").stat().st_mode) == file_mode
        assert stat.S_IMODE(folder.stat().st_mode) == folder_mode

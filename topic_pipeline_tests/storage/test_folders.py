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


def test_written_files_and_folders_follow_the_umask(tmp_path):
    """A colleague, a web server or an MLflow server running as another user can read what we write."""
    import os
    import stat

    from topic_pipeline.storage.files import staging_folder, write_atomically

    previous = os.umask(0o022)
    try:
        write_atomically(tmp_path / "leaderboard.csv", lambda stream: stream.write(b"rank\n"))
        folder = staging_folder(tmp_path / "report")
        assert stat.S_IMODE((tmp_path / "leaderboard.csv").stat().st_mode) == 0o644
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755
        os.umask(0o077)
        write_atomically(tmp_path / "private.csv", lambda stream: stream.write(b"rank\n"))
        assert stat.S_IMODE((tmp_path / "private.csv").stat().st_mode) == 0o600
    finally:
        os.umask(previous)

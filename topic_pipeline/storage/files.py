"""Atomic, pickle-free file writes and reads shared by every on-disk store of the project."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from topic_pipeline.errors import TopicPipelineError

# Every temporary file or folder the project makes ends so: recovery deletes only these, never a user's
# own ``.something.tmp`` in a data directory that is shared with other files.
TEMPORARY_SUFFIX = ".topic-pipeline.tmp"


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through a temporary file in the same folder, then rename it over ``path``.

    A reader sees the old file or the complete new one, never a partial one, even if the writer
    is killed or the disk fills up half way.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        # A bare "[Errno 28] No space left on device" names no file: say which, and that nothing was replaced.
        raise OSError(exc.errno, f"{exc.strerror or exc}: could not write {path} (any earlier version is unchanged)") from exc
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(root: Path, older_than_seconds: float) -> list[Path]:
    """Delete the temporary files of writes that were cut short (a killed process leaves
    ``.<name>.<random>.topic-pipeline.tmp`` behind; nothing ever reads one). Only files older than the
    given age are touched: a younger one may belong to a write still in progress in another process."""
    import time

    removed = []
    cutoff = time.time() - older_than_seconds
    for path in Path(root).rglob(f".*{TEMPORARY_SUFFIX}"):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except OSError:
            continue  # gone meanwhile, or not ours to delete: not worth failing a sweep over
    return removed


# A folder this project wrote holds this file: what wrote it and every file it held when written.
OWNERSHIP_MARKER = ".topic-pipeline-folder.json"


class FolderNotOursError(TopicPipelineError):
    """A folder would be replaced that this project did not write, or that someone has added to since."""


def _entries(folder: Path) -> list[str]:
    """Every file and link under ``folder`` (not following links), as relative paths."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_symlink() or not p.is_dir())


def _marked_as_ours(folder: Path, kind: str) -> bool:
    try:
        marker = json.loads((folder / OWNERSHIP_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("kind") != kind or not isinstance(marker.get("files"), list):
        return False
    return set(_entries(folder)) <= {*marker["files"], OWNERSHIP_MARKER}


def replace_folder(staging: Path, target: Path, kind: str, is_unmarked_earlier: Callable[[Path], bool] | None = None) -> None:
    """Move the complete folder ``staging`` (a sibling of ``target``) to ``target``, marked as ours.

    ``target`` may be absent, an empty folder, or a folder this project wrote as ``kind`` with nothing
    added since (or one ``is_unmarked_earlier`` recognises, for folders written before the marker
    existed). Anything else is refused with ``FolderNotOursError`` and left untouched: a replacement
    must never delete what the project did not write.
    """
    write_json(staging / OWNERSHIP_MARKER, {"written_by": "topic_pipeline", "kind": kind, "files": _entries(staging)})
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise FolderNotOursError(f"'{target}' exists and is not a folder; nothing was changed: choose a new or empty folder")
    previous = None
    if target.exists() and any(target.iterdir()):
        if not (_marked_as_ours(target, kind) or (is_unmarked_earlier is not None and is_unmarked_earlier(target))):
            raise FolderNotOursError(
                f"'{target}' is not empty and is not an earlier {kind} of topic_pipeline (no {OWNERSHIP_MARKER} "
                "listing its files, or files were added since); nothing in it was touched: "
                "choose a new or empty folder"
            )
        previous = Path(tempfile.mkdtemp(prefix=f".{target.name}.previous.", suffix=TEMPORARY_SUFFIX, dir=target.parent))
        os.replace(target, previous)
    try:
        os.replace(staging, target)
    except BaseException:
        if previous is not None:
            os.replace(previous, target)
        raise
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, default=str).encode()


def write_json(path: Path, value: Any) -> None:
    data = json_bytes(value)
    write_atomically(path, lambda stream: stream.write(data))


class DuplicateKeyError(ValueError):
    def __init__(self, key: str):
        super().__init__(f"key '{key}' appears more than once")
        self.key = key


def reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for user files: plain json keeps the last duplicate and silently drops the rest."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKeyError(key)
        result[key] = value
    return result


def read_user_text(path: Path, what: str, error: type[Exception]) -> str:
    """The text of a file the user gave (``what`` names it in messages); ``error`` says what is wrong.

    Every file a user gives is read here, as UTF-8 with or without a byte-order mark (some editors write
    one), so one rule holds for them all."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} '{path}' does not exist") from None
    except OSError as exc:
        raise error(f"{what} '{path}' cannot be read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # The decoder counts from after a byte-order mark it dropped; the message gives the file's offset.
        start = exc.start + len(data) - len(exc.object)
        raise error(f"{what} '{path}' is not UTF-8 text (byte {start} is 0x{data[start]:02x}); save it as UTF-8 JSON") from None


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def save_array(stream: BinaryIO, array: np.ndarray) -> None:
    np.save(stream, np.ascontiguousarray(array), allow_pickle=False)


def read_array(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)

"""Atomic, pickle-free file writes and reads shared by every on-disk store of the project."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through a temporary file in the same folder, then rename it over ``path``.

    A reader sees the old file or the complete new one, never a partial one, even if the writer
    is killed or the disk fills up half way.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
    ``.<name>.<random>.tmp`` behind; nothing ever reads one). Only files older than the given age
    are touched: a younger one may belong to a write still in progress in another process."""
    import time

    removed = []
    cutoff = time.time() - older_than_seconds
    for path in Path(root).rglob(".*.tmp"):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except OSError:
            continue  # gone meanwhile, or not ours to delete: not worth failing a sweep over
    return removed


def write_json(path: Path, value: Any) -> None:
    data = json.dumps(value, indent=2, sort_keys=True, default=str).encode()
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
    """The text of a file the user gave (``what`` names it in messages); ``error`` says what is wrong."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} '{path}' does not exist") from None
    except UnicodeDecodeError as exc:
        raise error(f"{what} '{path}' is not UTF-8 text (byte {exc.start} is 0x{exc.object[exc.start]:02x}); save it as UTF-8 JSON") from None
    except OSError as exc:
        raise error(f"{what} '{path}' cannot be read: {exc.strerror or exc}") from None


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_array(path: Path, array: np.ndarray) -> None:
    write_atomically(path, lambda stream: np.save(stream, np.ascontiguousarray(array), allow_pickle=False))


def read_array(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)

"""One file per key, written atomically and read back checked: what every store of the project shares.

The array cache, the embedding cache, the trial result rows and the trial labels each keep one
``FileStore``; only the file format and the checks differ. A reader gets a value or None: None for an
absent entry, and None for a damaged one (a file that cannot be read or decoded, or whose contents a
check rejects), which is logged. Every caller then treats the entry as missing and recomputes or
reruns it, so a damaged file never stops a sweep and is never used. Readers never unpickle.

Array files end with a sha256 of their bytes (``files.save_array``, ``files.save_arrays``; an ``.npz``
member also has its CRC-32), so a truncated or garbled array file reads as damaged, not as an array. ``damaged`` answers for an entry without the caller
needing its value (is a trial done? is a cache entry there?): a file version this process has read back
intact (same inode, size, modification and change times) is not read again.
"""

from __future__ import annotations

import logging
import os
import struct
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Generic, TypeVar

from topic_pipeline.storage.files import write_atomically

log = logging.getLogger(__name__)

Value = TypeVar("Value")

# What reading and decoding a damaged file raises: a truncated or foreign file, a pickled object refused
# by ``allow_pickle=False``, JSON of the wrong shape, an archive whose garbled headers name a compression
# it does not hold (or none zipfile knows), an array or archive missing a member a check looks up.
DAMAGED = (
    OSError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    zipfile.BadZipFile,
    zlib.error,
    struct.error,
    NotImplementedError,
)

# What ``_decode`` returns for a file that exists but cannot be read back.
_UNREADABLE = object()

# Files read back intact by this process: path -> (inode, size, mtime, ctime) of the version read. Every
# write replaces a file by a rename (a new inode), and any change in place moves its change time, except
# one within the file system's clock tick of the previous change: a file changed in the last second is
# not remembered.
_READ_INTACT: dict[str, tuple[int, int, int, int]] = {}
_READ_INTACT_LIMIT = 200_000
_SETTLED_NS = 1_000_000_000


def _version(path: Path) -> tuple[int, int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _remember_intact(path: Path, before: tuple[int, int, int, int] | None) -> None:
    if before is not None and time.time_ns() - before[3] > _SETTLED_NS and _version(path) == before:
        if len(_READ_INTACT) >= _READ_INTACT_LIMIT:
            _READ_INTACT.clear()
        _READ_INTACT[str(path)] = before


class FileStore(Generic[Value]):
    """Values of one kind in ``directory``, one file ``<key><suffix>`` each.

    ``read`` decodes a file (raising one of ``DAMAGED`` when it cannot); ``write`` encodes a value onto a
    stream. ``what`` names an entry and ``if_damaged`` says what follows, in the log line of a damaged one.
    """

    def __init__(
        self,
        directory: str | Path,
        suffix: str,
        read: Callable[[Path], Value],
        write: Callable[[BinaryIO, Value], None],
        what: str,
        if_damaged: str,
    ):
        self.directory = Path(directory)
        self.suffix = suffix
        self._read = read
        self._write = write
        self.what = what
        self.if_damaged = if_damaged

    def path(self, key: str) -> Path:
        return self.directory / f"{key}{self.suffix}"

    def save(self, key: str, value: Value) -> Path:
        """A reader sees the previous entry or this one, never a partial file (``write_atomically``). Writers
        of one key on several machines need no lock: each renames its own complete file over the entry."""
        path = self.path(key)
        write_atomically(path, lambda stream: self._write(stream, value))
        return path

    def load(
        self, key: str, problem: Callable[[Value], str | None] | None = None, if_rejected: str | None = None
    ) -> Value | None:
        """The entry, or None when absent or damaged. ``problem`` says what is wrong with a decoded value
        that cannot be used here (None when it can; a check that fails on the value, looking up a member it
        lacks say, rejects it too); ``if_rejected`` says what follows then, when not ``if_damaged``."""
        path = self.path(key)
        value = self._decode(path)
        if value is None or value is _UNREADABLE:
            return None
        try:
            found = problem(value) if problem is not None else None
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            found = f"has unexpected contents ({type(exc).__name__}: {exc})"
        if found is not None:
            log.warning("%s %s %s; %s", self.what, path, found, if_rejected or self.if_damaged)
            return None
        return value

    def damaged(self, key: str) -> bool:
        """Whether the entry's file exists but cannot be read back (logged as ``load`` logs it): an
        absent entry is not damaged. Reads the file unless this process read this version of it intact."""
        path = self.path(key)
        before = _version(path)
        if before is None or _READ_INTACT.get(str(path)) == before:
            return False
        return self._decode(path) is _UNREADABLE

    def _decode(self, path: Path) -> Any:
        """The file's decoded value; None when it is absent; ``_UNREADABLE`` (logged) when it cannot be read
        back. A version read intact is remembered (``damaged`` need not read it again)."""
        before = _version(path)
        try:
            value = self._read(path)
        except FileNotFoundError:
            return None
        except DAMAGED as exc:
            _READ_INTACT.pop(str(path), None)
            log.warning("%s %s is unreadable (%s); %s", self.what, path, exc, self.if_damaged)
            return _UNREADABLE
        _remember_intact(path, before)
        return value

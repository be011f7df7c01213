"""One file per key, written atomically and read back checked: what every store of the project shares.

The array cache, the embedding cache, the trial result rows and the trial labels each keep one
``FileStore``; only the file format and the checks differ. A reader gets a value or None: None for an
absent entry, and None for a damaged one (a file that cannot be read or decoded, or whose contents a
check rejects), which is logged. Every caller then treats the entry as missing and recomputes or
reruns it, so a damaged file never stops a sweep and is never used. Readers never unpickle.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Generic, TypeVar

from topic_pipeline.storage.files import write_atomically

log = logging.getLogger(__name__)

Value = TypeVar("Value")

# What reading and decoding a damaged file raises: a truncated or foreign file, a pickled object refused
# by ``allow_pickle=False``, JSON of the wrong shape.
DAMAGED = (OSError, EOFError, ValueError, TypeError, KeyError, zipfile.BadZipFile)


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
        """A reader sees the previous entry or this one, never a partial file (``write_atomically``)."""
        path = self.path(key)
        write_atomically(path, lambda stream: self._write(stream, value))
        return path

    def load(self, key: str, problem: Callable[[Value], str | None] | None = None) -> Value | None:
        """The entry, or None when absent or damaged. ``problem`` says what is wrong with a decoded value
        that cannot be used here (None when it can)."""
        path = self.path(key)
        try:
            value = self._read(path)
        except FileNotFoundError:
            return None
        except DAMAGED as exc:
            log.warning("%s %s is unreadable (%s); %s", self.what, path, exc, self.if_damaged)
            return None
        found = problem(value) if problem is not None else None
        if found is not None:
            log.warning("%s %s %s; %s", self.what, path, found, self.if_damaged)
            return None
        return value

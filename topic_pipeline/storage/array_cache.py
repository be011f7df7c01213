"""A content-addressed, multi-process safe cache of numpy arrays on disk.

Each entry is one ``.npz`` file (no pickle: loaded with ``allow_pickle=False``) written atomically, with a
checksum (``files.save_arrays``): a truncated or garbled entry reads as damaged (``store.FileStore``) and is
recomputed, as is one its caller's check rejects.
A per-entry lock file makes concurrent requests for the same entry compute it once: the first
process computes while the others wait on the lock, then read the entry. Keys are ``domain.versions.cache_key``'s.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from topic_pipeline.storage.files import read_arrays, save_arrays
from topic_pipeline.storage.store import FileStore

Arrays = dict[str, np.ndarray]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class ArrayCache:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._entries = FileStore(self.directory, ".npz", read_arrays, save_arrays, "cache entry", "recomputing it")

    def path(self, key: str) -> Path:
        return self._entries.path(key)

    def load(self, key: str, validate: Callable[[Arrays], bool] | None = None) -> Arrays | None:
        """The entry, or None if absent or unusable (unreadable, or rejected by ``validate``)."""
        if validate is None:
            return self._entries.load(key)
        return self._entries.load(key, lambda arrays: None if validate(arrays) else "has unexpected contents")

    def store(self, key: str, arrays: Arrays) -> None:
        self._entries.save(key, arrays)

    def get_or_compute(
        self, key: str, compute: Callable[[], Arrays], validate: Callable[[Arrays], bool] | None = None
    ) -> tuple[Arrays, bool]:
        """The cached entry, computing it under the entry's lock if needed. Returns (arrays, was_cached)."""
        cached = self.load(key, validate)
        if cached is not None:
            return cached, True
        with _locked(self.directory / f".{key}.lock"):
            cached = self.load(key, validate)  # another process may have written it while we waited
            if cached is not None:
                return cached, True
            arrays = compute()
            self.store(key, arrays)
            return arrays, False

"""A content-addressed, multi-process safe cache of numpy arrays on disk.

Each entry is one ``.npz`` file (no pickle: loaded with ``allow_pickle=False``) written atomically, with a
checksum (``files.save_arrays``): a truncated or garbled entry reads as damaged (``store.FileStore``) and is
recomputed, as is one its caller's check rejects. Keys are ``domain.versions.cache_key``'s.

Correctness rests on nothing but the atomic rename of ``files.write_atomically``, which a network file
system (NFS) gives within one folder. An entry is determined by its key (the inputs and library versions
it is computed from), so two processes or machines that compute it at once each write a complete, valid
entry of their own and the last rename wins; a reader sees one complete entry or none. (Machines of
different kinds may differ in an entry's last bits: either entry is one its key allows.)

A per-entry lock file (``flock``) only saves duplicate work: on one machine the first process computes
while the others wait, then read its entry. Across machines on a network file system ``flock`` may exclude
no one, or fail; the entry is then computed more than once, never damaged.
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
def _computing_alone(path: Path) -> Iterator[None]:
    """Holds ``path``'s lock where the file system grants one; goes on without it where it does not.

    The lock saves duplicate work and nothing else: ``get_or_compute`` is correct without it (see the
    module's docstring), so a file system that refuses ``flock`` (some NFS setups: ``ENOLCK``) costs time
    only, never a failed step.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            locked = True
        except OSError:
            locked = False
        try:
            yield
        finally:
            if locked:
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
        """The cached entry, computing it if needed. Returns (arrays, was_cached).

        The entry's lock makes the processes of one machine compute it once; processes on other machines
        may compute it too, and each one's complete entry replaces the other's atomically."""
        cached = self.load(key, validate)
        if cached is not None:
            return cached, True
        with _computing_alone(self.directory / f".{key}.lock"):
            cached = self.load(key, validate)  # another process may have written it while we waited
            if cached is not None:
                return cached, True
            arrays = compute()
            self.store(key, arrays)
            return arrays, False

"""A content-addressed, multi-process safe cache of numpy arrays on disk.

Each entry is one ``.npz`` file (no pickle: loaded with ``allow_pickle=False``) written atomically.
A per-entry lock file makes concurrent requests for the same entry compute it once: the first
process computes while the others wait on the lock, then read the entry.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import zipfile
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from topic_pipeline.storage.files import write_atomically

log = logging.getLogger(__name__)

Arrays = dict[str, np.ndarray]


# Packages whose version can change the numbers an entry holds; a new version means new keys (recomputed).
# Embeddings: the tokenizer and the forward pass. Reductions: UMAP's layout and spectral initialisation
# (numpy's RandomState, scipy's eigensolver), its kernels as numba compiles them (fastmath), and for
# large corpora the NNDescent graph. Trial results: all of these plus HDBSCAN, BERTopic's topic
# reduction and scikit-learn (expected mutual information in the metrics, the vectorizer).
EMBEDDING_LIBRARIES = ("sentence-transformers", "transformers", "torch")
REDUCTION_LIBRARIES = ("umap-learn", "pynndescent", "numba", "numpy", "scipy")
TRIAL_LIBRARIES = (*EMBEDDING_LIBRARIES, *REDUCTION_LIBRARIES, "hdbscan", "bertopic", "scikit-learn")


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def cache_key(namespace: str, identity: Mapping[str, Any], libraries: Iterable[str] = ()) -> str:
    """``<namespace>-<digest>``: the digest covers ``identity`` and the versions of ``libraries``.

    The one place cache keys are derived: every cached content (embeddings, neighbour graphs, UMAP
    reductions) and the trial results' inputs fingerprint are keyed through it.
    """
    versions = {name: package_version(name) for name in libraries}
    content = {**dict(identity), **({"libraries": versions} if versions else {})}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return f"{namespace}-{digest}"


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

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.npz"

    def load(self, key: str, validate: Callable[[Arrays], bool] | None = None) -> Arrays | None:
        """The entry, or None if absent or unusable (unreadable, or rejected by ``validate``)."""
        path = self.path(key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            log.warning("cache entry %s is unreadable (%s); recomputing it", path, exc)
            return None
        if validate is not None and not validate(arrays):
            log.warning("cache entry %s has unexpected contents; recomputing it", path)
            return None
        return arrays

    def store(self, key: str, arrays: Arrays) -> None:
        write_atomically(self.path(key), lambda stream: np.savez(stream, **arrays))

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

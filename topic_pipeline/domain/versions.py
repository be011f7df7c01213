"""Which installed libraries a stored result depends on, and the one way cache keys are derived from them."""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

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


def environment_versions() -> dict[str, str]:
    """Python's version and each of ``TRIAL_LIBRARIES``': what a worker must share with the others for their
    results to belong on one leaderboard (the libraries are those the results' inputs fingerprint covers)."""
    return {"python": platform.python_version(), **{name: package_version(name) for name in TRIAL_LIBRARIES}}


def cache_key(namespace: str, identity: Mapping[str, Any], libraries: Iterable[str] = ()) -> str:
    """``<namespace>-<digest>``: the digest covers ``identity`` and the versions of ``libraries``.

    The one place cache keys are derived: every cached content (embeddings, neighbour graphs, UMAP
    reductions) and the trial results' inputs fingerprint are keyed through it.
    """
    versions = {name: package_version(name) for name in libraries}
    content = {**dict(identity), **({"libraries": versions} if versions else {})}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return f"{namespace}-{digest}"

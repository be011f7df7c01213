"""What a sweep needs before it starts: memory for its worker processes and disk for its caches.

Estimated from the corpus size, the embeddings' width and the grid's layouts, and checked against what
the machine has, so that a sweep that would not fit is refused with the estimate and the setting to
change, instead of dying halfway under the OOM killer or on a full disk. The figures are rough estimates
of the arrays each stage holds, not measurements; the large-corpus benchmark prints the estimate beside
the measured peak (docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from collections.abc import Iterable
from pathlib import Path

from topic_pipeline.errors import CapacityError

GIB = 2**30
# A worker process with numba, UMAP, HDBSCAN and scikit-learn imported and compiled code loaded.
WORKER_BASE_BYTES = 600 * 2**20
# The process that runs the trials step (Dagster, MLflow, the pipeline imported) besides its workers.
STEP_BASE_BYTES = 900 * 2**20
# Per document and neighbour, what a UMAP layout holds at once: the kNN graph (int32 indices, float32
# distances), NNDescent's heaps, their copies, the fuzzy simplicial set in COO and CSR form before and after
# symmetrisation, and the optimisation's per-edge arrays (float64). Set so that the estimate stays above the
# large-corpus runs measured (docs/benchmarks.md), not derived array by array.
LAYOUT_BYTES_PER_EDGE = 200
# Per document and HDBSCAN min_samples (unset: min_cluster_size), the core distances' neighbour query in the
# worker's process (engine/clustering.py): its pieces' float64 distances and int64 indices, then their stacked
# copies.
CLUSTERING_BYTES_PER_NEIGHBOUR = 32
# Per document, HDBSCAN's single-linkage tree, condensed tree and labels on a low-dimensional reduction.
CLUSTERING_BYTES_PER_DOCUMENT = 256
# Free memory and disk kept in reserve: the rest of the machine goes on.
HEADROOM = 0.10
# A container's memory limit and usage (cgroup v2), lower than the machine's where one is set.
CGROUP_MEMORY_MAX = Path("/sys/fs/cgroup/memory.max")
CGROUP_MEMORY_CURRENT = Path("/sys/fs/cgroup/memory.current")
CGROUP_MEMORY_STAT = Path("/sys/fs/cgroup/memory.stat")


@dataclasses.dataclass(frozen=True)
class Layout:
    """One UMAP reduction the sweep computes: its neighbours and components, and the identity of the
    neighbour graph it is built on (layouts of one embedding set, k and seed share one)."""

    n_neighbors: int
    n_components: int
    graph: tuple = ()


@dataclasses.dataclass(frozen=True)
class SweepNeeds:
    documents: int
    dimensions: int
    workers: int
    worker_bytes: int  # the peak of one worker, on the sweep's largest layout
    memory_bytes: int  # the step and all its workers at their peaks at once
    disk_bytes: int  # the caches it writes: neighbour graphs, reductions, each trial's labels

    def memory_formula(self) -> str:
        return (
            f"{self.workers} worker(s) x {self.worker_bytes / GIB:.1f} GiB (embeddings {self.documents:,} documents "
            f"x {self.dimensions} dims, the largest layout's graph, HDBSCAN's neighbour query) + the "
            "step's own"
        )


def estimate_needs(
    documents: int,
    dimensions: int,
    workers: int,
    layouts: Iterable[Layout],
    trials: int,
    min_samples: int = 0,
    reference: bool = False,
) -> SweepNeeds:
    """The memory and disk a sweep of ``trials`` trials over ``layouts`` needs on ``documents`` embeddings of
    ``dimensions`` float32 values with ``workers`` worker processes (at most one per layout works at once);
    ``min_samples``: the largest HDBSCAN min_samples among the trials (an unset one counts as its
    min_cluster_size). ``reference``: plain BERTopic fits (the reference engine), which keep UMAP's arrays
    while HDBSCAN runs, and whose HDBSCAN queries in joblib processes that hold their pieces too."""
    layouts = list(layouts)
    if not layouts:
        return SweepNeeds(documents, dimensions, 0, 0, 0, 0)
    embeddings = documents * dimensions * 4
    largest_k = max(layout.n_neighbors for layout in layouts)
    widest = max(layout.n_components for layout in layouts)
    busy = max(1, min(workers, len(layouts)))
    # UMAP's spectral initialisation: ARPACK's Lanczos basis, sqrt(points) float64 vectors over the graph's
    # largest component (at most every document), which grows faster than the documents.
    layout = documents * largest_k * LAYOUT_BYTES_PER_EDGE + documents * math.isqrt(documents) * 8
    clustering = documents * min_samples * CLUSTERING_BYTES_PER_NEIGHBOUR
    # The fast engine lays out a reduction, frees UMAP's arrays, then clusters it: the two peaks never meet.
    data = layout + 2 * clustering if reference else max(layout, clustering)
    worker = WORKER_BASE_BYTES + embeddings + data + documents * (widest * 8 + CLUSTERING_BYTES_PER_DOCUMENT)
    memory = STEP_BASE_BYTES + embeddings + busy * worker
    graph_of = {(layout.graph or layout.n_neighbors): layout.n_neighbors for layout in layouts}
    graphs = sum(documents * k * 8 for k in graph_of.values())
    reductions = sum(documents * layout.n_components * 4 for layout in layouts)
    labels = trials * documents * 4
    return SweepNeeds(documents, dimensions, busy, worker, memory, graphs + reductions + labels)


def available_memory() -> int:
    """The memory this process may still use: the machine's available memory, or, when a container sets a
    lower limit, the limit less the container's working set (its usage less the page cache it can drop, as
    the kubelet counts it: files read, the embeddings and caches among them, are not memory in use)."""
    import psutil

    available = psutil.virtual_memory().available
    try:
        text = CGROUP_MEMORY_MAX.read_text().strip()
        if text != "max":
            usage = int(CGROUP_MEMORY_CURRENT.read_text().strip())
            stat = dict(line.split() for line in CGROUP_MEMORY_STAT.read_text().splitlines() if line.strip())
            available = min(available, int(text) - (usage - int(stat.get("inactive_file", 0))))
    except (OSError, ValueError):
        pass
    return available


def check_capacity(
    needs: SweepNeeds,
    data_dir: Path,
    workers_setting: str,
    memory: int | None = None,
    free_disk: int | None = None,
) -> None:
    """Raise ``CapacityError`` naming the estimate and the setting to change when ``needs`` exceeds the
    memory (default: ``available_memory()``) or the free disk under ``data_dir`` (less ``HEADROOM``)."""
    memory = available_memory() if memory is None else memory
    if needs.memory_bytes > memory * (1 - HEADROOM):
        fewer = (
            f"set {workers_setting}=1 (each worker holds its own layout)"
            if needs.workers > 1
            else "give the sweep a machine with more memory"
        )
        raise CapacityError(
            f"the sweep needs about {needs.memory_bytes / GIB:.1f} GiB of memory ({needs.memory_formula()}) and "
            f"{memory / GIB:.1f} GiB is available: {fewer}, or export fewer documents "
            "(TOPIC_PIPELINE_WINDOW_DAYS, TOPIC_PIPELINE_WINDOW_START/END or TOPIC_PIPELINE_DOCUMENTS_QUERY)"
        )
    free_disk = shutil.disk_usage(_existing(data_dir)).free if free_disk is None else free_disk
    if needs.disk_bytes > free_disk * (1 - HEADROOM):
        raise CapacityError(
            f"the sweep's caches need about {needs.disk_bytes / GIB:.1f} GiB under {data_dir} (neighbour graphs, "
            f"reductions and each trial's labels for {needs.documents:,} documents) and {free_disk / GIB:.1f} GiB "
            "is free there: free space or set TOPIC_PIPELINE_DATA_DIR to a larger disk"
        )


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (the data directory may not be made yet)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path

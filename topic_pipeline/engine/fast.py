"""The sweep engine: every trial's BERTopic labels, computing each shared intermediate once.

For a plain BERTopic fit with precomputed embeddings the labels come from UMAP, HDBSCAN and (if
nr_topics is set) BERTopic's topic reduction; the vectorizer (n-gram range, stop words) only changes
topic words. So trials are grouped:

* by embedding set: one neighbour graph (``neighbors``), shared through the on-disk cache;
* by (n_neighbors, n_components, min_dist): one UMAP reduction, cached on disk, content-addressed;
  a group is one task for a worker process;
* within a group, by min_samples: one HDBSCAN single-linkage tree, from which every
  (min_cluster_size, epsilon) is labelled;
* trials differing only in n_gram_max share one clustering;
* trials differing only in their outlier reduction (strategy, threshold) share one clustering, and what
  a strategy compares outliers with is computed once per clustering for all its thresholds (``outliers``).

Workers are long-lived processes: imports and numba compilation are paid once per worker, not per
trial. Labels equal a plain BERTopic fit's up to BERTopic's frequency renumbering (a permutation).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from topic_pipeline._compat import numba as numba_cache
from topic_pipeline._compat import umap as umap_compat
from topic_pipeline.domain.trials import VECTORIZER_STRATEGIES, TrialParams
from topic_pipeline.engine.neighbors import is_small
from topic_pipeline.engine.reduction import ReductionSpec, knn_cache_key
from topic_pipeline.engine.warmup import warm_up_layout
from topic_pipeline.engine.work_queue import LayoutQueue, layout_cost
from topic_pipeline.errors import error_text
from topic_pipeline.processes import exit_with_parent
from topic_pipeline.storage.array_cache import ArrayCache

# The exact (small-data) neighbour graph is computed at least this wide, so grids with different
# largest n_neighbors share one graph.
EXACT_GRAPH_MIN_K = 100


@dataclasses.dataclass(frozen=True)
class EmbeddingSource:
    """Where a worker finds an embedding set: the .npy file and the identity used in cache keys."""

    path: str
    cache_key: str
    n_documents: int


@dataclasses.dataclass(frozen=True)
class ClusteringSpec:
    min_cluster_size: int
    min_samples: int | None
    epsilon: float
    nr_topics: str | int
    outlier_reduction: str = "none"
    outlier_threshold: float = 0.0
    # Only where the strategy's labels depend on the vectorizer (c-TF-IDF comparisons); else None, so
    # trials differing only in n_gram_max share labels.
    n_gram_max: int | None = None

    @property
    def base(self) -> tuple:
        """The clustering before outlier reduction."""
        return (self.min_cluster_size, self.min_samples, self.epsilon, self.nr_topics)


@dataclasses.dataclass(frozen=True)
class GroupTask:
    """All trials sharing one UMAP reduction."""

    source: EmbeddingSource
    n_neighbors: int
    n_components: int
    min_dist: float
    seed: int
    largest_k: int
    cache_dir: str
    clusterings: tuple[ClusteringSpec, ...]
    texts: tuple[str, ...] | None  # only when a clustering reduces topics or compares outliers' words
    stopwords_language: str = "english"

    @property
    def reduction_spec(self) -> ReductionSpec:
        return ReductionSpec(self.n_neighbors, self.n_components, self.min_dist, self.seed)


@dataclasses.dataclass
class GroupOutcome:
    labels: dict[ClusteringSpec, np.ndarray]
    errors: dict[ClusteringSpec, str]
    reduction_cached: bool
    trees_built: int
    seconds: float
    outlier_variants: int = 0
    outlier_seconds: float = 0.0  # of ``seconds``: outlier reduction (once per clustering and strategy)
    layout_seconds: float = 0.0  # of ``seconds``: the UMAP reduction (or reading it), waits on its graph included
    clustering_seconds: float = 0.0  # of ``seconds``: HDBSCAN's labels (and nr_topics' merging) on it


@dataclasses.dataclass(frozen=True)
class TrialLabels:
    key: str
    labels: np.ndarray | None
    error: str | None
    seconds: float


@dataclasses.dataclass
class SweepStats:
    trials: int = 0
    groups: int = 0
    reductions_computed: int = 0
    reductions_reused: int = 0
    trees_built: int = 0
    clusterings: int = 0
    outlier_variants: int = 0
    outlier_seconds: float = 0.0
    workers: int = 0
    seconds: float = 0.0
    # Where the time went, summed over the workers (so up to ``workers`` times the wall time): building the
    # neighbour graphs, the UMAP layouts, HDBSCAN's clusterings, and scoring the labels (in the caller).
    graph_seconds: float = 0.0
    layout_seconds: float = 0.0
    clustering_seconds: float = 0.0
    scoring_seconds: float = 0.0


def run_group(task: GroupTask) -> GroupOutcome:
    """One worker task: the reduction (cached), then every clustering on it, then its outlier variants."""
    from topic_pipeline.engine.clustering import TreeClusterer, renumber_by_frequency, topic_model_from_clusters
    from topic_pipeline.engine.outliers import Clustering, reduce_outliers, vectorizer_params
    from topic_pipeline.engine.reduction import cached_reduction

    started = time.perf_counter()
    numba_cache.enable()
    # Mapped, not read: a worker takes the pages it touches from the page cache the workers share instead of
    # holding its own full copy from the start (UMAP and NNDescent still copy what they fit on; the parent
    # verified the file's sha256 before handing it out).
    embeddings = np.load(task.source.path, mmap_mode="r", allow_pickle=False)
    spec = task.reduction_spec
    cache = ArrayCache(task.cache_dir)
    try:
        reduction, cached = cached_reduction(cache, task.source.cache_key, embeddings, spec, task.largest_k)
    except Exception as exc:  # a failed reduction fails its trials, not the sweep
        error = error_text(exc)
        return GroupOutcome({}, {c: error for c in task.clusterings}, False, 0, time.perf_counter() - started)
    layout_seconds = time.perf_counter() - started
    clustering_seconds = 0.0
    clusterer = TreeClusterer(reduction)
    texts = list(task.texts) if task.texts is not None else None
    labels: dict[ClusteringSpec, np.ndarray] = {}
    errors: dict[ClusteringSpec, str] = {}
    bases: dict[tuple, list[ClusteringSpec]] = {}
    for clustering in task.clusterings:
        bases.setdefault(clustering.base, []).append(clustering)
    outlier_variants, outlier_seconds = 0, 0.0
    # Trees are built per min_samples; ordering by it keeps one tree hot at a time.
    for base in sorted(bases, key=lambda b: (b[1] or b[0], b[0], b[2])):
        min_cluster_size, min_samples, epsilon, nr_topics = base
        clustering_started = time.perf_counter()
        try:
            clusters = clusterer.labels(min_cluster_size, min_samples, epsilon)
            model = None
            if nr_topics == "none":
                plain = renumber_by_frequency(clusters)
            else:
                model = topic_model_from_clusters(clusters, texts or [], embeddings, nr_topics)
                plain = np.asarray(model.topics_, dtype=np.int64)
        except Exception as exc:  # one bad combination must not sink the group
            errors.update({clustering: error_text(exc) for clustering in bases[base]})
            continue
        finally:
            clustering_seconds += time.perf_counter() - clustering_started
        variants: dict[tuple, list[ClusteringSpec]] = {}
        for clustering in bases[base]:
            if clustering.outlier_reduction == "none":
                labels[clustering] = plain
            else:
                variants.setdefault((clustering.outlier_reduction, clustering.n_gram_max), []).append(clustering)
        inputs = Clustering(
            clusters, plain, embeddings, texts, clusterer.data, min_cluster_size, min_samples, epsilon, nr_topics, model
        )
        for (strategy, n_gram_max), specs in variants.items():
            variant_started = time.perf_counter()
            try:
                vectorizer = None if n_gram_max is None else vectorizer_params(n_gram_max)
                reduced = reduce_outliers(
                    inputs, strategy, sorted({c.outlier_threshold for c in specs}), vectorizer, task.stopwords_language
                )
                labels.update({clustering: reduced[clustering.outlier_threshold] for clustering in specs})
                outlier_variants += len(specs)
            except Exception as exc:
                errors.update({clustering: error_text(exc) for clustering in specs})
            outlier_seconds += time.perf_counter() - variant_started
    return GroupOutcome(
        labels,
        errors,
        cached,
        clusterer.trees_built,
        time.perf_counter() - started,
        outlier_variants,
        outlier_seconds,
        layout_seconds,
        clustering_seconds,
    )


def build_graphs(tasks: tuple[GroupTask, ...]) -> float:
    """Compute (or find cached) the neighbour graphs these tasks need, in one process (none where the
    reductions are plain UMAP fits); returns the seconds it took."""
    from topic_pipeline.engine.neighbors import prepare
    from topic_pipeline.engine.reduction import neighbour_graph

    if not umap_compat.supported():
        return 0.0
    started = time.perf_counter()
    for task in tasks:
        data = prepare(np.load(task.source.path, mmap_mode="r", allow_pickle=False))
        neighbour_graph(
            ArrayCache(task.cache_dir), task.source.cache_key, data, task.n_neighbors, task.largest_k, task.seed
        )
    return time.perf_counter() - started


def _clustering_of(params: TrialParams) -> ClusteringSpec:
    return ClusteringSpec(
        params.hdbscan_min_cluster_size,
        params.hdbscan_min_samples,
        params.hdbscan_cluster_selection_epsilon,
        params.nr_topics,
        params.outlier_reduction,
        params.outlier_threshold,
        params.labelling_n_gram_max,
    )


def plan_groups(
    trials: Iterable[tuple[str, TrialParams]],
    sources: dict[str, EmbeddingSource],
    texts: list[str],
    seed: int,
    cache_dir: Path,
    stopwords_language: str = "english",
) -> list[tuple[GroupTask, dict[ClusteringSpec, list[str]]]]:
    """Group trials by reduction; returns each task with the trial keys of each of its clusterings."""
    trials = list(trials)
    largest_k: dict[str, int] = {}
    for _, params in trials:
        set_key = params.embedding_set.key
        largest_k[set_key] = max(largest_k.get(set_key, EXACT_GRAPH_MIN_K), params.umap_n_neighbors)
    grouped: dict[tuple, dict[ClusteringSpec, list[str]]] = {}
    for key, params in trials:
        group = (
            params.embedding_set.key,
            params.umap_n_neighbors,
            params.umap_n_components,
            params.umap_min_dist,
            params.umap_seed(seed),
        )
        grouped.setdefault(group, {}).setdefault(_clustering_of(params), []).append(key)
    plans = []
    for (set_key, n_neighbors, n_components, min_dist, trial_seed), clusterings in grouped.items():
        source = sources[set_key]
        needs_texts = any(c.nr_topics != "none" or c.outlier_reduction in VECTORIZER_STRATEGIES for c in clusterings)
        task = GroupTask(
            source=source,
            n_neighbors=n_neighbors,
            n_components=n_components,
            min_dist=min_dist,
            seed=trial_seed,
            largest_k=min(largest_k[set_key], source.n_documents - 1) if is_small(source.n_documents) else n_neighbors,
            cache_dir=str(cache_dir),
            clusterings=tuple(clusterings),
            texts=tuple(texts) if needs_texts else None,
            stopwords_language=stopwords_language,
        )
        plans.append((task, clusterings))
    return plans


def stop_joblib_workers() -> None:
    """Shut down joblib's reusable loky workers, if any were started.

    A plain HDBSCAN fit outside ``clustering.joblib_in_this_process`` (the reference engine's) computes core
    distances in joblib processes, which leaves loky workers idling for minutes; a process that exits while
    they live waits for them. Through loky's
    public ``get_reusable_executor``: ``reuse=True`` hands back the running executor whatever it was
    started with (where none runs it makes an idle one, which starts no worker).
    """
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor(reuse=True).shutdown(wait=True, kill_workers=True)


def _warm_worker() -> None:
    from multiprocessing.util import Finalize

    # Runs before the worker joins its children at exit (exit priority >= 0).
    Finalize(None, stop_joblib_workers, exitpriority=10)
    # A worker whose step was killed would otherwise compute on for nobody.
    exit_with_parent()

    # Imports are the slow part of a worker's start; numba compiles (or loads from its cache) on the
    # first task.
    import hdbscan  # noqa: F401

    numba_cache.enable()  # imports umap


class SweepEngine:
    """Runs trials through the shared caches with a pool of long-lived worker processes."""

    def __init__(
        self,
        cache_dir: str | Path,
        seed: int = 42,
        workers: int | None = None,
        pool: WorkerPool | None = None,
        stopwords_language: str = "english",
    ):
        self.cache_dir = Path(cache_dir)
        self.seed = seed
        self.stopwords_language = stopwords_language
        self.workers = pool.workers if pool else (workers or (os.cpu_count() or 1))
        # An open pool outlives this run: its workers stay warm for the next (a search's next round).
        self.pool = pool

    def run(
        self,
        trials: Iterable[tuple[str, TrialParams]],
        sources: dict[str, EmbeddingSource],
        texts: list[str],
        on_trial: Callable[[TrialLabels], None],
        meanwhile: Callable[[], None] | None = None,
    ) -> SweepStats:
        """Computes every trial's labels; ``on_trial`` is called in this process as each one is ready.

        ``meanwhile`` is called once the work is handed out, before the first result: preparation of
        this process's own (the tracker's connection, say) that then overlaps the workers' start.
        """
        meanwhile = meanwhile or (lambda: None)
        started = time.perf_counter()
        plans = plan_groups(trials, sources, texts, self.seed, self.cache_dir, self.stopwords_language)
        stats = SweepStats(trials=sum(len(keys) for _, c in plans for keys in c.values()), groups=len(plans))
        workers = max(1, min(self.workers, len(plans)))
        stats.workers = workers

        def deliver(task: GroupTask, clusterings: dict[ClusteringSpec, list[str]], outcome: GroupOutcome) -> None:
            stats.reductions_reused += int(outcome.reduction_cached)
            stats.reductions_computed += int(not outcome.reduction_cached)
            stats.trees_built += outcome.trees_built
            stats.clusterings += len(outcome.labels) - outcome.outlier_variants
            stats.outlier_variants += outcome.outlier_variants
            stats.outlier_seconds += outcome.outlier_seconds
            stats.layout_seconds += outcome.layout_seconds
            stats.clustering_seconds += outcome.clustering_seconds
            share = outcome.seconds / max(1, sum(len(k) for k in clusterings.values()))
            for clustering, keys in clusterings.items():
                for key in keys:
                    on_trial(TrialLabels(key, outcome.labels.get(clustering), outcome.errors.get(clustering), share))

        if workers == 1 and self.pool is None:
            meanwhile()
            try:
                # The graphs first, as the pool does, so that their time is told apart from the layouts'.
                graph_tasks = _graph_tasks(plans, [0.0] * len(plans))
                stats.graph_seconds = sum(_graph_seconds(task) for task in graph_tasks.values())
                for task, clusterings in plans:
                    deliver(task, clusterings, run_group(task))
            finally:
                stop_joblib_workers()
        elif self.pool is not None:
            stats.graph_seconds = self._run_in_pool(self.pool.executor, plans, self.pool.workers, deliver, meanwhile)
        else:
            with WorkerPool(workers) as pool:
                stats.graph_seconds = self._run_in_pool(pool.executor, plans, workers, deliver, meanwhile)
        stats.seconds = time.perf_counter() - started
        return stats

    @staticmethod
    def _run_in_pool(
        pool: ProcessPoolExecutor,
        plans: list,
        workers: int,
        deliver: Callable[[GroupTask, dict, GroupOutcome], None],
        meanwhile: Callable[[], None],
    ) -> float:
        """Run the plans on ``pool``; returns the seconds the workers spent building neighbour graphs."""
        costs = [task_cost(task) for task, _ in plans]
        queue = LayoutQueue(dict(enumerate(costs)), workers)
        graph_tasks = _graph_tasks(plans, costs)
        # Queued first, so they start first: one task per neighbour graph, largest layouts' first (those are
        # handed out first), so the graphs of one embedding set are built on every worker at once rather than
        # one after another on one while the others wait; workers left over load UMAP's layout code. A group
        # task whose graph is still being built waits on the graph's cache lock, then reuses it.
        graphs = [pool.submit(build_graphs, (task,)) for task in graph_tasks.values()]
        preparation = graphs + [pool.submit(warm_up_layout) for _ in range(max(0, workers - len(graph_tasks)))]
        running: dict[Future, int] = {}

        def hand_out() -> None:
            index = queue.take(time.perf_counter())
            if index is not None:
                running[pool.submit(run_group, plans[index][0])] = index

        # One group task per worker, queued behind the preparation; after that, one as each ends, so
        # the queue chooses with the workers' progress known (work_queue.py).
        for _ in range(workers):
            hand_out()
        meanwhile()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                index = running.pop(future)
                outcome = future.result()
                queue.finished(index, outcome.seconds)
                hand_out()  # before delivering: the worker that ended is not left idle meanwhile
                deliver(*plans[index], outcome)
        # A failed graph build has already failed its trials, through the group tasks that retried it.
        wait(preparation)
        return sum(future.result() for future in graphs if future.exception() is None)


def _graph_seconds(task: GroupTask) -> float:
    """``build_graphs`` of one task in this process; a failed build fails its trials through their group tasks,
    which retry it, as in the pool."""
    try:
        return build_graphs((task,))
    except Exception:  # the group tasks that need the graph record the error for their trials
        return 0.0


def _graph_tasks(plans: list, costs: list[float]) -> dict[str, GroupTask]:
    """One group task per neighbour graph the plans need, those of the costliest layouts first."""
    tasks: dict[str, GroupTask] = {}
    for index in sorted(range(len(plans)), key=costs.__getitem__, reverse=True):
        tasks.setdefault(_graph_key(plans[index][0]), plans[index][0])
    return tasks


def _graph_key(task: GroupTask) -> str:
    return knn_cache_key(task.source.cache_key, task.source.n_documents, task.n_neighbors, task.largest_k, task.seed)


def task_cost(task: GroupTask) -> float:
    """A group task's work for the work queue: its UMAP layout, or nothing if the reduction is cached
    (clustering a cached reduction is short next to a layout)."""
    from topic_pipeline.engine.reduction import reduction_cache_key

    if ArrayCache(task.cache_dir).path(reduction_cache_key(task.source.cache_key, task.reduction_spec)).exists():
        return 0.0
    return layout_cost(task.source.n_documents, task.n_neighbors, task.n_components)


@contextmanager
def _parent_main_hidden() -> Iterator[None]:
    """Spawn workers without re-running the parent's main module in them.

    multiprocessing's spawn imports the parent's ``__main__`` in every child. For a Dagster step that is
    the whole CLI with Dagster and the pipeline's definitions: seconds and ~100 MB per worker, none of
    it needed, since workers only run this module's functions.
    """
    main = sys.modules["__main__"]
    saved = {name: main.__dict__[name] for name in ("__file__", "__spec__") if name in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.update(saved)
        if "__spec__" not in saved:
            main.__dict__.pop("__spec__", None)


class WorkerPool:
    """Worker processes for the engine: imports and numba compilation paid once per worker, for as many
    sweeps as run while the pool is open (``with WorkerPool(2) as pool: SweepEngine(..., pool=pool)``)."""

    def __init__(self, workers: int | None = None):
        self.workers = max(1, workers or (os.cpu_count() or 1))
        self.executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> WorkerPool:
        context = multiprocessing.get_context("spawn")
        self.executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=context, initializer=_warm_worker)
        # Start every worker now (the executor would start one per submitted task), so they import and
        # warm up while the caller prepares the work.
        with _parent_main_hidden():
            for _ in range(self.workers):
                self.executor.submit(os.getpid)
        return self

    def __exit__(self, *exc: object) -> None:
        # Leaving on an error (a stopped step, say): the tasks not yet started are dropped.
        self.executor.shutdown(wait=True, cancel_futures=exc[0] is not None)
        self.executor = None

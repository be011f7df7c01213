"""The fast engine gives exactly the labels of a plain BERTopic fit (up to BERTopic's renumbering).

Real UMAP, HDBSCAN and BERTopic on both sides of UMAP's 4,096-document threshold, where its
neighbour search changes from an exact all-pairs computation to a seeded NNDescent.
"""

import dataclasses
import os

import numpy as np
import pytest

from topic_pipeline.engine.fast import EmbeddingSource, SweepEngine, WorkerPool
from topic_pipeline.engine.reference import run_reference_trial
from topic_pipeline.inputs.grid import ParamGrid


def canonical(labels: np.ndarray) -> np.ndarray:
    """Labels renamed by first appearance, -1 kept: equal iff the partitions (and outliers) are equal."""
    mapping: dict[int, int] = {}
    out = []
    for label in labels.tolist():
        if label == -1:
            out.append(-1)
        else:
            out.append(mapping.setdefault(label, len(mapping)))
    return np.asarray(out)


def blobs(n: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, 48)) * 1.5
    members = rng.integers(0, 8, n)
    embeddings = (centres[members] + rng.normal(size=(n, 48))).astype(np.float32)
    vocabulary = [f"word{i}" for i in range(40)]
    texts = [" ".join(rng.choice(vocabulary[m * 5 : m * 5 + 8], size=6)) + f" doc{i}" for i, m in enumerate(members)]
    return embeddings, texts


def run_engine(tmp_path, embeddings, texts, trials, workers, pool=None):
    path = tmp_path / "embeddings.npy"
    np.save(path, embeddings)
    set_key = trials[0][1].embedding_set.key
    sources = {set_key: EmbeddingSource(str(path), "test-embeddings", len(embeddings))}
    collected = {}
    stats = SweepEngine(tmp_path / "cache", seed=42, workers=workers, pool=pool).run(
        trials, sources, texts, lambda trial: collected.__setitem__(trial.key, trial)
    )
    return collected, stats


def assert_same_as_bertopic(trials, collected, embeddings, texts):
    reference_by_labels_config: dict[tuple, np.ndarray] = {}
    for key, params in trials:
        assert collected[key].error is None, collected[key].error
        config = (
            params.umap_n_neighbors,
            params.umap_n_components,
            params.umap_min_dist,
            params.hdbscan_min_cluster_size,
            params.hdbscan_min_samples,
            params.hdbscan_cluster_selection_epsilon,
            params.nr_topics,
            params.seed_replicate,
        )
        if config not in reference_by_labels_config or params.n_gram_max == 1:
            reference_by_labels_config[config] = run_reference_trial(embeddings, texts, params, seed=42).labels
        np.testing.assert_array_equal(
            canonical(collected[key].labels), canonical(reference_by_labels_config[config]), err_msg=key
        )


def test_two_trials_label_as_plain_bertopic_in_the_fast_tier(tmp_path):
    """The fast tier's one computation of labels: two trials sharing a reduction and a tree, against two plain
    BERTopic fits (the tests below cover the grid, both sides of UMAP's exact-search threshold and the pool)."""
    embeddings, texts = blobs(300)
    grid = ParamGrid.from_mapping(
        {"umap_n_neighbors": [10], "umap_n_components": [5], "hdbscan_min_cluster_size": [8, 25]}
    )
    trials = [(t.key, t) for t in grid.trials()]
    collected, stats = run_engine(tmp_path, embeddings, texts, trials, workers=1)
    assert stats.reductions_computed == 1 and stats.trees_built == 2
    assert_same_as_bertopic(trials, collected, embeddings, texts)


@pytest.mark.slow
def test_small_corpus_labels_equal_plain_bertopic(tmp_path):
    embeddings, texts = blobs(500)
    grid = ParamGrid.from_mapping(
        {
            "umap_n_neighbors": [6, 12],
            "umap_n_components": [5],
            "umap_min_dist": [0.0],
            "hdbscan_min_cluster_size": [8, 25],
            "hdbscan_min_samples": [None, 3],
            "hdbscan_cluster_selection_epsilon": [0.0, 0.4],
            "nr_topics": ["none"],
        }
    )
    reduced = ParamGrid.from_mapping(
        {
            "umap_n_neighbors": [12],
            "umap_n_components": [5],
            "hdbscan_min_cluster_size": [8],
            "hdbscan_min_samples": [None, 3],
            "nr_topics": [4, "auto"],
            "n_gram_max": [1, 2],
        }
    )
    # A search's stability trial: the same configuration with UMAP seed 42 + 2.
    replicate = dataclasses.replace(grid.trials()[0], seed_replicate=2)
    trials = [(t.key, t) for t in grid.trials() + reduced.trials() + [replicate]]
    collected, stats = run_engine(tmp_path, embeddings, texts, trials, workers=1)
    assert stats.trials == len(trials) == 25
    # 2 reductions (one per n_neighbors) plus the replicate's, not one per trial. Trees: one per
    # (reduction, effective min_samples): None means min_cluster_size, so {8, 25, 3} per reduction; the
    # nr_topics trials (n_neighbors 12, min_cluster_size 8, min_samples None or 3) reuse trees already built.
    assert stats.reductions_computed == 3
    assert stats.trees_built == 2 * 3 + 1
    assert_same_as_bertopic(trials, collected, embeddings, texts)
    # Trials that differ only in n-gram range share one clustering.
    by_ngram = {}
    for key, params in trials:
        if params.nr_topics != "none":
            by_ngram.setdefault(dataclasses.replace(params, n_gram_max=1).key, []).append(collected[key].labels)
    assert all(len(group) == 2 and np.array_equal(*group) for group in by_ngram.values())

    # A second sweep, in a pool of two worker processes, reuses every reduction from the disk cache
    # and gives the same labels; a third on the same open pool (a search's next round) runs in the
    # same, already warm, worker processes.
    with WorkerPool(2) as pool:
        again, stats_again = run_engine(tmp_path, embeddings, texts, trials, workers=None, pool=pool)
        warm = set(pool.executor.map(_worker_pid, range(8)))
        run_engine(tmp_path, embeddings, texts, trials[:1], workers=None, pool=pool)
        assert set(pool.executor.map(_worker_pid, range(8))) <= warm
    assert stats_again.workers == 2
    assert stats_again.reductions_computed == 0 and stats_again.reductions_reused == 3
    for key in collected:
        np.testing.assert_array_equal(again[key].labels, collected[key].labels)


@pytest.mark.slow
def test_large_corpus_labels_equal_plain_bertopic(tmp_path):
    """Above 4,096 documents UMAP uses NNDescent: the engine must hand UMAP its post-search RandomState."""
    embeddings, texts = blobs(4200, seed=1)
    grid = ParamGrid.from_mapping(
        {
            "umap_n_neighbors": [10, 15],
            "umap_n_components": [5],
            "hdbscan_min_cluster_size": [30],
            "hdbscan_min_samples": [None],
            "hdbscan_cluster_selection_epsilon": [0.0],
            "nr_topics": ["none", 5],
        }
    )
    trials = [(t.key, t) for t in grid.trials()]
    collected, stats = run_engine(tmp_path, embeddings, texts, trials, workers=1)
    assert stats.reductions_computed == 2
    assert_same_as_bertopic(trials, collected, embeddings, texts)


@pytest.mark.slow
def test_a_failing_clustering_fails_only_its_trials(tmp_path):
    embeddings, texts = blobs(300)
    good = ParamGrid.from_mapping({"umap_n_neighbors": [10], "hdbscan_min_cluster_size": [10]}).trials()[0]
    # Larger than the corpus: HDBSCAN cannot form a cluster; with nr_topics set BERTopic then fails.
    bad = ParamGrid.from_mapping(
        {"umap_n_neighbors": [10], "hdbscan_min_cluster_size": [299], "nr_topics": [3]}
    ).trials()[0]
    collected, _ = run_engine(tmp_path, embeddings, texts, [(good.key, good), (bad.key, bad)], workers=1)
    assert collected[good.key].error is None and collected[good.key].labels is not None
    reference_failed = False
    try:
        run_reference_trial(embeddings, texts, bad, seed=42)
    except Exception:
        reference_failed = True
    # The engine fails exactly when BERTopic would, and then only that trial.
    assert (collected[bad.key].error is not None) == reference_failed


def _use_joblib_like_hdbscan(_: int) -> int:
    import time

    from joblib import Parallel, delayed

    # HDBSCAN's Boruvka code does this above 16,384 points; loky's workers then idle for 300 s.
    total = sum(Parallel(n_jobs=2, max_nbytes=None)(delayed(abs)(-i) for i in range(4)))
    time.sleep(2)  # the sweep goes on working while loky's workers idle
    return total


@pytest.mark.slow
def test_worker_pool_exits_although_joblib_workers_were_started():
    import multiprocessing
    import time
    from concurrent.futures import ProcessPoolExecutor

    from topic_pipeline.engine.fast import _warm_worker

    started = time.perf_counter()
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_warm_worker
    ) as pool:
        assert pool.submit(_use_joblib_like_hdbscan, 0).result() == 6
    # Without stopping loky's workers the pool's shutdown waits for their 300 s idle timeout.
    assert time.perf_counter() - started < 120


def _worker_pid(_: int) -> int:
    return os.getpid()


@pytest.mark.slow
def test_workers_do_not_rerun_the_parent_main_module(tmp_path):
    """A Dagster step's main module is the whole CLI; spawned workers must not import it again."""
    import subprocess
    import sys
    import textwrap

    marker = tmp_path / "main_module_runs.txt"
    script = tmp_path / "parent_main.py"
    script.write_text(
        textwrap.dedent(f"""
        import os
        with open({str(marker)!r}, "a") as runs:
            runs.write(str(os.getpid()) + "\\n")
        if __name__ == "__main__":
            from topic_pipeline.engine.fast import WorkerPool
            with WorkerPool(2) as pool:
                workers = {{pool.executor.submit(os.getpid).result() for _ in range(4)}}
            print(len(workers))
    """)
    )
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert int(completed.stdout) >= 1  # the workers ran tasks
    assert len(marker.read_text().split()) == 1  # the parent's own run only


@pytest.mark.slow
def test_a_cached_reduction_costs_the_scheduler_nothing(tmp_path):
    from topic_pipeline.engine.fast import plan_groups, task_cost
    from topic_pipeline.engine.reduction import reduction_cache_key
    from topic_pipeline.storage.array_cache import ArrayCache

    grid = ParamGrid.from_mapping({"umap_n_neighbors": [12, 16], "umap_n_components": [5, 9]})
    trials = [(t.key, t) for t in grid.trials()]
    sources = {trials[0][1].embedding_set.key: EmbeddingSource("unused.npy", "embeddings", 5000)}
    tasks = {(task.n_neighbors, task.n_components): task for task, _ in plan_groups(trials, sources, [], 42, tmp_path)}
    assert task_cost(tasks[16, 9]) > task_cost(tasks[12, 9]) > task_cost(tasks[12, 5]) > 0
    assert task_cost(tasks[16, 9]) > task_cost(tasks[16, 5]) > task_cost(tasks[12, 5])
    ArrayCache(tmp_path).store(
        reduction_cache_key("embeddings", tasks[16, 9].reduction_spec), {"reduction": np.zeros(1)}
    )
    assert task_cost(tasks[16, 9]) == 0


@pytest.mark.slow
def test_hdbscan_in_one_process_labels_as_its_parallel_default_above_its_split_threshold():
    """Above 16,384 points HDBSCAN's default queries the core distances in 4 pieces in joblib processes; the
    engine queries the same pieces in its own process (memory). The same labels, also where many neighbours
    tie (exact duplicates, an integer lattice), which a single unsplit query does not give."""
    import psutil
    from hdbscan import HDBSCAN

    from topic_pipeline.domain.trials import hdbscan_settings
    from topic_pipeline.engine.clustering import TreeClusterer
    from topic_pipeline.engine.fast import stop_joblib_workers

    rng = np.random.default_rng(5)
    centres = rng.normal(size=(12, 5)) * 6
    points = (centres[rng.integers(0, 12, 17_500)] + rng.normal(size=(17_500, 5))).astype(np.float32)
    data = np.concatenate([points, points[:500]])  # 500 exact duplicates
    # A lattice: integer coordinates, so many neighbours of a point lie at exactly the same distance, and
    # points three times over.
    lattice = np.concatenate([rng.integers(0, 12, size=(6_000, 3)).astype(np.float32)] * 3)
    cases = [
        (data, [(50, None, 0.0), (50, 5, 0.0), (200, None, 0.0), (100, 5, 0.5)]),
        (lattice, [(20, 3, 0.0), (50, None, 0.0)]),
    ]
    try:
        stop_joblib_workers()  # leaves loky's resource tracker, no worker
        before = {child.pid for child in psutil.Process().children()}
        engine = [[TreeClusterer(points).labels(*request) for request in requests] for points, requests in cases]
        assert not {child.pid for child in psutil.Process().children()} - before  # no joblib process was started
        for (points, requests), labels in zip(cases, engine):
            for request, engine_labels in zip(requests, labels):
                plain = HDBSCAN(**hdbscan_settings(*request)).fit(points).labels_
                assert plain.max() >= 1
                np.testing.assert_array_equal(engine_labels, plain, err_msg=str(request))
    finally:
        stop_joblib_workers()

"""Benchmark: the common approach versus the pipeline's own sweep, same machine, corpus and grid.

(a) The common approach: one full ``BERTopic.fit_transform`` per combination, with precomputed
    embeddings, in a ``ProcessPoolExecutor`` with one worker per core.
(b) The pipeline as users launch it: ``topic-pipeline sweep`` on a fresh persistent Dagster instance
    (multiprocess executor, trial partitions batched per run, MLflow logging, leaderboard).

Both start from the same embeddings, computed before either clock starts. The benchmark checks that
every trial's metrics agree between (a) and (b), and prints wall time, trials per minute, the ratio
and the peak memory (resident set, summed over the whole process tree).

    make benchmark                                      # 5,000 documents, the 180-trial grid
    make benchmark ARGS="--grid quick"                  # 32 trials, a few minutes
    make benchmark ARGS="--docs 50000 --skip-baseline"  # scale: time and memory of (b) only
    make benchmark ARGS=--cold-compile-cache            # as the first sweep after installing: numba compiles all
    make benchmark ARGS="--docs 300000 --grid large --skip-baseline"   # size: the 50-trial large-corpus grid
    make benchmark ARGS="--docs 60000 --grid large --baseline-sample 2"  # (a) on 2 trials, extrapolated

The last lines are machine-readable: ``sweep_s``, ``peak_rss_gib``, ``embed_s`` and ``per_stage`` (the
engine's stages summed over its workers, the leaderboard's and the report's steps).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ISSUE_GRID = {
    "umap_n_neighbors": [12, 14, 16],
    "umap_n_components": [7, 8, 9, 10, 11],
    "umap_min_dist": [0.1],
    "hdbscan_min_cluster_size": [3],
    "hdbscan_min_samples": [8, 9, 10],
    "hdbscan_cluster_selection_epsilon": [0.3, 0.5],
    "nr_topics": ["none"],
    "n_gram_max": [2, 3],
    "remove_stopwords": [False],
}
# Issue #29's large-corpus grid: 5 UMAP layouts x 10 HDBSCAN variants (min_samples unset: HDBSCAN's default,
# equal to min_cluster_size).
LARGE_GRID = {
    "umap_n_neighbors": [10, 15, 30, 50, 100],
    "umap_n_components": [5],
    "umap_min_dist": [0.0],
    "hdbscan_min_cluster_size": [50, 100, 200, 400, 800],
    "hdbscan_min_samples": [5, None],
    "hdbscan_cluster_selection_epsilon": [0.0],
    "nr_topics": ["none"],
    "n_gram_max": [1],
    "remove_stopwords": [False],
}
QUICK_GRID = {**ISSUE_GRID, "umap_n_neighbors": [12, 16], "umap_n_components": [7, 10], "hdbscan_min_samples": [8, 10]}
COMPARED_METRICS = ("ari", "ami", "nmi", "v_measure", "f1_macro", "f1_weighted", "outlier_fraction", "topic_count")


class TreeMemorySampler:
    """Peak of the summed resident memory of this process and all its descendants (Linux /proc)."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.peak_bytes = 0
        # The same, proportional (PSS): a page shared by several processes (the memory-mapped embeddings) is
        # split between them instead of counted in full in each.
        self.peak_proportional_bytes = 0
        self.samples: list[tuple[float, int]] = []  # (time.time(), summed bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _children(pid: int) -> list[int]:
        found = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
        return found

    @staticmethod
    def _field(path: str, name: str) -> int:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(name):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _total(self) -> tuple[int, int]:
        """(resident, proportional) bytes summed over the process tree."""
        resident = proportional = 0
        stack = [os.getpid()]
        while stack:
            pid = stack.pop()
            resident += self._field(f"/proc/{pid}/status", "VmRSS:")
            proportional += self._field(f"/proc/{pid}/smaps_rollup", "Pss:")
            stack += self._children(pid)
        return resident, proportional

    def _run(self) -> None:
        while not self._stop.is_set():
            total, proportional = self._total()
            self.samples.append((time.time(), total))
            self.peak_bytes = max(self.peak_bytes, total)
            self.peak_proportional_bytes = max(self.peak_proportional_bytes, proportional)
            time.sleep(self.interval)

    def __enter__(self) -> TreeMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


_worker_state: dict[str, object] = {}


def _init_common_worker(embeddings_path: str, texts: list[str], positions: np.ndarray, classes: np.ndarray) -> None:
    _worker_state.update(
        embeddings=np.load(embeddings_path, allow_pickle=False), texts=texts, positions=positions, classes=classes
    )


def _common_trial(params_dict: dict) -> tuple[str, dict[str, float] | None, str | None]:
    """What a script does per combination: a full BERTopic fit, then the score."""
    from topic_pipeline.domain.trials import TrialParams
    from topic_pipeline.engine.reference import run_reference_trial
    from topic_pipeline.scoring.metrics import score

    params = TrialParams.from_dict(params_dict)
    try:
        outcome = run_reference_trial(_worker_state["embeddings"], _worker_state["texts"], params, seed=42)
    except Exception as exc:
        return params.key, None, repr(exc)
    labels = outcome.labels
    metrics = score(
        _worker_state["classes"], labels[_worker_state["positions"]], topic_count=len(np.unique(labels[labels >= 0]))
    )
    return params.key, metrics, None


def _step_seconds(instance) -> dict[str, float]:
    """Seconds each step of the sweep's runs took (the trials, the leaderboard, the report...), summed over runs."""
    totals: dict[str, float] = {}
    for record in instance.get_run_records():
        for stats in instance.get_run_step_stats(record.dagster_run.run_id):
            if stats.start_time and stats.end_time:
                totals[stats.step_key] = totals.get(stats.step_key, 0.0) + stats.end_time - stats.start_time
    return totals


def common_approach(embeddings_path: Path, texts: list[str], positions, classes, trials, workers: int):
    started = time.perf_counter()
    with ProcessPoolExecutor(
        max_workers=workers, initializer=_init_common_worker, initargs=(str(embeddings_path), texts, positions, classes)
    ) as pool:
        results = {
            key: (metrics, error) for key, metrics, error in pool.map(_common_trial, [t.to_dict() for t in trials])
        }
    return results, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="make benchmark ARGS=...", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--topics", type=int, default=12)
    parser.add_argument("--grid", choices=("issue", "quick", "large"), default="issue")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-baseline", action="store_true", help="time only the pipeline's sweep (for scale runs)")
    parser.add_argument(
        "--baseline-sample",
        type=int,
        default=0,
        help="run (a) on the grid's first N trials only and extrapolate its time to the whole grid (0: all)",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the benchmark's files here (default: a temp dir)"
    )
    parser.add_argument(
        "--cold-compile-cache",
        action="store_true",
        help="start (a) and (b) from an empty numba cache, as the first sweep after installing does "
        "(default: numba's cache as earlier runs on this machine left it)",
    )
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="topic-pipeline-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.cold_compile_cache:
        # Every process of both sides (Dagster steps, engine workers, the baseline's pool) inherits it.
        numba_cache_dir = Path(tempfile.mkdtemp(prefix="numba-cache-", dir=workdir))
        os.environ["NUMBA_CACHE_DIR"] = str(numba_cache_dir)
        print(f"compiled-code cache: cold (empty NUMBA_CACHE_DIR {numba_cache_dir})")
    else:
        print("compiled-code cache: as left by earlier runs on this machine (--cold-compile-cache to start empty)")
    grid = {"issue": ISSUE_GRID, "quick": QUICK_GRID, "large": LARGE_GRID}[args.grid]
    from topic_pipeline.processes import stopped_on_signal

    # Ctrl-C or SIGTERM ends the benchmark and every process it started (the sweep's steps and workers,
    # the baseline's pool), as they end `topic-pipeline sweep`.
    with stopped_on_signal():
        _run(args, workdir, grid)


@dataclass
class PreparedInputs:
    """What ``prepare_inputs`` made: the corpus and its labels, the grid's trials, the embeddings computed."""

    corpus: Any
    labels: Any
    positions: np.ndarray
    classes: np.ndarray
    trials: list
    paths: Any  # DataPaths of the data directory the embeddings were cached in
    embedded: Any
    embed_seconds: float
    embeddings_path: Path


def prepare_inputs(workdir: Path, docs: int, topics: int, grid: dict, workers: int) -> PreparedInputs:
    """Generate the labelled corpus (SQLite database, ground truth, grid file under ``workdir``), point the
    pipeline's settings at them in ``os.environ`` (data directory ``workdir/data``), and embed the corpus once
    into that data directory's cache, printing what it did."""
    from topic_pipeline.inputs.corpus import Corpus
    from topic_pipeline.inputs.demo_corpus import generate_demo_corpus
    from topic_pipeline.inputs.embeddings import EmbeddingCache, EmbeddingSettings, embed_corpus
    from topic_pipeline.inputs.grid import ParamGrid
    from topic_pipeline.inputs.ground_truth import GroundTruth

    print(f"workdir: {workdir}")
    sample = generate_demo_corpus(n_docs=docs, n_topics=topics)
    database = workdir / "corpus.db"
    database.unlink(missing_ok=True)
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE documents (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
        connection.executemany("INSERT INTO documents VALUES (?, ?)", zip(sample.ids, sample.texts))
    connection.close()
    (workdir / "ground_truth.json").write_text(json.dumps(sample.ground_truth()))
    (workdir / "grid.json").write_text(json.dumps(grid))
    os.environ.update(
        {
            "TOPIC_PIPELINE_DATA_DIR": str(workdir / "data"),
            "TOPIC_PIPELINE_DATABASE_URL": f"sqlite:///{database}",
            "TOPIC_PIPELINE_GROUND_TRUTH": str(workdir / "ground_truth.json"),
            "TOPIC_PIPELINE_GRID": str(workdir / "grid.json"),
            "TOPIC_PIPELINE_WORKERS": str(workers),
            "HF_HUB_OFFLINE": "1",
        }
    )
    corpus = Corpus(np.asarray(sample.ids, dtype=np.int64), list(sample.texts))
    labels = GroundTruth.from_mapping(sample.ground_truth())
    positions, classes = labels.aligned(corpus.ids)
    trials = ParamGrid.from_mapping(grid).trials()
    print(
        f"corpus: {len(corpus)} documents, {labels.n_clusters} labelled topics, {len(labels.cluster_of)} labelled; grid: {len(trials)} trials"
    )

    # Embeddings first, outside both clocks, into the cache the pipeline itself reads.
    from topic_pipeline.storage.paths import DataPaths

    paths = DataPaths(workdir / "data")
    t0 = time.perf_counter()
    embedded = embed_corpus(
        corpus.texts,
        corpus.content_hash,
        trials[0].embedding_set,
        EmbeddingCache(paths.embeddings),
        EmbeddingSettings(local_files_only=True),
    )
    embed_seconds = time.perf_counter() - t0
    print(
        f"embeddings: {embedded.embeddings.shape} in {embed_seconds:.1f}s ({'cached' if embedded.from_cache else embedded.device})"
    )
    embeddings_path = EmbeddingCache(paths.embeddings).path(embedded.cache_key)
    return PreparedInputs(corpus, labels, positions, classes, trials, paths, embedded, embed_seconds, embeddings_path)


def _run(args, workdir: Path, grid: dict) -> None:
    import dagster as dg

    from topic_pipeline.storage.results import ResultStore

    prepared = prepare_inputs(workdir, args.docs, args.topics, grid, args.workers)
    corpus, labels, positions, classes = prepared.corpus, prepared.labels, prepared.positions, prepared.classes
    trials, paths, embedded = prepared.trials, prepared.paths, prepared.embedded
    embed_seconds, embeddings_path = prepared.embed_seconds, prepared.embeddings_path

    # (b) the pipeline, as users launch it.
    from topic_pipeline.cli import _execute, execute_plans, fork_steps

    fork_steps()  # as the command line does

    home = workdir / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        # As `topic-pipeline sweep` (run_sweep): the inputs first.
        _execute(instance, "refresh_inputs_job", {})
        execute_plans(instance, jobs={"embeddings_job"})  # a cache hit: embeddings computed above
        # This process runs the sweep as `topic-pipeline sweep`'s does, but also holds the generated corpus.
        own_start = TreeMemorySampler._field("/proc/self/status", "VmRSS:")
        with TreeMemorySampler() as memory:
            t0 = time.perf_counter()
            execute_plans(instance)
            pipeline_seconds = time.perf_counter() - t0
        pipeline_peak, pipeline_proportional = memory.peak_bytes, memory.peak_proportional_bytes
        step_seconds = _step_seconds(instance)
        engine_seconds = _engine_seconds(instance)
    from topic_pipeline.definitions import build_resources

    fingerprint = build_resources()["settings"].inputs_fingerprint(corpus.content_hash, labels.content_hash)
    store = ResultStore(paths.results)
    pipeline = {t.key: store.current(t.key, fingerprint, t.to_dict()) for t in trials}
    failed = [k for k, r in pipeline.items() if r is None or r.status != "ok"]

    rows = [("(b) pipeline sweep (Dagster, fast engine)", pipeline_seconds, pipeline_peak)]
    mismatches: list[str] = []
    compared = trials[: args.baseline_sample] if args.baseline_sample else trials
    if not args.skip_baseline:
        with TreeMemorySampler() as memory:
            common, common_seconds = common_approach(
                embeddings_path, corpus.texts, positions, classes, compared, args.workers
            )
        if len(compared) < len(trials):
            print(
                f"(a) ran {len(compared)} of {len(trials)} trials in {common_seconds:.1f} s; its time for all "
                f"{len(trials)} below is an extrapolation: {common_seconds:.1f} s x {len(trials)} / {len(compared)}"
            )
            common_seconds *= len(trials) / len(compared)
        rows.insert(0, ("(a) common approach (BERTopic per trial, process pool)", common_seconds, memory.peak_bytes))
        for trial in compared:
            metrics, error = common[trial.key]
            ours = pipeline[trial.key]
            if metrics is None or ours is None or ours.status != "ok":
                if (metrics is None) != (ours is None or ours.status != "ok"):
                    mismatches.append(
                        f"{trial.key}: common {'failed: ' + str(error) if metrics is None else 'ok'}, pipeline {ours.status if ours else 'missing'}"
                    )
                continue
            for name in COMPARED_METRICS:
                # (a) scores every labelled document; with a held-out split the pipeline's plain names cover
                # the selection part only, and its all_* names every labelled document.
                theirs = ours.metrics.get(f"all_{name}", ours.metrics[name])
                if not np.isclose(metrics[name], theirs, rtol=0, atol=1e-12):
                    mismatches.append(f"{trial.key}: {name} common {metrics[name]:.6f} pipeline {theirs:.6f}")

    export = _measure_export(home) if args.grid == "large" else None  # (line, whether it failed)

    print()
    print(
        "(b)'s steps, summed over its runs: "
        + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in step_seconds.items())
    )
    print(f"{'':58s} {'wall s':>9s} {'trials/min':>11s} {'peak RSS':>10s}")
    for name, seconds, peak in rows:
        print(f"{name:58s} {seconds:9.1f} {len(trials) / seconds * 60:11.1f} {peak / 2**30:8.2f} GiB")
    if not args.skip_baseline:
        print(f"\nspeed-up (a)/(b): {rows[0][1] / rows[1][1]:.1f}x")
        disagreeing = {line.split(":")[0] for line in mismatches}
        print(
            f"metrics agree on {len(compared) - len(disagreeing)}/{len(compared)} trials"
            + ("" if not mismatches else ":")
        )
        for line in mismatches[:20]:
            print("  MISMATCH", line)
    if failed:
        print(f"pipeline trials not ok: {len(failed)} (e.g. {failed[:3]})")
    best = max((r for r in pipeline.values() if r and r.status == "ok"), key=lambda r: r.metrics["ari"], default=None)
    if best:
        print(f"best trial: {best.key} ARI {best.metrics['ari']:.3f}")
    _print_needs(len(corpus), embedded.embeddings.shape[1], args.workers, trials, pipeline_peak)
    print(
        f"of (b)'s peak, this benchmark's own process (the run's coordinator) held {own_start / 2**30:.2f} GiB at the start"
    )
    if export is not None:
        print(export[0])
    print(
        f"(b)'s peak proportional set (PSS, shared pages split between processes): {pipeline_proportional / 2**30:.2f} GiB"
    )
    # The machine-readable summary, last.
    print(f"sweep_s={pipeline_seconds:.1f}")
    print(f"peak_rss_gib={pipeline_peak / 2**30:.2f}")
    print(f"embed_s={embed_seconds:.1f}" + (" (cached)" if embedded.from_cache else ""))
    stages = {**engine_seconds, "leaderboard": step_seconds.get("leaderboard", 0.0)}
    stages["report"] = step_seconds.get("sweep_report", 0.0)
    print("per_stage: " + " ".join(f"{name}={seconds:.1f}" for name, seconds in stages.items()))
    if mismatches or failed or (export is not None and export[1]):
        raise SystemExit(1)


def _measure_export(home: Path) -> tuple[str, bool]:
    """`topic-pipeline export` of the leaderboard's first trial (safetensors) after the sweep: one line with its
    time and peak memory (BERTopic refit on the stored labels), or why it failed (the sweep's figures stand),
    and whether it failed."""
    import dagster as dg

    from topic_pipeline.cli import _execute

    own_start = TreeMemorySampler._field("/proc/self/status", "VmRSS:")
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance, TreeMemorySampler() as memory:
            t0 = time.perf_counter()
            _execute(instance, "export_job", {}, run_config={"ops": {"topic_model": {"config": {}}}})
            seconds = time.perf_counter() - t0
    except (Exception, SystemExit) as exc:
        return f"export of the leaderboard's first trial: FAILED ({exc})", True
    return (
        f"export of the leaderboard's first trial (safetensors, BERTopic refit on its labels): {seconds:.1f} s, "
        f"peak {memory.peak_bytes / 2**30:.2f} GiB ({own_start / 2**30:.2f} GiB of it this process's before it started)",
        False,
    )


def _engine_seconds(instance) -> dict[str, float]:
    """The engine's stages, summed over its workers and over the trials runs (their closing observations)."""
    import dagster as dg

    names = {"graphs": "graph_seconds", "layouts": "layout_seconds", "hdbscan": "clustering_seconds"}
    names["scoring"] = "scoring_seconds"
    totals = dict.fromkeys(names, 0.0)
    records = instance.fetch_observations(dg.AssetKey("grid_trials"), limit=10_000).records
    for record in records:
        metadata = record.asset_observation.metadata if record.asset_observation else {}
        for name, key in names.items():
            if key in metadata:
                totals[name] += float(metadata[key].value)
    return totals


def _print_needs(documents: int, dimensions: int, workers: int, trials, measured_peak: int) -> None:
    """The pre-flight estimate the sweep was checked against, beside the measured peak."""
    from topic_pipeline.engine.capacity import Layout, estimate_needs

    layouts = {
        (t.embedding_set.key, t.umap_n_neighbors, t.umap_n_components, t.umap_min_dist, t.seed_replicate): Layout(
            t.umap_n_neighbors, t.umap_n_components, (t.embedding_set.key, t.umap_n_neighbors, t.seed_replicate)
        )
        for t in trials
    }
    min_samples = max(t.hdbscan_min_samples or t.hdbscan_min_cluster_size for t in trials)
    needs = estimate_needs(documents, dimensions, workers, layouts.values(), len(trials), min_samples)
    print(
        f"memory: estimated {needs.memory_bytes / 2**30:.2f} GiB before the sweep (engine/capacity.py), "
        f"measured peak {measured_peak / 2**30:.2f} GiB; disk for caches estimated {needs.disk_bytes / 2**30:.2f} GiB"
    )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])

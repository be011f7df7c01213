"""Benchmark: the same sweep locally and on a Celery cluster on this machine, side by side, in one run.

(L) Local: ``topic-pipeline sweep`` on a fresh embedded Dagster instance (SQLite, runs executed in the
    command's own process, multiprocess executor), two engine workers (``TOPIC_PIPELINE_WORKERS=2``).
(C) Cluster: ``scripts/local_cluster.py``'s cluster on this machine's PostgreSQL, RabbitMQ and Redis: the Dagster
    daemon, an MLflow server and two ``dagster-celery`` workers with one engine worker each (equal cores);
    ``refresh_inputs_job`` is submitted as the UI's launchpad does and the sweep sensor (every 2 s) launches
    the embeddings, the trials (``TOPIC_PIPELINE_SWEEP_RUNS=2``) and the leaderboard.

Both start from the same corpus, ground truth, grid and embeddings (computed once, before either clock, and
copied into each data directory). Both times run from the refresh_inputs run's creation to the sweep_report
materialisation, read from each instance's records; the cluster's start-up (services up, workers answering,
the sensor ticking) is timed separately and not counted. It prints both times, the cluster's overhead at
equal cores, a per-run timeline of the cluster (which worker ran what, when), the engine's stages of both,
then, on paper, a projection to 10 machines x 8 cores, 300,000 documents and 500 trials, every assumption
listed.

    make benchmark-cluster                      # 5,000 documents, the 180-trial grid
    make benchmark-cluster ARGS="--grid quick"  # 32 trials
    python -m benchmarks.cluster_speed --docs 1500 --grid quick   # a smoke run

The last lines are machine-readable: ``local_s``, ``cluster_s`` and ``overhead_pct``. The cluster is always
stopped (its processes ended, its databases dropped), Ctrl-C included.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.sweep_speed import ISSUE_GRID, QUICK_GRID, prepare_inputs

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from local_cluster import LocalCluster, ServiceMissing, check_services, stopped_on_signals  # noqa: E402

BIN = Path(sys.executable).parent
WORKER_TAG = "topic_pipeline/worker"
AIM_PCT = 10.0
CELERY_WORKERS = 2
SENSOR_INTERVAL_S = 2
# After the report and with no run in flight, this long without a new run ends the wait (a few sensor ticks).
QUIET_S = 4 * SENSOR_INTERVAL_S
# The engine's figures each trials run observes on grid_trials when its batch closes (trials.batch_metadata).
SUMMED = (
    "trials_in_run",
    "umap_reductions_computed",
    "hdbscan_trees_built",
    "graph_seconds",
    "layout_seconds",
    "clustering_seconds",
    "scoring_seconds",
    "run_seconds",
)
# docs/benchmarks.md, "Large corpora" (the large grid, 2 engine workers, 2-core machine): stage seconds summed
# over the workers at 60,000 and 100,000 documents, both from the version before HDBSCAN ran in the worker
# (the projection's calibration, kept as it was measured), and the large grid's 5 layouts, mean n_neighbors 41.
LARGE_60K = {"graphs": 87.0, "layouts": 548.0, "hdbscan": 191.0}
LARGE_100K = {"graphs": 135.0, "layouts": 1371.0, "hdbscan": 332.0}
LARGE_LAYOUTS, LARGE_MEAN_NEIGHBORS = 5, (10 + 15 + 30 + 50 + 100) / 5
# docs/benchmarks.md: embedding 100,000 documents on the 2-core CPU took 271.2 s.
DOCS_EMBED_S_PER_DOC_CORE = 271.2 * 2 / 100_000


@dataclass
class RunRow:
    job: str
    partitions: str
    worker: str
    status: str
    created: float
    start: float | None
    end: float | None
    run_id: str


@dataclass
class Side:
    """One sweep's measured figures, read from its instance after it ended."""

    name: str
    seconds: float = 0.0  # refresh_inputs run created -> sweep_report materialised
    started_at: float = 0.0
    report_at: float = 0.0
    runs: list[RunRow] = field(default_factory=list)
    totals: dict[str, float] = field(default_factory=dict)
    per_run: dict[str, dict[str, float]] = field(default_factory=dict)  # run id -> its trials batch's figures
    notes: list[str] = field(default_factory=list)


def _partitions(tags) -> str:
    if "dagster/partition" in tags:
        return tags["dagster/partition"].split("__")[0]
    start = next((v for k, v in tags.items() if k.endswith("partition_range_start")), "")
    end = next((v for k, v in tags.items() if k.endswith("partition_range_end")), "")
    # A trial key begins with its UMAP layout (then the embedding set, then HDBSCAN's values).
    return f"{start.split('__')[0]} .. {end.split('__')[0]}" if start else ""


def read_side(instance, side: Side) -> Side:
    """The runs, the report's time and the engine's observed figures of the sweep on ``instance``."""
    import dagster as dg

    for record in instance.get_run_records():
        run = record.dagster_run
        side.runs.append(
            RunRow(
                run.job_name,
                _partitions(run.tags),
                run.tags.get(WORKER_TAG, "-").split("@")[0],
                run.status.value,
                record.create_timestamp.timestamp(),
                record.start_time,
                record.end_time,
                run.run_id,
            )
        )
    side.runs.sort(key=lambda row: row.created)
    report = instance.get_latest_materialization_event(dg.AssetKey("sweep_report"))
    side.started_at = next((row.created for row in side.runs if row.job == "refresh_inputs_job"), side.runs[0].created)
    side.report_at = report.timestamp if report else max(row.end or 0.0 for row in side.runs)
    side.seconds = side.report_at - side.started_at
    side.totals = dict.fromkeys(SUMMED, 0.0)
    for record in instance.fetch_observations(dg.AssetKey("grid_trials"), limit=10_000).records:
        metadata = record.asset_observation.metadata if record.asset_observation else {}
        figures = {key: float(metadata[key].value) for key in SUMMED if key in metadata}
        if figures:
            side.per_run[record.event_log_entry.run_id] = figures
            for key, value in figures.items():
                side.totals[key] += value
    return side


# --- (L) local ---------------------------------------------------------------------------------------------
def run_local(workdir: Path, seed_embeddings: Path) -> Side:
    import dagster as dg

    base = workdir / "local"
    home, data = base / "dagster_home", base / "data"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    shutil.copytree(seed_embeddings, data / "embeddings")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DAGSTER_PG", "DAGSTER_CELERY")) and key != "MLFLOW_TRACKING_URI"
    }
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "TOPIC_PIPELINE_DATA_DIR": str(data),
            "TOPIC_PIPELINE_WORKERS": str(CELERY_WORKERS),
            "TOPIC_PIPELINE_SWEEP_RUNS": "1",
        }
    )
    print(f"\n(L) local: topic-pipeline sweep, {CELERY_WORKERS} engine workers, instance {home}", flush=True)
    launched = time.time()
    completed = subprocess.run(
        [str(BIN / "topic-pipeline"), "sweep"], env=env, cwd=base, capture_output=True, text=True, check=False
    )
    command_s = time.time() - launched
    if completed.returncode != 0:
        print(completed.stdout[-3000:] + completed.stderr[-3000:])
        raise SystemExit(f"(L) topic-pipeline sweep failed (exit {completed.returncode})")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        side = read_side(instance, Side("local"))
    side.notes.append(
        f"the command ran {command_s:.1f} s from launch to exit: {side.started_at - launched:.1f} s of start-up "
        "(Python, imports, settings and MLflow checks) before its first run, and "
        f"{launched + command_s - side.report_at:.1f} s after the report (leaderboard print, exit); neither counted"
    )
    print(f"(L) done: {side.seconds:.1f} s", flush=True)
    return side


# --- (C) cluster -------------------------------------------------------------------------------------------
def _wait_ready(cluster: LocalCluster, timeout_s: float = 180) -> list[str]:
    """Until every Celery worker answers a ping and the sweep sensor has ticked (it claims the data directory)."""
    from celery import Celery

    from topic_pipeline.storage.data_directory import marker_path
    from topic_pipeline.storage.paths import DataPaths

    app = Celery(broker=cluster.broker_url)
    marker = marker_path(DataPaths(cluster.data_dir))
    deadline = time.monotonic() + timeout_s
    answered: set[str] = set()
    while time.monotonic() < deadline:
        for name, process in cluster.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited; see {cluster.logs / (name + '.log')}")
        answered |= {name for reply in app.control.ping(timeout=1.0) or [] for name in reply}
        if len(answered) >= len(cluster.worker_names) and marker.exists():
            return sorted(answered)
        time.sleep(0.5)
    raise RuntimeError(
        f"cluster not ready within {timeout_s:.0f} s: workers answering {sorted(answered)}, "
        f"sensor ticked: {marker.exists()}; see {cluster.logs}"
    )


IN_FLIGHT = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")


def _wait_for_report(instance, since: float, timeout_s: float) -> None:
    """Until the sweep_report is materialised after ``since`` and no run has been in flight for ``QUIET_S``."""
    import dagster as dg

    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        runs = instance.get_runs()
        report = instance.get_latest_materialization_event(dg.AssetKey("sweep_report"))
        if any(run.status.value in IN_FLIGHT for run in runs) or report is None or report.timestamp < since:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= QUIET_S:
            return
        time.sleep(1)
    raise SystemExit(
        f"(C) no sweep_report within {timeout_s:.0f} s; runs: "
        + ", ".join(f"{run.job_name} {run.status.value}" for run in instance.get_runs())
    )


def run_cluster(workdir: Path, seed_embeddings: Path, timeout_s: float) -> tuple[Side, float]:
    root = workdir / "cluster"
    cluster = LocalCluster(
        root,
        workers=CELERY_WORKERS,
        extra_env={
            # Two Celery workers share this machine's cores: one engine worker each (equal cores with (L)).
            "TOPIC_PIPELINE_WORKERS": "1",
            "TOPIC_PIPELINE_SWEEP_RUNS": str(CELERY_WORKERS),
            "TOPIC_PIPELINE_SENSOR_INTERVAL_S": str(SENSOR_INTERVAL_S),
            **{
                key: os.environ[key]
                for key in ("TOPIC_PIPELINE_GRID", "TOPIC_PIPELINE_DATABASE_URL", "TOPIC_PIPELINE_GROUND_TRUTH")
            },
        },
    )
    shutil.copytree(seed_embeddings, cluster.data_dir / "embeddings")
    print(
        f"\n(C) cluster: {CELERY_WORKERS} Celery workers x 1 engine worker, sensor every {SENSOR_INTERVAL_S} s, "
        f"under {root} (logs in {cluster.logs})",
        flush=True,
    )
    previous = dict(os.environ)
    t0 = time.monotonic()
    try:
        with stopped_on_signals():
            cluster.start()
            answered = _wait_ready(cluster)
            startup_s = time.monotonic() - t0
            print(
                f"(C) up in {startup_s:.1f} s (not counted): workers {', '.join(answered)}; sensor ticking", flush=True
            )
            os.environ.update(cluster.env)
            import dagster as dg

            from topic_pipeline.cli import submit_run

            with dg.DagsterInstance.get() as instance:
                submitted = time.time()
                submit_run(instance, "refresh_inputs_job", {})
                _wait_for_report(instance, submitted, timeout_s)
                side = read_side(instance, Side("cluster"))
            side.notes.append(
                f"submit_run was called {side.started_at - submitted:.2f} s before the refresh_inputs run was created"
            )
            print(f"(C) done: {side.seconds:.1f} s", flush=True)
    finally:
        cluster.stop()
        os.environ.clear()
        os.environ.update(previous)
    return side, startup_s


# --- the report --------------------------------------------------------------------------------------------
def print_timeline(side: Side) -> None:
    t0 = side.started_at
    print(f"\nTimeline of (C), seconds from the refresh_inputs run's creation ({len(side.runs)} runs):")
    print(
        f"{'job':18s} {'partitions (UMAP layouts)':44s} {'worker':8s} {'queued':>7s} {'start':>7s} {'end':>7s} {'dur':>7s}  trials"
    )
    for row in side.runs:
        start = f"{row.start - t0:7.1f}" if row.start else f"{'-':>7s}"
        end = f"{row.end - t0:7.1f}" if row.end else f"{'-':>7s}"
        duration = f"{row.end - row.start:7.1f}" if row.start and row.end else f"{'-':>7s}"
        trials = side.per_run.get(row.run_id, {}).get("trials_in_run")
        status = "" if row.status == "SUCCESS" else f"  {row.status}"
        print(
            f"{row.job:18s} {row.partitions[:44]:44s} {row.worker:8s} {row.created - t0:7.1f} {start} {end} {duration}"
            f"  {'' if trials is None else int(trials)}{status}"
        )
    print(f"{'sweep_report materialised':89s} {side.report_at - t0:7.1f}")
    busy: dict[str, float] = {}
    for row in side.runs:
        if row.start and row.end:
            busy[row.worker] = busy.get(row.worker, 0.0) + row.end - row.start
    print(
        "busy per worker (sum of its runs' durations): " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(busy.items()))
    )


def print_stages(local: Side, cluster: Side) -> None:
    print(f"\nEngine figures, summed over each side's engine workers and trials runs:{'':6s}{'(L)':>9s} {'(C)':>9s}")
    labels = {
        "graph_seconds": "neighbour graphs, s",
        "layout_seconds": "UMAP layouts, s",
        "clustering_seconds": "HDBSCAN, s",
        "scoring_seconds": "scoring, s",
        "run_seconds": "trials batches' wall time, s (summed over runs)",
        "umap_reductions_computed": "layouts computed",
        "hdbscan_trees_built": "HDBSCAN trees built",
        "trials_in_run": "trials",
    }
    for key, label in labels.items():
        print(f"  {label:68s} {local.totals.get(key, 0):9.1f} {cluster.totals.get(key, 0):9.1f}")


@dataclass
class Measured:
    docs: int
    per_layout_s: float
    per_graph_s: float
    per_trial_s: float  # HDBSCAN + scoring
    run_overhead_s: float  # per trials run: queue wait + (run duration - its batch's wall time)
    stage_runs_s: float  # the other runs' durations (inputs, embeddings, leaderboard + report)
    gaps_s: float  # the rest of the sweep's time outside any run's execution on the critical path
    mean_neighbors: float
    graphs: int


def measure(side: Side, docs: int, trials: list) -> Measured:
    totals = side.totals
    graphs = len({(t.embedding_set.key, t.umap_n_neighbors, t.seed_replicate) for t in trials})
    trials_runs = [r for r in side.runs if r.job == "trials_job" and r.start and r.end]
    overheads = [
        (r.start - r.created) + (r.end - r.start) - side.per_run.get(r.run_id, {}).get("run_seconds", 0.0)
        for r in trials_runs
    ]
    stage_runs = [r for r in side.runs if r.job != "trials_job" and r.start and r.end]
    trials_span = (max(r.end for r in trials_runs) - min(r.created for r in trials_runs)) if trials_runs else 0.0
    stage_s = sum(r.end - r.start for r in stage_runs)
    return Measured(
        docs=docs,
        per_layout_s=totals["layout_seconds"] / max(totals["umap_reductions_computed"], 1),
        per_graph_s=totals["graph_seconds"] / max(graphs, 1),
        per_trial_s=(totals["clustering_seconds"] + totals["scoring_seconds"]) / max(totals["trials_in_run"], 1),
        run_overhead_s=sum(overheads) / len(overheads) if overheads else 0.0,
        stage_runs_s=stage_s,
        gaps_s=max(side.seconds - trials_span - stage_s, 0.0),
        mean_neighbors=sum(t.umap_n_neighbors for t in trials) / len(trials),
        graphs=graphs,
    )


def _exponent(small: float, large: float, n_small: float = 60_000, n_large: float = 100_000) -> float:
    return math.log(large / small) / math.log(n_large / n_small)


def print_projection(m: Measured, args, embed_rate: tuple[float, str], dimensions: int) -> None:
    machines, cores, target_docs, target_trials = args.machines, args.cores, args.target_docs, args.target_trials
    layouts, variants = args.target_layouts, target_trials // args.target_layouts
    layouts_per_graph = 5
    target_graphs = math.ceil(layouts / layouts_per_graph)
    scale = target_docs / m.docs
    # UMAP's default n_epochs, as the engine runs it (engine/work_queue.py): 500 up to 10,000 documents, 200 above.
    epochs = (200 if target_docs > 10_000 else 500) / (200 if m.docs > 10_000 else 500)
    calibrated = {name: _exponent(LARGE_60K[name], LARGE_100K[name]) for name in LARGE_60K}
    # This run's per-layout seconds against docs' 100k per-layout seconds, n_neighbors-adjusted (cost ~ edges).
    at_100k = LARGE_100K["layouts"] / LARGE_LAYOUTS
    base_100k = m.per_layout_s * (200 / 500 if m.docs <= 10_000 else 1) * LARGE_MEAN_NEIGHBORS / m.mean_neighbors
    fitted = math.log(at_100k / base_100k) / math.log(100_000 / m.docs) if m.docs < 100_000 else float("nan")

    print("\n=== ON PAPER: a projection, not a measurement ===")
    print(f"Target: {machines} machines x {cores} cores, {target_docs:,} documents, a {target_trials}-trial grid.")
    print("Assumptions:")
    lines = [
        f"the grid: {layouts} UMAP layouts x {variants} HDBSCAN variants = {layouts * variants} trials, "
        f"{layouts_per_graph} layouts per neighbour graph (n_components values per n_neighbors, as in the 180-trial "
        f"grid) = {target_graphs} graph groups; parameter values like this run's grid (mean n_neighbors "
        f"{m.mean_neighbors:.1f}, HDBSCAN min_samples <= 10): a grid with n_neighbors 100 or min_samples 800 costs more",
        f"TOPIC_PIPELINE_SWEEP_RUNS={machines}, TOPIC_PIPELINE_WORKERS={cores}: runs hold whole graph groups "
        f"where that balances them (planning._trials_runs), so each machine gets {math.ceil(target_graphs / machines)} group(s) "
        f"({layouts_per_graph * math.ceil(target_graphs / machines)} layouts, "
        f"{variants * layouts_per_graph * math.ceil(target_graphs / machines)} trials) in one run; no machine fails",
        "a layout, a graph and a trial each occupy one engine worker (one core) from start to end; machines "
        "have the memory for 8 workers at this size (see the estimate below) and the shared directory keeps up",
        f"measured here, base {m.docs:,} documents: {m.per_layout_s:.2f} s per layout, {m.per_graph_s:.2f} s per "
        f"graph ({m.graphs} graph groups), {m.per_trial_s:.3f} s per trial (HDBSCAN + scoring), from (C)'s engine",
        f"UMAP epochs: 500 up to 10,000 documents, 200 above (UMAP's default, engine/work_queue.py): "
        f"x{epochs:.2f} on the per-layout cost",
        f"scaling with documents N: (A) nominal: layout ~ N^{args.layout_exponent}, graph ~ N^{args.graph_exponent}, "
        "HDBSCAN + scoring ~ N log N",
        f"(B) from docs/benchmarks.md 'Large corpora' (60,000 -> 100,000 documents, large grid): layouts "
        f"N^{calibrated['layouts']:.2f}, graphs N^{calibrated['graphs']:.2f}, HDBSCAN N^{calibrated['hdbscan']:.2f} "
        "(two points 1.67x apart: noisy)",
        f"check: this run's per-layout cost, epochs- and n_neighbors-adjusted, meets docs' measured {at_100k:.0f} s "
        f"per layout at 100,000 documents for an exponent of {fitted:.2f} ({m.docs:,} -> 100,000); (B) uses docs' own",
        f"per trials run, start-up and queueing measured here: {m.run_overhead_s:.1f} s (queue wait + run duration "
        "- its batch's wall time, mean over (C)'s trials runs), once per machine",
        f"the other runs (inputs, embeddings cache hit, leaderboard + report) took {m.stage_runs_s:.1f} s here, "
        "scaled linearly with N; the sensor's and queue's gaps between stages "
        f"({m.gaps_s:.1f} s here) stay as measured",
        f"embedding excluded (cached, as here); computed, it would add ~{embed_rate[0] * target_docs / cores:.0f} s "
        f"on one {cores}-core machine at {embed_rate[0] * 1000:.2f} core-ms per document ({embed_rate[1]}), "
        "if embedding scales with cores",
    ]
    for line in lines:
        print(f"  - {line}")

    def projected(layout_exp: float, graph_exp: float, hdbscan_exp: float | None) -> tuple[float, float]:
        layout = m.per_layout_s * epochs * scale**layout_exp
        graph = m.per_graph_s * scale**graph_exp
        if hdbscan_exp is None:
            trial = m.per_trial_s * scale * math.log(target_docs) / math.log(m.docs)
        else:
            trial = m.per_trial_s * scale**hdbscan_exp
        groups = math.ceil(target_graphs / machines)
        per_machine_layouts = groups * layouts_per_graph
        per_machine_trials = per_machine_layouts * variants
        # Granular: a machine's graphs, then its layouts in waves of `cores`, then its trials over all cores.
        granular = (
            math.ceil(groups / cores) * graph
            + math.ceil(per_machine_layouts / cores) * layout
            + per_machine_trials * trial / cores
        )
        even = (target_graphs * graph + layouts * layout + layouts * variants * trial) / (machines * cores)
        fixed = m.run_overhead_s + m.stage_runs_s * scale + m.gaps_s
        print(
            f"    per layout {layout:8.1f} s, per graph {graph:7.1f} s, per trial {trial:6.2f} s; engine on the "
            f"busiest machine {granular:8.1f} s (even split over {machines * cores} cores: {even:8.1f} s); "
            f"runs' start-up, other stages and gaps {fixed:6.1f} s"
        )
        return granular + fixed, even + fixed

    print("Projection:")
    print(f"  (A) nominal exponents (layout {args.layout_exponent}, graph {args.graph_exponent}, HDBSCAN N log N):")
    a_granular, a_even = projected(args.layout_exponent, args.graph_exponent, None)
    print("  (B) exponents from docs' 60k/100k runs:")
    b_granular, b_even = projected(calibrated["layouts"], calibrated["graphs"], calibrated["hdbscan"])
    print(
        f"  expected wall time: (A) {a_granular / 60:.1f} min ({a_even / 60:.1f} min if the work split evenly over "
        f"all {machines * cores} cores), (B) {b_granular / 60:.1f} min ({b_even / 60:.1f} min even)"
    )
    print(
        f"  used: (A), the stated exponents on this run's costs; (B) only bounds the sensitivity to the exponent "
        "(docs' 60k -> 100k slope carried over the whole range, pessimistic, compare the check line above); "
        f"with {target_graphs} graph groups on {machines} machines each machine's layouts fill "
        f"{min(layouts_per_graph * math.ceil(target_graphs / machines), cores)} of its {cores} cores, so the even split "
        "is a lower bound, reached only by cutting graphs between their layouts (each cut builds a graph twice)"
    )
    try:
        from topic_pipeline.engine.capacity import Layout, estimate_needs

        machine_layouts = [
            Layout(15, 5 + i, ("set", 15, 0)) for i in range(layouts_per_graph * math.ceil(target_graphs / machines))
        ]
        needs = estimate_needs(target_docs, dimensions, cores, machine_layouts, variants * len(machine_layouts), 10)
        print(
            f"  memory per machine, pre-flight estimate (engine/capacity.py, {cores} workers, n_neighbors 15, "
            f"min_samples 10): {needs.memory_bytes / 2**30:.1f} GiB"
        )
    except Exception as error:  # an estimate only: its absence must not lose the measured figures
        print(f"  memory per machine: not estimated ({type(error).__name__}: {error})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="make benchmark-cluster ARGS=...",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--topics", type=int, default=12)
    parser.add_argument("--grid", choices=("issue", "quick"), default="issue")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the benchmark's files here (default: a temp dir)"
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds (C)'s sweep may take")
    projection = parser.add_argument_group("the projection on paper")
    projection.add_argument("--machines", type=int, default=10)
    projection.add_argument("--cores", type=int, default=8)
    projection.add_argument("--target-docs", type=int, default=300_000)
    projection.add_argument("--target-trials", type=int, default=500)
    projection.add_argument("--target-layouts", type=int, default=50)
    projection.add_argument("--layout-exponent", type=float, default=1.1)
    projection.add_argument("--graph-exponent", type=float, default=1.1)
    args = parser.parse_args(argv)

    try:
        check_services()  # before minutes of embedding
    except ServiceMissing as missing:
        raise SystemExit(f"make benchmark-cluster: {missing}") from None
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="topic-pipeline-cluster-bench-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    grid = {"issue": ISSUE_GRID, "quick": QUICK_GRID}[args.grid]
    prepared = prepare_inputs(workdir, args.docs, args.topics, grid, CELERY_WORKERS)
    seed = prepared.paths.embeddings  # copied into both data directories: neither side embeds

    local = run_local(workdir, seed)
    cluster, startup_s = run_cluster(workdir, seed, args.timeout)

    overhead = (cluster.seconds / local.seconds - 1) * 100
    print("\n=== Measured (this machine, one run each) ===")
    print("Both: from the refresh_inputs run's creation to the sweep_report materialisation (inputs, the embeddings")
    print("run finding its cache, trials, leaderboard, report); embedding the corpus is outside both clocks.")
    print(f"(L) local sweep, {CELERY_WORKERS} engine workers:{'':20s}{local.seconds:8.1f} s")
    print(f"(C) cluster sweep, {CELERY_WORKERS} Celery workers x 1 engine worker:{'':5s}{cluster.seconds:8.1f} s")
    print(f"(C)'s start-up (services up, workers answering, sensor ticking), not counted: {startup_s:.1f} s")
    for side in (local, cluster):
        for note in side.notes:
            print(f"  ({side.name[0].upper()}) {note}")
    verdict = "meets" if overhead <= AIM_PCT else "misses"
    print(
        f"overhead of the cluster path at equal cores: {overhead:+.1f} % ({verdict} the aim of at most {AIM_PCT:.0f} %)"
    )
    trials_runs = [cluster.per_run[r.run_id] for r in cluster.runs if r.run_id in cluster.per_run]
    if len(trials_runs) > 1:
        work = [run["run_seconds"] for run in trials_runs]
        print(
            f"  (C)'s trials runs: {', '.join(str(int(run['trials_in_run'])) for run in trials_runs)} trials, "
            f"batches of {', '.join(f'{s:.1f}' for s in work)} s: the largest is {max(work) / (sum(work) / len(work)):.2f}x "
            "an even share (runs hold whole UMAP reductions)"
        )
    print_timeline(cluster)
    print_stages(local, cluster)

    measured = measure(cluster, args.docs, prepared.trials)
    if args.docs < 4096:
        print(
            f"\nNote: below 4,096 documents the engine builds one exact all-pairs graph per embedding set, not "
            f"NNDescent: the per-graph cost of this {args.docs:,}-document run does not scale as assumed below."
        )
    if prepared.embedded.from_cache:
        embed_rate = (DOCS_EMBED_S_PER_DOC_CORE, "docs/benchmarks.md's 100,000 documents in 271.2 s on 2 cores")
    else:
        cores_here = os.cpu_count() or 1
        embed_rate = (
            prepared.embed_seconds * cores_here / args.docs,
            f"this run: {args.docs:,} documents in {prepared.embed_seconds:.1f} s on {cores_here} cores",
        )
    print_projection(measured, args, embed_rate, prepared.embedded.embeddings.shape[1])

    # The machine-readable summary, last.
    print(f"local_s={local.seconds:.1f}")
    print(f"cluster_s={cluster.seconds:.1f}")
    print(f"overhead_pct={overhead:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])

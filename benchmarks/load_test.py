"""Load test: a sweep of at least 1,000 trials on the sample corpus, on the embedded defaults.

Runs ``topic-pipeline sweep`` as users do (a fresh persistent Dagster instance with the project's
dagster.yaml, the generated sample SQLite database and labels, the local SQLite MLflow store) with a
grid widened around the sample grid's three UMAP reductions, then prints:

* wall time and trials per minute of the whole sweep (inputs, embeddings, trials, leaderboard);
* peak memory: the resident set summed over the whole process tree (sampled every 0.2 s from /proc),
  overall and per trials run (flat across runs = bounded), and the largest single process
  (``getrusage(RUSAGE_CHILDREN).ru_maxrss``);
* how often "database is locked" appears in the CLI's output, the Dagster event log of every run and
  the compute logs, and the counts of trial materialisations, MLflow trial runs and failed trials.

    python -m benchmarks.load_test [--workdir DIR]        (make load-test)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOAD_GRID = {
    "umap_n_neighbors": [5, 15, 50],
    "umap_n_components": [5],
    "umap_min_dist": [0.0],
    "hdbscan_min_cluster_size": [5, 10, 15, 20, 30, 40, 60, 80, 100, 150],
    "hdbscan_min_samples": [None, 1, 5, 10, 20],
    "hdbscan_cluster_selection_epsilon": [0.0, 0.05, 0.1, 0.3],
    "nr_topics": ["none"],
    "n_gram_max": [1, 2],
    "embedding_model": ["sentence-transformers/all-MiniLM-L6-v2"],
    "remove_stopwords": [False],
}
LOCK_ERROR = "database is locked"


def _environment(workdir: Path) -> dict[str, str]:
    inherited = {
        name: value for name, value in os.environ.items() if not name.startswith(("TOPIC_PIPELINE_", "MLFLOW_"))
    }
    return {
        **inherited,
        "DAGSTER_HOME": str(workdir / "dagster_home"),
        "TOPIC_PIPELINE_DATA_DIR": str(workdir / "data"),  # the sample database, labels and MLflow store live here
        "TOPIC_PIPELINE_GRID": str(workdir / "grid.json"),
        "TOPIC_PIPELINE_EXPERIMENT": "load_test",
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
    }


def _lock_errors(workdir: Path, instance) -> dict[str, int]:
    from dagster._serdes import serialize_value

    events = 0
    for run in instance.get_runs():
        for record in instance.get_records_for_run(run.run_id).records:
            events += serialize_value(record.event_log_entry).count(LOCK_ERROR)
    compute_logs = sum(
        path.read_text(errors="replace").count(LOCK_ERROR)
        for path in (workdir / "dagster_home" / "storage").rglob("*")
        if path.is_file() and path.suffix in {".out", ".err"}
    )
    return {
        "CLI output": (workdir / "sweep.log").read_text(errors="replace").count(LOCK_ERROR),
        "Dagster event log": events,
        "compute logs": compute_logs,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load_test", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the instance and data here (default: a temp dir)"
    )
    args = parser.parse_args(argv)

    import dagster as dg
    from mlflow import MlflowClient

    from benchmarks.sweep_speed import TreeMemorySampler
    from topic_pipeline.inputs.grid import ParamGrid
    from topic_pipeline.storage.paths import DataPaths

    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="topic-pipeline-load-"))).resolve()
    (workdir / "dagster_home").mkdir(parents=True, exist_ok=True)
    project_config = Path(__file__).resolve().parents[1] / "deploy" / "local" / "dagster.yaml"
    if project_config.exists():
        shutil.copy(project_config, workdir / "dagster_home" / "dagster.yaml")
    (workdir / "grid.json").write_text(json.dumps(LOAD_GRID))
    n_trials = len(ParamGrid.from_mapping(LOAD_GRID).trials())
    print(
        f"workdir: {workdir}\ngrid: {n_trials} trials on the sample corpus; running `topic-pipeline sweep` ...",
        flush=True,
    )

    command = [str(Path(sys.executable).parent / "topic-pipeline"), "sweep"]
    with open(workdir / "sweep.log", "wb") as log, TreeMemorySampler() as memory:
        started = time.perf_counter()
        returncode = subprocess.run(
            command, cwd=workdir, env=_environment(workdir), stdout=log, stderr=subprocess.STDOUT
        ).returncode
        seconds = time.perf_counter() - started
    largest_process = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024

    with dg.DagsterInstance.from_config(str(workdir / "dagster_home")) as instance:
        materialised = len(instance.get_materialized_partitions(dg.AssetKey("grid_trials")))
        trial_runs = [
            record
            for record in instance.get_run_records(dg.RunsFilter(job_name="trials_job"), ascending=True)
            if record.start_time and record.end_time
        ]
        # Peak of each quarter of each trials run: flat within a run means memory does not grow with trials.
        quarters = []
        for record in trial_runs:
            step = (record.end_time - record.start_time) / 4
            quarters.append(
                [
                    max(
                        (
                            total
                            for moment, total in memory.samples
                            if record.start_time + i * step <= moment <= record.start_time + (i + 1) * step
                        ),
                        default=0,
                    )
                    for i in range(4)
                ]
            )
        trial_seconds = sum(record.end_time - record.start_time for record in trial_runs)
        trials_in = {
            record.dagster_run.run_id: len(
                instance.get_records_for_run(
                    record.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
                ).records
            )
            for record in trial_runs
        }
        failed_runs = [
            record.dagster_run.run_id for record in instance.get_run_records() if record.dagster_run.is_failure
        ]
        locks = _lock_errors(workdir, instance)
    paths = DataPaths(workdir / "data")
    client = MlflowClient(tracking_uri=f"sqlite:///{paths.mlflow / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("load_test")
    mlflow_trials = (
        len(client.search_runs([experiment.experiment_id], "tags.dagster_partition_key != ''", max_results=50_000))
        if experiment
        else 0
    )
    leaderboard = paths.leaderboard / "leaderboard.csv"
    statuses = {}
    if leaderboard.exists():
        import pandas as pd

        statuses = pd.read_csv(leaderboard)["status"].value_counts().to_dict()

    print(f"\nsweep exit status: {returncode}   (output: {workdir / 'sweep.log'})")
    print(
        f"trials in the grid: {n_trials}; materialised in Dagster: {materialised}; MLflow trial runs: {mlflow_trials}; "
        f"leaderboard: {statuses}"
    )
    print(
        f"wall time: {seconds:.1f} s   trials/min: {n_trials / seconds * 60:.1f}   "
        f"(trials runs alone: {trial_seconds:.1f} s, {n_trials / trial_seconds * 60:.1f} trials/min)"
    )
    print(f"peak RSS, whole process tree (sampled): {memory.peak_bytes / 2**30:.2f} GiB")
    for record, peaks in zip(trial_runs, quarters):
        print(
            f"  trials run {record.dagster_run.run_id[:8]} ({trials_in[record.dagster_run.run_id]} trials, "
            f"{record.end_time - record.start_time:.0f} s): peak per quarter of the run "
            + ", ".join(f"{peak / 2**30:.2f}" for peak in peaks)
            + " GiB"
        )
    print(f"largest single process (RUSAGE_CHILDREN maxrss): {largest_process / 2**30:.2f} GiB")
    print(f"'{LOCK_ERROR}' occurrences: " + ", ".join(f"{where} {count}" for where, count in locks.items()))
    print(f"failed Dagster runs: {len(failed_runs)}")
    print(
        f"load average at the end (other processes share this machine): {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    if returncode or sum(locks.values()) or failed_runs or materialised < n_trials:
        raise SystemExit(1)


if __name__ == "__main__":
    main(sys.argv[1:])

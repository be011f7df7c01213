"""`make cluster-demo`: the demo sweep on a Celery cluster on this machine.

Starts (scripts/local_cluster.py) the Dagster daemon and webserver, an MLflow server on PostgreSQL and two
Celery workers in working directories of their own, sharing one data directory under .cluster-demo/. Then it
materialises the inputs as the UI's launchpad does; the sweep sensor carries the sweep through its trials
and leaderboard (and, for the default search, its rounds) on the workers. It prints each run as it ends, with
the worker that executed it, then the leaderboard and one line counting the runs of each worker. On exit,
Ctrl-C included, it stops every process it started and drops the databases it created; the data directory
and the logs stay under .cluster-demo/<time>/.
"""

from __future__ import annotations

import collections
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_cluster import REPO, LocalCluster, ServiceMissing, check_services, stopped_on_signals

# The sweep is over once no run has been in flight for this long (a few sensor ticks).
QUIET_SECONDS = 20.0
SENSOR_INTERVAL_S = 5


def follow_sweep(instance) -> list:
    """Print each run as it ends; return all runs once none has been in flight for ``QUIET_SECONDS``."""
    import dagster as dg

    from topic_pipeline.cli import run_label
    from topic_pipeline.definitions import WORKER_TAG

    shown: set[str] = set()
    quiet_since = None
    while True:
        runs = instance.get_runs()
        for run in reversed(runs):
            if run.is_finished and run.run_id not in shown:
                shown.add(run.run_id)
                print(
                    f"  {run.status.value:8} {run_label(run.job_name, run.tags):60} on {run.tags.get(WORKER_TAG, '-')}",
                    flush=True,
                )
        if any(not run.is_finished for run in runs):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > QUIET_SECONDS and instance.get_latest_materialization_event(
            dg.AssetKey("sweep_report")
        ):
            return runs
        time.sleep(1)


def main() -> int:
    try:
        check_services()
    except ServiceMissing as missing:
        print(f"make cluster-demo: {missing}", file=sys.stderr)
        return 2
    root = REPO / ".cluster-demo" / time.strftime("%Y%m%d-%H%M%S")
    cluster = LocalCluster(
        root,
        webserver=True,
        extra_env={
            "TOPIC_PIPELINE_SWEEP_RUNS": "2",
            "TOPIC_PIPELINE_SENSOR_INTERVAL_S": str(SENSOR_INTERVAL_S),
            # Two Celery workers share this machine's cores: one engine worker each.
            "TOPIC_PIPELINE_WORKERS": "1",
        },
    )
    print(f"Starting the cluster under {root} (logs in {root / 'logs'}) ...", flush=True)
    try:
        with stopped_on_signals(), cluster:  # a signal while the cluster starts stops what it started
            os.environ.update(cluster.env)
            import dagster as dg

            from topic_pipeline.cli import follow_runs, print_leaderboard, submit_run
            from topic_pipeline.definitions import WORKER_TAG

            print(f"Dagster UI: {cluster.webserver_url}   MLflow UI: {cluster.mlflow_url}", flush=True)
            print(f"Workers: {', '.join(cluster.worker_names)}; sensor every {SENSOR_INTERVAL_S} s", flush=True)
            started = time.monotonic()
            with dg.DagsterInstance.get() as instance:
                follow_runs(instance, [submit_run(instance, "refresh_inputs_job", {})])
                print("The sweep sensor launches the rest:", flush=True)
                runs = follow_sweep(instance)
            print(f"\nSweep finished in {time.monotonic() - started:.0f} s.\n", flush=True)
            print_leaderboard()
            counts = collections.Counter(run.tags[WORKER_TAG] for run in runs if WORKER_TAG in run.tags)
            print("\nruns by worker: " + ", ".join(f"{name}={count}" for name, count in sorted(counts.items())))
    except KeyboardInterrupt:
        print("\nStopped; every process the demo started is stopped.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

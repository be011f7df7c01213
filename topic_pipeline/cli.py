"""``topic-pipeline``: run the whole chain from a terminal, on the same Dagster instance the UI shows."""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import multiprocessing.forkserver
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from topic_pipeline._compat.dagster import create_code_location_run, execute_created_run, forget_job_definitions
from topic_pipeline.errors import TopicPipelineError
from topic_pipeline.processes import Stopped, call_in_thread, exclusive_sweep, stopped_on_signal

if TYPE_CHECKING:
    from topic_pipeline.storage.run_records import RunRecords


def _job(name: str) -> dg.JobDefinition:
    from topic_pipeline.definitions import defs

    return defs().resolve_job_def(name)


# Module-level factories so the multiprocess executor can rebuild each job in its step processes.
def refresh_inputs_job() -> dg.JobDefinition:
    return _job("refresh_inputs_job")


def embeddings_job() -> dg.JobDefinition:
    return _job("embeddings_job")


def trials_job() -> dg.JobDefinition:
    return _job("trials_job")


def leaderboard_job() -> dg.JobDefinition:
    return _job("leaderboard_job")


def search_job() -> dg.JobDefinition:
    return _job("search_job")


def report_job() -> dg.JobDefinition:
    return _job("report_job")


def export_job() -> dg.JobDefinition:
    return _job("export_job")


_JOBS = {
    fn.__name__: fn
    for fn in (refresh_inputs_job, embeddings_job, trials_job, leaderboard_job, report_job, search_job, export_job)
}


def _root_cause(error) -> str:
    """The user's error, not Dagster's wrapper around it."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


# What a step imports before its work starts: preloaded once by the fork server its processes are forked
# from (Dagster's own ``forkserver`` start method), instead of by every spawned step process.
STEP_PRELOAD = [
    "topic_pipeline.definitions",
    "topic_pipeline.defs.assets.trials",
    "topic_pipeline.defs.assets.leaderboard",
    "mlflow.tracking",
    "mlflow.store.tracking.sqlalchemy_store",
    "sklearn.metrics.cluster",
    "sklearn.feature_extraction.text",
]
_forked_steps = False


def fork_steps() -> None:
    """Have the runs this process executes fork their step processes from one preloaded server.

    Kept because it pays: ``make benchmark``'s sweep is measurably faster with it (docs/benchmarks.md).
    Only for a process whose environment and working directory stay as they are, as the command line's
    do: a forked step inherits the server's, taken when the first run started it. Callers that change
    the environment between runs (tests executing several sweeps in one process) keep Dagster's default.
    """
    global _forked_steps
    if _forked_steps:
        return
    _forked_steps = True
    # Started now, so that the server imports the steps' modules while the inputs are refreshed, not
    # inside the first run that forks a step. Dagster's executor then uses this server.
    multiprocessing.set_forkserver_preload(STEP_PRELOAD)
    multiprocessing.forkserver.ensure_running()


def _start_method(job_name: str) -> dict:
    from topic_pipeline.settings import Settings

    if not _forked_steps or Settings.load().executor != "multiprocess":
        return {}
    method = {"forkserver": {"preload_modules": STEP_PRELOAD}}
    if job_name in {"embeddings_job", "trials_job"}:
        return {"execution": {"config": {"start_method": method}}}
    # The leaderboard's and the report's steps (the leaderboard evaluates its checks inside its own) forked
    # from the server, which has MLflow and scikit-learn imported: in this process they would import them first.
    if job_name == "leaderboard_job":
        return {"execution": {"config": {"multiprocess": {"start_method": method}}}}
    return {}


class TrialsProgress:
    """Shows the progress of the trials run executing meanwhile, read from the progress file its step keeps
    current: a live bar (tqdm) on a terminal, a plain line every ``PLAIN_EVERY_S`` elsewhere (CI, a pipe)."""

    PLAIN_EVERY_S = 15.0

    def __init__(self, path: Path, interactive: bool | None = None):
        self.path = path
        self.interactive = sys.stdout.isatty() if interactive is None else interactive
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="progress", daemon=True)
        self._bar = None
        self._last_plain = 0.0
        self._shown = None

    def __enter__(self) -> TrialsProgress:
        self.path.unlink(missing_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self._show(final=True)
        finally:  # the run's own outcome, not the display's, is what the caller sees
            if self._bar is not None:
                self._bar.close()
            self.path.unlink(missing_ok=True)
        return None

    def _follow(self) -> None:
        while not self._stop.wait(0.5):
            self._show()

    def _show(self, final: bool = False) -> None:
        from topic_pipeline.engine.progress import SweepProgress

        progress = SweepProgress.load(self.path)
        if progress is None:
            return
        if not self.interactive:
            now = time.monotonic()
            if (final or now - self._last_plain >= self.PLAIN_EVERY_S) and progress.done != self._shown:
                print(f"  {progress.describe()}", flush=True)
                self._last_plain, self._shown = now, progress.done
            return
        if self._bar is None:
            from tqdm import tqdm

            description = "trials" if progress.round is None else f"round {progress.round}"
            # Trials already done when the bar first shows (a resumed batch) are its start, not its speed.
            self._bar = tqdm(
                total=progress.total,
                initial=progress.done,
                desc=f"  {description}",
                unit="trial",
                file=sys.stdout,
                dynamic_ncols=True,
            )
        self._bar.update(progress.done - self._bar.n)
        self._bar.set_postfix_str(progress.best_text() + (f", {progress.failed} failed" if progress.failed else ""))


@contextmanager
def dagster_output_to(log: Path | None) -> Iterator[None]:
    """Send what Dagster writes (its event log at DEBUG level, on standard error) to the file ``log``.

    The file descriptor itself is redirected, before the step processes start, so that they and the engine's
    workers inherit it. The command's own lines go to standard output; ``log=None`` leaves everything as is.
    """
    if log is None:
        yield
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log, "ab") as stream:
        os.dup2(stream.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def progress_file_of(logs: Path, pid: int) -> Path:
    # The host in the name: a DAGSTER_HOME shared between machines holds other hosts' process ids.
    return logs / f"progress-{socket.gethostname()}-{pid}.json"


def remove_stale_progress_files(logs: Path) -> None:
    """This host's progress files of command lines that are gone: a killed one never removed its own, and its
    trials step may have outlived it."""
    from topic_pipeline.processes import process_start_time

    prefix = f"progress-{socket.gethostname()}-"
    for path in logs.glob(f"{prefix}*.json"):
        pid = path.stem.removeprefix(prefix)
        if pid.isdigit() and process_start_time(int(pid)) is None:
            path.unlink(missing_ok=True)


def _execute(instance: dg.DagsterInstance, job_name: str, tags: dict[str, str], run_config: dict | None = None) -> None:
    """Execute a run of ``job_name`` in this process; on a cluster's instance, submit it and follow it instead."""
    if launches_runs(instance):
        follow_runs(instance, [submit_run(instance, job_name, tags, run_config)])
        return
    from topic_pipeline.storage.paths import DataPaths
    from topic_pipeline.storage.run_records import PROGRESS_FILE, RunRecords

    records = RunRecords(DataPaths().run_records)
    if job_name == "trials_job":
        logs = Path(instance.root_directory) / "logs"
        remove_stale_progress_files(logs)
        progress_file = progress_file_of(logs, os.getpid())
        with TrialsProgress(progress_file):
            outcome = _execute_job(instance, job_name, tags, run_config, records, {PROGRESS_FILE: str(progress_file)})
    else:
        outcome = _execute_job(instance, job_name, tags, run_config, records, {})
    print(outcome, flush=True)  # after the progress bar is closed, never glued onto it


def _execute_job(
    instance: dg.DagsterInstance,
    job_name: str,
    tags: dict[str, str],
    run_config: dict | None,
    records: RunRecords,
    record: dict[str, str],
) -> str:
    """Execute the run in this process, as a run of the project's code location (the UI lists it with the runs it
    launches itself); the line saying it succeeded, or ``SystemExit`` with its failed steps' errors."""
    import uuid

    from topic_pipeline.definitions import CODE_LOCATION, CODE_LOCATION_MODULE
    from topic_pipeline.defs.recovery import record_process

    # Our definitions read the environment when they are built, and Dagster keeps the last one built in
    # the process: a run executed here must see the settings of now, not of an earlier run.
    forget_job_definitions()
    run_config = {**(run_config or {}), **_start_method(job_name)}

    location = (CODE_LOCATION, CODE_LOCATION_MODULE, _repository_name())

    def execute() -> tuple[bool, str, list[str]]:
        job = dg.reconstructable(_JOBS[job_name])
        run_id = str(uuid.uuid4())  # as Dagster makes run ids
        # Recorded before the run exists: a later sweep can tell a run whose process was killed from one going on.
        record_process(records, run_id, **record)
        try:
            run = create_code_location_run(job, instance, run_id, tags, run_config, location)
            with execute_created_run(job, run, instance) as result:
                errors = [
                    f"{event.step_key}: {_root_cause(event.step_failure_data.error)}"
                    for event in result.all_events
                    if event.is_step_failure and event.step_failure_data.error
                ]
        finally:  # a kill skips this: the record then tells recovery that the run's process is gone
            records.remove(run_id)
        return result.success, run_id, errors

    success, run_id, errors = call_in_thread(execute)
    if not success:
        raise SystemExit(f"{job_name} failed (run {run_id}):\n" + "\n".join(errors[-3:]))
    return f"  {run_label(job_name, tags)}: ok"


def run_label(job_name: str, tags: dict[str, str]) -> str:
    """The job and the partition (or partition range) a run's tags name, as runs are shown here."""
    from topic_pipeline.defs.planning import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG, PARTITION_TAG

    partitions = tags.get(PARTITION_TAG) or " … ".join(
        tags[tag] for tag in (PARTITION_RANGE_START_TAG, PARTITION_RANGE_END_TAG) if tag in tags
    )
    return f"{job_name} {partitions}".strip()


@functools.cache
def _repository_name() -> str:
    """The code location's repository, as the webserver names it (not the one-job wrapper ``reconstructable``
    makes); built once per process."""
    from topic_pipeline.definitions import defs

    return defs().get_repository_def().name


def execute_plans(instance: dg.DagsterInstance, jobs: set[str] | None = None) -> None:
    """Execute what the sweep sensor would launch (only ``jobs`` if given), until nothing is left."""
    from topic_pipeline.definitions import build_resources
    from topic_pipeline.defs.planning import PARTITION_TAG, plan_next_runs
    from topic_pipeline.defs.recovery import recover_interrupted_runs
    from topic_pipeline.settings import Settings

    resources = build_resources(Settings.load())
    settings = resources["settings"]
    for action in recover_interrupted_runs(instance, settings.paths, resources["mlflow"].tracker(settings.paths)):
        print(f"  {action}")
    while plans := [p for p in plan_next_runs(instance, settings) if jobs is None or p.job_name in jobs]:
        runs = []
        for plan in plans:
            tags = dict(plan.tags)
            if plan.partition_key:
                tags[PARTITION_TAG] = plan.partition_key
            runs.append((plan.job_name, tags))
        if launches_runs(instance):  # all at once: the cluster's workers take them in parallel
            follow_runs(instance, [submit_run(instance, job_name, tags) for job_name, tags in runs])
            continue
        for job_name, tags in runs:
            _execute(instance, job_name, tags)


def run_sweep(instance: dg.DagsterInstance) -> None:
    """Materialise the inputs, then the embeddings, trials and leaderboard they call for."""
    if launches_runs(instance):
        from topic_pipeline.domain.versions import environment_versions
        from topic_pipeline.storage.data_directory import claim
        from topic_pipeline.storage.paths import DataPaths

        # The workers refuse runs until the instance's side has claimed the shared directory (the sensor does too).
        claim(DataPaths(), environment_versions())
    _execute(instance, "refresh_inputs_job", {})
    execute_plans(instance)


def launches_runs(instance: dg.DagsterInstance) -> bool:
    """Whether the instance's runs go to a run launcher that starts them elsewhere (a cluster's: deploy/celery/,
    deploy/k8s/), which this process then only submits to and follows; with the default launcher this process
    executes its runs itself."""
    return not isinstance(instance.run_launcher, dg.DefaultRunLauncher)


def submit_run(
    instance: dg.DagsterInstance, job_name: str, tags: dict[str, str], run_config: dict | None = None
) -> tuple[str, str]:
    """Queue a run of ``job_name`` as a run of the code location, as the UI's launchpad does: the daemon hands it
    to the instance's run launcher. Returns ``(run id, label)``."""
    import uuid

    from topic_pipeline.definitions import CODE_LOCATION, CODE_LOCATION_MODULE

    forget_job_definitions()
    run_id = str(uuid.uuid4())
    location = (CODE_LOCATION, CODE_LOCATION_MODULE, _repository_name())
    create_code_location_run(dg.reconstructable(_JOBS[job_name]), instance, run_id, tags, run_config or {}, location)
    instance.submit_run(run_id, workspace=None)
    label = run_label(job_name, tags)
    print(f"  {label}: queued as run {run_id}", flush=True)
    return run_id, label


QUEUED_WARNING_SECONDS = 60.0


def follow_runs(instance: dg.DagsterInstance, runs: list[tuple[str, str]], poll_seconds: float = 1.0) -> None:
    """Wait for the submitted ``runs`` (and the retries of those that fail) to finish; print each as it does,
    with the worker that executed it. ``SystemExit`` names a run that failed for good.

    Ctrl-C or SIGTERM stops the following, not the runs: they belong to the cluster now (the UI's Terminate
    stops one)."""
    from topic_pipeline.definitions import WORKER_TAG
    from topic_pipeline.defs.planning import PARENT_RUN_TAG, retry_pending

    pending = {run_id: (label, time.monotonic()) for run_id, label in runs}
    warned = False
    while pending:
        time.sleep(poll_seconds)
        for run_id, (label, since) in list(pending.items()):
            record = instance.get_run_record_by_id(run_id)
            run = record.dagster_run if record else None
            if run is None or not run.is_finished:
                queued = run is not None and run.status == dg.DagsterRunStatus.QUEUED
                if queued and not warned and time.monotonic() - since > QUEUED_WARNING_SECONDS:
                    warned = True
                    print("  runs are still queued: is dagster-daemon running on this instance?", flush=True)
                continue
            worker = run.tags.get(WORKER_TAG, "no worker")
            if run.status == dg.DagsterRunStatus.SUCCESS:
                print(f"  {label}: ok (run {run_id}, on {worker})", flush=True)
                del pending[run_id]
                continue
            retries = instance.get_runs(dg.RunsFilter(tags={PARENT_RUN_TAG: run_id}), limit=1)
            if retries:
                print(f"  {label}: run {run_id} {run.status.value} on {worker}; retried as run {retries[0].run_id}")
                del pending[run_id]
                pending[retries[0].run_id] = (label, time.monotonic())
            elif not retry_pending(instance, record):
                raise SystemExit(
                    f"{label} failed (run {run_id}, {run.status.value}, on {worker}); see its log in the UI"
                )


def print_leaderboard(limit: int = 10, while_sweeping_elsewhere: bool = False) -> None:
    """Print the top of the leaderboard; ``while_sweeping_elsewhere`` adds a note when a sweep is running."""
    import pandas as pd

    from topic_pipeline.domain.results import STATUS_OK
    from topic_pipeline.processes import running_sweep
    from topic_pipeline.scoring.confidence import trust_lines, verdict_line
    from topic_pipeline.scoring.leaderboard import (
        RANKING_VALUE,
        configurations,
        read_leaderboard_trust,
        read_leaderboard_warnings,
    )
    from topic_pipeline.settings import Settings
    from topic_pipeline.storage.paths import DataPaths

    paths = DataPaths()
    path = paths.leaderboard / "leaderboard.csv"
    if not path.exists():
        raise SystemExit(
            f"No leaderboard yet: no sweep has finished with the data directory {paths.root}. "
            "Run `topic-pipeline sweep` (`make demo` on the embedded sample) first."
        )
    frame = pd.read_csv(path)
    trust = read_leaderboard_trust(paths)
    rank_by = trust["rank_by"] if trust else Settings.load().rank_by
    if trust:
        print(f"Recommended ({rank_by}): {verdict_line(trust)}\n")
    # One row per configuration, its UMAP seeds folded: what the ranking is of.
    folded = configurations(frame, rank_by).rename(columns={rank_by: f"{rank_by}_mean", "std": f"{rank_by}_std"})
    columns = [
        "rank",
        "trial",
        RANKING_VALUE,
        "seeds",
        f"{rank_by}_mean",
        f"{rank_by}_std",
        f"heldout_{rank_by}",
        "ci_low",
        "ci_high",
        "outlier_fraction",
        "topic_count",
    ]
    with pd.option_context("display.width", 200, "display.max_colwidth", 70, "display.float_format", "{:.3f}".format):
        print(folded[[c for c in columns if c in folded]].head(limit).to_string(index=False, na_rep=""))
    if len(folded) > limit:
        print(f"... {len(folded) - limit} more configuration(s)")
    unscored = frame[frame["status"] != STATUS_OK]
    if len(unscored):
        print(
            f"{len(unscored)} trial(s) not scored: "
            + ", ".join(f"{n} {s}" for s, n in unscored["status"].value_counts().items())
        )
    if trust:
        print("\nHow much to trust this:")
        print("\n".join(f"  {line}" for line in trust_lines(trust)))
    print(f"\nFull leaderboard: {path}")
    for warning in read_leaderboard_warnings(paths):
        print(f"WARNING: {warning}")
    holder = running_sweep(paths.root) if while_sweeping_elsewhere else None
    if holder:
        print(f"A sweep is running with this data directory ({holder}): this leaderboard is from before it ends.")


def _sweep_places() -> dict[str, Path]:
    """What two sweeps must not share: the Dagster instance and the data directory."""
    from topic_pipeline.storage.paths import DataPaths

    return {
        "Dagster instance (DAGSTER_HOME)": Path(os.environ["DAGSTER_HOME"]),
        "data directory (TOPIC_PIPELINE_DATA_DIR)": DataPaths().root,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="topic-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    sweep = commands.add_parser("sweep", help="materialise the whole chain (inputs, embeddings, trials, leaderboard)")
    commands.add_parser("leaderboard", help="print the top of the current leaderboard")
    export = commands.add_parser("export", help="export a trial (default: the leaderboard's first) as a BERTopic model")
    export.add_argument("--trial", default="", help="trial key (a leaderboard 'trial' value)")
    export.add_argument("--serialization", default="safetensors", choices=("safetensors", "pytorch", "pickle"))
    export.add_argument("--target-dir", default="", help="default: <data dir>/models/<trial key>")
    for command in (sweep, export):
        command.add_argument(
            "--verbose", action="store_true", help="show Dagster's event log here instead of in a log file"
        )
    commands.add_parser(
        "compile", help="compile UMAP's and NNDescent's numba code into the cache (make setup does it once)"
    )
    args = parser.parse_args(argv)
    try:
        # SIGTERM or Ctrl-C stops this command and everything it started, wherever they are.
        with stopped_on_signal():
            _run_command(args)
    except TopicPipelineError as error:  # bad input or settings: one line, no traceback
        raise SystemExit(f"topic-pipeline {args.command}: {error}") from None
    except Stopped as stop:
        raise SystemExit(128 + stop.signum) from None


def _run_command(args: argparse.Namespace) -> None:
    from topic_pipeline.settings import Settings

    if args.command == "leaderboard":
        print_leaderboard(while_sweeping_elsewhere=True)
        return
    if args.command == "compile":
        from topic_pipeline.engine.warmup import warm

        print(f"UMAP and NNDescent compiled (or found in numba's cache) in {warm():.0f} s")
        return
    from topic_pipeline.definitions import build_resources

    resources = build_resources(Settings.load())  # every setting checked before anything runs
    os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve()))
    home = Path(os.environ["DAGSTER_HOME"])
    log = None if args.verbose else home / "logs" / f"topic-pipeline-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    started = time.monotonic()
    # A second sweep (or an export, which reads the leaderboard) waits for a sweep that is running; a folder
    # that cannot be written is refused here, in one line.
    # The inner stop waits for this process's end inside the lock, so the lock is released by the exit, never
    # while the processes of a stopped sweep may still write.
    with exclusive_sweep(_sweep_places()), stopped_on_signal():
        # An MLflow server that does not answer is found now, not minutes later at the first trial.
        resources["mlflow"].check_reachable(resources["settings"].paths)
        if log:
            print(f"Dagster's event log: {log} (--verbose shows it here)", flush=True)
        with dagster_output_to(log), dg.DagsterInstance.get() as instance:
            fork_steps()
            print(f"Dagster instance: {home}", flush=True)
            if args.command == "export":
                _export(instance, args)
                return
            run_sweep(instance)
        finish_sweep(time.monotonic() - started)


def finish_sweep(seconds: float) -> None:
    """Print the leaderboard of a sweep that ran; exit non-zero, saying why, when every trial failed."""
    import pandas as pd

    from topic_pipeline.scoring.leaderboard import trial_outcomes
    from topic_pipeline.storage.paths import DataPaths

    path = DataPaths().leaderboard / "leaderboard.csv"
    outcomes = trial_outcomes(pd.read_csv(path)) if path.exists() else None
    if outcomes is not None and outcomes.all_failed:
        raise SystemExit(
            f"Sweep failed after {seconds:.0f} s: {outcomes.failure_line()}. "
            f"Each trial's error is in {path}, column 'error'."
        )
    print(f"Sweep finished in {seconds:.0f} s.\n")
    print_leaderboard()


def _export(instance: dg.DagsterInstance, args: argparse.Namespace) -> None:
    if instance.get_latest_materialization_event(dg.AssetKey("leaderboard")) is None:
        raise SystemExit(
            f"Nothing to export: no sweep has run on the Dagster instance {os.environ['DAGSTER_HOME']} yet. "
            "Run `topic-pipeline sweep` first."
        )
    config = {"trial_key": args.trial, "serialization": args.serialization, "target_dir": args.target_dir}
    _execute(instance, "export_job", {}, run_config={"ops": {"topic_model": {"config": config}}})
    event = instance.get_latest_materialization_event(dg.AssetKey("topic_model"))
    metadata = event.asset_materialization.metadata
    print(
        f"exported {metadata['trial'].value} ({args.serialization}, {metadata['size_bytes'].value} bytes): {metadata['path'].value}"
    )
    if metadata["warnings"].value != "none":
        print(f"WARNING: {metadata['warnings'].value}")


if __name__ == "__main__":
    main(sys.argv[1:])

"""Dagster internals the pipeline needs, in one place. Only the Dagster layer (``defs``, ``cli``) imports it,
and it checks versions with ``_compat``'s helpers as the other compatibility modules do.

Written for Dagster 1.13.27 (the version pinned in pyproject.toml). On another version a one-line warning
says so at import, and each function checks that the internal it uses is still there and as expected, and
refuses with a clear message if not: there is no public path to fall back to."""

from __future__ import annotations

from typing import Any

from topic_pipeline._compat import UnsupportedVersion, check, installed_versions

SUPPORTED = {"dagster": ("1.13.27",)}
INSTALLED = installed_versions(SUPPORTED)
WRITTEN_FOR = SUPPORTED["dagster"][0]
check(__name__, SUPPORTED, INSTALLED, "each internal used is checked where it is used")


class UnsupportedDagsterVersion(UnsupportedVersion):
    """An internal of Dagster this module relies on is not what it was written for."""


def _refuse(what: str) -> UnsupportedDagsterVersion:
    return UnsupportedDagsterVersion(
        f"topic_pipeline's Dagster compatibility layer was written for dagster {WRITTEN_FOR}, "
        f"and dagster {INSTALLED['dagster']} no longer has {what}; install dagster=={WRITTEN_FOR}"
    )


def forget_job_definitions() -> None:
    """Drop the job definition Dagster keeps from the last run executed in this process.

    ``ReconstructableJob`` caches the last definition it built, and ours read the environment when built:
    a second run executed in the same process after the environment changed (tests, a long-lived caller)
    must get definitions built from the environment of now. Dagster has no public way to ask for that.
    """
    try:
        from dagster._core.definitions.reconstruct import ReconstructableJob

        caches = (ReconstructableJob.get_definition, ReconstructableJob.get_repository_definition)
        for cached in caches:
            cached.cache_clear()
    except (ImportError, AttributeError):
        raise _refuse("ReconstructableJob's definition caches") from None


def run_partition_tags() -> tuple[str, str, str]:
    """The run tags that name a run's partition, and the first and last partition of a run over a range:
    ``(partition, range start, range end)``.

    A run over a range of partitions is how one run materialises many trials; Dagster has no public
    argument for it outside backfills, only these tags (set in the launchpad, or by a sensor), and
    exports no public name for them. They are written here as the strings Dagster stores on runs and
    checked against Dagster's own names for them, so a Dagster that renamed them is refused instead of
    launching runs that would materialise no partition, or all of them.
    """
    tags = ("dagster/partition", "dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
    try:
        from dagster._core.storage.tags import (
            ASSET_PARTITION_RANGE_END_TAG,
            ASSET_PARTITION_RANGE_START_TAG,
            PARTITION_NAME_TAG,
        )
    except ImportError:
        raise _refuse("its partition and partition-range run tags") from None
    if tags != (PARTITION_NAME_TAG, ASSET_PARTITION_RANGE_START_TAG, ASSET_PARTITION_RANGE_END_TAG):
        raise _refuse(f"the run tags {', '.join(tags)}")
    return tags


def create_code_location_run(
    job: Any,
    instance: Any,
    run_id: str,
    tags: dict[str, str],
    run_config: dict,
    location: tuple[str, str, str],
) -> Any:
    """Create the run of the reconstructable ``job`` with the id ``run_id``, as a run of the code location
    ``location``, ``(location name, module the webserver loads it from, repository name)``, for
    ``execute_created_run``.

    ``dg.execute_job`` creates its run with no code-location origin: the UI then leaves such a run out of
    its Overview timeline and its jobs' recent-run bars, which look for runs of a location. The webserver's
    own launches set the origin through a loaded workspace; executing in this process, there is none, so the
    origin is built here as the webserver builds it for a project (a managed gRPC location of the module)
    and the run is created as ``dg.execute_job`` creates it, but with that origin. No public API takes one.
    """
    import os
    import sys

    try:
        from dagster._core.execution.api import _check_execute_job_args, _job_with_repository_load_data
        from dagster._core.remote_origin import (
            ManagedGrpcPythonEnvCodeLocationOrigin,
            RemoteJobOrigin,
            RemoteRepositoryOrigin,
        )
        from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    except ImportError:
        raise _refuse("the run-creation internals of dagster.execute_job") from None
    job, repository_load_data = _job_with_repository_load_data(job)
    job, run_config, tags, resolved_op_selection, op_selection = _check_execute_job_args(
        job_arg=job, run_config=run_config, tags=tags, op_selection=None
    )
    location_name, module_name, repository = location
    target = LoadableTargetOrigin(
        executable_path=sys.executable, module_name=module_name, working_directory=os.getcwd()
    )
    origin = RemoteRepositoryOrigin(ManagedGrpcPythonEnvCodeLocationOrigin(target, location_name), repository)
    return instance.create_run_for_job(
        job_def=job.get_definition(),
        run_id=run_id,
        run_config=run_config,
        op_selection=op_selection,
        resolved_op_selection=resolved_op_selection,
        tags=tags,
        remote_job_origin=RemoteJobOrigin(origin, job.get_definition().name),
        job_code_origin=job.get_python_origin(),
        repository_load_data=repository_load_data,
    )


def execute_created_run(job: Any, run: Any, instance: Any) -> Any:
    """Execute a run made by ``create_code_location_run`` in this process, as ``dg.execute_job`` does once it
    has created its run; returns the same result (a context manager)."""
    try:
        from dagster._core.execution.api import execute_run
    except ImportError:
        raise _refuse("dagster._core.execution.api.execute_run") from None
    return execute_run(job, run, instance, raise_on_error=False)


def run_worker_health(healthy: bool | None, message: str | None = None) -> Any:
    """The answer a run launcher's ``check_run_worker_health`` gives: ``True`` running, ``False`` failed (with
    ``message``), ``None`` unknown. Dagster exports neither ``CheckRunHealthResult`` nor ``WorkerStatus``
    publicly; a launcher that answers for its workers must build them."""
    try:
        from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
    except ImportError:
        raise _refuse("dagster._core.launcher's CheckRunHealthResult and WorkerStatus") from None
    status = {True: WorkerStatus.RUNNING, False: WorkerStatus.FAILED, None: WorkerStatus.UNKNOWN}[healthy]
    return CheckRunHealthResult(status, message)


def packed_run_id(packed_args: Any) -> str | None:
    """The run id in the packed ``ExecuteRunArgs`` / ``ResumeRunArgs`` a Celery run task receives (the
    ``execute_job_args_packed`` argument of dagster-celery's ``execute_job`` and ``resume_job`` tasks), or
    None when it is not such a value. Unpacked with Dagster's public ``deserialize_value``; the classes and
    their ``run_id`` attribute are Dagster's internal gRPC arguments."""
    import json

    import dagster as dg

    if not isinstance(packed_args, dict) or packed_args.get("__class__") not in ("ExecuteRunArgs", "ResumeRunArgs"):
        return None
    run_id = getattr(dg.deserialize_value(json.dumps(packed_args)), "run_id", None)
    if not isinstance(run_id, str):
        raise _refuse("a run_id in its ExecuteRunArgs and ResumeRunArgs")
    return run_id


def _run_tag(constant: str, tag: str, what: str) -> str:
    """The run tag ``tag``, checked against Dagster's own name for it, ``dagster._core.storage.tags.<constant>``:
    Dagster exports these tags under no public name."""
    import dagster._core.storage.tags as tags

    if getattr(tags, constant, None) != tag:
        raise _refuse(f"{what} ({tag})")
    return tag


def run_key_tag() -> str:
    """The run tag holding a sensor's run key. A sensor launches a run key once, whatever became of its run;
    finding the runs of a key takes this tag."""
    return _run_tag("RUN_KEY_TAG", "dagster/run_key", "its run-key run tag")


def will_retry_tag() -> str:
    """The tag the run-retry daemon sets on a failed run, "true" when it will launch a retry of it."""
    return _run_tag("WILL_RETRY_TAG", "dagster/will_retry", "its will-retry run tag")


def parent_run_tag() -> str:
    """The tag a re-execution (a run retry among them) carries, naming the run it re-executes."""
    return _run_tag("PARENT_RUN_ID_TAG", "dagster/parent_run_id", "its parent-run run tag")


def root_run_tag() -> str:
    """The tag every re-execution (a run retry's too) carries, naming the first run of its group."""
    return _run_tag("ROOT_RUN_ID_TAG", "dagster/root_run_id", "its root-run run tag")

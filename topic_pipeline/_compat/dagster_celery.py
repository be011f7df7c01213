"""dagster-celery's undocumented parts, in one place: the Celery app its run launcher sends runs to, and the
names of the tasks that execute them. Only the cluster's worker (``topic_pipeline.cluster.worker``) imports it.

Written for dagster-celery 0.29.27 (pinned with the other Dagster libraries in pyproject.toml's ``celery``
extra): ``make_app.make_app``, ``tasks.create_execute_job_task`` / ``create_resume_job_task`` and
``config.DEFAULT_CONFIG``. On another version importing this module refuses with a clear message: a worker
whose tasks did not match the launcher's would take runs and never execute them.
"""

from __future__ import annotations

from typing import Any

from topic_pipeline._compat import check, installed_versions, refusal

SUPPORTED = {"dagster-celery": ("0.29.27",)}
INSTALLED = installed_versions(SUPPORTED)
if not check(__name__, SUPPORTED, INSTALLED, "refused: the run tasks' names and app may differ"):
    raise refusal(__name__, SUPPORTED, INSTALLED)

from dagster_celery.config import DEFAULT_CONFIG, TASK_EXECUTE_JOB_NAME, TASK_RESUME_JOB_NAME  # noqa: E402
from dagster_celery.make_app import make_app  # noqa: E402
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task  # noqa: E402

# The tasks that execute (or resume) a whole run, as dagster-celery's CeleryRunLauncher sends them.
RUN_TASK_NAMES = (TASK_EXECUTE_JOB_NAME, TASK_RESUME_JOB_NAME)
EXECUTE_RUN_TASK_NAME = TASK_EXECUTE_JOB_NAME


def run_task_app(broker: str, backend: str, **settings: Any) -> Any:
    """The Celery app whose tasks execute the runs CeleryRunLauncher sends, on ``broker`` and ``backend``, with
    dagster-celery's default settings updated by ``settings``."""
    app = make_app(
        {
            "broker": broker,
            "backend": backend,
            "include": [],
            "config_source": {**DEFAULT_CONFIG, **settings},
            "task_default_queue": DEFAULT_CONFIG["task_default_queue"],
        }
    )
    create_execute_job_task(app)
    create_resume_job_task(app)
    return app

"""Sweeps on many machines: Dagster runs launched as Celery tasks (dagster-celery's ``CeleryRunLauncher``) and
executed by ``dagster-celery worker`` processes, one per machine, all mounting one shared data directory.

* ``worker``: the workers' Celery app (``-A topic_pipeline.cluster.worker``); while a worker executes a
  run it records which worker it is in the run's record (shared directory) and raises a heartbeat count in
  the Celery result backend.
* ``launcher``: the instance's run launcher (deploy/celery/dagster.yaml), dagster-celery's with a health
  check that reads that heartbeat, so run monitoring fails the run of a worker that died and run retries
  send it to a live one.

Installed with the ``celery`` extra; nothing else in the package imports this one.
"""

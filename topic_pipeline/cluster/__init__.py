"""Sweeps on many machines: Dagster runs launched as Celery tasks (dagster-celery's ``CeleryRunLauncher``) and
executed by ``dagster-celery worker`` processes, one per machine, all mounting one shared data directory.

* ``worker``: imported by each worker at start (``-i topic_pipeline.cluster.worker``); while it executes a
  run it records which worker it is and raises a heartbeat in the run's record, in the shared directory.
* ``launcher``: the instance's run launcher (deploy/celery/dagster.yaml), dagster-celery's with a health
  check that reads that heartbeat, so run monitoring fails the run of a worker that died and run retries
  send it to a live one.

Installed with the ``celery`` extra; nothing else in the package imports this one.
"""

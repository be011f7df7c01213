"""MLflow logging, in one experiment per pipeline: a parent run per sweep (and, within a search, per search
round), each trial's run nested under it, and the leaderboard on the sweep's run.

Runs are told apart by their ``kind`` tag: ``sweep``, ``search_round``, ``trial``, ``export``. Trial runs
recorded before the tag existed have none and still count as trials.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from topic_pipeline.inputs.grid import complete_params
from topic_pipeline.redaction import mask_url, redact
from topic_pipeline.storage.results import STATUS_OK, TrialResult
from topic_pipeline.scoring.topic_words import TopicSummary

# Set on a trial's older run when its key is recorded again, naming the run that replaced it. The older
# run is soft-deleted: MLflow's runs list shows active runs by default, so each key shows its current
# result once, and the older runs stay under the list's deleted runs, restorable.
SUPERSEDED_BY_TAG = "topic_pipeline.superseded_by"
# An older run of the key still RUNNING this long after it started has lost its recorder (recording
# opens and closes a run within one call); a younger one may be another process's recording in progress.
ABANDONED_AFTER_S = 600
TRIAL = "trial"
# MLflow's own tags: the parent a run is nested under, and what the experiment is for (MLflow 3 opens an
# experiment without it in its GenAI view, which shows traces; ours holds training runs).
PARENT_RUN_TAG = "mlflow.parentRunId"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# MLflow's UI has no setting for how many digits a metric shows (mlflow/mlflow#17150) and prints what was
# logged, 16 digits included. Logged values are rounded to this many decimals, finer than any difference
# a labelled sample can resolve; the exact values stay in the result store and the leaderboard CSV.
METRIC_DECIMALS = 4


def _metric_value(value: float) -> float:
    return round(float(value), METRIC_DECIMALS)


def is_trial_run(tags: Mapping[str, str]) -> bool:
    return tags.get("kind", TRIAL) == TRIAL


def local_tracking_uri(directory: str | Path) -> str:
    """The embedded default: a SQLite-backed store inside the project's data directory."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'mlflow.db'}"


class _RedactingClient:
    """An ``MlflowClient`` whose errors carry no credential of the tracking URI.

    MLflow quotes the URI as written in its errors ("API request to https://user:pass@... failed"), and
    a step's error reaches Dagster's event log and the command line's output. The error is raised anew,
    redacted, without the original chained to it (its message holds the URI too); MLflow's own errors
    keep their type and code, so callers that handle them still do.
    """

    def __init__(self, client: Any, tracking_uri: str):
        self._client = client
        self._tracking_uri = tracking_uri

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attribute(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - every error is re-raised, redacted
                from mlflow.exceptions import MlflowException

                message = redact(str(exc), self._tracking_uri)
                if isinstance(exc, MlflowException):
                    raise MlflowException(message, error_code=exc.error_code) from None
                raise RuntimeError(f"MLflow {name} failed: {type(exc).__name__}: {message}") from None

        return call


class MlflowTracker:
    def __init__(self, tracking_uri: str, experiment_name: str, artifact_location: str | None = None,
                 ui_url: str | None = None):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.artifact_location = artifact_location
        self.ui_url = ui_url
        self._client: Any = None
        self._experiment_id: str | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = _RedactingClient(MlflowClient(tracking_uri=self.tracking_uri), self.tracking_uri)
        return self._client

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            experiment = self.client.get_experiment_by_name(self.experiment_name)
            if experiment is None:
                from mlflow.exceptions import MlflowException

                try:
                    self._experiment_id = self.client.create_experiment(
                        self.experiment_name, artifact_location=self.artifact_location,
                        tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
                    )
                except MlflowException:  # another process created it first
                    self._experiment_id = self.client.get_experiment_by_name(self.experiment_name).experiment_id
            else:
                self._experiment_id = experiment.experiment_id
                if EXPERIMENT_KIND_TAG not in experiment.tags:  # created by an earlier version
                    self.client.set_experiment_tag(self._experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return self._experiment_id

    def run_url(self, run_id: str) -> str | None:
        base = self.ui_url or (self.tracking_uri if self.tracking_uri.startswith(("http://", "https://")) else None)
        # A link is stored in Dagster's metadata: never with the credentials a tracking URI may hold.
        base = mask_url(base) if base else None
        if not base:
            return None
        return f"{base.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{run_id}"

    def _start_run(self, run_name: str, tags: Mapping[str, str]) -> str:
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=dict(tags))
        return run.info.run_id

    def sweep_run(self, sweep_id: str, search_round: int | None = None) -> str:
        """The parent run of the sweep ``sweep_id`` or, given ``search_round``, of that round of its search
        (itself nested under the sweep's run): found, or created the first time it is asked for."""
        parent = self._find_or_create({"kind": "sweep", "sweep_id": sweep_id}, f"sweep {sweep_id}")
        if search_round is None:
            return parent
        tags = {"kind": "search_round", "sweep_id": sweep_id, "search_round": str(search_round)}
        return self._find_or_create(tags, f"round {search_round}", parent)

    def _find_or_create(self, tags: Mapping[str, str], name: str, parent: str | None = None) -> str:
        query = " and ".join(f"tags.{key} = '{value}'" for key, value in tags.items())

        def oldest() -> str | None:
            runs = self.client.search_runs([self.experiment_id], query, order_by=["attributes.start_time ASC"], max_results=1)
            return runs[0].info.run_id if runs else None

        found = oldest()
        if found:
            return found
        created = self._start_run(name, {**tags, **({PARENT_RUN_TAG: parent} if parent else {})})
        # A parent holds no work of its own: finished at once (its children and the leaderboard still log to it).
        self.client.set_terminated(created, status="FINISHED")
        # Two processes asking at once each created one: all keep the oldest, and the newer goes.
        found = oldest()
        if found != created:
            self.client.delete_run(created)
        return found

    def log_trial(
        self, result: TrialResult, tags: Mapping[str, str], supersede_older: bool = True, parent_run_id: str | None = None,
        also_supersede: Sequence[str] = (),
    ) -> str:
        """Record a trial as a run of its own, nested under ``parent_run_id`` if given; with ``supersede_older``,
        its key's older runs are superseded (a search per call: callers that know a key was never recorded
        pass False), and so are those of the keys in ``also_supersede`` (the trial's earlier keys)."""
        from mlflow.entities import Metric, Param, RunTag

        parent = {PARENT_RUN_TAG: parent_run_id} if parent_run_id else {}
        run = self.client.create_run(
            self.experiment_id, run_name=result.key,
            tags={"kind": TRIAL, "trial_key": result.key, "status": result.status, **parent, **tags},
        )
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        # Every grid key, those a stored trial omits at their defaults (outlier reduction) included.
        values = complete_params(result.params)
        params = [Param(name, "none" if value is None else str(value)) for name, value in sorted(values.items())]
        metrics = [Metric(name, _metric_value(value), now, 0) for name, value in sorted(result.metrics.items()) if value is not None]
        metrics.append(Metric("duration_s", round(float(result.duration_s), 2), now, 0))
        extra_tags = [RunTag("error", result.error[:4000])] if result.error else []
        self.client.log_batch(run_id, metrics=metrics, params=params, tags=extra_tags)
        self.client.set_terminated(run_id, status="FINISHED" if result.status == STATUS_OK else "FAILED")
        # After the new run is complete: a kill before this point leaves the older run live, never none.
        if supersede_older:
            for key in (result.key, *also_supersede):
                self.supersede_older_runs(key, run_id, run.info.start_time)
        return run_id

    def trial_keys_with_unfinished_runs(self) -> set[str]:
        """The trial keys with a live run that did not finish (RUNNING, or KILLED by recovery): a new
        recording of one of them supersedes it. Two searches per step, whose answers stay short, since
        superseded runs are deleted."""
        keys: set[str] = set()
        for status in ("RUNNING", "KILLED"):  # MLflow compares a status with one value at a time
            runs = self.client.search_runs([self.experiment_id], f"attributes.status = '{status}'", max_results=50_000)
            keys.update(run.data.tags["trial_key"] for run in runs if "trial_key" in run.data.tags and is_trial_run(run.data.tags))
        return keys

    def supersede_older_runs(self, trial_key: str, run_id: str, start_time: int) -> list[str]:
        """Soft-delete the trial runs of ``trial_key`` older than ``run_id`` (started at ``start_time``,
        milliseconds), each tagged with ``SUPERSEDED_BY_TAG``, so the key keeps exactly one live run: the
        newest. One search per trial; deletions only for a key recorded before. Returns the ids deleted.

        An older run still RUNNING is marked KILLED first (what recovery would do), unless it is young
        enough to be another process's recording in progress: that one is left live, and the key's next
        recording supersedes it. Export runs carry the trial key too and are left alone.
        """
        quote = '"' if "'" in trial_key else "'"
        now = int(time.time() * 1000)
        superseded: list[str] = []
        page_token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], f"tags.trial_key = {quote}{trial_key}{quote}", page_token=page_token
            )
            for older in page:
                info = older.info
                if not is_trial_run(older.data.tags) or (info.start_time, info.run_id) >= (start_time, run_id):
                    continue
                if info.status == "RUNNING":
                    if now - info.start_time < ABANDONED_AFTER_S * 1000:
                        continue
                    self.client.set_terminated(info.run_id, status="KILLED")
                self.client.set_tag(info.run_id, SUPERSEDED_BY_TAG, run_id)
                self.client.delete_run(info.run_id)
                superseded.append(info.run_id)
            page_token = page.token
            if not page_token:
                return superseded

    def close_abandoned_runs(self, dagster_run_id: str) -> int:
        """Mark KILLED the trial runs a stopped Dagster run left RUNNING (killed between opening a trial's
        MLflow run and closing it; the trial itself is rerun and logged anew). Returns how many."""
        abandoned = self.client.search_runs(
            [self.experiment_id], f"tags.dagster_run_id = '{dagster_run_id}' and attributes.status = 'RUNNING'"
        )
        for run in abandoned:
            self.client.set_terminated(run.info.run_id, status="KILLED")
        return len(abandoned)

    def log_topics(self, run_id: str, topics: list[TopicSummary]) -> None:
        """A trial's topics (words, size, representative documents) as ``topics.json`` on its run."""
        self.client.log_dict(
            run_id,
            {"topics": [
                {"topic": t.topic, "size": t.size, "top_words": t.top_words, "representative_docs": t.representative_docs}
                for t in topics
            ]},
            "topics.json",
        )

    def log_export(self, directory: Path, trial_key: str, trial_run_id: str | None, tags: Mapping[str, str]) -> str:
        """The exported model's files as artifacts of a run linked to the trial's run."""
        run_id = self._start_run(f"export {trial_key}", {"kind": "export", "trial_key": trial_key,
                                                          "trial_run_id": trial_run_id or "", **tags})
        self.client.log_artifacts(run_id, str(directory), artifact_path="model")
        self.client.set_terminated(run_id, status="FINISHED")
        return run_id

    def log_leaderboard(
        self, sweep_run_id: str, csv_path: Path, markdown: str, best: Mapping[str, Any], tags: Mapping[str, str],
        report: Sequence[Path] = (),
    ) -> None:
        """The leaderboard on its sweep's run: the best trial's metrics (one step per leaderboard, so their
        history shows the sweep converge), the CSV, the Markdown summary and the ``report``'s files."""
        from mlflow.entities import Metric, RunTag

        step = len(self.client.get_metric_history(sweep_run_id, "leaderboards"))
        now = int(time.time() * 1000)
        metrics = [Metric(f"best_{name}", _metric_value(value), now, step) for name, value in best.items()
                   if isinstance(value, (int, float)) and value is not None]
        metrics.append(Metric("leaderboards", float(step + 1), now, step))
        # A param cannot change once logged: the best trial of the latest leaderboard is a tag.
        run_tags = [RunTag("best_trial", str(best.get("trial", "none"))), *(RunTag(k, v) for k, v in tags.items())]
        self.client.log_batch(sweep_run_id, metrics=metrics, tags=run_tags)
        self.client.log_artifact(sweep_run_id, str(csv_path))
        self.client.log_text(sweep_run_id, markdown, "leaderboard.md")
        for path in report:
            self.client.log_artifact(sweep_run_id, str(path), artifact_path="report")

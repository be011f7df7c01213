"""MLflow logging, in one experiment per pipeline: a parent run per sweep (and, within a search, per search
round), each trial's run nested under it, and the leaderboard on the sweep's run.

Runs are told apart by their ``kind`` tag: ``sweep``, ``search_round``, ``trial``, ``export``. A run
without the tag (made outside the tracker) counts as a trial run.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from topic_pipeline.domain.results import STATUS_OK, TrialResult
from topic_pipeline.domain.trials import TrialParams, complete_params
from topic_pipeline.errors import TopicPipelineError
from topic_pipeline.redaction import mask_url, redact
from topic_pipeline.scoring.holdout import ALL_PREFIX, HELDOUT_PREFIX, score_order
from topic_pipeline.scoring.topic_words import TopicSummary

# Set on a trial's older run when its key is recorded again, naming the run that replaced it. The older
# run is soft-deleted: MLflow's runs list shows active runs by default, so each key shows its current
# result once, and the older runs stay under the list's deleted runs, restorable.
SUPERSEDED_BY_TAG = "topic_pipeline.superseded_by"
# An older run of the key still RUNNING this long after it started has lost its recorder (recording
# opens and closes a run within one call); a younger one may be another process's recording in progress.
ABANDONED_AFTER_S = 600
# Set on a trial's run whose result never reached the result store: the recording was stopped (killed)
# between closing the run and storing the result. The trial counts as not run and is planned again; its
# next recording supersedes this run (``trial_keys_with_unfinished_runs`` finds it for that).
RESULT_NOT_STORED_TAG = "topic_pipeline.result_not_stored"
# When the tracker recorded a trial's run (milliseconds since the epoch). A trial run's start time is its
# trial's own start (its end minus its duration, so MLflow shows the trial's real duration), which says
# nothing of which of a key's runs was recorded last; this does. A run without it (made outside the
# tracker) counts as recorded when it started.
RECORDED_AT_TAG = "topic_pipeline.recorded_at"
TRIAL = "trial"
# MLflow's own tags: the parent a run is nested under, and what the experiment is for (MLflow 3 opens an
# experiment without it in its GenAI view, which shows traces; ours holds training runs).
PARENT_RUN_TAG = "mlflow.parentRunId"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# The query that makes MLflow 3.17's UI open a run on the model-training Runs view; the experiment tag alone does not.
RUNS_VIEW_QUERY = "workflowType=machine_learning"
# MLflow's run description: a run's page shows it under "Description" (Markdown).
NOTE_TAG = "mlflow.note.content"
# MLflow's UI has no setting for how many digits a metric shows (mlflow/mlflow#17150) and prints what was
# logged, 16 digits included. Logged values are rounded to this many decimals, finer than any difference
# a labelled sample can resolve; the exact values stay in the result store and the leaderboard CSV.
METRIC_DECIMALS = 4
# Where a sweep's run holds its report's files among its artifacts.
REPORT_ARTIFACTS = "report"


def _metric_value(value: float) -> float:
    return round(float(value), METRIC_DECIMALS)


# A trial's held-out and all-labels scores are ``heldout_<name>`` and ``all_<name>`` in the result store, the
# leaderboard and Dagster's metadata; in MLflow, and only there, they are ``<name>_heldout`` and ``<name>_all``.
# MLflow lists metrics alphabetically in its charts and its runs table's column chooser, where the prefixed
# names put ten ``all_*`` scores before ``ari``; suffixed, each score comes first with its own held-out and
# all-labels values after it.
MLFLOW_METRIC_SUFFIXES = {HELDOUT_PREFIX: "_heldout", ALL_PREFIX: "_all"}


def mlflow_metric_name(name: str) -> str:
    """A trial metric's name in MLflow (``heldout_ari`` -> ``ari_heldout``, ``all_ari`` -> ``ari_all``,
    ``ari`` unchanged): the one place where names change, at the logging boundary."""
    for prefix, suffix in MLFLOW_METRIC_SUFFIXES.items():
        if name.startswith(prefix):
            return f"{name[len(prefix) :]}{suffix}"
    return name


def trial_run_name(result: TrialResult) -> str:
    """A trial run's display name (``TrialParams.run_name``); the key if its parameters are not a whole trial's."""
    try:
        return TrialParams.from_dict(result.params).run_name
    except (KeyError, TypeError, ValueError):
        return result.key


def _recorded_at(run: Any) -> int:
    """When the tracker recorded ``run`` (``RECORDED_AT_TAG``), else when it started."""
    recorded = run.data.tags.get(RECORDED_AT_TAG, "")
    return int(recorded) if recorded.isdigit() else int(run.info.start_time or 0)


def _recording_order(run: Any) -> tuple[int, str]:
    """A key's runs in the order they were recorded, the run id breaking ties: every process agrees on it."""
    return _recorded_at(run), run.info.run_id


def is_trial_run(tags: Mapping[str, str]) -> bool:
    return tags.get("kind", TRIAL) == TRIAL


def _closed_status(result: TrialResult) -> str:
    return "FINISHED" if result.status == STATUS_OK else "FAILED"


def _finished_at(result: TrialResult) -> int | None:
    """When the trial finished (milliseconds), if its result says."""
    return int(result.finished_at * 1000) if result.finished_at and result.finished_at > 0 else None


def _sweep_description(sweep_id: str) -> str:
    return (
        f"Sweep `{sweep_id}`: one grid on one set of inputs (corpus, labels, seed, held-out split). Every trial "
        "of the sweep is a run nested under this one (in a search, under its round's run, itself nested here), "
        "named by its values, HDBSCAN's first; its `trial_key` tag is the trial's key.\n\n"
        "Artifacts: `leaderboard.csv` (every trial ranked) and `leaderboard.md` (the summary), replaced by each "
        "leaderboard; under `report/`, the sweep report (`report.html` and the files it shows), replaced by each "
        "report. Metrics: the leaderboard's figures, one step per leaderboard.\n\n"
        "A trial run's metrics: plain names (`ari`, ...) score the labels used for selection, the only ones "
        "ranking reads; `<name>_heldout` the held-out labels; `<name>_all` every labelled document."
    )


def _round_description(sweep_id: str, search_round: int) -> str:
    return (
        f"Round {search_round} of the search of sweep `{sweep_id}`: the trials this round proposed are runs "
        "nested under this one. The leaderboard and the report are on the sweep's run, this run's parent."
    )


def _newest(runs: Sequence[Any]) -> Any:
    """The most recently recorded of ``runs``."""
    return max(runs, key=_recording_order)


def local_tracking_uri(directory: str | Path) -> str:
    """The embedded default: a SQLite-backed store inside the project's data directory."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'mlflow.db'}"


class TrackingUnavailableError(TopicPipelineError):
    """The MLflow tracking server cannot be reached, or the tracking store cannot be opened."""


# What ``check_reachable`` waits for an answer by default: a server that is up answers in milliseconds.
REACHABLE_TIMEOUT_S = 5.0
_DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def check_reachable(
    tracking_uri: str,
    timeout_s: float = REACHABLE_TIMEOUT_S,
    setting: str | None = "MLFLOW_TRACKING_URI",
    experiment_name: str = "topic_pipeline",
) -> None:
    """Raise ``TrackingUnavailableError`` with one line saying why, within about ``timeout_s`` seconds,
    unless the tracking store of ``tracking_uri`` answers; ``setting`` names where the URI was set
    (None: it is the local default store).

    MLflow's own client retries a request that fails to connect for minutes (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``
    7 with exponential back-off, ``MLFLOW_HTTP_REQUEST_TIMEOUT`` 120 s per try, in MLflow 3), so a sweep
    would find an unreachable server only when it first records a trial. This asks once, without retries:
    an http(s) server for the experiment by name through MLflow's REST API (with the credentials and TLS
    settings MLflow would use; any MLflow answer, "no such experiment" included, counts as reachable), a
    database store for ``SELECT 1``, a file store for a directory it can write. Other stores (Databricks)
    are not checked. The URI is shown masked, and the reason redacted of the URI's secrets."""
    scheme = tracking_uri.split(":", 1)[0].split("+", 1)[0].lower() if "://" in tracking_uri else "file"
    if scheme in ("http", "https"):
        probe, what = _probe_server, "MLflow tracking server"
    elif scheme in _DATABASE_SCHEMES:
        probe, what = _probe_database, "MLflow tracking database"
    elif scheme == "file":
        probe, what = _probe_directory, "MLflow tracking directory"
    else:
        return
    outcome: list[str | None] = []
    worker = threading.Thread(
        target=lambda: outcome.append(_problem(probe, tracking_uri, timeout_s, experiment_name)), daemon=True
    )
    worker.start()
    # Name resolution and some drivers ignore the timeout: the check waits a bounded time all the same.
    worker.join(timeout_s + 2)
    problem = outcome[0] if outcome else f"cannot be reached: no answer within {timeout_s:g} s"
    if problem is None:
        return
    if problem.startswith("rejected"):
        advice = (
            "check the credentials it is given (in the URI, MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, "
            "or MLFLOW_TRACKING_TOKEN)"
        )
    elif not setting:
        advice = "check that the data directory is writable"
    elif problem.startswith("does not answer"):
        advice = f"check the address in {setting}"
    elif scheme in ("sqlite", "file"):
        advice = f"check the path in {setting} or unset it to use the local store"
    else:
        advice = f"start it or unset {setting} to use the local store"
    shown = mask_url(tracking_uri) if "://" in tracking_uri else tracking_uri
    where = f" ({setting})" if setting else ""
    raise TrackingUnavailableError(f"{what} at {shown}{where} {redact(problem, tracking_uri)}; {advice}")


def _problem(probe: Callable[[str, float, str], str | None], uri: str, timeout_s: float, experiment: str) -> str | None:
    """What is wrong with the store, as the rest of a sentence naming it; None if nothing."""
    verb = "cannot be reached" if probe is _probe_server else "cannot be opened"
    try:
        return probe(uri, timeout_s, experiment)
    except Exception as exc:
        return f"{verb}: {_root_reason(exc, timeout_s)}"


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything behind it: causes, contexts and urllib3's ``reason``."""
    found: list[BaseException] = []
    pending: list[object] = [exc]
    while pending:
        current = pending.pop(0)
        if not isinstance(current, BaseException) or any(current is seen for seen in found):
            continue
        found.append(current)
        pending.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
    return found


def _root_reason(exc: BaseException, timeout_s: float) -> str:
    """Why a connection failed, in a few words."""
    import socket
    import ssl

    causes = _causes(exc)
    timeouts = ("ConnectTimeout", "ReadTimeout", "ConnectTimeoutError", "ReadTimeoutError", "Timeout")
    for cause in causes:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
    for cause in causes:
        if isinstance(cause, socket.gaierror):
            return f"its host name does not resolve ({cause.strerror or cause})"
        if isinstance(cause, TimeoutError) or type(cause).__name__ in timeouts:
            return f"no answer within {timeout_s:g} s"
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed ({cause.reason or cause})"
    innermost = causes[-1]
    lines = str(innermost).strip().splitlines()
    text = " ".join(lines[0].split())[:300] if lines else ""
    return f"{type(innermost).__name__}: {text}" if text else type(innermost).__name__


def _probe_server(uri: str, timeout_s: float, experiment: str) -> str | None:
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    response = http_request(
        get_default_host_creds(uri),
        "/api/2.0/mlflow/experiments/get-by-name",
        "GET",
        max_retries=0,
        backoff_factor=0,
        backoff_jitter=0,
        timeout=timeout_s,
        raise_on_status=False,
        params={"experiment_name": experiment},
    )
    code = response.status_code
    if code == 200:
        return None
    status = f"HTTP {code} {response.reason or ''}".rstrip()
    if code in (401, 403):
        return f"rejected the request: {status}"
    try:
        answer = response.json()
    except ValueError:
        answer = None
    # MLflow answers a missing experiment with 404 and its own error code: the server is there.
    if isinstance(answer, dict) and answer.get("error_code") == "RESOURCE_DOES_NOT_EXIST":
        return None
    if code >= 500:
        return f"cannot be reached: {status}"
    return f"does not answer as an MLflow tracking server: {status} for api/2.0/mlflow/experiments/get-by-name"


def _probe_database(uri: str, timeout_s: float, experiment: str) -> str | None:
    import sqlalchemy as sa

    url = sa.engine.make_url(uri)
    backend = url.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend in ("postgresql", "mysql"):
        connect_args["connect_timeout"] = max(1, int(timeout_s))
    elif backend == "sqlite":
        connect_args["timeout"] = timeout_s
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            folder = Path(database).expanduser().resolve().parent
            if not folder.is_dir():
                return f"cannot be opened: its folder {folder} does not exist"
    engine = sa.create_engine(url, connect_args=connect_args, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    finally:
        engine.dispose()
    return None


def _probe_directory(uri: str, timeout_s: float, experiment: str) -> str | None:
    import os
    from urllib.parse import unquote, urlparse

    path = Path(unquote(urlparse(uri).path) if uri.startswith("file:") else uri).expanduser()
    if path.exists():
        if not path.is_dir():
            return f"cannot be opened: {path} is not a directory"
        return None if os.access(path, os.W_OK | os.X_OK) else f"cannot be opened: {path} is not writable"
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
        return None
    return f"cannot be opened: {path} cannot be created in {parent}"


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
            except Exception as exc:  # every error is re-raised, redacted
                from mlflow.exceptions import MlflowException

                message = redact(str(exc), self._tracking_uri)
                if isinstance(exc, MlflowException):
                    raise MlflowException(message, error_code=exc.error_code) from None
                raise RuntimeError(f"MLflow {name} failed: {type(exc).__name__}: {message}") from None

        return call


class MlflowTracker:
    """``uri_setting`` names the setting ``tracking_uri`` comes from, for messages (None: the local default)."""

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str,
        artifact_location: str | None = None,
        ui_url: str | None = None,
        uri_setting: str | None = None,
    ):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.artifact_location = artifact_location
        self.ui_url = ui_url
        self.uri_setting = uri_setting
        self._client: Any = None
        self._experiment_id: str | None = None

    def check_reachable(self, timeout_s: float = REACHABLE_TIMEOUT_S) -> None:
        """``check_reachable`` for this tracker's store: raises ``TrackingUnavailableError`` within seconds."""
        check_reachable(self.tracking_uri, timeout_s, self.uri_setting, self.experiment_name)

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
                        self.experiment_name,
                        artifact_location=self.artifact_location,
                        tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
                    )
                except MlflowException:  # another process created it first
                    self._experiment_id = self.client.get_experiment_by_name(self.experiment_name).experiment_id
            else:
                self._experiment_id = experiment.experiment_id
                if EXPERIMENT_KIND_TAG not in experiment.tags:  # created elsewhere (the MLflow UI, another tool)
                    self.client.set_experiment_tag(self._experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return self._experiment_id

    def run_url(self, run_id: str, artifact: str | None = None) -> str | None:
        """The run's page in the MLflow UI (given ``artifact``, a path among its artifacts: that artifact in its
        Artifacts tab), opening on the Runs view (``RUNS_VIEW_QUERY``); None without a UI."""
        base = self.ui_url or (self.tracking_uri if self.tracking_uri.startswith(("http://", "https://")) else None)
        # A link is stored in Dagster's metadata: never with the credentials a tracking URI may hold.
        base = mask_url(base) if base else None
        if not base:
            return None
        page = f"{base.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{run_id}"
        if artifact:
            page += f"/artifacts/{artifact}"
        # MLflow 3 opens an experiment in its GenAI view unless the link asks for the model-training one.
        return f"{page}?{RUNS_VIEW_QUERY}"

    def _start_run(self, run_name: str, tags: Mapping[str, str]) -> str:
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=dict(tags))
        return run.info.run_id

    def sweep_run(self, sweep_id: str, search_round: int | None = None) -> str:
        """The parent run of the sweep ``sweep_id`` or, given ``search_round``, of that round of its search
        (itself nested under the sweep's run): found, or created the first time it is asked for, with a
        description of what it holds (MLflow's ``mlflow.note.content``)."""
        parent = self._find_or_create(
            {"kind": "sweep", "sweep_id": sweep_id}, f"sweep {sweep_id}", description=_sweep_description(sweep_id)
        )
        if search_round is None:
            return parent
        tags = {"kind": "search_round", "sweep_id": sweep_id, "search_round": str(search_round)}
        return self._find_or_create(
            tags, f"round {search_round}", parent, description=_round_description(sweep_id, search_round)
        )

    def _find_or_create(
        self, tags: Mapping[str, str], name: str, parent: str | None = None, description: str | None = None
    ) -> str:
        query = " and ".join(f"tags.{key} = '{value}'" for key, value in tags.items())

        def oldest() -> str | None:
            runs = self.client.search_runs(
                [self.experiment_id], query, order_by=["attributes.start_time ASC"], max_results=1
            )
            return runs[0].info.run_id if runs else None

        found = oldest()
        if found:
            return found
        created = self._start_run(
            name,
            {
                **tags,
                **({PARENT_RUN_TAG: parent} if parent else {}),
                **({NOTE_TAG: description} if description else {}),
            },
        )
        # A parent holds no work of its own: finished at once (its children and the leaderboard still log to it).
        self.client.set_terminated(created, status="FINISHED")
        # Two processes asking at once each created one: all keep the oldest, and the newer goes.
        found = oldest()
        if found != created:
            self.client.delete_run(created)
        return found

    def log_trial(
        self,
        result: TrialResult,
        tags: Mapping[str, str],
        supersede_older: bool = True,
        parent_run_id: str | None = None,
    ) -> str:
        """Record a trial as a run of its own, nested under ``parent_run_id`` if given; with ``supersede_older``,
        its key's older runs are superseded (a search per call: callers that know a key was never recorded
        pass False)."""
        parent = {PARENT_RUN_TAG: parent_run_id} if parent_run_id else {}
        recorded_at = int(time.time() * 1000)
        # Logged after the fact: the run spans the trial itself (MLflow's Duration), ending when the trial
        # finished (or now, for a result without its finish time).
        end = _finished_at(result) or recorded_at
        run = self.client.create_run(
            self.experiment_id,
            start_time=end - max(0, round(float(result.duration_s) * 1000)),
            run_name=trial_run_name(result),
            tags={
                "kind": TRIAL,
                "trial_key": result.key,
                "status": result.status,
                **parent,
                **tags,
                RECORDED_AT_TAG: str(recorded_at),
            },
        )
        run_id = run.info.run_id
        self._log_values(run_id, result)
        self.client.set_terminated(run_id, status=_closed_status(result), end_time=end)
        # After the new run is complete: a kill before this point leaves the older run live, never none.
        if supersede_older and run_id in self.supersede_older_runs(result.key, run_id, recorded_at):
            # A recording of another Dagster run, closed after this one, is the key's live run: the result names it.
            return self.client.get_run(run_id).data.tags[SUPERSEDED_BY_TAG]
        return run_id

    def _log_values(self, run_id: str, result: TrialResult) -> None:
        """A trial's parameters, metrics (named for MLflow, in ``score_order``: a run's page lists them as logged, on SQLite and PostgreSQL stores as checked here; MLflow reads them without ORDER BY, so this is observed, not promised) and error on its run."""
        from mlflow.entities import Metric, Param, RunTag

        measured = _finished_at(result) or int(time.time() * 1000)
        # Every grid key, those a stored trial omits at their defaults (outlier reduction) included.
        values = complete_params(result.params)
        params = [Param(name, "none" if value is None else str(value)) for name, value in sorted(values.items())]
        scores = {name: value for name, value in result.metrics.items() if value is not None}
        scores["duration_s"] = round(float(result.duration_s), 2)
        metrics = [
            Metric(mlflow_metric_name(name), _metric_value(scores[name]), measured, 0)
            for name in sorted(scores, key=score_order)
        ]
        extra_tags = [RunTag("error", result.error[:4000])] if result.error else []
        self.client.log_batch(run_id, metrics=metrics, params=params, tags=extra_tags)

    def trial_keys_with_unfinished_runs(self) -> set[str]:
        """The trial keys with a live run that did not finish (RUNNING, or KILLED by recovery) or whose
        result was not stored (``RESULT_NOT_STORED_TAG``, set by ``reconcile_trial_runs``): a new recording
        of one of them supersedes it. Three searches per step, whose answers stay short, since superseded
        runs are deleted."""
        keys: set[str] = set()
        # MLflow compares a status with one value at a time.
        queries = [f"attributes.status = '{status}'" for status in ("RUNNING", "KILLED")]
        queries.append(f"tags.`{RESULT_NOT_STORED_TAG}` = 'true'")
        for query in queries:
            runs = self.client.search_runs([self.experiment_id], query, max_results=50_000)
            keys.update(
                run.data.tags["trial_key"]
                for run in runs
                if "trial_key" in run.data.tags and is_trial_run(run.data.tags)
            )
        return keys

    def supersede_older_runs(self, trial_key: str, run_id: str, recorded_at: int) -> list[str]:
        """Soft-delete the trial runs of ``trial_key`` recorded before ``run_id`` (recorded at ``recorded_at``,
        milliseconds; ``RECORDED_AT_TAG``), each tagged with ``SUPERSEDED_BY_TAG``, so the key keeps exactly
        one live run: the most recently recorded. One search per trial; deletions only for a key recorded
        before. Returns the ids deleted.

        An older run still RUNNING is marked KILLED first (what recovery would do), unless it was recorded
        recently enough to be another process's recording in progress: that one is left live, and whichever
        of the two recordings closes last supersedes the other. So if a run of the key recorded after
        ``run_id`` is already closed (two Dagster runs recording the same trial at once), ``run_id`` itself
        is superseded by it. Export runs carry the trial key too and are left alone.
        """
        quote = '"' if "'" in trial_key else "'"
        now = int(time.time() * 1000)
        mine = (recorded_at, run_id)
        superseded: list[str] = []
        successors: list[Any] = []
        page_token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], f"tags.trial_key = {quote}{trial_key}{quote}", page_token=page_token
            )
            for other in page:
                info = other.info
                if not is_trial_run(other.data.tags) or info.run_id == run_id:
                    continue
                if _recording_order(other) > mine:
                    # Recorded after this run by another process: the key's run once it is complete.
                    if info.status in ("FINISHED", "FAILED") and RESULT_NOT_STORED_TAG not in other.data.tags:
                        successors.append(other)
                    continue
                if info.status == "RUNNING" and now - _recorded_at(other) < ABANDONED_AFTER_S * 1000:
                    continue
                if self._supersede(info.run_id, run_id, kill=info.status == "RUNNING"):
                    superseded.append(info.run_id)
            page_token = page.token
            if not page_token:
                break
        if successors and self._supersede(run_id, _newest(successors).info.run_id):
            superseded.append(run_id)
        return superseded

    def _supersede(self, run_id: str, by: str, kill: bool = False) -> bool:
        """Tag ``run_id`` superseded by ``by`` and soft-delete it (marked KILLED first with ``kill``); False if
        another process deleted it meanwhile."""
        from mlflow.exceptions import MlflowException

        try:
            if kill:
                self.client.set_terminated(run_id, status="KILLED")
            self.client.set_tag(run_id, SUPERSEDED_BY_TAG, by)
            self.client.delete_run(run_id)
        except MlflowException:
            # A deleted run takes no tag and no status: superseded by a recording of another process.
            if self.client.get_run(run_id).info.lifecycle_stage != "deleted":
                raise
            return False
        return True

    def close_abandoned_runs(self, dagster_run_id: str) -> int:
        """Mark KILLED the trial runs a stopped Dagster run left RUNNING (killed between opening a trial's
        MLflow run and closing it; the trial itself is rerun and logged anew). Returns how many."""
        abandoned = self.client.search_runs(
            [self.experiment_id], f"tags.dagster_run_id = '{dagster_run_id}' and attributes.status = 'RUNNING'"
        )
        for run in abandoned:
            self.client.set_terminated(run.info.run_id, status="KILLED")
        return len(abandoned)

    def reconcile_trial_runs(
        self, stored: Callable[[str], TrialResult | None], stopped_runs: Collection[str]
    ) -> list[str]:
        """After the Dagster runs ``stopped_runs`` stopped half way (killed, crashed), give each trial key
        they recorded one live trial run: the one its stored result (``stored(key)``) names. Returns a line
        per kind of change made; none when there was nothing to do (a second call changes nothing).

        A trial is recorded in two steps, its MLflow run closed and then its result stored, and a stop can
        land between them. What it leaves, and what is done with it (only runs of ``stopped_runs`` are ever
        changed; a run of a Dagster run still going is only ever kept):

        * a run whose result was never stored: the trial counts as not run and is planned again. The run
          stays live, tagged ``RESULT_NOT_STORED_TAG``, so that the rerun's recording supersedes it (the
          key is one of ``trial_keys_with_unfinished_runs``): the key is never left without a run.
        * such runs next to the run the stored result names (a stop half way through the supersession of
          the older runs), or next to a later recording (rerun by a run whose stop left the older run live):
          superseded now, as a rerun supersedes them, by the run the stored result names or else the
          newest run of a Dagster run that did not stop.
        * the run the stored result names, superseded (deleted) by a run whose result was then not stored:
          restored, and the other superseded by it.
        * a run the stored result names left RUNNING (or marked KILLED by ``close_abandoned_runs``): its
          result was stored, so it is closed as the result says, its values logged if they are missing.

        Any other run of the stopped runs still RUNNING is marked KILLED first. One search of the
        experiment's live runs, and a stored result read per key a stopped run recorded.
        """
        from mlflow.exceptions import MlflowException

        stopped = set(stopped_runs)
        if not stopped:
            return []
        by_key: dict[str, list[Any]] = {}
        page_token = None
        while True:
            page = self.client.search_runs([self.experiment_id], "", max_results=50_000, page_token=page_token)
            for run in page:
                tags = run.data.tags
                if "trial_key" in tags and is_trial_run(tags):
                    by_key.setdefault(tags["trial_key"], []).append(run)
            page_token = page.token
            if not page_token:
                break
        superseded = restored = unstored = closed = 0
        for key, runs in sorted(by_key.items()):
            theirs = [run for run in runs if run.data.tags.get("dagster_run_id") in stopped]
            if not theirs:
                continue
            their_ids = {run.info.run_id for run in theirs}
            result = stored(key)
            named = result.tags.get("mlflow_run_id") if result is not None else None
            ids = {run.info.run_id for run in runs}
            if named in ids:
                keep = named
                (kept,) = [run for run in runs if run.info.run_id == named]
                if kept.info.status in ("RUNNING", "KILLED") and named in their_ids:
                    # Its result was stored: the run's recording was complete but for closing it.
                    if not kept.data.metrics:
                        self._log_values(named, result)
                    self.client.set_terminated(named, status=_closed_status(result))
                    closed += 1
            elif named and self._restore_superseded(named, their_ids):
                keep = named
                restored += 1
            else:
                others = [run for run in runs if run.info.run_id not in their_ids]
                keep = _newest(others or theirs).info.run_id
            for run in theirs:
                info = run.info
                if info.run_id == keep:
                    if info.run_id != named and run.data.tags.get(RESULT_NOT_STORED_TAG) != "true":
                        if info.status == "RUNNING":
                            self.client.set_terminated(info.run_id, status="KILLED")
                        self.client.set_tag(info.run_id, RESULT_NOT_STORED_TAG, "true")
                        unstored += 1
                    continue
                if info.status == "RUNNING":
                    self.client.set_terminated(info.run_id, status="KILLED")
                self.client.set_tag(info.run_id, SUPERSEDED_BY_TAG, keep)
                # Deleted since the search (another recovery): as intended.
                with contextlib.suppress(MlflowException):
                    self.client.delete_run(info.run_id)
                superseded += 1
        lines = []
        if superseded:
            lines.append(
                f"{superseded} MLflow trial run(s) that stopped runs left beside their trial's current run "
                f"superseded (tagged {SUPERSEDED_BY_TAG}, soft-deleted): each trial keeps one live run"
            )
        if restored:
            lines.append(
                f"{restored} MLflow trial run(s) named by a stored result restored (a run whose result "
                "was not stored had superseded them)"
            )
        if closed:
            lines.append(f"{closed} MLflow trial run(s) whose result was stored closed as their result says")
        if unstored:
            lines.append(
                f"{unstored} MLflow trial run(s) whose result a stop kept from the result store tagged "
                f"{RESULT_NOT_STORED_TAG}: each trial is rerun and its new run supersedes the old one"
            )
        return lines

    def _restore_superseded(self, run_id: str, superseded_by: set[str]) -> bool:
        """Restore the deleted trial run ``run_id`` if one of ``superseded_by`` superseded it."""
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":  # purged (mlflow gc), or never in this store
                return False
            raise
        tags = run.data.tags
        if (
            run.info.lifecycle_stage != "deleted"
            or not is_trial_run(tags)
            or tags.get(SUPERSEDED_BY_TAG) not in superseded_by
        ):
            return False
        self.client.restore_run(run_id)
        self.client.delete_tag(run_id, SUPERSEDED_BY_TAG)
        return True

    def log_topics(self, run_id: str, topics: list[TopicSummary]) -> None:
        """A trial's topics (words, size, representative documents) as ``topics.json`` on its run."""
        self.client.log_dict(
            run_id,
            {
                "topics": [
                    {
                        "topic": t.topic,
                        "size": t.size,
                        "top_words": t.top_words,
                        "representative_docs": t.representative_docs,
                    }
                    for t in topics
                ]
            },
            "topics.json",
        )

    def log_export(self, directory: Path, trial_key: str, trial_run_id: str | None, tags: Mapping[str, str]) -> str:
        """The exported model's files as artifacts of a run linked to the trial's run."""
        run_id = self._start_run(
            f"export {trial_key}",
            {"kind": "export", "trial_key": trial_key, "trial_run_id": trial_run_id or "", **tags},
        )
        self.client.log_artifacts(run_id, str(directory), artifact_path="model")
        self.client.set_terminated(run_id, status="FINISHED")
        return run_id

    def log_leaderboard(
        self,
        sweep_run_id: str,
        csv_path: Path,
        markdown: str,
        series: Mapping[str, float],
        tags: Mapping[str, str],
    ) -> None:
        """The leaderboard on its sweep's run: ``series`` as metrics, one step per leaderboard (each its own
        chart in MLflow: the best trial so far, the recommended configuration's mean, its held-out estimate),
        ``tags`` (a param cannot change once logged: the recommended trial of the latest leaderboard is a
        tag), the CSV and the Markdown summary."""
        from mlflow.entities import Metric, RunTag

        step = len(self.client.get_metric_history(sweep_run_id, "leaderboards"))
        now = int(time.time() * 1000)
        metrics = [Metric(name, _metric_value(value), now, step) for name, value in series.items()]
        metrics.append(Metric("leaderboards", float(step + 1), now, step))
        self.client.log_batch(sweep_run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in tags.items()])
        self.client.log_artifact(sweep_run_id, str(csv_path))
        self.client.log_text(sweep_run_id, markdown, "leaderboard.md")

    def log_report(self, sweep_run_id: str, files: Sequence[Path], artifact_path: str = REPORT_ARTIFACTS) -> None:
        """The sweep report's files (its page and images) on the sweep's run, under ``artifact_path``: those of
        an earlier report of the same names are replaced."""
        for path in files:
            self.client.log_artifact(sweep_run_id, str(path), artifact_path=artifact_path)

"""Whole sweeps under faults, through the project's CLI in subprocesses on persistent Dagster instances.

* A sweep killed mid-way (SIGKILL to the CLI alone) takes its step process, fork server and engine
  workers with it; resumed by two sweeps at once (one waits for the other), it runs only its
  unfinished trials, once, reuses every finished cache entry, and ends with the same leaderboard as a
  sweep that was never interrupted.
* Bad input of every kind, fed to that uninterrupted sweep's instance afterwards, gets a clear error
  and leaves every earlier materialisation, stored value, result and the export as they were.
* That uninterrupted sweep (and an export after it) reads its texts from PostgreSQL through a URL with
  a password, with HF_TOKEN set, and two more sweeps on its instance carry a password in the other
  forms a URL allows (a query parameter; an unencoded '@'): no secret may appear in any log, Dagster
  event or metadata, MLflow record or file they (or the bad-input runs) left behind.

Real parts throughout: ``topic-pipeline sweep`` / ``export``, SQLite and PostgreSQL sources, SQLite
MLflow stores, the packaged embedding model. The uninterrupted sweep runs at the same time as the one
that gets killed (two cores), on the same corpus and labels; to save an embedding run, the killed
sweep's embeddings are computed here, into the cache it reads.
"""

import dataclasses
import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from conftest import postgres_test_database
from topic_pipeline.domain.trials import DEFAULT_EMBEDDING_MODEL, EmbeddingSet
from topic_pipeline.inputs.corpus import SqlSource, load_corpus
from topic_pipeline.inputs.demo_corpus import generate_demo_corpus
from topic_pipeline.inputs.embeddings import EmbeddingCache, EmbeddingSettings, embed_corpus
from topic_pipeline.storage.files import read_json
from topic_pipeline.storage.paths import DataPaths
from topic_pipeline.storage.results import ResultStore

pytestmark = pytest.mark.slow

N_REDUCTIONS = 6
# Six UMAP reductions (one per n_components) x two cluster sizes: a kill lands between them.
GRID = {"umap_n_neighbors": [10], "umap_n_components": [2, 3, 4, 5, 6, 7], "hdbscan_min_cluster_size": [8, 20]}


@pytest.fixture
def tiny_grid():
    return GRID


def _cli() -> str:
    return str(Path(sys.executable).parent / "topic-pipeline")


def _start(project: Path, log_name: str, command: str, environment: dict[str, str]) -> subprocess.Popen:
    """``command`` (CLI subcommands joined by &&) in its own session and process group, so that a kill
    reaches every process it starts."""
    script = " && ".join(f'"{_cli()}" {part.strip()}' for part in command.split("&&"))
    log = open(project / log_name, "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        ["bash", "-c", script],
        cwd=project,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _start_sweep(project: Path, log_name: str) -> subprocess.Popen:
    environment = {
        **os.environ,
        "DAGSTER_HOME": str(project / "dagster_home"),
        "TOPIC_PIPELINE_DATA_DIR": str(project / "data"),
    }
    return _start(project, log_name, "sweep", environment)


@dataclasses.dataclass
class Sweep:
    root: Path
    process: subprocess.Popen
    secrets: dict[str, str]
    environment: dict[str, str]


@pytest.fixture(scope="module")
def uninterrupted_sweep(tmp_path_factory):
    """``topic-pipeline sweep && topic-pipeline export`` on the tiny corpus, texts from PostgreSQL.

    Started in the background; the tests wait for it (``_finished``).
    """
    connection = postgres_test_database()
    table = f"tp_faults_{uuid.uuid4().hex[:12]}"
    corpus = generate_demo_corpus(n_docs=200, n_topics=4)  # the corpus and labels of the tiny_project fixture
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE TABLE "{table}" (article_id BIGINT PRIMARY KEY, headline TEXT NOT NULL)')
        cursor.executemany(f'INSERT INTO "{table}" VALUES (%s, %s)', list(zip(corpus.ids, corpus.texts)))
    root = tmp_path_factory.mktemp("uninterrupted")
    (root / "dagster_home").mkdir()
    (root / "labels.json").write_text(json.dumps(corpus.ground_truth(labelled_fraction=0.5)))
    (root / "grid.json").write_text(json.dumps(GRID))
    # Trust authentication ignores the password, so a real one can travel in the URL.
    secrets = {"password": f"S3cr3t-{uuid.uuid4().hex}", "token": f"hf_{uuid.uuid4().hex}"}
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith(("TOPIC_PIPELINE_", "MLFLOW_"))},
        "DAGSTER_HOME": str(root / "dagster_home"),
        "TOPIC_PIPELINE_DATA_DIR": str(root / "data"),
        "TOPIC_PIPELINE_DATABASE_URL": f"postgresql+psycopg2://postgres:{secrets['password']}@127.0.0.1:5432/test",
        "TOPIC_PIPELINE_DOCUMENTS_TABLE": table,
        "TOPIC_PIPELINE_ID_COLUMN": "article_id",
        "TOPIC_PIPELINE_TEXT_COLUMN": "headline",
        "TOPIC_PIPELINE_GROUND_TRUTH": str(root / "labels.json"),
        "TOPIC_PIPELINE_GRID": str(root / "grid.json"),
        "TOPIC_PIPELINE_EXPERIMENT": "uninterrupted",
        "TOPIC_PIPELINE_WORKERS": "1",  # no pool needed; its labels equal the pool's (test_engine)
        "HF_TOKEN": secrets["token"],
        "HF_HUB_OFFLINE": "1",
    }
    sweep = Sweep(root, _start(root, "cli.log", "sweep && export", environment), secrets, environment)
    try:
        yield sweep
    finally:
        process = sweep.process
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        with connection.cursor() as cursor:
            cursor.execute(f'DROP TABLE IF EXISTS "{table}"')
        connection.close()


def _finished(sweep: "Sweep") -> Path:
    assert sweep.process.wait(timeout=600) == 0, (sweep.root / "cli.log").read_text()[-3000:]
    return sweep.root


def _group_members(group: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _cache_entries(paths: DataPaths) -> dict[str, tuple[int, int]]:
    return {path.name: (path.stat().st_ino, path.stat().st_mtime_ns) for path in paths.reductions.glob("*.npz")}


def _materialisations_by_partition(instance: dg.DagsterInstance) -> dict[str, list[str]]:
    """Partition key -> the run id of each of its materialisations ("" for one recorded outside a run)."""
    records = instance.fetch_materializations(dg.AssetKey("grid_trials"), limit=10_000).records
    found: dict[str, list[str]] = {}
    for record in records:
        found.setdefault(record.partition_key, []).append(record.run_id or "")
    return found


def _ranked(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    return frame[["rank", "trial", "status", "ari", "ami", "nmi", "f1_macro", "outlier_fraction", "topic_count"]]


def _embed_once(paths: DataPaths) -> None:
    source = SqlSource(
        os.environ["TOPIC_PIPELINE_DATABASE_URL"], table="articles", id_column="article_id", text_column="headline"
    )
    corpus = load_corpus(source)
    embedding_set = EmbeddingSet(DEFAULT_EMBEDDING_MODEL, remove_stopwords=False)
    embed_corpus(
        corpus.texts,
        corpus.content_hash,
        embedding_set,
        EmbeddingCache(paths.embeddings),
        EmbeddingSettings(device="cpu", local_files_only=True),
    )


def test_killed_sweep_resumes_with_only_the_missing_trials(tiny_project, uninterrupted_sweep):
    project = tiny_project
    paths = DataPaths(project / "data")
    _embed_once(paths)
    doomed = _start_sweep(project, "killed.log")
    deadline = time.monotonic() + 300
    results = paths.results
    while not (results.exists() and any(results.glob("*.json"))):
        assert doomed.poll() is None, (project / "killed.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no trial result appeared within 300 s"
        time.sleep(0.01)
    # Only the command line is killed, not its group: its step process, fork server and engine workers
    # must not live on without it.
    assert "topic-pipeline" in Path(f"/proc/{doomed.pid}/cmdline").read_text()
    assert len(_group_members(doomed.pid)) > 1, "the sweep has children to outlive it"
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    for _ in range(300):
        if not _group_members(doomed.pid):
            break
        time.sleep(0.05)
    assert _group_members(doomed.pid) == [], "processes of the killed sweep outlived it"

    done_at_kill = {path.stem for path in results.glob("*.json")}
    entries_at_kill = _cache_entries(paths)
    reductions_at_kill = sum(name.startswith("umap-") for name in entries_at_kill)
    assert 0 < len(done_at_kill) < 2 * N_REDUCTIONS, "the kill must land mid-sweep"
    # Whatever the kill interrupted is at most a temporary file, which nothing reads; plant one per store
    # (as a write cut short would leave it) to show that the resumed sweep neither reads nor trips on it.
    missing_key = next(key for key in read_json(paths.current_grid)["trials"] if key not in done_at_kill)
    (results / f".{missing_key}.json.cut.topic-pipeline.tmp").write_text('{"key": "' + missing_key + '", "status": "o')
    (paths.reductions / ".umap-cut.npz.cut.topic-pipeline.tmp").write_bytes(b"PK\x03\x04 truncated")
    # A temporary file as old as one from a kill long ago is deleted by the recovery; the fresh ones are
    # left alone (they could be a write in progress elsewhere).
    stale = results / f".{missing_key}.json.long-ago.topic-pipeline.tmp"
    stale.write_text("{")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    # A kill between opening a trial's MLflow run and closing it leaves the run RUNNING (the trial is rerun
    # and logged anew): plant one for the killed run, in case this kill did not land there.
    from topic_pipeline.definitions import build_resources

    tracker = build_resources()["mlflow"].tracker(paths)
    with dg.DagsterInstance.from_config(str(project / "dagster_home")) as instance:
        (killed_run,) = instance.get_runs(dg.RunsFilter(job_name="trials_job", statuses=[dg.DagsterRunStatus.STARTED]))
    abandoned = tracker.client.create_run(
        tracker.experiment_id, tags={"dagster_run_id": killed_run.run_id, "trial_key": missing_key}
    ).info.run_id

    reference = _finished(uninterrupted_sweep)
    assert (reference / "labels.json").read_text() == (project / "labels.json").read_text(), (
        "both sweeps score the same labels"
    )
    # Two sweeps resume at once on the same instance and data directory: one waits for the other, says
    # so, and prints the final leaderboard; no trial is computed twice (checked below).
    resumed = _start_sweep(project, "resumed.log")
    time.sleep(1)
    second = _start_sweep(project, "second.log")
    assert resumed.wait(timeout=300) == 0, (project / "resumed.log").read_text()[-3000:]
    assert second.wait(timeout=300) == 0, (project / "second.log").read_text()[-3000:]
    logs = {name: (project / name).read_text() for name in ("resumed.log", "second.log")}
    (waited,) = [name for name, text in logs.items() if "Another sweep is running on this" in text]
    assert "has finished; going on" in logs[waited]
    recovered = "\n".join(logs.values())
    assert "marked failed: its process is gone" in recovered
    assert "MLflow run(s) it left RUNNING marked KILLED" in recovered
    final = pd.read_csv(paths.leaderboard / "leaderboard.csv")
    assert final["trial"].iloc[0] in logs[waited].split("Full leaderboard:")[-2]
    assert (final["status"] == "ok").sum() == 2 * N_REDUCTIONS
    assert tracker.client.get_run(abandoned).info.status == "KILLED"
    assert tracker.client.search_runs([tracker.experiment_id], "attributes.status = 'RUNNING'") == []
    assert not stale.exists()
    assert (results / f".{missing_key}.json.cut.topic-pipeline.tmp").exists() and (
        paths.reductions / ".umap-cut.npz.cut.topic-pipeline.tmp"
    ).exists()

    # Every cache entry finished before the kill was reused as it was; only the missing ones were added.
    entries = _cache_entries(paths)
    assert {name: entries[name] for name in entries_at_kill} == entries_at_kill
    assert sum(name.startswith("umap-") for name in entries) == N_REDUCTIONS
    for name in entries:
        with np.load(paths.reductions / name, allow_pickle=False) as archive:
            assert archive.files

    with dg.DagsterInstance.from_config(str(project / "dagster_home")) as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name="trials_job"))
        killed = [run for run in runs if run.status == dg.DagsterRunStatus.FAILURE]
        finished = [run for run in runs if run.status == dg.DagsterRunStatus.SUCCESS]
        assert len(killed) == 1 and len(runs) == 1 + len(finished)
        # Each trial materialised exactly once: the resumed runs did only the missing ones. Those the killed
        # run finished were materialised by it as they finished, or, if the kill came between a trial's
        # stored result and its event, recorded (outside a run) from the stored result: never recomputed.
        by_partition = _materialisations_by_partition(instance)
        assert sorted(by_partition) == sorted(instance.get_dynamic_partitions("trials"))
        assert all(len(run_ids) == 1 for run_ids in by_partition.values()), by_partition
        resumed_ids = {run.run_id for run in finished}
        assert {key for key, (run_id,) in by_partition.items() if run_id in resumed_ids} == set(
            by_partition
        ) - done_at_kill
        assert {key for key, (run_id,) in by_partition.items() if run_id in ("", killed[0].run_id)} == done_at_kill
        computed = 0
        for run in finished:
            event = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_OBSERVATION).records[0]
            computed += event.event_log_entry.asset_observation.metadata["umap_reductions_computed"].value
        assert computed == N_REDUCTIONS - reductions_at_kill

    # The trials finished before the kill kept their results, and the leaderboard matches the uninterrupted one.
    store = ResultStore(results)
    assert all(store.load(key).tags["dagster_run_id"] == killed[0].run_id for key in done_at_kill)
    pd.testing.assert_frame_equal(
        _ranked(paths.leaderboard / "leaderboard.csv"), _ranked(reference / "data" / "leaderboard" / "leaderboard.csv")
    )


# --- bad input ------------------------------------------------------------------------------------
# Each condition runs the job that reads the bad input against the uninterrupted sweep's instance and
# data (the real jobs and resources, executed in this process), and checks the step's error (what the
# UI and ``topic-pipeline`` show) and that every earlier materialisation, stored value, trial result
# and the export are unchanged. Conditions one by one without Dagster, and many more: test_corpus,
# test_ground_truth, test_grid, test_embeddings, test_export. The README's "Bad input" table was
# printed by this test (``pytest -s -k bad_input``).

BROKEN_TABLES = {
    "articles": [(1, "a"), (2, "b")],
    "duplicate_ids": [(7, "a"), (7, "b"), (8, "c")],
    "blank_texts": [(1, "a"), (3, ""), (4, "   ")],
    "text_ids": [("7a", "a"), (8, "b")],
    "no_rows": [],
}
TRIAL = "nn10_nc2_md0__all-minilm-l6-v2__mcs8_eps0"
NOSTOP = "all-minilm-l6-v2-nostop"
ASSETS = ["documents", "ground_truth", "param_grid", "leaderboard", "topic_model"]
PARTITIONED = [("embeddings", "all-minilm-l6-v2"), ("grid_trials", TRIAL)]


def _broken_table(table: str) -> dict[str, str]:
    """The settings that read ``table`` of the database of broken tables (written by ``_bad_input_project``)."""
    return {"TOPIC_PIPELINE_DATABASE_URL": "sqlite:///{root}/broken.db", "TOPIC_PIPELINE_DOCUMENTS_TABLE": table}


@dataclasses.dataclass(frozen=True)
class Condition:
    what: str  # as the README's table says it
    job: str
    expected: str  # a regular expression the message must match
    environment: dict[str, str] = dataclasses.field(default_factory=dict)
    file: tuple[str, bytes] | None = None  # (variable naming the file, its content)
    run_config: dict | None = None
    partition: str | None = None


def _labels(mapping) -> bytes:
    return json.dumps(mapping).encode()


CONDITIONS = [
    # The SQL export (documents).
    Condition(
        "duplicate ids", "refresh_inputs_job", r"1 id\(s\) occur more than once: 7", _broken_table("duplicate_ids")
    ),
    Condition(
        "empty or whitespace texts",
        "refresh_inputs_job",
        r"2 text\(s\) are empty or whitespace, ids: 3, 4",
        _broken_table("blank_texts"),
    ),
    Condition("non-integer ids", "refresh_inputs_job", r"ids must be integers; got '7a'", _broken_table("text_ids")),
    Condition("an empty result", "refresh_inputs_job", r"returned no rows", _broken_table("no_rows")),
    Condition("a missing table", "refresh_inputs_job", r"no_such_table", _broken_table("no_such_table")),
    Condition(
        "a missing column",
        "refresh_inputs_job",
        r"body",
        {**_broken_table("articles"), "TOPIC_PIPELINE_TEXT_COLUMN": "body"},
    ),
    Condition(
        "an invalid identifier (SQL injection attempt)",
        "refresh_inputs_job",
        r"table 'articles; DROP TABLE articles' is not a valid SQL identifier",
        _broken_table("articles; DROP TABLE articles"),
    ),
    Condition(
        "a database that cannot be reached (password masked)",
        "refresh_inputs_job",
        r"cannot reach the database at postgresql\+psycopg2://alice:\*\*\*@127\.0\.0\.1:1/corpus",
        {"TOPIC_PIPELINE_DATABASE_URL": "postgresql+psycopg2://alice:hunter22@127.0.0.1:1/corpus"},
    ),
    # The labelled sample (ground_truth).
    Condition(
        "ground truth: malformed JSON",
        "refresh_inputs_job",
        r"is not valid JSON: .* at line 1, column",
        file=("TOPIC_PIPELINE_GROUND_TRUTH", b'{"a": [1, 2],'),
    ),
    Condition(
        "ground truth: not UTF-8",
        "refresh_inputs_job",
        r"is not UTF-8 text \(byte 0 is 0x80\)",
        file=("TOPIC_PIPELINE_GROUND_TRUTH", b"\x80\x04binary"),
    ),
    Condition(
        "ground truth: fewer than 2 clusters",
        "refresh_inputs_job",
        r"needs at least 2 clusters to score against, got 1",
        file=("TOPIC_PIPELINE_GROUND_TRUTH", _labels({"a": [1, 2]})),
    ),
    Condition(
        "ground truth: an id in two clusters",
        "refresh_inputs_job",
        r"text id 2 is listed in clusters 'a' and 'b'; each id belongs to one cluster",
        file=("TOPIC_PIPELINE_GROUND_TRUTH", _labels({"a": [1, 2], "b": [2, 3]})),
    ),
    Condition(
        "ground truth: ids not in the export",
        "refresh_inputs_job",
        r"2 text id\(s\) are not in the export: 9001, 9002",
        file=("TOPIC_PIPELINE_GROUND_TRUTH", _labels({"a": [9001], "b": [9002]})),
    ),
    Condition(
        "ground truth: a cluster given twice",
        "refresh_inputs_job",
        r"key 'a' appears more than once",
        file=("TOPIC_PIPELINE_GROUND_TRUTH", b'{"a": [1], "b": [2], "a": [3]}'),
    ),
    # The grid (param_grid).
    Condition(
        "grid: unknown key",
        "refresh_inputs_job",
        r"unknown key 'umap_neighbours'. Did you mean 'umap_n_neighbors'\?",
        file=("TOPIC_PIPELINE_GRID", _labels({"umap_neighbours": [10]})),
    ),
    Condition(
        "grid: an empty list",
        "refresh_inputs_job",
        r"hdbscan_min_cluster_size",
        file=("TOPIC_PIPELINE_GRID", _labels({"hdbscan_min_cluster_size": []})),
    ),
    Condition(
        "grid: out of range",
        "refresh_inputs_job",
        r"umap_min_dist",
        file=("TOPIC_PIPELINE_GRID", _labels({"umap_min_dist": [1.5]})),
    ),
    Condition(
        "grid: n_neighbors not below the corpus size",
        "refresh_inputs_job",
        r"umap_n_neighbors=500 must be below the corpus size \(200 documents\)",
        file=("TOPIC_PIPELINE_GRID", _labels({"umap_n_neighbors": [500]})),
    ),
    # Configuration (environment variables), checked when the code location loads: nothing runs.
    Condition(
        "configuration: a setting that is not an integer",
        "refresh_inputs_job",
        r"TOPIC_PIPELINE_UMAP_SEED='forty-two': expected a whole number",
        {"TOPIC_PIPELINE_UMAP_SEED": "forty-two"},
    ),
    Condition(
        "configuration: a negative UMAP seed",
        "trials_job",
        r"TOPIC_PIPELINE_UMAP_SEED='-1': must be at least 0 and at most 4294967295",
        {"TOPIC_PIPELINE_UMAP_SEED": "-1"},
    ),
    Condition(
        "configuration: a flag spelled neither way",
        "leaderboard_job",
        r"TOPIC_PIPELINE_RANK_BY_STABILITY='maybe': expected a boolean",
        {"TOPIC_PIPELINE_RANK_BY_STABILITY": "maybe"},
    ),
    Condition(
        "configuration: an unknown ranking metric",
        "leaderboard_job",
        r"TOPIC_PIPELINE_RANK_BY='accuracy': expected one of ari, ami",
        {"TOPIC_PIPELINE_RANK_BY": "accuracy"},
    ),
    Condition(
        "configuration: an unknown stop-word language",
        "embeddings_job",
        r"TOPIC_PIPELINE_STOPWORDS_LANGUAGE='klingon': expected 'english' or the path of a file",
        {"TOPIC_PIPELINE_STOPWORDS_LANGUAGE": "klingon"},
        partition=NOSTOP,
    ),
    # The export (topic_model).
    Condition(
        "export: an unknown trial key",
        "export_job",
        r"trial key 'no-such-trial' is not in the current leaderboard",
        run_config={"ops": {"topic_model": {"config": {"trial_key": "no-such-trial"}}}},
    ),
    Condition(
        "export: an unknown serialisation",
        "export_job",
        r"unknown serialization 'onnx'",
        run_config={"ops": {"topic_model": {"config": {"serialization": "onnx"}}}},
    ),
    Condition(
        "export: an unwritable target folder",
        "export_job",
        r"cannot write the export to '/dev/null/x': Not a directory",
        run_config={"ops": {"topic_model": {"config": {"target_dir": "/dev/null/x/model"}}}},
    ),
]


@pytest.fixture(scope="module")
def bad_input_project(uninterrupted_sweep):
    """The finished uninterrupted sweep, plus a database of broken tables and a registered embedding set
    that has not been embedded yet (for the stop-word condition)."""
    root = _finished(uninterrupted_sweep)
    with sqlite3.connect(root / "broken.db") as connection:
        for table, rows in BROKEN_TABLES.items():
            connection.execute(f"CREATE TABLE {table} (article_id, headline TEXT)")
            connection.executemany(f"INSERT INTO {table} VALUES (?, ?)", rows)
    connection.close()
    (root / "data" / "grid" / "embedding_sets" / f"{NOSTOP}.json").write_text(
        json.dumps({"embedding_model": DEFAULT_EMBEDDING_MODEL, "remove_stopwords": True})
    )
    with dg.DagsterInstance.from_config(str(root / "dagster_home")) as instance:
        instance.add_dynamic_partitions("embedding_sets", [NOSTOP])
        yield uninterrupted_sweep, instance


def _execute_in_process(instance, job_name: str, partition: str | None, run_config: dict | None):
    from topic_pipeline.definitions import defs

    job = defs().resolve_job_def(job_name)
    return job.execute_in_process(
        instance=instance, partition_key=partition, run_config=run_config, raise_on_error=False
    )


def _latest(instance) -> dict[str, int | None]:
    """The storage id of the latest materialisation of every asset (and partition) of the project."""
    found = {}
    for asset, partition in [(asset, None) for asset in ASSETS] + PARTITIONED:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None),
            limit=1,
        ).records
        found[asset if partition is None else f"{asset}[{partition}]"] = records[0].storage_id if records else None
    return found


def _files(data_dir: Path) -> dict[str, str]:
    """Every stored value, result, cache entry, leaderboard and export (MLflow's own store aside)."""
    return {
        str(path.relative_to(data_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(data_dir.rglob("*"))
        if path.is_file() and "mlflow" not in path.relative_to(data_dir).parts
    }


@pytest.mark.parametrize("condition", CONDITIONS, ids=[c.what for c in CONDITIONS])
def test_bad_input_gets_a_clear_error_and_loses_nothing(bad_input_project, condition: Condition, monkeypatch):
    from topic_pipeline.cli import _root_cause
    from topic_pipeline.errors import TopicPipelineError

    sweep, instance = bad_input_project
    for name, value in {**sweep.environment, **condition.environment}.items():
        monkeypatch.setenv(name, value.format(root=sweep.root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    if condition.file:
        variable, content = condition.file
        path = sweep.root / f"{variable.lower()}.json"
        path.write_bytes(content)
        monkeypatch.setenv(variable, str(path))
    before_events, before_files = _latest(instance), _files(sweep.root / "data")

    failed_step = None
    try:
        result = _execute_in_process(instance, condition.job, condition.partition, condition.run_config)
    except TopicPipelineError as exc:  # a configuration error: the code location does not load at all
        message = str(exc)
    else:
        assert not result.success
        failure = next(event for event in result.all_events if event.is_step_failure)
        failed_step, message = failure.step_key, _root_cause(failure.step_failure_data.error)
    assert re.search(condition.expected, message), message

    after_events = _latest(instance)
    # Steps that succeed beside the failed one (documents, say, when the labels are bad) record a new
    # materialisation of the same value; nothing else gets one, and no stored byte changes.
    rewritten = {asset for asset in ASSETS if after_events[asset] != before_events[asset]}
    assert failed_step not in rewritten and rewritten <= {"documents", "ground_truth", "param_grid"}, rewritten
    assert {key: event for key, event in after_events.items() if key not in rewritten} == {
        key: event for key, event in before_events.items() if key not in rewritten
    }
    assert _files(sweep.root / "data") == before_files
    print(f"| {condition.what} | `{message}` |")


def test_secrets_reach_no_log_event_metadata_mlflow_record_or_file(uninterrupted_sweep):
    from dagster._serdes import serialize_value
    from mlflow import MlflowClient

    root = _finished(uninterrupted_sweep)
    # The other forms a URL can carry a secret in, each through a sweep of its own on the same instance:
    # a password as a query parameter (trust authentication ignores it, so the sweep succeeds, with
    # nothing to recompute), and a password with an unencoded '@' (refused before connecting).
    query_secret, at_secret = f"Qu3ry-{uuid.uuid4().hex}", f"T41l-{uuid.uuid4().hex}"
    url_forms = {
        "query": (f"postgresql+psycopg2://postgres@127.0.0.1:5432/test?password={query_secret}&application_name=tp", 0),
        "unencoded-at": (f"postgresql+psycopg2://postgres:head@{at_secret}@127.0.0.1:5432/test", 1),
    }
    for form, (url, expected_status) in url_forms.items():
        environment = {**uninterrupted_sweep.environment, "TOPIC_PIPELINE_DATABASE_URL": url}
        process = _start(root, f"cli-{form}.log", "sweep", environment)
        assert process.wait(timeout=300) == expected_status, (root / f"cli-{form}.log").read_text()[-3000:]
    assert "percent-encoded (%40" in (root / "cli-unencoded-at.log").read_text()
    secrets = [value.encode() for value in [*uninterrupted_sweep.secrets.values(), query_secret, at_secret]]

    # Every byte the sweep and the export left: the CLI's output, Dagster's run, event-log and schedule
    # storage, the compute logs of every step, the MLflow store and its artifacts, caches, results, export.
    files = [path for path in root.rglob("*") if path.is_file()]
    assert any("compute_logs" in path.parts for path in files), "the steps' compute logs were scanned"
    leaks = [str(path) for path in files for secret in secrets if secret in path.read_bytes()]
    assert leaks == []

    # The same through the stores' own APIs (so the scan above did read what they hold).
    with dg.DagsterInstance.from_config(str(root / "dagster_home")) as instance:
        runs = instance.get_runs()
        assert {run.job_name for run in runs} >= {
            "refresh_inputs_job",
            "embeddings_job",
            "trials_job",
            "leaderboard_job",
            "export_job",
        }
        for run in runs:
            records = instance.get_records_for_run(run.run_id).records
            text = serialize_value(run) + "".join(serialize_value(record.event_log_entry) for record in records)
            assert not [secret for secret in secrets if secret.decode() in text], run.job_name
        sources = [
            event.asset_materialization.metadata["source"].value
            for event in instance.fetch_materializations(dg.AssetKey("documents"), limit=100).records
            for event in [event.event_log_entry]
        ]
        assert "postgresql+psycopg2://postgres:***@127.0.0.1:5432/test" in sources
        assert sources[0] == "postgresql+psycopg2://postgres@127.0.0.1:5432/test?application_name=tp&password=***"
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'data' / 'mlflow' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("uninterrupted").experiment_id])
    assert len([run for run in runs if "dagster_partition_key" in run.data.tags]) == 2 * N_REDUCTIONS
    assert any(run.data.tags.get("kind") == "export" for run in runs)
    recorded = json.dumps([[run.data.params, run.data.tags, list(run.data.metrics)] for run in runs])
    assert not [secret for secret in secrets if secret.decode() in recorded]


def test_the_command_line_shows_progress_and_keeps_dagsters_log_in_a_file(uninterrupted_sweep):
    root = _finished(uninterrupted_sweep)
    output = (root / "cli.log").read_text()
    # Not a terminal here: plain progress lines instead of a bar, and none of Dagster's event log.
    # One log file per command: the sweep's, then the export's.
    sweep_log, _ = [line for line in output.splitlines() if line.startswith("Dagster's event log: ")]
    log = Path(sweep_log.removeprefix("Dagster's event log: ").split(" (--verbose")[0])
    assert log.parent == root / "dagster_home" / "logs"
    total = 2 * N_REDUCTIONS
    assert re.search(rf"^  trials {total}/{total}, [0-9.]+/min, best so far ari [0-9.-]+ \(", output, re.MULTILINE), (
        output
    )
    assert "Sweep finished in" in output
    assert "STEP_START" not in output and "DEBUG" not in output
    events = log.read_text()
    assert "STEP_START" in events and "RUN_SUCCESS" in events
    # The step logs the same progress for the Dagster UI.
    assert f"trials {total}/{total}" in events
    assert not list((root / "dagster_home" / "logs").glob("progress-*.json")), "the progress file is removed"

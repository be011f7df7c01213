"""Every setting is checked when a command or the code location starts: one line per bad value, naming the
variable, the value and what is expected; nothing runs and nothing is written."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from topic_pipeline.settings import Settings, SettingsError, settings_table

REPO = Path(__file__).resolve().parents[1]

# (variable, value, what the message must say): the faults users met, and one of each kind of check.
BAD_VALUES = [
    ("TOPIC_PIPELINE_STOPWORDS_LANGUAGE", "klingon", "expected 'english' or the path of a file"),
    ("TOPIC_PIPELINE_UMAP_SEED", "-1", "must be at least 0"),
    ("TOPIC_PIPELINE_UMAP_SEED", str(2**32), "must be at least 0 and at most 4294967295"),
    ("TOPIC_PIPELINE_WORKERS", "-2", "must be at least 0"),
    ("TOPIC_PIPELINE_WORKERS", "two", "expected a whole number"),
    ("TOPIC_PIPELINE_RANK_BY_STABILITY", "maybe", "expected a boolean"),
    ("TOPIC_PIPELINE_EMBEDDING_BATCH_SIZE", "0", "must be at least 1"),
    ("TOPIC_PIPELINE_EMBEDDING_DEVICE", "gpu", "expected auto, cpu, cuda, cuda:N or mps"),
    ("TOPIC_PIPELINE_RANK_BY", "accuracy", "expected one of ari, ami"),
    ("TOPIC_PIPELINE_ENGINE", "turbo", "expected one of fast, reference"),
    ("TOPIC_PIPELINE_EXECUTOR", "docker", "expected one of multiprocess, k8s"),
    ("TOPIC_PIPELINE_HOLDOUT_FRACTION", "a third", "expected a number"),
    ("TOPIC_PIPELINE_HOLDOUT_FRACTION", "1", "must be at least 0.0 and below 1.0"),
    ("TOPIC_PIPELINE_MIN_LABELS_FOUND", "1.5", "must be at least 0.0 and at most 1.0"),
    ("TOPIC_PIPELINE_MAX_GRID_TRIALS", "0", "must be at least 1"),
    ("TOPIC_PIPELINE_SWEEP_RUNS", "0", "must be at least 1"),
    ("TOPIC_PIPELINE_SWEEP_RUNS", "two", "expected a whole number"),
    ("TOPIC_PIPELINE_WINDOW_DAYS", "-7", "must be at least 0"),
    ("TOPIC_PIPELINE_WINDOW_START", "last monday", "expected an ISO 8601 date"),
    ("TOPIC_PIPELINE_GROUND_TRUTH", "/no/such/labels.json", "no such file"),
    ("TOPIC_PIPELINE_GRID", "/no/such/grid.json", "no such file"),
    ("TOPIC_PIPELINE_MLFLOW_UI_URL", "localhost:5000", "expected an http:// or https:// URL"),
    ("HF_HUB_OFFLINE", "sometimes", "expected a boolean"),
]


@pytest.mark.parametrize(("variable", "value", "expected"), BAD_VALUES, ids=[f"{v}={x}" for v, x, _ in BAD_VALUES])
def test_a_bad_value_is_refused_in_one_line_naming_variable_value_and_expectation(variable, value, expected):
    with pytest.raises(SettingsError) as refused:
        Settings.load({variable: value})
    message = str(refused.value)
    assert message.count("\n") == 0, message
    assert message.startswith(f"{variable}={value!r}: "), message
    assert expected in message


def test_every_bad_setting_is_named_at_once():
    message = str(
        pytest.raises(
            SettingsError, Settings.load, {"TOPIC_PIPELINE_WORKERS": "-1", "TOPIC_PIPELINE_UMAP_SEED": "x"}
        ).value
    )
    assert sorted(line.split("=")[0] for line in message.splitlines()) == [
        "TOPIC_PIPELINE_UMAP_SEED",
        "TOPIC_PIPELINE_WORKERS",
    ]


def test_checks_across_settings_name_their_variables(tmp_path):
    with pytest.raises(SettingsError, match="TOPIC_PIPELINE_EXECUTOR=k8s needs TOPIC_PIPELINE_K8S_EXECUTOR_CONFIG"):
        Settings.load({"TOPIC_PIPELINE_EXECUTOR": "k8s"})
    with pytest.raises(SettingsError, match=r"TOPIC_PIPELINE_DOCUMENTS_TABLE.*table 'a; DROP TABLE b' is not a valid"):
        Settings.load({"TOPIC_PIPELINE_DOCUMENTS_TABLE": "a; DROP TABLE b"})
    with pytest.raises(SettingsError, match="window_start 2024-02-01.* is not before window_end"):
        Settings.load(
            {
                "TOPIC_PIPELINE_WINDOW_START": "2024-02-01",
                "TOPIC_PIPELINE_WINDOW_END": "2024-01-01",
                "TOPIC_PIPELINE_DATE_COLUMN": "published",
            }
        )
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    with pytest.raises(
        SettingsError, match=f"TOPIC_PIPELINE_DATA_DIR='{a_file}/data': {a_file} is a file, not a folder"
    ):
        Settings.load({"TOPIC_PIPELINE_DATA_DIR": str(a_file / "data")})


@pytest.mark.parametrize(
    ("spelling", "value"),
    [
        ("1", True),
        ("true", True),
        ("True", True),
        ("YES", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("False", False),
        ("no", False),
        ("off", False),
    ],
)
def test_booleans_take_the_usual_spellings(spelling, value):
    assert Settings.load({"TOPIC_PIPELINE_RANK_BY_STABILITY": spelling}).rank_by_stability is value


def test_empty_variables_take_the_defaults_and_a_stop_word_file_is_accepted(tmp_path):
    assert Settings.load({"TOPIC_PIPELINE_WORKERS": "", "TOPIC_PIPELINE_UMAP_SEED": " "}) == Settings.load({})
    words = tmp_path / "words.txt"
    words.write_text("le\nla\n")
    assert Settings.load({"TOPIC_PIPELINE_STOPWORDS_LANGUAGE": str(words)}).stopwords_language == str(words)


def test_a_secret_is_never_shown_in_a_message():
    # A SecretStr never fails its own check; the export (which masks it) reports a bad URL. Shown here:
    # the settings object itself does not print it.
    settings = Settings.load(
        {
            "TOPIC_PIPELINE_DATABASE_URL": "postgresql://alice:hunter2@db/corpus",
            "MLFLOW_TRACKING_URI": "https://bob:tok3n@mlflow",
        }
    )
    assert "hunter2" not in repr(settings) and "tok3n" not in repr(settings)
    # Variables outside the TOPIC_PIPELINE_ prefix are read too.
    assert settings.mlflow_tracking_uri.get_secret_value() == "https://bob:tok3n@mlflow"
    assert Settings.load({"HF_HUB_OFFLINE": "1"}).hf_hub_offline is True


def test_the_configuration_docs_show_the_table_the_settings_generate():
    text = (REPO / "docs" / "configuration.md").read_text()
    match = re.search(r"<!-- settings-table -->\n(.*?)\n<!-- /settings-table -->", text, re.S)
    assert match, "docs/configuration.md lacks its generated settings table"
    assert match.group(1) == settings_table(), (
        "docs/configuration.md's table differs from topic_pipeline/settings.py: regenerate it with "
        "`python -m topic_pipeline.settings`"
    )


def _cli(args: list[str], environment: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    cli = Path(sys.executable).parent / "topic-pipeline"
    return subprocess.run([str(cli), *args], env=environment, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", [["sweep"], ["export"]])
def test_the_command_line_stops_on_a_bad_setting_in_one_line_and_writes_nothing(tmp_path, command):
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TOPIC_PIPELINE_", "MLFLOW_"))},
        "DAGSTER_HOME": str(tmp_path / "home"),
        "TOPIC_PIPELINE_DATA_DIR": str(tmp_path / "data"),
        "TOPIC_PIPELINE_UMAP_SEED": "-1",
    }
    done = _cli(command, environment, tmp_path)
    assert done.returncode != 0
    output = (done.stdout + done.stderr).strip()
    assert (
        output
        == f"topic-pipeline {command[0]}: TOPIC_PIPELINE_UMAP_SEED='-1': must be at least 0 and at most 4294967295"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_sweep_and_export_refuse_a_data_directory_they_cannot_write(tmp_path):
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TOPIC_PIPELINE_", "MLFLOW_"))},
        "DAGSTER_HOME": str(tmp_path / "home"),
    }
    blocker = tmp_path / "a_file"
    blocker.write_text("kept")
    # A data directory whose path runs through a file: refused with the settings.
    done = _cli(["sweep"], {**environment, "TOPIC_PIPELINE_DATA_DIR": str(blocker / "data")}, tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert (done.stdout + done.stderr).strip() == (
        f"topic-pipeline sweep: TOPIC_PIPELINE_DATA_DIR='{blocker}/data': {blocker} is a file, not a folder"
    )
    # A folder this process cannot write (/sys refuses new folders to every user, root included).
    for command in (["sweep"], ["export"]):
        done = _cli(command, {**environment, "TOPIC_PIPELINE_DATA_DIR": "/sys/topic_pipeline_data"}, tmp_path)
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        lines = (done.stdout + done.stderr).strip().splitlines()
        assert (
            len(lines) == 1
            and "the data directory (TOPIC_PIPELINE_DATA_DIR) /sys/topic_pipeline_data cannot be written" in lines[0]
        ), lines
    assert blocker.read_text() == "kept"


def _as_an_unprivileged_user(command: list[str]) -> list[str]:
    """Root writes through permission bits: run as nobody to meet a read-only folder as a user does."""
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command] if os.geteuid() == 0 else command


def test_the_leaderboard_reads_a_read_only_data_directory_and_a_sweep_there_says_why_it_cannot_run():
    # Not pytest's tmp_path: its parent folder is private to root, and the commands run as nobody.
    tmp_path = Path(tempfile.mkdtemp(prefix="tp-read-only-"))
    data = tmp_path / "data"
    (data / "leaderboard").mkdir(parents=True)
    (data / "leaderboard" / "leaderboard.csv").write_text(
        "rank,trial,status,ari\n1,nn15_nc5_md0__m__mcs10_eps0,ok,0.8125\n"
    )
    (data / ".topic-pipeline-sweep.lock").write_text("")  # a finished sweep leaves its lock file
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o777)
    for folder in (tmp_path, data, data / "leaderboard"):
        folder.chmod(0o555)
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TOPIC_PIPELINE_", "MLFLOW_"))},
        "DAGSTER_HOME": str(home),
        "TOPIC_PIPELINE_DATA_DIR": str(data),
    }
    cli = str(Path(sys.executable).parent / "topic-pipeline")
    try:
        shown = subprocess.run(
            _as_an_unprivileged_user([cli, "leaderboard"]),
            env=environment,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert shown.returncode == 0, shown.stderr
        assert "nn15_nc5_md0__m__mcs10_eps0" in shown.stdout and "0.812" in shown.stdout  # printed to three decimals
        refused = subprocess.run(
            _as_an_unprivileged_user([cli, "sweep"]),
            env=environment,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert refused.returncode != 0 and "Traceback" not in refused.stderr, refused.stderr
        lines = (refused.stdout + refused.stderr).strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"topic-pipeline sweep: the data directory (TOPIC_PIPELINE_DATA_DIR) {data} cannot be written (Permission denied"
        ), lines
    finally:
        for folder in (tmp_path, data, data / "leaderboard"):
            folder.chmod(0o755)
        shutil.rmtree(tmp_path)


def test_an_empty_data_directory_variable_means_the_default_everywhere(monkeypatch, tmp_path):
    """The settings and the data directory's paths (the sweep lock, the command line's leaderboard) agree."""
    from topic_pipeline.storage.paths import DataPaths

    monkeypatch.chdir(tmp_path)
    for blank in ("", "  "):
        monkeypatch.setenv("TOPIC_PIPELINE_DATA_DIR", blank)
        assert DataPaths().root == Settings.load().data_dir.resolve() == tmp_path / "data"

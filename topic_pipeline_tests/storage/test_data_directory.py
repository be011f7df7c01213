"""The shared data directory's marker: claimed by the instance's side, checked by a worker before it writes."""

import json

import pytest

from topic_pipeline.domain.versions import TRIAL_LIBRARIES, environment_versions
from topic_pipeline.errors import SharedDataDirectoryError
from topic_pipeline.storage.data_directory import MARKER_NAME, claim, verify
from topic_pipeline.storage.paths import DataPaths

ENVIRONMENT = {"python": "3.11.9", "umap-learn": "0.5.12", "hdbscan": "0.8.44"}


def _contents(folder) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_the_environment_is_python_and_the_libraries_results_depend_on():
    versions = environment_versions()
    assert list(versions) == ["python", *TRIAL_LIBRARIES]
    assert all(isinstance(version, str) and version for version in versions.values())


def test_a_directory_without_the_marker_is_refused_and_left_unchanged(tmp_path):
    paths = DataPaths(tmp_path / "data")
    (paths.root / "trials").mkdir(parents=True)
    before = _contents(paths.root)

    with pytest.raises(SharedDataDirectoryError) as refused:
        verify(paths, ENVIRONMENT, "worker w1, run r1")

    assert str(refused.value) == (
        f"worker w1, run r1: the data directory {paths.root} has no {MARKER_NAME}: this worker does not see the "
        "sweep's shared data directory (mount it and set TOPIC_PIPELINE_DATA_DIR to it); nothing was written"
    )
    assert "\n" not in str(refused.value)
    assert _contents(paths.root) == before and sorted(p.name for p in paths.root.iterdir()) == ["trials"]
    # A directory that is not there at all (nothing mounted) is not created either.
    with pytest.raises(SharedDataDirectoryError, match="has no data_directory.json"):
        verify(DataPaths(tmp_path / "not-mounted"), ENVIRONMENT, "worker w1")
    assert not (tmp_path / "not-mounted").exists()


def test_another_library_version_is_refused_naming_the_library_and_both_versions(tmp_path):
    paths = DataPaths(tmp_path / "data")
    claim(paths, ENVIRONMENT)
    before = _contents(paths.root)

    with pytest.raises(SharedDataDirectoryError) as refused:
        verify(paths, {**ENVIRONMENT, "umap-learn": "0.5.11", "hdbscan": "0.8.40"}, "worker w2")

    assert str(refused.value) == (
        f"worker w2: this worker's umap-learn 0.5.11 differs from the instance's 0.5.12 (data directory {paths.root}): "
        "its results would mix two environments into one leaderboard; install the instance's versions"
    )
    assert _contents(paths.root) == before
    # A library the instance has and the worker lacks counts as a difference too.
    with pytest.raises(
        SharedDataDirectoryError, match="this worker's hdbscan absent differs from the instance's 0.8.44"
    ):
        verify(paths, {"python": "3.11.9", "umap-learn": "0.5.12"}, "worker w2")


def test_the_same_environment_passes(tmp_path):
    paths = DataPaths(tmp_path / "data")
    claim(paths, environment_versions())
    verify(paths, environment_versions(), "worker w3")


def test_a_claim_rewrites_a_changed_environment_and_writes_nothing_when_current(tmp_path):
    paths = DataPaths(tmp_path / "data")
    marker = paths.root / MARKER_NAME
    claim(paths, ENVIRONMENT)
    assert json.loads(marker.read_text()) == {"environment": ENVIRONMENT}

    written = marker.stat().st_ino
    claim(paths, dict(ENVIRONMENT))
    assert marker.stat().st_ino == written  # unchanged: not rewritten

    upgraded = {**ENVIRONMENT, "umap-learn": "0.5.13"}
    claim(paths, upgraded)
    assert json.loads(marker.read_text()) == {"environment": upgraded}
    verify(paths, upgraded, "worker w4")


def test_a_file_that_is_no_marker_is_refused_by_a_worker_and_by_a_claim_and_left_as_it_is(tmp_path):
    paths = DataPaths(tmp_path / "data")
    paths.root.mkdir(parents=True)
    (paths.root / MARKER_NAME).write_text('{"id": "cut sho')

    with pytest.raises(SharedDataDirectoryError, match=f"has a {MARKER_NAME} that cannot be read"):
        verify(paths, ENVIRONMENT, "worker w5")

    with pytest.raises(SharedDataDirectoryError, match="is not a data-directory marker"):
        claim(paths, ENVIRONMENT)
    assert (paths.root / MARKER_NAME).read_text() == '{"id": "cut sho'

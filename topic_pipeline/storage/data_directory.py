"""The marker that names a shared data directory and the environment its results are computed in.

Where several machines execute a sweep's runs (Celery workers, each mounting one shared data directory),
a worker that mounted nothing, or another folder, would compute into a private directory no one reads;
one with other library versions would put results of another environment beside the sweep's on one
leaderboard (seeded UMAP is reproducible within one environment, not across). The side that plans the
sweep ``claim``s the directory: ``data_directory.json`` holds its environment. Each worker ``verify``s it
before it writes anything, and refuses otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from topic_pipeline.errors import SharedDataDirectoryError
from topic_pipeline.storage.files import read_json, write_json
from topic_pipeline.storage.paths import DATA_DIR_ENV, DataPaths

MARKER_NAME = "data_directory.json"


def marker_path(paths: DataPaths) -> Path:
    return paths.root / MARKER_NAME


def _read_marker(path: Path) -> dict | None:
    """The marker, None where it is absent; ``ValueError`` where it is not one."""
    try:
        marker = read_json(path)
    except FileNotFoundError:
        return None
    if not isinstance(marker, dict) or not isinstance(marker.get("environment"), dict):
        raise ValueError("it is not an object with an environment")
    return marker


def claim(paths: DataPaths, environment: Mapping[str, str]) -> None:
    """Mark ``paths``' data directory as the sweep's, computed in ``environment`` (rewritten where it changed).
    Writes nothing when the marker is current, so it costs a read per call (the sweep sensor calls it every
    tick); refuses, in one line, a file of that name it cannot read, which it did not write."""
    path = marker_path(paths)
    try:
        marker = _read_marker(path)
    except ValueError as exc:
        raise SharedDataDirectoryError(
            f"{path} is not a data-directory marker ({exc}); it was left as it is: move it away, and the next "
            "sweep writes its own"
        ) from None
    environment = dict(environment)
    if marker is None or marker["environment"] != environment:
        write_json(path, {"environment": environment})


def _first_difference(ours: Mapping[str, str], theirs: Mapping[str, str]) -> tuple[str, str, str] | None:
    """The first package (in ``ours``' order, then ``theirs``') whose version differs: (name, ours, theirs)."""
    for name in [*ours, *(name for name in theirs if name not in ours)]:
        mine, recorded = ours.get(name, "absent"), theirs.get(name, "absent")
        if mine != recorded:
            return name, mine, recorded
    return None


def verify(paths: DataPaths, environment: Mapping[str, str], where: str) -> None:
    """Refuse (``SharedDataDirectoryError``, one line beginning with ``where``) unless ``paths``' data
    directory holds the marker ``claim`` writes and names ``environment``. Reads only: a refusal leaves the
    data directory as it was."""
    path = marker_path(paths)
    try:
        marker = _read_marker(path)
    except (OSError, ValueError) as exc:
        raise SharedDataDirectoryError(
            f"{where}: the data directory {paths.root} has a {MARKER_NAME} that cannot be read ({exc}); "
            "nothing was written: the sweep's sensor rewrites it at its next tick"
        ) from None
    if marker is None:
        raise SharedDataDirectoryError(
            f"{where}: the data directory {paths.root} has no {MARKER_NAME}: this worker does not see the sweep's "
            f"shared data directory (mount it and set {DATA_DIR_ENV} to it); nothing was written"
        )
    difference = _first_difference(dict(environment), marker["environment"])
    if difference is not None:
        name, mine, recorded = difference
        raise SharedDataDirectoryError(
            f"{where}: this worker's {name} {mine} differs from the instance's {recorded} (data directory "
            f"{paths.root}): its results would mix two environments into one leaderboard; install the "
            "instance's versions"
        )

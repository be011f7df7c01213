"""The only place the library touches private names of third-party libraries, one module per library.

``dagster``, ``hdbscan``, ``numba`` and ``umap`` each state the versions they were written for and
check them with the helpers here; on any other version each falls back to the public path or refuses with a
clear message, never silently different labels. Only the Dagster layer imports ``_compat.dagster`` (the
import-linter contracts in pyproject.toml say so): the library knows nothing of Dagster.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from importlib import metadata

__all__ = ["UnsupportedVersion", "check", "installed_versions", "mismatches", "refusal"]

_log = logging.getLogger(__name__)
# Modules that have already said, in this process, that they take their fallback.
_announced: set[str] = set()


class UnsupportedVersion(RuntimeError):
    """A private path was asked for on a library version its ``_compat`` module was not written for."""


def installed_versions(written_for: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """The installed version of each distribution named in ``written_for`` ("absent" when not installed)."""
    versions = {}
    for name in written_for:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def mismatches(written_for: Mapping[str, Iterable[str]], installed: Mapping[str, str]) -> list[str]:
    """One "<name> <installed> (written for <versions>)" per distribution whose installed version was not
    written for; empty when all were."""
    return [
        f"{name} {installed.get(name, 'absent')} (written for {', '.join(versions)})"
        for name, versions in written_for.items()
        if installed.get(name) not in tuple(versions)
    ]


def check(module: str, written_for: Mapping[str, Iterable[str]], installed: Mapping[str, str], fallback: str) -> bool:
    """True when every installed version is one ``module`` was written for. Otherwise False, and the
    first time in a process a one-line warning names the versions and the ``fallback`` taken."""
    found = mismatches(written_for, installed)
    if found and module not in _announced:
        _announced.add(module)
        _log.warning("%s: %s; %s", module, "; ".join(found), fallback)
    return not found


def refusal(module: str, written_for: Mapping[str, Iterable[str]], installed: Mapping[str, str]) -> UnsupportedVersion:
    """The error a private path raises when called on a version it was not written for."""
    return UnsupportedVersion(
        f"{module} uses private names of {'; '.join(mismatches(written_for, installed))}; "
        "take the public path (check supported() first) or install the versions it was written for"
    )

"""The package's layers (``[tool.importlinter]`` in pyproject.toml) hold, and each library folder's public
surface (its ``__all__``) names what it exports (fast; nothing is fitted)."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import topic_pipeline

ROOT = Path(__file__).resolve().parents[1]
LIBRARY_FOLDERS = ("domain", "storage", "inputs", "scoring", "engine", "search", "integrations", "_compat")

# `lint-imports` (which reads pyproject.toml in its working directory), run by the interpreter running the
# tests; --no-cache: the check writes nothing.
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def test_every_import_contract_is_kept():
    try:
        importlib.import_module("importlinter")
    except ImportError:
        pytest.fail("import-linter is not installed: pip install -e '.[dev]'")
    done = subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"lint-imports failed:\n{done.stdout}\n{done.stderr}"
    assert "0 broken" in done.stdout, done.stdout


@pytest.mark.parametrize("folder", LIBRARY_FOLDERS)
def test_each_name_a_folder_exports_is_there_and_hides_no_module(folder):
    package = importlib.import_module(f"topic_pipeline.{folder}")
    exported = list(package.__all__)
    assert exported and len(exported) == len(set(exported)), exported
    modules = {info.name for info in pkgutil.iter_modules(package.__path__)}
    assert not modules & set(exported), "a re-exported name would hide the module of the same name"
    for name in exported:
        assert getattr(package, name) is not None, name


def test_every_module_of_the_package_has_a_layer():
    """A module in no layer would escape the layers contract: whatever it imports, it would be kept."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    (layers,) = [contract["layers"] for contract in config["contracts"] if contract["type"] == "layers"]
    layered = {name.strip() for layer in layers for name in layer.replace(":", "|").split("|")}
    top_level = {f"topic_pipeline.{info.name}" for info in pkgutil.iter_modules(topic_pipeline.__path__)}
    assert top_level == layered
    assert {f"topic_pipeline.{folder}" for folder in LIBRARY_FOLDERS} <= layered

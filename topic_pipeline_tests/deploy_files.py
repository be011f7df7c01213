"""The deployment files read as their tools read them, for tests that have no Docker engine or cluster."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_GPU_FILE = REPO / "docker-compose.gpu.yml"
ENV_EXAMPLE = REPO / ".env.example"
DEPLOY = REPO / "deploy"

# Compose interpolation: $$ (a literal $), ${NAME}, ${NAME:-default} and friends, $NAME.
_VARIABLE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}|([A-Za-z_][A-Za-z0-9_]*))")


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def _strings(node: Any):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def referenced_variables(document: Any) -> set[str]:
    """Names of the variables a parsed compose document interpolates (comments never count)."""
    return {
        match.group(2) or match.group(3)
        for text in _strings(document)
        for match in _VARIABLE.finditer(text)
        if not match.group(1)
    }


def interpolate(node: Any, environment: dict[str, str]) -> Any:
    """``node`` with every variable replaced from ``environment``; an unset one raises KeyError."""
    if isinstance(node, str):
        return _VARIABLE.sub(lambda m: "$" if m.group(1) else environment[m.group(2) or m.group(3)], node)
    if isinstance(node, dict):
        return {interpolate(key, environment): interpolate(value, environment) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(item, environment) for item in node]
    return node


def raw_compose(path: Path = COMPOSE_FILE) -> dict:
    return yaml.safe_load(path.read_text())


def load_compose(path: Path = COMPOSE_FILE, env_file: Path = ENV_EXAMPLE) -> dict:
    """The compose file as ``docker compose --env-file`` sees it: YAML anchors merged, variables set."""
    return interpolate(raw_compose(path), read_env_file(env_file))

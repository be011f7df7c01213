"""The sweep's trials made current: a grid file expanded, or a search's rounds so far (started on first use)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from topic_pipeline.domain.trials import TrialParams
from topic_pipeline.search.coarse_to_fine import (
    SearchSpec,
    SearchState,
    read_sweep_definition,
    search_identity,
    start_search,
)
from topic_pipeline.workflow.sweep_inputs import SweepInputs

_logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CurrentGrid:
    """The grid made current: its manifest (written to the data directory) and how it came about."""

    where: str  # the grid file, as named in messages, or "the default search"
    definition: dict[str, Any]  # the grid file's content, as read
    manifest: dict[str, Any]
    new: int  # trial keys registered for the first time
    search_rounds: int | None = None  # for a search: its rounds so far
    search_finished: bool | None = None


def _search_state(inputs: SweepInputs, spec: SearchSpec, log: logging.Logger) -> SearchState:
    """The search's state: the stored one if it is this search on these inputs, else a new search."""
    paths, n_documents = inputs.paths, len(inputs.corpus)
    state = SearchState.load(paths.search_state)
    if state is None or state.identity != search_identity(spec, n_documents, inputs.fingerprint):
        state = start_search(spec, n_documents, inputs.fingerprint)
        state.save(paths.search_state)
        log.info("search started: broad round of %d trials for %d documents", len(state.trials), n_documents)
    return state


def make_grid_current(
    inputs: SweepInputs, grid_file: Path | None, max_grid_trials: int, log: logging.Logger = _logger
) -> CurrentGrid:
    """Register the sweep's trials and write them as the current grid: ``grid_file`` expanded (refused beyond
    ``max_grid_trials``), or, for a search (``{"search": "auto", ...}``, or no grid file), its rounds so far. An
    unchanged search (same spec, corpus and labels) keeps its rounds: this never restarts it."""
    where = f"grid file '{grid_file}'" if grid_file else "the default search"
    definition = read_sweep_definition(grid_file)
    paths, n_documents = inputs.paths, len(inputs.corpus)
    search: dict[str, Any] = {}
    if isinstance(definition, SearchSpec):
        state = _search_state(inputs, definition, log)
        trials = [TrialParams.from_dict(params) for params in state.trials.values()]
        manifest, new = paths.write_current_grid(where, definition.to_dict(), trials, state.round_of())
        search = {"search_rounds": len(state.rounds), "search_finished": state.finished}
    else:
        definition.validate_for_corpus(n_documents, where=where)
        trials = definition.trials(max_trials=max_grid_trials, where=where)
        manifest, new = paths.write_current_grid(where, definition.to_dict(), trials)
    log.info("%s: %d trials, %d new", where, len(manifest["trials"]), new)
    return CurrentGrid(where, definition.to_dict(), manifest, new, **search)

"""A search's rounds: the last one closed from the ranked results, the next one proposed (or the search ended),
and whether a search goes on at all."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from typing import Any

from topic_pipeline.domain.results import STATUS_OK
from topic_pipeline.domain.trials import TrialParams
from topic_pipeline.errors import TopicPipelineError
from topic_pipeline.search.coarse_to_fine import SearchRound, SearchState, advance
from topic_pipeline.storage.paths import DataPaths
from topic_pipeline.workflow.sweep_inputs import SweepInputs

NO_SEARCH = "no search: the grid file is an explicit grid"

_logger = logging.getLogger(__name__)


class SearchRoundError(TopicPipelineError):
    """The search's last round cannot be closed now (no sweep, other inputs, trials without a result)."""


@dataclasses.dataclass(frozen=True)
class SearchRoundOutcome:
    """What closing a round did. ``closed`` is None where there is no search to advance (an explicit grid)."""

    rank_by: str
    closed: SearchRound | None
    proposed: SearchRound | None = None  # the next round; None: the search has finished
    trials_run: int = 0  # the search's trials before this round was proposed
    trial_budget: int = 0
    elapsed_s: float = 0.0
    time_budget_s: float = 0.0
    finished: bool = True
    stop_reason: str = NO_SEARCH

    @property
    def best(self) -> float:
        """The closed round's best score (NaN: none scored)."""
        if self.closed is None or self.closed.best_score is None:
            return float("nan")
        return float(self.closed.best_score)


def search_continues(paths: DataPaths, manifest: Mapping[str, Any], fingerprint: str) -> bool:
    """Whether the current grid is a search that goes on, on the inputs of ``fingerprint``."""
    state = SearchState.load(paths.search_state) if manifest["grid"].get("search") == "auto" else None
    return state is not None and not state.finished and state.inputs_fingerprint == fingerprint


def close_search_round(inputs: SweepInputs, log: logging.Logger = _logger) -> SearchRoundOutcome:
    """Close the search's last round from its trials' current results and propose the next: trials around the
    best configurations, then the stability round, until a round stops improving or a budget runs out. The
    search state and the current grid (with the new round's trials) are rewritten.

    Raises ``SearchRoundError`` where no sweep is registered, the search was started on other inputs or a
    trial of the last round has no result yet."""
    paths, rank_by = inputs.paths, inputs.config.rank_by
    if not paths.current_grid.exists():
        raise SearchRoundError(f"no sweep registered under {paths.root}: materialise param_grid first")
    state = SearchState.load(paths.search_state)
    manifest = inputs.manifest
    if state is None or manifest["grid"].get("search") != "auto":
        return SearchRoundOutcome(rank_by, closed=None)
    if state.inputs_fingerprint != inputs.fingerprint:
        raise SearchRoundError(
            f"the search in {paths.search_state} was started on other inputs; materialise param_grid first"
        )
    scores = _round_scores(inputs, state)

    trials_run = len(state.trials)
    proposed = advance(state, scores)
    state.save(paths.search_state)
    trials = [TrialParams.from_dict(params) for params in state.trials.values()]
    paths.write_current_grid(manifest["source"], state.spec.to_dict(), trials, state.round_of())

    outcome = SearchRoundOutcome(
        rank_by,
        closed=state.rounds[-2] if proposed else state.rounds[-1],
        proposed=proposed,
        trials_run=trials_run,
        trial_budget=state.spec.trial_budget,
        elapsed_s=time.time() - state.started_at,
        time_budget_s=state.spec.time_budget_s,
        finished=state.finished,
        stop_reason=state.stop_reason or "",
    )
    _log_outcome(outcome, log)
    return outcome


def _round_scores(inputs: SweepInputs, state: SearchState) -> dict[str, float | None]:
    """Each of the search's trials' ranking score (None: failed), once every trial of its last round has a
    current result."""
    store = inputs.store
    results = {key: store.current(key, inputs.fingerprint, params) for key, params in state.trials.items()}
    last = state.rounds[-1]
    unfinished = [key for key in last.trial_keys if results[key] is None]
    if unfinished:
        raise SearchRoundError(
            f"round {last.number} still has {len(unfinished)} trial(s) without a result, e.g. {unfinished[0]}"
        )
    rank_by = inputs.config.rank_by
    return {
        key: result.metrics.get(rank_by) if result and result.status == STATUS_OK else None
        for key, result in results.items()
    }


def _log_outcome(outcome: SearchRoundOutcome, log: logging.Logger) -> None:
    closed, proposed = outcome.closed, outcome.proposed
    log.info(
        "round %d (%s) closed: best %s %.4f (%s); %d of %d trials run, %.0f s of a %.0f s budget",
        closed.number,
        closed.kind,
        outcome.rank_by,
        outcome.best,
        closed.best_key,
        outcome.trials_run,
        outcome.trial_budget,
        outcome.elapsed_s,
        outcome.time_budget_s,
    )
    if proposed:
        log.info("round %d (%s): %d new trials", proposed.number, proposed.kind, len(proposed.trial_keys))
    else:
        log.info("search finished: %s", outcome.stop_reason)

"""The search's refinement: after each leaderboard, the next round of trials (or the end of the search)."""

import time

import dagster as dg
import pandas as pd

from topic_pipeline.inputs.corpus import Corpus
from topic_pipeline.defs.assets.leaderboard import leaderboard
from topic_pipeline.domain.trials import TrialParams
from topic_pipeline.inputs.ground_truth import GroundTruth
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.storage.results import ResultStore
from topic_pipeline.domain.results import STATUS_OK
from topic_pipeline.search.coarse_to_fine import SearchState, advance
from topic_pipeline.storage.files import read_json
from topic_pipeline.storage.migrations import carried_over_message, carry_over_legacy_results


@dg.asset(group_name="sweep", deps=[leaderboard], kinds={"json"})
def search_refinement(
    context: dg.AssetExecutionContext, documents: pd.DataFrame, ground_truth: dict, settings: PipelineSettings
) -> dg.MaterializeResult:
    """Closes the search's last round from the ranked results and proposes the next: trials around the
    best configurations, then the stability round (top configurations with more UMAP seeds), until a
    round stops improving or a budget runs out. Proposed trials become ``grid_trials`` partitions when
    the sweep sensor (or ``topic-pipeline sweep``) plans from the new manifest, and are run by it; their
    metadata and MLflow runs carry the round that proposed them.
    """
    paths = settings.paths
    if not paths.current_grid.exists():
        raise dg.Failure(f"no sweep registered under {paths.root}: materialise param_grid first")
    state = SearchState.load(paths.search_state)
    manifest = read_json(paths.current_grid)
    if state is None or manifest["grid"].get("search") != "auto":
        return dg.MaterializeResult(metadata={"finished": True, "stop_reason": "no search: the grid file is an explicit grid"})
    fingerprint = settings.inputs_fingerprint(
        Corpus.from_frame(documents).content_hash, GroundTruth.from_mapping(ground_truth).content_hash
    )
    if state.inputs_fingerprint != fingerprint:
        raise dg.Failure(f"the search in {paths.search_state} was started on other inputs; materialise param_grid first")
    store = ResultStore(paths.results)
    # A state of the first form of keys reads with the current keys (storage.migrations): its round may have
    # run under the old ones, so their results are carried over before the round is closed.
    carried = carry_over_legacy_results(store, [TrialParams.from_dict(params) for params in state.trials.values()])
    if carried:
        context.log.info(carried_over_message(carried))
    results = {key: store.current(key, fingerprint, params) for key, params in state.trials.items()}
    last = state.rounds[-1]
    unfinished = [key for key in last.trial_keys if results[key] is None]
    if unfinished:
        raise dg.Failure(f"round {last.number} still has {len(unfinished)} trial(s) without a result, e.g. {unfinished[0]}")
    scores = {
        key: result.metrics.get(settings.rank_by) if result and result.status == STATUS_OK else None
        for key, result in results.items()
    }

    trials_run = len(state.trials)
    proposed = advance(state, scores)
    state.save(paths.search_state)
    trials = [TrialParams.from_dict(params) for params in state.trials.values()]
    manifest, _, _ = paths.write_current_grid(manifest["source"], state.spec.to_dict(), trials, state.round_of())

    elapsed = time.time() - state.started_at
    closed = state.rounds[-2] if proposed else state.rounds[-1]
    best = float("nan") if closed.best_score is None else float(closed.best_score)
    context.log.info(
        "round %d (%s) closed: best %s %.4f (%s); %d of %d trials run, %.0f s of a %.0f s budget",
        closed.number, closed.kind, settings.rank_by, best, closed.best_key, trials_run, state.spec.trial_budget,
        elapsed, state.spec.time_budget_s,
    )
    if proposed:
        context.log.info("round %d (%s): %d new trials", proposed.number, proposed.kind, len(proposed.trial_keys))
    else:
        context.log.info("search finished: %s", state.stop_reason)
    return dg.MaterializeResult(
        metadata={
            "round_closed": closed.number,
            "round_closed_kind": closed.kind,
            f"best_{settings.rank_by}": best,
            "best_trial": str(closed.best_key),
            "next_round": proposed.number if proposed else 0,
            "next_round_kind": proposed.kind if proposed else "none",
            "next_round_trial_count": len(proposed.trial_keys) if proposed else 0,
            "next_round_trials": dg.MetadataValue.json(proposed.trial_keys if proposed else []),
            "trials_run": trials_run,
            "trial_budget": state.spec.trial_budget,
            "elapsed_s": round(elapsed, 1),
            "time_budget_s": state.spec.time_budget_s,
            "finished": state.finished,
            "stop_reason": state.stop_reason or "",
        }
    )

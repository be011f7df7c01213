"""The search's refinement: after each leaderboard, the next round of trials (or the end of the search)."""

import dagster as dg
import pandas as pd

from topic_pipeline.defs.assets.leaderboard import leaderboard
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.workflow.search_round import SearchRoundError, SearchRoundOutcome, close_search_round
from topic_pipeline.workflow.sweep_inputs import SweepInputs


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
    inputs = SweepInputs.load(settings.sweep_config(), documents, ground_truth)
    try:
        outcome = close_search_round(inputs, log=context.log)
    except SearchRoundError as error:
        raise dg.Failure(str(error)) from None
    return dg.MaterializeResult(metadata=search_round_metadata(outcome))


def search_round_metadata(outcome: SearchRoundOutcome) -> dict[str, object]:
    closed, proposed = outcome.closed, outcome.proposed
    if closed is None:
        return {"finished": True, "stop_reason": outcome.stop_reason}
    return {
        "round_closed": closed.number,
        "round_closed_kind": closed.kind,
        # The closed round's own best (at the base seed): not the sweep's best trial so far, nor the recommendation.
        f"round_best_{outcome.rank_by}": round(outcome.best, 4),
        "round_best_trial": str(closed.best_key),
        "next_round": proposed.number if proposed else 0,
        "next_round_kind": proposed.kind if proposed else "none",
        "next_round_trial_count": len(proposed.trial_keys) if proposed else 0,
        "next_round_trials": dg.MetadataValue.json(proposed.trial_keys if proposed else []),
        "trials_run": outcome.trials_run,
        "trial_budget": outcome.trial_budget,
        "elapsed_s": round(outcome.elapsed_s, 1),
        "time_budget_s": outcome.time_budget_s,
        "finished": outcome.finished,
        "stop_reason": outcome.stop_reason,
    }

"""A good configuration without a hand-written grid: rounds of trials proposed from the scores of the last."""

from topic_pipeline.search.coarse_to_fine import (
    ROUND_BROAD,
    ROUND_OUTLIERS,
    ROUND_REFINE,
    ROUND_STABILITY,
    SearchRound,
    SearchSpace,
    SearchSpec,
    SearchState,
    advance,
    exhaustive_grid,
    read_sweep_definition,
    run_search,
    search_identity,
    start_search,
)

__all__ = [
    "ROUND_BROAD",
    "ROUND_OUTLIERS",
    "ROUND_REFINE",
    "ROUND_STABILITY",
    "SearchRound",
    "SearchSpace",
    "SearchSpec",
    "SearchState",
    "advance",
    "exhaustive_grid",
    "read_sweep_definition",
    "run_search",
    "search_identity",
    "start_search",
]

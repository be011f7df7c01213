"""The grid made current and a search's rounds closed, as library functions (no Dagster, no models)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from topic_pipeline.domain.results import STATUS_OK, TrialResult
from topic_pipeline.errors import GridError
from topic_pipeline.search.coarse_to_fine import ROUND_BROAD, SearchState
from topic_pipeline.storage.files import read_json
from topic_pipeline.storage.paths import DataPaths
from topic_pipeline.storage.results import ResultStore
from topic_pipeline.workflow.grid import make_grid_current
from topic_pipeline.workflow.search_round import NO_SEARCH, SearchRoundError, close_search_round, search_continues
from topic_pipeline.workflow.sweep_inputs import SweepConfig, SweepInputs

DOCUMENTS = pd.DataFrame({"id": range(1, 31), "text": [f"text {i}" for i in range(1, 31)]})
LABELS = {"a": [1, 2], "b": [3, 4]}
SEARCH = {"search": "auto", "trial_budget": 30, "stability_seeds": 2, "stability_top": 1}


def _inputs(root: Path, labels: dict = LABELS) -> SweepInputs:
    """The sweep's inputs as a stage loads them, the current grid included."""
    return SweepInputs.load(
        SweepConfig(paths=DataPaths(root / "data"), ground_truth_file=root / "labels.json"), DOCUMENTS, labels
    )


def _grid_file(root: Path, grid: dict) -> Path:
    path = root / "grid.json"
    path.write_text(json.dumps(grid))
    return path


def _store_round(inputs: SweepInputs, keys: list[str], skip: int = 0) -> None:
    """Results for the round's trials but the last ``skip``: the later a trial, the higher its score."""
    store = ResultStore(inputs.paths.results)
    for number, key in enumerate(keys[: len(keys) - skip]):
        result = TrialResult(key, inputs.trials[key], inputs.fingerprint, STATUS_OK, metrics={"ari": number / 100})
        store.save(result, np.zeros(len(DOCUMENTS), dtype=np.int32))


def test_an_explicit_grid_is_expanded_and_made_current(tmp_path, caplog):
    grid_file = _grid_file(tmp_path, {"hdbscan_min_cluster_size": [2, 3, 4]})
    with caplog.at_level(logging.INFO):
        grid = make_grid_current(_inputs(tmp_path), grid_file, max_grid_trials=100)
    assert grid.where == f"grid file '{grid_file}'" and grid.new == 3
    assert grid.search_rounds is None and grid.search_finished is None
    assert read_json(DataPaths(tmp_path / "data").current_grid) == grid.manifest and len(grid.manifest["trials"]) == 3
    assert f"grid file '{grid_file}': 3 trials, 3 new" in caplog.messages
    # Again: nothing new. And a grid beyond the limit is refused, naming its file.
    assert make_grid_current(_inputs(tmp_path), grid_file, max_grid_trials=100).new == 0
    with pytest.raises(GridError, match="grid.json"):
        make_grid_current(_inputs(tmp_path), grid_file, max_grid_trials=2)


def test_a_search_starts_once_and_keeps_its_rounds(tmp_path, caplog):
    grid_file = _grid_file(tmp_path, SEARCH)
    with caplog.at_level(logging.INFO):
        grid = make_grid_current(_inputs(tmp_path), grid_file, max_grid_trials=100)
    assert (grid.search_rounds, grid.search_finished) == (1, False)
    assert any(message.startswith("search started: broad round of") for message in caplog.messages)
    state = SearchState.load(DataPaths(tmp_path / "data").search_state)
    assert set(grid.manifest["trials"]) == set(state.trials) and set(grid.manifest["rounds"].values()) == {1}
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = make_grid_current(_inputs(tmp_path), grid_file, max_grid_trials=100)
    assert again.manifest == grid.manifest and again.new == 0
    assert not any(message.startswith("search started") for message in caplog.messages)
    # A search goes on on its own inputs only.
    assert search_continues(DataPaths(tmp_path / "data"), again.manifest, _inputs(tmp_path).fingerprint)
    assert not search_continues(DataPaths(tmp_path / "data"), again.manifest, "other inputs")


def test_a_round_is_closed_and_the_next_proposed(tmp_path, caplog):
    make_grid_current(_inputs(tmp_path), _grid_file(tmp_path, SEARCH), max_grid_trials=100)
    inputs = _inputs(tmp_path)
    broad = list(inputs.trials)
    _store_round(inputs, broad)

    with caplog.at_level(logging.INFO):
        outcome = close_search_round(_inputs(tmp_path))

    assert outcome.closed.number == 1 and outcome.closed.kind == ROUND_BROAD and outcome.closed.best_key == broad[-1]
    assert outcome.best == pytest.approx((len(broad) - 1) / 100) and outcome.trials_run == len(broad)
    assert outcome.proposed.number == 2 and outcome.proposed.trial_keys and not outcome.finished
    assert (outcome.trial_budget, outcome.stop_reason, outcome.rank_by) == (30, "", "ari")
    # The state and the current grid hold the new round.
    manifest = read_json(inputs.paths.current_grid)
    assert all(manifest["rounds"][key] == 2 for key in outcome.proposed.trial_keys)
    assert len(SearchState.load(inputs.paths.search_state).rounds) == 2
    assert any(message.startswith("round 1 (broad) closed: best ari") for message in caplog.messages)
    assert f"round 2 ({outcome.proposed.kind}): {len(outcome.proposed.trial_keys)} new trials" in caplog.messages


def test_a_round_with_unfinished_trials_is_not_closed(tmp_path):
    make_grid_current(_inputs(tmp_path), _grid_file(tmp_path, SEARCH), max_grid_trials=100)
    inputs = _inputs(tmp_path)
    _store_round(inputs, list(inputs.trials), skip=1)
    with pytest.raises(SearchRoundError, match=r"round 1 still has 1 trial\(s\) without a result, e.g. "):
        close_search_round(inputs)
    # On other inputs (other labels), the search is refused.
    with pytest.raises(SearchRoundError, match="was started on other inputs; materialise param_grid first"):
        close_search_round(_inputs(tmp_path, {"a": [1, 2, 3], "b": [4, 5]}))


def test_no_search_to_close(tmp_path):
    with pytest.raises(SearchRoundError, match="no sweep registered under .*: materialise param_grid first"):
        close_search_round(_inputs(tmp_path))
    make_grid_current(_inputs(tmp_path), _grid_file(tmp_path, {"hdbscan_min_cluster_size": [2]}), max_grid_trials=100)
    outcome = close_search_round(_inputs(tmp_path))
    assert outcome.closed is None and outcome.finished and outcome.stop_reason == NO_SEARCH

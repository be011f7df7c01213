"""The coarse-to-fine search: its spec, its rounds, when it stops, stability, and the Dagster loop."""

import dataclasses
import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from topic_pipeline.domain.results import STATUS_OK, TrialResult
from topic_pipeline.domain.trials import TrialParams
from topic_pipeline.errors import GridError
from topic_pipeline.inputs.grid import ParamGrid
from topic_pipeline.scoring.leaderboard import build_leaderboard, configurations, to_markdown
from topic_pipeline.search.coarse_to_fine import (
    OUTLIER_VARIANTS,
    ROUND_BROAD,
    ROUND_OUTLIERS,
    ROUND_REFINE,
    ROUND_STABILITY,
    SearchSpace,
    SearchSpec,
    SearchState,
    advance,
    broad_round,
    read_sweep_definition,
    refinement_round,
    start_search,
)
from topic_pipeline.storage.paths import DataPaths


def _params(**changes) -> TrialParams:
    base = ParamGrid.from_mapping({}).trials()[0]
    return dataclasses.replace(base, **changes)


# --- the spec --------------------------------------------------------------------------------------


def test_no_grid_file_means_the_default_search():
    assert read_sweep_definition(None) == SearchSpec()


def test_search_file_with_options(tmp_path):
    path = tmp_path / "grid.json"
    path.write_text(json.dumps({"search": "auto", "time_budget_s": 600, "stability_seeds": 3, "nr_topics": "auto"}))
    spec = read_sweep_definition(path)
    assert spec == SearchSpec(time_budget_s=600.0, stability_seeds=3, nr_topics="auto")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"search": "grid"}, 'key \'search\' has value "grid"; expected "auto"'),
        ({"search": "auto", "time_budgt_s": 5}, "unknown search key 'time_budgt_s'. Did you mean 'time_budget_s'?"),
        (
            {"search": "auto", "time_budget_s": 0},
            "search key 'time_budget_s' has value 0; expected a number of seconds > 0",
        ),
        (
            {"search": "auto", "stability_seeds": 0},
            "search key 'stability_seeds' has value 0; expected an integer >= 1",
        ),
        ({"search": "auto", "n_gram_max": 9}, "key 'n_gram_max' has value 9; expected an integer from 1 to 5"),
    ],
)
def test_bad_search_options_name_the_key(tmp_path, raw, message):
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(GridError) as error:
        read_sweep_definition(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_an_explicit_grid_is_still_a_grid(tmp_path):
    path = tmp_path / "grid.json"
    path.write_text(json.dumps({"umap_n_neighbors": [10]}))
    assert isinstance(read_sweep_definition(path), ParamGrid)


# --- the rounds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_documents", [60, 200, 2000, 50000])
def test_broad_round_fits_the_corpus(n_documents):
    trials = broad_round(SearchSpec(), n_documents)
    assert trials
    for trial in trials:
        assert trial.umap_n_neighbors < n_documents
        assert trial.umap_n_components < n_documents - 1
        assert trial.hdbscan_min_cluster_size <= max(3, n_documents // 10)
    reductions = {(t.umap_n_neighbors, t.umap_n_components, t.umap_min_dist) for t in trials}
    # Few reductions (the expensive part), many HDBSCAN variants on each (nearly free).
    assert len(reductions) <= 12
    assert len(trials) / len(reductions) >= (16 if n_documents < 1000 else 100)


def test_refinement_steps_one_ladder_step_around_the_leader():
    space = SearchSpace(2000)
    leader = _params(
        umap_n_neighbors=15,
        umap_n_components=5,
        umap_min_dist=0.0,
        hdbscan_min_cluster_size=15,
        hdbscan_min_samples=8,
        hdbscan_cluster_selection_epsilon=0.2,
    )
    proposals = refinement_round(SearchSpec(top_k=1), 2000, [leader])
    assert leader in proposals
    assert {p.umap_n_neighbors for p in proposals} == {10, 15, 20}
    assert {p.umap_n_components for p in proposals} == {3, 5, 8}
    assert {p.umap_min_dist for p in proposals} == {0.0, 0.1}
    assert {p.hdbscan_min_cluster_size for p in proposals} == {10, 15, 20}
    assert {p.hdbscan_min_samples for p in proposals} == {5, 8, 10}
    assert {p.hdbscan_cluster_selection_epsilon for p in proposals} == {0.1, 0.2, 0.3}
    # Coordinate steps: a new reduction moves one UMAP parameter only.
    for p in proposals:
        moved = [p.umap_n_neighbors != 15, p.umap_n_components != 5, p.umap_min_dist != 0.0]
        assert sum(moved) <= 1
    assert space.steps("umap_n_neighbors", 5) == [5, 10]
    assert space.steps("umap_n_neighbors", 7) == [7]


def _score_by(rule):
    """Scores for every trial of the state's last round from ``rule(params) -> float``."""

    def scores(state: SearchState, into: dict) -> dict:
        for key in state.rounds[-1].trial_keys:
            into[key] = rule(TrialParams.from_dict(state.trials[key]))
        return into

    return scores


def _peak(params: TrialParams) -> float:
    # A smooth landscape peaking at nn=20, nc=3, mcs=20: refinement should walk towards it.
    return (
        1.0
        - abs(params.umap_n_neighbors - 20) / 100
        - abs(params.umap_n_components - 3) / 50
        - abs(params.hdbscan_min_cluster_size - 20) / 1000
        - params.seed_replicate / 1000
    )


def test_search_walks_to_the_peak_then_checks_stability():
    spec = SearchSpec(max_rounds=6, top_k=2, stability_top=3, stability_seeds=4)
    state = start_search(spec, 2000, "inputs", now=0.0)
    assert state.rounds[0].kind == ROUND_BROAD
    scores: dict = {}
    score = _score_by(_peak)
    clock = 0.0
    while True:
        score(state, scores)
        clock += 10
        if advance(state, scores, now=clock) is None:
            break
    kinds = [r.kind for r in state.rounds]
    assert kinds[0] == ROUND_BROAD and kinds[-1] == ROUND_STABILITY
    assert ROUND_REFINE in kinds
    best = TrialParams.from_dict(state.trials[state.rounds[-2].best_key])
    assert (best.umap_n_neighbors, best.umap_n_components, best.hdbscan_min_cluster_size) == (20, 3, 20)
    # Stability: the top three configurations with three more seeds each.
    stability = [TrialParams.from_dict(state.trials[k]) for k in state.rounds[-1].trial_keys]
    assert len(stability) == 9
    assert {p.seed_replicate for p in stability} == {1, 2, 3}
    assert len({p.configuration for p in stability}) == 3
    assert state.finished and state.stop_reason.endswith("stability round done")
    # Every round is recorded and the state survives a JSON round trip.
    assert SearchState.from_dict(json.loads(json.dumps(state.to_dict()))).to_dict() == state.to_dict()


def test_a_round_without_improvement_ends_the_refinement():
    spec = SearchSpec(min_improvement=0.01, stability_top=0)
    state = start_search(spec, 2000, "inputs", now=0.0)
    scores = _score_by(lambda p: 0.5)(state, {})
    assert advance(state, scores, now=1.0).kind == ROUND_REFINE
    scores = _score_by(lambda p: 0.5)(state, scores)
    # Refinement ends; the leaders' outlier variants still run, then the search ends for refinement's reason.
    assert advance(state, scores, now=2.0).kind == ROUND_OUTLIERS
    scores = _score_by(lambda p: 0.5)(state, scores)
    assert advance(state, scores, now=3.0) is None
    assert "improved the best score by less than 0.01" in state.stop_reason


def test_the_outlier_round_tries_outlier_reduction_on_the_leaders():
    spec = SearchSpec(max_rounds=0, top_k=2, stability_top=1, stability_seeds=2)
    state = start_search(spec, 2000, "inputs", now=0.0)
    scores = _score_by(_peak)(state, {})
    outliers = advance(state, scores, now=1.0)
    assert outliers.kind == ROUND_OUTLIERS and state.search_stop_reason == "0 refinement round(s) done"
    variants = [TrialParams.from_dict(state.trials[k]) for k in outliers.trial_keys]
    assert len(variants) == 2 * len(OUTLIER_VARIANTS)
    assert {(p.outlier_reduction, p.outlier_threshold) for p in variants} == set(OUTLIER_VARIANTS)
    assert ("embeddings", 0.0) in OUTLIER_VARIANTS
    # Each variant is a leader's own configuration (no new UMAP reduction or HDBSCAN setting).
    leaders = {dataclasses.replace(p, outlier_reduction="none").key for p in variants}
    assert len(leaders) == 2 and leaders <= set(state.rounds[0].trial_keys)

    # Reducing at 0.25 helps: that variant leads, and the stability round re-seeds it.
    def rule(params: TrialParams) -> float:
        if params.outlier_reduction == "none":
            return _peak(params)
        return _peak(params) + (0.05 if params.outlier_threshold == 0.25 else -0.01)

    scores = _score_by(rule)(state, scores)
    stability = advance(state, scores, now=2.0)
    assert stability.kind == ROUND_STABILITY
    (replicate,) = [TrialParams.from_dict(state.trials[k]) for k in stability.trial_keys]
    assert (replicate.outlier_reduction, replicate.outlier_threshold, replicate.seed_replicate) == (
        "embeddings",
        0.25,
        1,
    )
    assert state.rounds[-2].best_key == replicate.configuration.key


def test_budgets_bound_the_search():
    spec = SearchSpec(trial_budget=300, stability_top=2, stability_seeds=3)
    state = start_search(spec, 2000, "inputs", now=0.0)
    # The stability round's 4 trials are reserved from the start.
    assert len(state.trials) == 296
    scores = _score_by(_peak)(state, {})
    following = advance(state, scores, now=1.0)
    assert following.kind == ROUND_STABILITY and len(following.trial_keys) == 4
    assert state.search_stop_reason == "trial budget of 300 reached"

    timed = start_search(SearchSpec(time_budget_s=100), 2000, "inputs", now=0.0)
    scores = _score_by(_peak)(timed, {})
    # The broad round took 60 s; another like it would end past the 100 s budget.
    assert advance(timed, scores, now=60.0) is None
    assert timed.stop_reason == "time budget of 100 s reached"


def test_all_trials_failing_stops_with_a_reason():
    state = start_search(SearchSpec(), 200, "inputs", now=0.0)
    assert advance(state, {key: None for key in state.trials}, now=1.0) is None
    assert state.stop_reason == "no trial could be scored"


# --- seeds and stability on the leaderboard --------------------------------------------------------


def test_seed_replicate_keys_and_round_trip():
    params = _params()
    replicate = dataclasses.replace(params, seed_replicate=3)
    assert replicate.key == params.key + "_r3"
    assert replicate.configuration == params
    assert replicate.umap_seed(42) == 45 and params.umap_seed(42) == 42
    assert "seed_replicate" not in params.to_dict()  # results stored before replicates stay current
    assert TrialParams.from_dict(replicate.to_dict()) == replicate


def _result(params: TrialParams, ari: float) -> TrialResult:
    metrics = {
        "ari": ari,
        "ami": ari,
        "nmi": ari,
        "v_measure": ari,
        "f1_macro": ari,
        "f1_weighted": ari,
        "homogeneity": ari,
        "completeness": ari,
        "outlier_fraction": 0.0,
        "topic_count": 5.0,
    }
    return TrialResult(params.key, params.to_dict(), "fp", STATUS_OK, metrics=metrics)


def test_a_lucky_seed_is_visible_and_ranks_lower_by_stability():
    lucky = _params(umap_n_neighbors=10)
    steady = _params(umap_n_neighbors=20)
    trials, results = {}, {}
    for configuration, scores in ((lucky, [0.90, 0.40, 0.45, 0.42, 0.41]), (steady, [0.80, 0.79, 0.81, 0.80, 0.78])):
        for replicate, ari in enumerate(scores):
            params = dataclasses.replace(configuration, seed_replicate=replicate)
            trials[params.key] = params.to_dict()
            results[params.key] = _result(params, ari)
    by_score = build_leaderboard(trials, results, "ari")
    # Ranked by the seeds' mean, not by the single best run (the lucky configuration's 0.90).
    assert by_score.iloc[0]["configuration"] == steady.key and by_score.iloc[0]["ari"] == 0.81  # its best seed first
    lucky_rows = by_score[by_score["configuration"] == lucky.key]
    assert lucky_rows.index.tolist() == [5, 6, 7, 8, 9] and lucky_rows.iloc[0]["ari"] == 0.90
    assert lucky_rows["unstable"].all() and (lucky_rows["ari_seeds"] == 5).all()
    by_stability = build_leaderboard(trials, results, "ari", rank_by_stability=True)
    assert by_stability.iloc[0]["configuration"] == steady.key
    assert by_stability.iloc[0]["ari_stable"] == pytest.approx(0.796 - np.std([0.80, 0.79, 0.81, 0.80, 0.78], ddof=1))
    folded = configurations(by_score, "ari")
    assert folded["configuration"].tolist()[:2] == [steady.key, lucky.key] and folded["seeds"].tolist()[:2] == [5, 5]
    assert folded.loc[1, "ari"] == pytest.approx(0.516) and folded.loc[1, "unstable"]
    table = to_markdown(by_score, "ari")
    assert "| 0.516 | 5 | 0.516 | 0.215 **unstable** | 0.400 - 0.900 |" in table


# --- through Dagster -------------------------------------------------------------------------------


@pytest.fixture
def tiny_grid():
    # A trial budget that cuts the broad round short, so the loop (broad round, then the stability round
    # it reserves room for) stays small; refinement rounds take the same path through the assets.
    return {"search": "auto", "trial_budget": 40, "stability_top": 2, "stability_seeds": 2}


@pytest.mark.slow
def test_search_rounds_run_through_dagster(tiny_project, monkeypatch):
    from topic_pipeline.cli import run_sweep

    monkeypatch.setenv("TOPIC_PIPELINE_WORKERS", "1")
    paths = DataPaths(tiny_project / "data")
    with dg.instance_for_test(temp_dir=str(tiny_project / "dagster_home")) as instance:
        run_sweep(instance)
        state = SearchState.load(paths.search_state)
        assert state.finished, state.stop_reason
        assert [r.kind for r in state.rounds] == [ROUND_BROAD, ROUND_STABILITY]
        assert state.search_stop_reason == "trial budget of 40 reached"
        assert len(state.trials) == 40

        # Every round's trials are ordinary partitions with their round in the metadata.
        partitions = set(instance.get_dynamic_partitions("trials"))
        assert set(state.trials) <= partitions
        stability_key = state.rounds[-1].trial_keys[0]
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("grid_trials"), asset_partitions=[stability_key]), limit=1
        ).records
        assert records[0].asset_materialization.metadata["search_round"].value == 2

        # One refinement materialisation per closed round, the last one saying why the search ended.
        refinements = instance.fetch_materializations(dg.AssetKey("search_refinement"), limit=10).records
        assert len(refinements) == 2
        final = refinements[0].asset_materialization.metadata
        assert final["finished"].value is True and "stability round done" in final["stop_reason"].value
        # A finished search looks finished: rewriting the same grid (its state file stores the trials in
        # another order) leaves the leaderboard current, so no leaderboard follows the last refinement and
        # the asset graph does not show search_refinement as unsynced.
        leaderboards = instance.fetch_materializations(dg.AssetKey("leaderboard"), limit=10).records
        assert len(leaderboards) == 2
        assert leaderboards[0].timestamp < refinements[0].timestamp

        frame = pd.read_csv(paths.leaderboard / "leaderboard.csv")
        assert set(frame["round"]) == {1, 2}
        assert len(frame) == len(state.trials)
        replicated = frame[frame["ari_seeds"] == 2]
        assert len(replicated) == 4  # two configurations, two seeds each
        # Nothing is left to run: the sensor's plan is empty.
        from topic_pipeline.definitions import build_resources
        from topic_pipeline.defs.planning import plan_next_runs

        assert plan_next_runs(instance, build_resources()["settings"]) == []


def test_leaders_are_distinct_results():
    # Two HDBSCAN settings giving the same clustering (same score) count as one leader.
    state = start_search(SearchSpec(stability_top=2, stability_seeds=2, max_rounds=0), 2000, "inputs", now=0.0)
    keys = state.rounds[0].trial_keys
    scores = {key: 0.1 for key in keys}
    scores[keys[0]] = scores[keys[1]] = 0.9
    scores[keys[2]] = 0.8
    assert advance(state, scores, now=1.0).kind == ROUND_OUTLIERS
    # Outlier reduction changes nothing here: each variant scores as its configuration.
    for key in state.rounds[-1].trial_keys:
        params = TrialParams.from_dict(state.trials[key])
        scores[key] = scores[dataclasses.replace(params, outlier_reduction="none").key]
    assert advance(state, scores, now=2.0).kind == ROUND_STABILITY
    replicated = {TrialParams.from_dict(state.trials[k]).configuration.key for k in state.rounds[-1].trial_keys}
    assert replicated == {min(keys[0], keys[1]), keys[2]}

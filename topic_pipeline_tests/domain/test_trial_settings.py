"""A trial's UMAP and HDBSCAN settings, written once in ``domain.trials`` (fast; nothing is fitted)."""

from __future__ import annotations

import dataclasses

from topic_pipeline.domain.trials import TrialParams
from topic_pipeline.inputs.grid import ParamGrid


def _trial() -> TrialParams:
    (trial,) = ParamGrid.from_mapping(
        {
            "umap_n_neighbors": [12],
            "umap_n_components": [3],
            "umap_min_dist": [0.1],
            "hdbscan_min_cluster_size": [7],
            "hdbscan_min_samples": [2],
            "hdbscan_cluster_selection_epsilon": [0.2],
        }
    ).trials()
    return trial


def test_umap_takes_the_grids_values_the_cosine_metric_and_the_replicates_seed():
    trial = _trial()
    expected = {"n_neighbors": 12, "n_components": 3, "min_dist": 0.1, "metric": "cosine", "random_state": 42}
    assert trial.umap_settings(42) == expected
    assert dataclasses.replace(trial, seed_replicate=2).umap_settings(42) == {**expected, "random_state": 44}


def test_hdbscan_takes_the_grids_values_with_bertopics_metric_and_selection():
    assert _trial().hdbscan_settings() == {
        "min_cluster_size": 7,
        "min_samples": 2,
        "cluster_selection_epsilon": 0.2,
        "metric": "euclidean",
        "cluster_selection_method": "eom",
    }


def test_the_models_built_from_them_are_those_of_before():
    """Every model the engine builds takes these settings: the HDBSCAN and UMAP parameters are those the
    engine wrote by hand before they had one place."""
    from hdbscan import HDBSCAN
    from umap import UMAP

    from topic_pipeline.engine.clustering import hdbscan_model

    trial = _trial()
    by_hand = HDBSCAN(
        min_cluster_size=7,
        min_samples=2,
        cluster_selection_epsilon=0.2,
        metric="euclidean",
        cluster_selection_method="eom",
        prediction_data=True,
    )
    assert hdbscan_model(7, 2, 0.2, prediction_data=True).get_params() == by_hand.get_params()
    assert HDBSCAN(**trial.hdbscan_settings()).get_params() == hdbscan_model(7, 2, 0.2).get_params()
    by_hand = UMAP(n_neighbors=12, n_components=3, min_dist=0.1, metric="cosine", random_state=42)
    assert UMAP(**trial.umap_settings(42)).get_params() == by_hand.get_params()

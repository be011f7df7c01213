"""The current-grid manifest: what its fingerprint covers."""

from topic_pipeline.inputs.grid import ParamGrid
from topic_pipeline.storage.paths import DataPaths


def test_grid_fingerprint_covers_the_set_of_trials_not_their_order(tmp_path):
    paths = DataPaths(tmp_path / "data")
    grid = ParamGrid.from_mapping({"umap_n_neighbors": [5, 10], "hdbscan_min_cluster_size": [3, 5]})
    trials = grid.trials()
    first, new = paths.write_current_grid("grid.json", grid.to_dict(), trials)
    assert new == len(trials) == 4
    # A search's state file stores its trials sorted by key: the same trials, reordered, are the same grid.
    again, new = paths.write_current_grid("grid.json", grid.to_dict(), list(reversed(trials)))
    assert new == 0 and again["grid_fingerprint"] == first["grid_fingerprint"]
    fewer, _ = paths.write_current_grid("grid.json", grid.to_dict(), trials[:3])
    assert fewer["grid_fingerprint"] != first["grid_fingerprint"]
    other, _ = paths.write_current_grid("other.json", {**grid.to_dict(), "n_gram_max": [2]}, trials)
    assert other["grid_fingerprint"] != first["grid_fingerprint"]

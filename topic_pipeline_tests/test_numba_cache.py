"""The compiled-code cache: a later process loads NNDescent's and UMAP's numba code from disk instead of
compiling it, and its results are bit-identical to those of the process that compiled it."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = pytest.mark.slow

# Above UMAP's 4,096-point threshold, so the neighbour search is NNDescent.
SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from topic_pipeline import numba_cache

    assert numba_cache.enable()
    from pynndescent import pynndescent_
    from umap import layouts
    from topic_pipeline.neighbors import descent_graph, prepare
    from topic_pipeline.reduction import ReductionSpec, fit_reduction

    data = prepare(np.random.default_rng(0).normal(size=(4200, 16)))
    graph = descent_graph(data, 10, 42)
    reduction = fit_reduction(data, graph, ReductionSpec(10, 3, 0.1, 42))
    np.savez(sys.argv[1], indices=graph.indices, distances=graph.distances, reduction=reduction)
    dispatchers = {
        "nndescent_candidates": pynndescent_.process_candidates,
        "nndescent_tree_init": pynndescent_.init_rp_tree,
        "umap_layout_epoch": layouts._nb_optimize_layout_euclidean_single_epoch,
    }
    print(json.dumps({name: sum(d.stats.cache_hits.values()) for name, d in dispatchers.items()}))
""")


def _run(tmp_path, name: str) -> tuple[dict, dict]:
    output = tmp_path / f"{name}.npz"
    environment = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(output)], env=environment, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    hits = json.loads(completed.stdout.strip().splitlines()[-1])
    with np.load(output, allow_pickle=False) as arrays:
        return hits, {key: arrays[key] for key in arrays.files}


def test_a_later_process_loads_the_compiled_code_and_gets_identical_results(tmp_path):
    first_hits, first = _run(tmp_path, "first")
    assert set(first_hits.values()) == {0}, "an empty cache directory cannot have served anything"
    second_hits, second = _run(tmp_path, "second")
    assert all(count > 0 for count in second_hits.values()), second_hits
    for key in first:
        np.testing.assert_array_equal(second[key], first[key], err_msg=key)

"""The compiled-code cache: a later process loads NNDescent's and UMAP's numba code from disk instead of
compiling it, and its results are bit-identical to those of the process that compiled it and to those
of plain UMAP and NNDescent, without the cache."""

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
    from topic_pipeline._compat import numba as numba_cache

    if sys.argv[2] == "cached":
        assert numba_cache.enable()
    from pynndescent import pynndescent_
    from umap import layouts
    from topic_pipeline.engine.neighbors import descent_graph, prepare
    from topic_pipeline.engine.reduction import ReductionSpec, fit_reduction

    data = prepare(np.random.default_rng(0).normal(size=(4200, 16)))
    graph = descent_graph(data, 10, 42)
    reduction = fit_reduction(data, graph, ReductionSpec(10, 3, 0.1, 42))
    np.savez(sys.argv[1], indices=graph.indices, distances=graph.distances, reduction=reduction)
    dispatchers = {
        "nndescent_driver": pynndescent_.nn_descent,  # reads the thread count: rebuilt to be cacheable
        "nndescent_candidates": pynndescent_.process_candidates,
        "nndescent_tree_init": pynndescent_.init_rp_tree,
        "umap_layout_epoch": layouts._nb_optimize_layout_euclidean_single_epoch,
    }
    print(json.dumps({
        name: [sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values())] for name, d in dispatchers.items()
    }))
""")


def _start(tmp_path, name: str, mode: str = "cached") -> tuple[subprocess.Popen, object]:
    output = tmp_path / f"{name}.npz"
    environment = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / f"numba-{mode}")}
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(output), mode],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, output


def _result(started) -> tuple[dict, dict]:
    process, output = started
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    counts = json.loads(stdout.strip().splitlines()[-1])
    with np.load(output, allow_pickle=False) as arrays:
        return counts, {key: arrays[key] for key in arrays.files}


def test_a_later_process_loads_the_compiled_code_and_gets_identical_results(tmp_path):
    # Plain UMAP (no cache of ours, its own cache directory) runs beside the first cached process.
    plain_run = _start(tmp_path, "plain", mode="plain")
    first_counts, first = _result(_start(tmp_path, "first"))
    assert all(hits == 0 for hits, _ in first_counts.values()), "an empty cache directory cannot have served anything"
    assert first_counts["nndescent_driver"][1] > 0 and first_counts["umap_layout_epoch"][1] > 0, first_counts
    second_counts, second = _result(_start(tmp_path, "second"))
    # Nothing compiled; the kernels the driver calls come linked into its cached code, so only the
    # driver and the layout are looked up at all.
    assert all(misses == 0 for _, misses in second_counts.values()), second_counts
    assert second_counts["nndescent_driver"][0] > 0 and second_counts["umap_layout_epoch"][0] > 0, second_counts
    _, plain = _result(plain_run)
    for key in first:
        np.testing.assert_array_equal(second[key], first[key], err_msg=key)
        np.testing.assert_array_equal(first[key], plain[key], err_msg=key)

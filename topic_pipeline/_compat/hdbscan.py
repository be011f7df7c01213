"""hdbscan's private names: HDBSCAN's labels from a single-linkage tree built once.

The tree depends on (data, min_samples, metric, algorithm) but not on min_cluster_size or
cluster_selection_epsilon. ``labels_and_tree`` makes the call ``HDBSCAN.fit`` makes and keeps the
tree; ``labels_from_tree`` labels it again for other such parameters, as ``fit`` would.

Written for hdbscan 0.8.44 (``SUPPORTED``): the module function ``hdbscan_.hdbscan`` with ``fit``'s
keyword arguments (the model's ``_metric_kwargs`` among them), and ``hdbscan_._tree_to_labels`` with
its positional arguments. On any other version ``labels_and_tree`` fits the model through the public
``HDBSCAN.fit`` and returns no tree (one tree per call: slower, identical labels), and
``labels_from_tree`` refuses. HDBSCAN's own ``memory`` cache would keep the tree through the public API
but stores pickles, which this project does not write.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from topic_pipeline._compat import check, installed_versions, refusal

SUPPORTED = {"hdbscan": ("0.8.44",)}
# Read once, at import. A test replaces an entry to make this process take the fallback.
INSTALLED = installed_versions(SUPPORTED)
FALLBACK = "every clustering fits hdbscan.HDBSCAN, building its own tree (slower, same labels)"


def supported() -> bool:
    """Whether the shared-tree path may run here; the one place this module decides."""
    return check(__name__, SUPPORTED, INSTALLED, FALLBACK)


def _fit_kwargs(model: Any) -> dict[str, Any]:
    """The keyword arguments ``model.fit`` passes to ``hdbscan_.hdbscan``."""
    kwargs = model.get_params()
    kwargs.pop("prediction_data", None)
    branch_detection_data = kwargs.pop("branch_detection_data", False)
    kwargs.update(model._metric_kwargs)
    kwargs["gen_min_span_tree"] = kwargs["gen_min_span_tree"] or branch_detection_data
    return kwargs


def labels_and_tree(data: np.ndarray, model: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """``model.fit(data).labels_`` and the single-linkage tree it built, or None where ``supported()`` is
    False (the labels then come from the public fit itself).

    ``data`` is finite and checked as ``fit`` checks it: ``fit`` passes such data on unchanged.
    """
    if not supported():
        return np.asarray(model.fit(data).labels_), None
    from hdbscan.hdbscan_ import hdbscan

    labels, _, _, _, single_linkage_tree, _ = hdbscan(data, **_fit_kwargs(model))
    return np.asarray(labels), single_linkage_tree


def labels_from_tree(data: np.ndarray, tree: np.ndarray, model: Any) -> np.ndarray:
    """``model.fit(data).labels_`` for a ``tree`` that ``labels_and_tree`` built with the same data and
    min_samples. Raises ``UnsupportedVersion`` where ``supported()`` is False."""
    if not supported():
        raise refusal(__name__, SUPPORTED, INSTALLED)
    from hdbscan.hdbscan_ import _tree_to_labels

    params = _fit_kwargs(model)
    # get_clusters mutates the stability dict it is given: _tree_to_labels builds a fresh one each call.
    labels, _, _, _, _ = _tree_to_labels(
        data,
        tree,
        params["min_cluster_size"],
        params["cluster_selection_method"],
        params["allow_single_cluster"],
        params["match_reference_implementation"],
        float(params["cluster_selection_epsilon"]),
        float(params["cluster_selection_persistence"]),
        params["max_cluster_size"],
        params["cluster_selection_epsilon_max"],
    )
    return np.asarray(labels)

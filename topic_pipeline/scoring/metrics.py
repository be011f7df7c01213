"""Agreement between a trial's topics and the labelled sample.

Only labelled documents are scored; documents outside the labelled sample are clustered with the rest
(they shape the topics) but never enter a metric.

HDBSCAN outliers (topic -1) are not a cluster. For the pair-counting and information metrics (ARI, AMI,
NMI, homogeneity, completeness, V-measure) every outlier counts as its own singleton cluster, so
sending documents to -1 is never rewarded as if -1 were one big topic (scikit-learn's behaviour when
given -1 directly). For the Hungarian F1, outliers cannot be matched to any class but still count in
their class's size, so they lower recall. ``outlier_fraction`` (over labelled documents) and
``topic_count`` (distinct non-outlier topics over the whole corpus) are always reported beside them.

All metrics come from one contingency table.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

OUTLIER = -1

# Ranking order: the first is the default ranking metric, the rest break ties in this order.
METRIC_NAMES = (
    "ari",
    "ami",
    "nmi",
    "v_measure",
    "homogeneity",
    "completeness",
    "f1_macro",
    "f1_weighted",
)
REPORTED_NAMES = METRIC_NAMES + ("outlier_fraction", "topic_count", "labelled_documents")


def _entropy(counts: np.ndarray) -> float:
    counts = counts[counts > 0].astype(np.float64)
    total = counts.sum()
    if total == 0:
        return 0.0
    probabilities = counts / total
    return float(-(probabilities * np.log(probabilities)).sum())


def _outliers_as_singletons(predicted: np.ndarray) -> np.ndarray:
    predicted = predicted.astype(np.int64, copy=True)
    outliers = predicted == OUTLIER
    start = predicted.max(initial=-1) + 1
    predicted[outliers] = np.arange(start, start + outliers.sum())
    return predicted


def _contingency(truth: np.ndarray, predicted: np.ndarray) -> sparse.csr_matrix:
    classes, class_index = np.unique(truth, return_inverse=True)
    clusters, cluster_index = np.unique(predicted, return_inverse=True)
    table = sparse.coo_matrix(
        (np.ones(len(truth), dtype=np.int64), (class_index, cluster_index)),
        shape=(len(classes), len(clusters)),
    ).tocsr()
    table.sum_duplicates()
    return table


def _comb2(values: np.ndarray) -> float:
    values = values.astype(np.float64)
    return float((values * (values - 1) / 2).sum())


def adjusted_rand(sum_cells, sum_classes, sum_clusters, n):
    """Adjusted Rand index (Hubert & Arabie) from the pair counts of a contingency table: the sums of
    C(count, 2) over its cells, class sizes and cluster sizes, for ``n`` documents. Scikit-learn's
    conventions for degenerate cases. Elementwise on arrays (the bootstrap scores many tables at once)."""
    sum_cells, sum_classes, sum_clusters, n = (
        np.asarray(v, dtype=np.float64) for v in (sum_cells, sum_classes, sum_clusters, n)
    )
    total_pairs = n * (n - 1) / 2
    expected = np.divide(
        sum_classes * sum_clusters,
        total_pairs,
        out=np.zeros(np.broadcast(sum_classes, sum_clusters, total_pairs).shape),
        where=total_pairs != 0,
    )
    maximum = (sum_classes + sum_clusters) / 2
    spread = maximum - expected
    return np.where(spread == 0, 1.0, (sum_cells - expected) / np.where(spread == 0, 1.0, spread))


def _hungarian_f1(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    classes, class_index = np.unique(truth, return_inverse=True)
    class_sizes = np.bincount(class_index).astype(np.float64)
    clustered = predicted != OUTLIER
    if not clustered.any():
        return 0.0, 0.0
    clusters, cluster_index = np.unique(predicted[clustered], return_inverse=True)
    overlap = np.zeros((len(classes), len(clusters)))
    np.add.at(overlap, (class_index[clustered], cluster_index), 1.0)
    cluster_sizes = overlap.sum(axis=0)
    f1 = 2.0 * overlap / (class_sizes[:, None] + cluster_sizes[None, :])

    def best_matching(weights: np.ndarray) -> float:
        # Each average gets its own optimal one-to-one matching: the optimum's value is unique where the
        # matching may not be (ties), so neither figure depends on how topics or classes are numbered.
        weighted = f1 * weights[:, None]
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(weighted, maximize=True)
        return float(weighted[rows, cols].sum() / weights.sum())

    return best_matching(np.ones(len(classes))), best_matching(class_sizes)


def score(
    truth: np.ndarray, predicted: np.ndarray, topic_count: int | None = None, only: str | None = None
) -> dict[str, float]:
    """Metrics for the labelled documents: ``truth`` are class ids, ``predicted`` topics (-1 = outlier).

    ``topic_count`` is the number of topics over the whole corpus; if not given it is counted on
    ``predicted``. ``only``: the one metric a caller scoring many resamples reads; the costly metrics it
    does not need (AMI's expected mutual information, the Hungarian F1) are then left out of the result.
    """
    truth = np.asarray(truth)
    predicted = np.asarray(predicted, dtype=np.int64)
    if truth.shape != predicted.shape or truth.ndim != 1:
        raise ValueError(
            f"truth and predicted must be 1-d and equal in length, got {truth.shape} and {predicted.shape}"
        )
    n = len(truth)
    if n == 0:
        raise ValueError("no labelled documents to score")
    if topic_count is None:
        topic_count = len(np.unique(predicted[predicted != OUTLIER]))

    table = _contingency(truth, _outliers_as_singletons(predicted))
    class_sizes = np.asarray(table.sum(axis=1)).ravel()
    cluster_sizes = np.asarray(table.sum(axis=0)).ravel()
    cells = table.data

    ari = adjusted_rand(_comb2(cells), _comb2(class_sizes), _comb2(cluster_sizes), n)

    # Mutual information family.
    class_entropy = _entropy(class_sizes)
    cluster_entropy = _entropy(cluster_sizes)
    rows, cols = table.nonzero()
    joint = cells.astype(np.float64) / n
    mutual_information = float(
        (
            joint
            * (
                np.log(cells.astype(np.float64) * n)
                - np.log(class_sizes[rows] * cluster_sizes[cols].astype(np.float64))
            )
        ).sum()
    )
    mutual_information = max(mutual_information, 0.0)
    eps = np.finfo("float64").eps
    if len(class_sizes) == len(cluster_sizes) == 1:
        nmi = ami = 1.0
    else:
        mean_entropy = (class_entropy + cluster_entropy) / 2
        nmi = 0.0 if mutual_information == 0 else mutual_information / mean_entropy
        if len(class_sizes) == 1 or len(cluster_sizes) == 1:
            ami = 0.0
        elif only not in (None, "ami"):
            ami = None
        else:
            # Imported here: every Dagster process imports this module (for the metric names) through the
            # definitions, and scikit-learn alone takes most of a second to import.
            from sklearn.metrics.cluster import expected_mutual_information

            # Signs preserved as in scikit-learn so a perfect match is not 0/0.
            expected_mi = expected_mutual_information(table, n)
            denominator = mean_entropy - expected_mi
            denominator = min(denominator, -eps) if denominator < 0 else max(denominator, eps)
            numerator = mutual_information - expected_mi
            numerator = min(numerator, -eps) if numerator < 0 else max(numerator, eps)
            ami = numerator / denominator
    homogeneity = mutual_information / class_entropy if class_entropy else 1.0
    completeness = mutual_information / cluster_entropy if cluster_entropy else 1.0
    v_measure = (
        0.0 if homogeneity + completeness == 0 else 2 * homogeneity * completeness / (homogeneity + completeness)
    )

    f1_macro, f1_weighted = (
        _hungarian_f1(truth, predicted) if only in (None, "f1_macro", "f1_weighted") else (None, None)
    )
    metrics = {
        "ari": float(ari),
        "ami": None if ami is None else float(ami),
        "nmi": float(nmi),
        "v_measure": float(v_measure),
        "homogeneity": float(homogeneity),
        "completeness": float(completeness),
        "f1_macro": f1_macro,
        "f1_weighted": f1_weighted,
        "outlier_fraction": float((predicted == OUTLIER).mean()),
        "topic_count": float(topic_count),
        "labelled_documents": float(n),
    }
    return {name: value for name, value in metrics.items() if value is not None}

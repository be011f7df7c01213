"""score(): agreement with scikit-learn, hand-worked cases, the outlier convention; the sweep scores a shared clustering once."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from topic_pipeline.scoring.metrics import METRIC_NAMES, REPORTED_NAMES, score

SKLEARN = {
    "ari": skm.adjusted_rand_score,
    "ami": skm.adjusted_mutual_info_score,
    "nmi": skm.normalized_mutual_info_score,
    "v_measure": skm.v_measure_score,
    "homogeneity": skm.homogeneity_score,
    "completeness": skm.completeness_score,
}


def singletons(predicted) -> np.ndarray:
    """Outliers (-1) relabelled as fresh singleton clusters, written independently of the library."""
    predicted = [int(p) for p in predicted]
    fresh = max(predicted + [0]) + 1
    out = []
    for p in predicted:
        if p == -1:
            out.append(fresh)
            fresh += 1
        else:
            out.append(p)
    return np.asarray(out)


def assert_matches_sklearn(truth, predicted) -> dict[str, float]:
    result = score(np.asarray(truth), np.asarray(predicted))
    relabelled = singletons(predicted)
    for name, reference in SKLEARN.items():
        expected = reference(np.asarray(truth), relabelled)
        assert result[name] == pytest.approx(expected, abs=1e-9), (name, list(truth), list(predicted))
    return result


# --- agreement with scikit-learn ------------------------------------------------------------------


@st.composite
def labellings(draw):
    n = draw(st.integers(1, 40))
    n_classes = draw(st.integers(1, 6))
    n_topics = draw(st.integers(0, 6))
    truth = draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n))
    # Topic ids may be sparse and large (BERTopic numbers topics over the whole corpus).
    topic_ids = st.integers(-1, n_topics - 1) | st.sampled_from([-1, 7, 250])
    predicted = draw(st.lists(topic_ids, min_size=n, max_size=n))
    return truth, predicted


@settings(max_examples=200, deadline=None)
@given(labellings())
def test_matches_sklearn_with_outliers_as_singletons(case) -> None:
    truth, predicted = case
    result = assert_matches_sklearn(truth, predicted)
    for name in METRIC_NAMES:
        assert -1.0 - 1e-9 <= result[name] <= 1.0 + 1e-9, name
    for name in ("nmi", "v_measure", "homogeneity", "completeness", "f1_macro", "f1_weighted"):
        assert result[name] >= 0.0, name


@pytest.mark.parametrize(
    ("truth", "predicted"),
    [
        ([0, 0, 0, 0], [0, 0, 0, 0]),  # one class, one cluster
        ([0, 0, 0, 0], [0, 1, 2, 3]),  # one class, all singletons
        ([0, 1, 2, 3], [0, 0, 0, 0]),  # singleton classes, one cluster
        ([0, 1, 2, 3], [5, 6, 7, 8]),  # all singletons on both sides
        ([0, 0, 1, 1], [-1, -1, -1, -1]),  # all outliers
        ([0, 0, 0, 0], [-1, -1, -1, -1]),  # one class, all outliers
        ([3], [-1]),  # n = 1, outlier
        ([3], [4]),  # n = 1, clustered
        ([0, 1], [0, 0]),
        ([0, 0], [0, 1]),
        ([0, 0, 1, 1, 2, 2], [0, 0, 0, 1, 1, 1]),
    ],
)
def test_degenerate_cases_match_sklearn(truth, predicted) -> None:
    assert_matches_sklearn(truth, predicted)


def test_large_random_case_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 12, size=3000)
    predicted = np.where(rng.random(3000) < 0.7, truth * 3 % 17, rng.integers(-1, 20, size=3000))
    assert_matches_sklearn(truth, predicted)


def test_string_class_labels_are_accepted() -> None:
    a = score(np.array(["x", "x", "y", "y", "z"]), np.array([1, 1, 2, -1, 2]))
    b = score(np.array([0, 0, 1, 1, 2]), np.array([1, 1, 2, -1, 2]))
    assert a == b


# --- hand-worked cases ----------------------------------------------------------------------------


def test_perfect_match_up_to_renaming() -> None:
    result = score(np.array([0, 0, 1, 1, 1, 2]), np.array([9, 9, 4, 4, 4, 0]))
    for name in METRIC_NAMES:
        assert result[name] == pytest.approx(1.0), name
    assert result["outlier_fraction"] == 0.0
    assert result["topic_count"] == 3.0
    assert result["labelled_documents"] == 6.0
    assert set(result) == set(REPORTED_NAMES)


def test_hungarian_f1_hand_worked() -> None:
    # truth:     0  0  0  1  1  2        class sizes: 0 -> 3, 1 -> 2, 2 -> 1 (its only doc is an outlier)
    # predicted: 5  5  7  7  7 -1        cluster sizes (clustered docs only): 5 -> 2, 7 -> 3
    #
    # overlap     c5  c7        F1 = 2 * overlap / (class size + cluster size)
    #   class 0    2   1          class 0: c5 = 2*2/(3+2) = 0.8     c7 = 2*1/(3+3) = 1/3
    #   class 1    0   2          class 1: c5 = 0                   c7 = 2*2/(2+3) = 0.8
    #   class 2    0   0          class 2: 0 and 0 (nothing to match)
    #
    # Best one-to-one matching: class 0 -> c5, class 1 -> c7 (0.8 + 0.8 = 1.6 beats 1/3 + 0);
    # class 2 stays unmatched with F1 0.
    # macro    = (0.8 + 0.8 + 0) / 3           = 0.5333...
    # weighted = (0.8*3 + 0.8*2 + 0*1) / 6      = 4.0 / 6 = 0.6666...
    result = score(np.array([0, 0, 0, 1, 1, 2]), np.array([5, 5, 7, 7, 7, -1]))
    assert result["f1_macro"] == pytest.approx(1.6 / 3)
    assert result["f1_weighted"] == pytest.approx(4.0 / 6)
    assert result["outlier_fraction"] == pytest.approx(1 / 6)
    assert result["topic_count"] == 2.0


def test_hungarian_is_one_to_one_not_greedy() -> None:
    # truth 0 (size 4) overlaps c1 in 3 and c2 in 1; truth 1 (size 2) only overlaps c1 (2 docs).
    # F1: class0-c1 = 2*3/(4+5) = 2/3, class0-c2 = 2*1/(4+1) = 0.4, class1-c1 = 2*2/(2+5) = 4/7, class1-c2 = 0.
    # Greedy would give class 0 -> c1 (2/3) and class 1 nothing: total 2/3.
    # One-to-one optimum: class0 -> c1 (2/3) + class1 -> c2 (0) = 0.667 vs class0 -> c2 (0.4) + class1 -> c1 (4/7)
    # = 0.971; the optimum is the latter.  macro = (0.4 + 4/7) / 2, weighted = (0.4*4 + 4/7*2) / 6.
    result = score(np.array([0, 0, 0, 0, 1, 1]), np.array([1, 1, 1, 2, 1, 1]))
    assert result["f1_macro"] == pytest.approx((0.4 + 4 / 7) / 2)
    assert result["f1_weighted"] == pytest.approx((0.4 * 4 + 4 / 7 * 2) / 6)


def test_outliers_lower_recall_in_f1() -> None:
    # Class 0 has 2 docs, one an outlier: its cluster holds 1 doc, F1 = 2*1/(2+1) = 2/3 (not 1.0).
    result = score(np.array([0, 0, 1, 1]), np.array([0, -1, 1, 1]))
    assert result["f1_macro"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert result["f1_weighted"] == pytest.approx((2 / 3 * 2 + 1.0 * 2) / 4)
    assert result["outlier_fraction"] == 0.25


def test_outliers_are_not_matched_as_a_cluster() -> None:
    # If -1 were a cluster it would match class 0 perfectly and F1 would be 1.0.
    result = score(np.array([0, 0, 1, 1]), np.array([-1, -1, 1, 1]))
    assert result["f1_macro"] == pytest.approx(0.5)
    assert result["f1_weighted"] == pytest.approx(0.5)
    all_outliers = score(np.array([0, 0, 1, 1]), np.array([-1, -1, -1, -1]))
    assert all_outliers["f1_macro"] == 0.0 and all_outliers["f1_weighted"] == 0.0
    assert all_outliers["outlier_fraction"] == 1.0
    assert all_outliers["topic_count"] == 0.0


def test_outliers_are_not_one_big_cluster() -> None:
    truth = np.array([0, 0, 0, 1, 1, 1])
    predicted = np.array([-1, -1, -1, 0, 0, 0])
    # scikit-learn on the raw labels treats -1 as a cluster and calls this a perfect clustering.
    assert skm.adjusted_rand_score(truth, predicted) == pytest.approx(1.0)
    assert skm.normalized_mutual_info_score(truth, predicted) == pytest.approx(1.0)
    result = score(truth, predicted)
    # With outliers as singletons: pairs within class 0 are all split, so ARI and NMI fall well below 1.
    # ARI by hand: contingency cells are 1,1,1 (class 0 singletons) and 3 (class 1 in topic 0).
    # sum C(cell,2) = 3; sum C(class,2) = 3 + 3 = 6; sum C(cluster,2) = 3; C(6,2) = 15.
    # expected = 6*3/15 = 1.2; max = (6+3)/2 = 4.5; ARI = (3 - 1.2) / (4.5 - 1.2) = 1.8/3.3 = 0.5454...
    assert result["ari"] == pytest.approx(1.8 / 3.3)
    assert result["nmi"] < 0.9
    assert result["homogeneity"] == pytest.approx(1.0)  # every predicted cluster is pure
    assert result["completeness"] < 1.0  # class 0 is scattered
    assert result["f1_macro"] == pytest.approx(0.5)
    assert result["outlier_fraction"] == 0.5


def test_topic_count_counts_non_outlier_topics_or_takes_given_value() -> None:
    truth = np.array([0, 0, 1, 1, 2])
    predicted = np.array([4, 4, 9, -1, 9])
    assert score(truth, predicted)["topic_count"] == 2.0
    # Over the whole corpus there may be topics holding no labelled document.
    assert score(truth, predicted, topic_count=17)["topic_count"] == 17.0
    assert score(truth, predicted)["outlier_fraction"] == pytest.approx(0.2)


def test_inputs_are_not_modified() -> None:
    truth = np.array([0, 0, 1, 1])
    predicted = np.array([-1, 0, 1, -1])
    score(truth, predicted)
    assert predicted.tolist() == [-1, 0, 1, -1]
    assert truth.tolist() == [0, 0, 1, 1]


# --- input errors ---------------------------------------------------------------------------------


def test_length_mismatch() -> None:
    with pytest.raises(ValueError, match=r"equal in length, got \(3,\) and \(2,\)"):
        score(np.array([0, 1, 1]), np.array([0, 1]))


def test_not_one_dimensional() -> None:
    with pytest.raises(ValueError, match="1-d"):
        score(np.array([[0, 1], [1, 0]]), np.array([[0, 1], [1, 0]]))


def test_empty_input() -> None:
    with pytest.raises(ValueError, match="no labelled documents"):
        score(np.array([], dtype=np.int64), np.array([], dtype=np.int64))


@settings(max_examples=150, deadline=None)
@given(labellings(), st.randoms(use_true_random=False))
def test_property_renaming_topics_or_classes_changes_no_metric(case, random) -> None:
    """Topic ids and class ids are names: any one-to-one renaming (outliers stay -1) scores the same."""
    truth, predicted = case
    topics = sorted({p for p in predicted if p != -1})
    topic_names = dict(zip(topics, random.sample(range(1000), len(topics))))
    classes = sorted(set(truth))
    class_names = dict(zip(classes, random.sample(range(1000), len(classes))))
    renamed = score(
        np.asarray([class_names[t] for t in truth]), np.asarray([topic_names.get(p, -1) for p in predicted])
    )
    original = score(np.asarray(truth), np.asarray(predicted))
    assert renamed == pytest.approx(original, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=2, max_size=40))
def test_property_a_perfect_topic_model_scores_one(truth) -> None:
    result = score(np.asarray(truth), np.asarray(truth) + 3)
    assert result["f1_macro"] == pytest.approx(1.0) and result["outlier_fraction"] == 0.0
    if len(set(truth)) > 1:
        assert result["ari"] == pytest.approx(1.0) and result["ami"] == pytest.approx(1.0)


def test_trials_sharing_a_clustering_are_scored_once(tmp_path, monkeypatch):
    """n-gram variants get the very same labels from the engine: the sweep scores them once, and each
    trial still gets its own result with those metrics."""
    from topic_pipeline.engine import sweep
    from topic_pipeline.engine.fast import EmbeddingSource
    from topic_pipeline.inputs.grid import ParamGrid

    embeddings = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    np.save(tmp_path / "embeddings.npy", embeddings)
    grid = ParamGrid.from_mapping(
        {"umap_n_neighbors": [10], "hdbscan_min_cluster_size": [10, 20], "n_gram_max": [1, 2, 3]}
    )
    trials = [(t.key, t) for t in grid.trials()]
    sources = {trials[0][1].embedding_set.key: EmbeddingSource(str(tmp_path / "embeddings.npy"), "test", 300)}
    scorings = []
    real = sweep.labels_metrics
    monkeypatch.setattr(sweep, "labels_metrics", lambda labels, sample: scorings.append(1) or real(labels, sample))
    scored = []
    sweep.run_trials(
        trials,
        sources,
        ["text"] * 300,
        sweep.LabelledSample(np.arange(40), np.arange(40) % 3),
        "fp",
        42,
        "english",
        tmp_path / "cache",
        scored.append,
        workers=1,
    )
    assert len(scored) == 6 and all(s.result.status == "ok" for s in scored)
    assert len(scorings) == 2  # one per min_cluster_size
    by_clustering = {}
    for s in scored:
        by_clustering.setdefault(s.result.params["hdbscan_min_cluster_size"], []).append(s.result.metrics)
    assert all(len(group) == 3 and group[0] == group[1] == group[2] for group in by_clustering.values())
    assert by_clustering[10][0] is not by_clustering[10][1]  # each result its own copy

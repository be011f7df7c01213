"""The reference trial and its scoring, on small synthetic embeddings (real UMAP, HDBSCAN, BERTopic)."""

import numpy as np
import pytest

from topic_pipeline.domain.results import STATUS_FAILED, STATUS_OK
from topic_pipeline.engine.reference import run_reference_trial
from topic_pipeline.engine.sweep import LabelledSample, score_reference_trial
from topic_pipeline.inputs.grid import ParamGrid

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 32)) * 4
    classes = np.repeat([0, 1, 2], 40)
    embeddings = (centres[classes] + rng.normal(size=(120, 32))).astype(np.float32)
    words = ["alpha beta", "gamma delta", "epsilon zeta"]
    texts = [f"{words[c]} item {i}" for i, c in enumerate(classes)]
    return embeddings, texts, classes


def _params(**overrides):
    grid = {"umap_n_neighbors": [10], "hdbscan_min_cluster_size": [10], **{k: [v] for k, v in overrides.items()}}
    return ParamGrid.from_mapping(grid).trials()[0]


def test_reference_trial_recovers_well_separated_clusters(blobs):
    embeddings, texts, classes = blobs
    outcome = run_reference_trial(embeddings, texts, _params())
    assert outcome.labels.shape == (120,)
    scored = score_reference_trial(
        "k", _params(), embeddings, texts, LabelledSample(np.arange(120), classes), "fp", 42, "english"
    )
    assert scored.result.status == STATUS_OK
    assert scored.result.metrics["ari"] > 0.9
    assert scored.result.metrics["topic_count"] == 3
    words = {word for topic in outcome.topics for word in topic.top_words}
    assert {"alpha", "gamma", "epsilon"} <= words


def test_reference_trial_is_deterministic_for_a_seed(blobs):
    embeddings, texts, _ = blobs
    first = run_reference_trial(embeddings, texts, _params(umap_n_components=2), seed=7)
    second = run_reference_trial(embeddings, texts, _params(umap_n_components=2), seed=7)
    np.testing.assert_array_equal(first.labels, second.labels)


def test_a_failing_trial_is_recorded_not_raised(blobs):
    embeddings, texts, classes = blobs
    broken = embeddings.copy()
    broken[5, :] = np.nan
    scored = score_reference_trial(
        "k", _params(), broken, texts, LabelledSample(np.arange(120), classes), "fp", 42, "english"
    )
    assert scored.result.status == STATUS_FAILED
    assert scored.labels is None
    assert "NaN" in scored.result.error or "nan" in scored.result.error.lower()
    assert scored.result.metrics == {}

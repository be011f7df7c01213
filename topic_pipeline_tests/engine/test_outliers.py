"""Outlier reduction: the engine's labels equal a plain BERTopic fit followed by BERTopic's own
``reduce_outliers(docs, topics, strategy=..., threshold=...)``, for every strategy and several thresholds,
with and without nr_topics, and with the trial's vectorizer where the strategy compares words.

Small corpora (real UMAP, HDBSCAN and BERTopic): one engine sweep and one BERTopic fit per
(nr_topics, n_gram_max), whose reduce_outliers is then called per strategy and threshold.
"""

import dataclasses

import numpy as np
import pytest

from topic_pipeline.domain.trials import OUTLIER_STRATEGIES
from topic_pipeline.engine.fast import EmbeddingSource, SweepEngine
from topic_pipeline.engine.reference import reference_model, run_reference_trial
from topic_pipeline.inputs.grid import ParamGrid

pytestmark = pytest.mark.slow

THRESHOLDS = [0.0, 0.05, 0.2, 0.5]


def canonical(labels: np.ndarray) -> np.ndarray:
    mapping: dict[int, int] = {}
    return np.asarray(
        [-1 if label == -1 else mapping.setdefault(label, len(mapping)) for label in np.asarray(labels).tolist()]
    )


def corpus(n: int = 600, seed: int = 3) -> tuple[np.ndarray, list[str]]:
    """Six blobs, and half the points scattered in random directions (HDBSCAN leaves some 20 % of the corpus
    as outliers); texts draw most words from their blob's topic and some from anywhere, the scattered
    points' from anywhere, so that c-TF-IDF similarities and token windows vary."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, 32))
    members = rng.integers(0, 6, n)
    embeddings = centres[members] + rng.normal(size=(n, 32))
    scattered = rng.random(n) < 0.5
    embeddings[scattered] = rng.normal(size=(int(scattered.sum()), 32))
    vocabulary = [f"w{i}" for i in range(60)]
    texts = []
    for i, topic in enumerate(members):
        own = rng.choice(vocabulary[topic * 8 : topic * 8 + 10], size=int(rng.integers(0 if scattered[i] else 3, 9)))
        other = rng.choice(vocabulary, size=int(rng.integers(1, 6)))
        words = list(own) + list(other)
        rng.shuffle(words)
        texts.append(" ".join(words))
    return embeddings.astype(np.float32), texts


def run_engine(tmp_path, embeddings, texts, trials):
    path = tmp_path / "embeddings.npy"
    np.save(path, embeddings)
    sources = {trials[0][1].embedding_set.key: EmbeddingSource(str(path), "test-embeddings", len(embeddings))}
    collected = {}
    stats = SweepEngine(tmp_path / "cache", seed=42, workers=1).run(
        trials, sources, texts, lambda trial: collected.__setitem__(trial.key, trial)
    )
    return collected, stats


@pytest.mark.parametrize("nr_topics", ["none", 4])
def test_every_strategy_and_threshold_equals_bertopic_reduce_outliers(tmp_path, nr_topics):
    embeddings, texts = corpus()
    grid = ParamGrid.from_mapping(
        {
            "umap_n_neighbors": [10],
            "hdbscan_min_cluster_size": [15],
            "hdbscan_min_samples": [15],
            "nr_topics": [nr_topics],
            "n_gram_max": [1, 2],
            "outlier_reduction": ["none", *OUTLIER_STRATEGIES],
            "outlier_threshold": THRESHOLDS,
        }
    )
    trials = [(t.key, t) for t in grid.trials()]
    assert len(trials) == 2 * (1 + len(OUTLIER_STRATEGIES) * len(THRESHOLDS))
    collected, stats = run_engine(tmp_path, embeddings, texts, trials)
    # One tree; variants computed once per clustering, the n-gram range counting only for the strategies
    # that compare c-TF-IDF vectors: (2 + 2 x 2 n-gram ranges) x 4 thresholds.
    assert stats.trees_built == 1 and stats.outlier_variants == (2 + 2 * 2) * len(THRESHOLDS)

    # One plain fit per n-gram range (probabilities on: they change no label), then reduce_outliers.
    fits = {}
    for key, params in trials:
        assert collected[key].error is None, (key, collected[key].error)
        if params.n_gram_max not in fits:
            model = reference_model(dataclasses.replace(params, outlier_reduction="probabilities"), 42, "english")
            model.fit(texts, embeddings)
            fits[params.n_gram_max] = model
        model = fits[params.n_gram_max]
        topics = np.asarray(model.topics_)
        assert (topics == -1).sum() >= 20, "the corpus must leave outliers to reduce"
        if params.outlier_reduction == "none":
            expected = topics
        else:
            expected = model.reduce_outliers(
                texts,
                topics.tolist(),
                strategy=params.outlier_reduction,
                threshold=params.outlier_threshold,
                embeddings=embeddings,
                probabilities=model.probabilities_,
            )
        np.testing.assert_array_equal(canonical(collected[key].labels), canonical(expected), err_msg=key)

    # The thresholds matter: for each strategy, fewer outliers are assigned at the highest than at 0.
    for strategy in OUTLIER_STRATEGIES:
        left = {
            params.outlier_threshold: int((collected[key].labels == -1).sum())
            for key, params in trials
            if params.outlier_reduction == strategy and params.n_gram_max == 1
        }
        assert left[0.0] < left[0.5], (strategy, left)


def test_the_reference_trial_reduces_outliers_as_the_engine(tmp_path):
    embeddings, texts = corpus(400, seed=5)
    grid = ParamGrid.from_mapping(
        {
            "umap_n_neighbors": [10],
            "hdbscan_min_cluster_size": [12],
            "hdbscan_min_samples": [12],
            "outlier_reduction": ["none", "distributions", "probabilities"],
            "outlier_threshold": [0.1],
        }
    )
    (plain, *trials) = [(t.key, t) for t in grid.trials()]
    collected, _ = run_engine(tmp_path, embeddings, texts, [plain, *trials])
    outliers = int((collected[plain[0]].labels == -1).sum())
    assert outliers >= 20
    for key, params in trials:
        assert (collected[key].labels == -1).sum() < outliers, key
        outcome = run_reference_trial(embeddings, texts, params, seed=42)
        np.testing.assert_array_equal(canonical(collected[key].labels), canonical(outcome.labels), err_msg=key)
        # update_topics ran: the topics shown are those of the reduced labels.
        assert sum(topic.size for topic in outcome.topics) == len(texts)
        assert {topic.topic for topic in outcome.topics} == set(outcome.labels.tolist())

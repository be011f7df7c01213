"""Tests for the generated sample corpus (fast; no embedding model needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from topic_pipeline.inputs.demo_corpus import (
    MAX_TOPICS,
    TOPIC_NAMES,
    DemoCorpus,
    generate_demo_corpus,
)


@pytest.fixture(scope="module")
def corpus() -> DemoCorpus:
    return generate_demo_corpus()


def test_default_shape(corpus: DemoCorpus) -> None:
    assert len(corpus.ids) == len(corpus.texts) == len(corpus.topics) == 1500
    assert len(set(corpus.topics)) == 10


def test_deterministic_in_process() -> None:
    a = generate_demo_corpus(n_docs=300, n_topics=6, seed=11)
    b = generate_demo_corpus(n_docs=300, n_topics=6, seed=11)
    assert a == b
    assert a.ground_truth(0.5, seed=3) == b.ground_truth(0.5, seed=3)


def test_deterministic_across_processes() -> None:
    """Same output in a fresh interpreter (guards against salted hash() use)."""
    code = (
        "from topic_pipeline.inputs.demo_corpus import generate_demo_corpus as g\n"
        "c = g(n_docs=200, n_topics=5, seed=99)\n"
        "print(repr((c.ids, c.texts, c.topics, c.ground_truth(0.6, seed=4))))\n"
    )
    root = Path(__file__).resolve().parents[2]
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": str(hash_seed), "PYTHONPATH": str(root)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hash_seed in (1, 2)
    }
    assert len(outputs) == 1
    c = generate_demo_corpus(n_docs=200, n_topics=5, seed=99)
    assert outputs.pop().strip() == repr((c.ids, c.texts, c.topics, c.ground_truth(0.6, seed=4)))


def test_different_seed_gives_different_corpus() -> None:
    a = generate_demo_corpus(n_docs=200, n_topics=4, seed=1)
    b = generate_demo_corpus(n_docs=200, n_topics=4, seed=2)
    assert a.texts != b.texts


def test_ids_unique_positive_with_gaps(corpus: DemoCorpus) -> None:
    assert all(isinstance(i, int) and i > 0 for i in corpus.ids)
    assert len(set(corpus.ids)) == len(corpus.ids)
    assert min(corpus.ids) > 1000
    # not simply 0..n-1 or a contiguous range
    assert max(corpus.ids) - min(corpus.ids) + 1 > len(corpus.ids)


def test_texts_non_empty_and_headline_length(corpus: DemoCorpus) -> None:
    for text in corpus.texts:
        assert isinstance(text, str)
        assert text.strip() == text and text
        assert 6 <= len(text.split()) <= 16, text
        assert "{" not in text and "}" not in text and "\x00" not in text, text


def test_texts_mostly_unique(corpus: DemoCorpus) -> None:
    duplicates = len(corpus.texts) - len(set(corpus.texts))
    assert duplicates < 0.02 * len(corpus.texts)


def test_topic_sizes_unequal(corpus: DemoCorpus) -> None:
    sizes = Counter(corpus.topics)
    assert set(sizes) == set(TOPIC_NAMES[:10])
    assert max(sizes.values()) >= 2 * min(sizes.values())
    assert max(sizes.values()) <= 4 * min(sizes.values())


@pytest.mark.parametrize("n_topics", [3, 5, 10, 12, MAX_TOPICS])
def test_topic_count(n_topics: int) -> None:
    c = generate_demo_corpus(n_docs=max(300, 20 * n_topics), n_topics=n_topics)
    assert len(set(c.topics)) == n_topics
    assert c.topic_names() == sorted(set(c.topics))


def test_at_least_twelve_topics_available() -> None:
    assert MAX_TOPICS >= 12
    assert len(set(TOPIC_NAMES)) == MAX_TOPICS


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        generate_demo_corpus(n_docs=100, n_topics=2)
    with pytest.raises(ValueError):
        generate_demo_corpus(n_docs=100, n_topics=MAX_TOPICS + 1)
    with pytest.raises(ValueError):
        generate_demo_corpus(n_docs=20, n_topics=5)  # fewer than 5 docs per topic
    c = generate_demo_corpus(n_docs=60, n_topics=3)
    with pytest.raises(ValueError):
        c.ground_truth(labelled_fraction=0.0)
    with pytest.raises(ValueError):
        c.ground_truth(labelled_fraction=1.5)


def test_small_corpus() -> None:
    c = generate_demo_corpus(n_docs=120, n_topics=3)
    assert len(c.ids) == 120
    sizes = Counter(c.topics)
    assert len(sizes) == 3 and min(sizes.values()) >= 5
    assert all(t.strip() for t in c.texts)
    gt = c.ground_truth()
    assert sorted(gt) == ["0", "1", "2"]
    assert all(len(v) >= 1 for v in gt.values())


def test_minimum_corpus_gives_five_docs_per_topic() -> None:
    c = generate_demo_corpus(n_docs=50, n_topics=10)
    assert min(Counter(c.topics).values()) >= 5


def test_ground_truth_format(corpus: DemoCorpus) -> None:
    gt = corpus.ground_truth()
    topics = corpus.topic_names()
    assert list(gt) == [str(i) for i in range(len(topics))]
    all_ids = set(corpus.ids)
    seen: set[int] = set()
    topic_of = dict(zip(corpus.ids, corpus.topics))
    for key, ids in gt.items():
        assert isinstance(key, str)
        assert all(type(i) is int for i in ids)
        assert ids == sorted(ids)
        assert set(ids) <= all_ids
        assert not seen & set(ids)  # disjoint
        seen |= set(ids)
        # cluster ids follow sorted topic names, each cluster is one topic
        assert {topic_of[i] for i in ids} == {topics[int(key)]}
    assert abs(len(seen) / len(corpus.ids) - 0.6) < 0.02
    assert len(seen) < len(corpus.ids)  # some documents stay unlabelled


def test_ground_truth_stratified_and_deterministic(corpus: DemoCorpus) -> None:
    sizes = Counter(corpus.topics)
    gt = corpus.ground_truth(labelled_fraction=0.3, seed=5)
    for key, ids in gt.items():
        expected = 0.3 * sizes[corpus.topic_names()[int(key)]]
        assert abs(len(ids) - expected) <= 1
    assert gt == corpus.ground_truth(labelled_fraction=0.3, seed=5)
    assert gt != corpus.ground_truth(labelled_fraction=0.3, seed=6)
    full = corpus.ground_truth(labelled_fraction=1.0)
    assert sorted(i for ids in full.values() for i in ids) == sorted(corpus.ids)

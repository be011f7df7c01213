"""Topic summaries for display (MLflow artifacts, the UI): top words and representative documents, and
the vectorizer rule every BERTopic model of the pipeline takes its topic words from.

Computed where they are shown, never for scoring: the sweep stores each trial's labels, and the
leaderboard summarises its leaders from them (``leader_topics``), so a sweep of hundreds of trials
does not spend its cores on words nobody reads. The words are those of the trial's BERTopic model
fitted on its labels (``engine.bertopic_model``, which the export saves): each topic's documents joined
and cleaned as BERTopic cleans them, counted by ``count_vectorizer``, weighted by BERTopic's c-TF-IDF
(``class_tfidf``). They are computed here without importing BERTopic, whose import (torch and
sentence-transformers with it) would cost the leaderboard step more than the words themselves; a test
holds them equal to the exported model's ``get_topic`` (words of equal score may come in another order).
A topic left without any word (its documents in another script than Latin, emoji, punctuation or stop
words only) is named by ``topic_word_warnings``, never silently empty. Representative documents are the three closest to the topic's embedding centroid.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import sparse

from topic_pipeline.domain.results import TrialResult
from topic_pipeline.domain.trials import TrialParams
from topic_pipeline.inputs.embeddings import stop_words
from topic_pipeline.storage.results import ResultStore

TOP_WORDS = 10
REPRESENTATIVE_DOCS = 3


@dataclasses.dataclass(frozen=True)
class TopicSummary:
    topic: int
    size: int
    top_words: list[str]
    representative_docs: list[str]


def vectorizer_stop_words(stopwords_language: str) -> str | list[str]:
    """The vectorizer's stop words: always the configured language's, whatever the trial embeds.

    ``remove_stopwords`` decides what the embedding model sees, which changes labels; topic words never
    change labels, and words like "the" and "to" at the top of every topic tell a reader nothing (BERTopic's
    own advice is to drop them in the vectorizer). A JSON-serialisable value, as BERTopic's safetensors
    save needs.
    """
    if stopwords_language.lower() == "english":
        return "english"
    return sorted(stop_words(stopwords_language))


def count_vectorizer(params: TrialParams | None, stopwords_language: str = "english") -> Any:
    """The vectorizer behind a model's topic words: the trial's n-gram range and the language's stop words.

    Without a trial only the labels matter, and they never depend on the vectorizer: the cheapest one.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    if params is None:
        return CountVectorizer()
    return CountVectorizer(ngram_range=(1, params.n_gram_max), stop_words=vectorizer_stop_words(stopwords_language))


_NOT_ALPHANUMERIC = re.compile(r"[^A-Za-z0-9 ]+")


def clean_documents(documents: Sequence[str]) -> list[str]:
    """Documents as BERTopic (``language="english"``, its default and ours) cleans them before counting:
    line breaks and tabs become spaces, other characters than ASCII letters, digits and spaces go, and an
    empty document becomes a placeholder word."""
    cleaned = (_NOT_ALPHANUMERIC.sub("", document.replace("\n", " ").replace("\t", " ")) for document in documents)
    return [document or "emptydoc" for document in cleaned]


def class_tfidf(counts: sparse.spmatrix) -> sparse.csr_matrix:
    """BERTopic's c-TF-IDF of a topic-by-term count matrix (its ``ClassTfidfTransformer`` defaults): each
    row's counts as frequencies, times log(1 + A / f), where f is the term's count over all topics and A
    the whole number of words per topic on average (rounded down)."""
    counts = sparse.csr_matrix(counts, dtype=np.float64)
    term_counts = np.asarray(counts.sum(axis=0)).ravel()
    average_words = int(np.asarray(counts.sum(axis=1)).mean())
    idf = np.log(average_words / term_counts + 1)
    totals = np.asarray(counts.sum(axis=1)).ravel()
    frequencies = sparse.diags(np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)) @ counts
    return sparse.csr_matrix(frequencies @ sparse.diags(idf))


def topic_words(
    texts: list[str], labels: np.ndarray, params: TrialParams, stopwords_language: str
) -> dict[int, list[str]]:
    """Each topic's top words, as ``get_topic`` gives them on the trial's model fitted on ``labels``."""
    labels = np.asarray(labels)
    topics = np.unique(labels)
    # One document per topic, in topic order, its documents joined in corpus order: what a fit counts.
    by_topic = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[by_topic], topics, side="right")
    joined = [" ".join(texts[i] for i in members) for members in np.split(by_topic, bounds[:-1])]
    vectorizer = count_vectorizer(params, stopwords_language)
    try:
        counts = vectorizer.fit_transform(clean_documents(joined))
    except ValueError:  # empty vocabulary: every token was a stop word
        return {int(topic): [] for topic in topics}
    scores = class_tfidf(counts)
    vocabulary = vectorizer.get_feature_names_out()
    words = {}
    for row, topic in enumerate(topics):
        start, end = scores.indptr[row], scores.indptr[row + 1]
        values, columns = scores.data[start:end], scores.indices[start:end]
        # Highest score first; words of equal score alphabetically, so the order is reproducible.
        order = np.lexsort((vocabulary[columns], -values))
        words[int(topic)] = [str(vocabulary[columns[i]]) for i in order if values[i] > 0][:TOP_WORDS]
    return words


class TopicSummariser:
    """Summaries for many labellings of one corpus; the normalised embeddings are computed once."""

    def __init__(self, texts: list[str]):
        self.texts = texts
        self._normalised: tuple[np.ndarray, np.ndarray] | None = None  # (embeddings, their unit rows)

    def _unit_rows(self, embeddings: np.ndarray) -> np.ndarray:
        if self._normalised is None or self._normalised[0] is not embeddings:
            norms = np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
            self._normalised = (embeddings, embeddings / norms)
        return self._normalised[1]

    def summarise(
        self, labels: np.ndarray, embeddings: np.ndarray, params: TrialParams, stopwords_language: str
    ) -> list[TopicSummary]:
        labels = np.asarray(labels)
        words = topic_words(self.texts, labels, params, stopwords_language)
        normalised = self._unit_rows(embeddings)
        summaries = []
        for topic in sorted(words):
            members = np.flatnonzero(labels == topic)
            centroid = normalised[members].mean(axis=0)
            closest = members[np.argsort(-(normalised[members] @ centroid), kind="stable")[:REPRESENTATIVE_DOCS]]
            summaries.append(
                TopicSummary(
                    topic=topic,
                    size=int(len(members)),
                    top_words=words[topic],
                    representative_docs=[self.texts[i] for i in closest],
                )
            )
        return summaries


def leader_topics(
    leaders: Sequence[TrialResult],
    store: ResultStore,
    texts: list[str],
    embeddings_of: Callable[[TrialParams], np.ndarray],
    stopwords_language: str,
) -> dict[str, list[TopicSummary]]:
    """The topics of these scored trials, from the labels the sweep stored. A trial whose labels are
    missing or unreadable is left out."""
    summariser = TopicSummariser(texts)
    topics: dict[str, list[TopicSummary]] = {}
    for result in leaders:
        labels = store.labels(result.key, len(texts))
        if labels is None:
            continue
        params = TrialParams.from_dict(result.params)
        topics[result.key] = summariser.summarise(labels, embeddings_of(params), params, stopwords_language)
    return topics


def topic_word_warnings(topics: Mapping[str, Sequence[TopicSummary]], limit: int = 5) -> list[str]:
    """One warning per trial whose topics (outliers aside) include some without a single topic word, naming
    them (at most ``limit``) with their sizes: the leaderboard's warnings, since no word is silently
    missing. Such a topic's documents hold nothing ``count_vectorizer`` counts."""
    warnings = []
    for trial, summaries in topics.items():
        empty = [summary for summary in summaries if summary.topic != -1 and not summary.top_words]
        if not empty:
            continue
        named = ", ".join(
            f"{summary.topic} ({summary.size} document{'' if summary.size == 1 else 's'})" for summary in empty[:limit]
        )
        more = f" and {len(empty) - limit} more" if len(empty) > limit else ""
        subject, verb, whose = ("topic", "has", "its") if len(empty) == 1 else ("topics", "have", "their")
        warnings.append(
            f"trial '{trial}': {subject} {named}{more} {verb} no topic words: {whose} documents hold no token the "
            "vectorizer keeps: BERTopic's English cleaning leaves ASCII letters and digits only (text in other "
            "scripts and emoji go), and single letters or digits and stop words are not counted"
        )
    return warnings


def topics_markdown(topics: list[TopicSummary], limit: int = 15) -> str:
    """The largest topics as a table: id, size, top words."""
    rows = sorted((t for t in topics if t.topic != -1), key=lambda t: -t.size)[:limit]
    lines = ["| topic | size | top words |", "|---|---|---|"]
    lines += [f"| {t.topic} | {t.size} | {', '.join(t.top_words[:8])} |" for t in rows]
    outliers = next((t.size for t in topics if t.topic == -1), 0)
    return "\n".join(lines) + (f"\n\n{outliers} documents are outliers (topic -1)." if outliers else "")

"""Topic summaries for display (MLflow artifacts, the UI): top words and representative documents.

Computed where they are shown, never for scoring: the sweep stores each trial's labels, and the
leaderboard summarises its leaders from them (``leader_topics``), so a sweep of hundreds of trials
does not spend its cores on words nobody reads. The words follow BERTopic's c-TF-IDF (term counts per
topic, L1-normalised, times log(1 + mean words per topic / term frequency)), from one document-term
matrix per vectorizer setting; BERTopic joins a topic's documents before counting, so n-grams spanning
two documents can differ. Representative documents are the three closest to the topic's embedding
centroid. The exported model (``topic_model``) uses BERTopic's own representation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import sparse

from topic_pipeline.inputs.grid import TrialParams
from topic_pipeline.storage.results import ResultStore, TrialResult
from topic_pipeline.engine.reference import TOP_WORDS, TopicSummary, vectorizer_stop_words

REPRESENTATIVE_DOCS = 3


StopWords = str | list[str] | None


class TopicSummariser:
    """Summaries for many labellings of one corpus: one document-term matrix per vectorizer setting."""

    def __init__(self, texts: list[str]):
        self.texts = texts
        self._matrices: dict[tuple[int, object], tuple[sparse.csr_matrix, np.ndarray]] = {}
        self._normalised: tuple[np.ndarray, np.ndarray] | None = None  # (embeddings, their unit rows)

    def _document_terms(self, n_gram_max: int, stop_words: StopWords) -> tuple[sparse.csr_matrix, np.ndarray]:
        key = (n_gram_max, tuple(stop_words) if isinstance(stop_words, list) else stop_words)
        if key not in self._matrices:
            from sklearn.feature_extraction.text import CountVectorizer

            vectorizer = CountVectorizer(ngram_range=(1, n_gram_max), stop_words=stop_words)
            try:
                matrix = vectorizer.fit_transform(self.texts).tocsr()
                vocabulary = vectorizer.get_feature_names_out()
            except ValueError:  # empty vocabulary: every token was a stop word
                matrix, vocabulary = sparse.csr_matrix((len(self.texts), 0)), np.array([], dtype=object)
            self._matrices[key] = (matrix, vocabulary)
        return self._matrices[key]

    def _unit_rows(self, embeddings: np.ndarray) -> np.ndarray:
        if self._normalised is None or self._normalised[0] is not embeddings:
            norms = np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
            self._normalised = (embeddings, embeddings / norms)
        return self._normalised[1]

    def summarise(
        self,
        labels: np.ndarray,
        embeddings: np.ndarray,
        n_gram_max: int,
        stop_words: StopWords,
    ) -> list[TopicSummary]:
        matrix, vocabulary = self._document_terms(n_gram_max, stop_words)
        topics, index = np.unique(labels, return_inverse=True)
        membership = sparse.csr_matrix(
            (np.ones(len(labels)), (index, np.arange(len(labels)))), shape=(len(topics), len(labels))
        )
        # Only the (topic, term) pairs that occur can score above zero, so the scores stay sparse.
        counts = (membership @ matrix).tocsr()
        counts.sum_duplicates()
        counts.sort_indices()
        totals = np.asarray(counts.sum(axis=1)).ravel()
        term_frequency = np.asarray(counts.sum(axis=0)).ravel()
        average_words = counts.sum() / max(len(topics), 1)
        idf = np.log(1 + np.divide(average_words, term_frequency, out=np.zeros_like(term_frequency), where=term_frequency > 0))
        rows = np.repeat(np.arange(len(topics)), np.diff(counts.indptr))
        scores = np.divide(counts.data, totals[rows], out=np.zeros_like(counts.data), where=totals[rows] > 0)
        scores *= idf[counts.indices]
        normalised = self._unit_rows(embeddings)
        by_topic = np.argsort(index, kind="stable")
        bounds = np.searchsorted(index[by_topic], np.arange(len(topics) + 1))
        summaries = []
        for row, topic in enumerate(topics.tolist()):
            members = by_topic[bounds[row] : bounds[row + 1]]
            start, end = counts.indptr[row], counts.indptr[row + 1]
            terms, row_scores = counts.indices[start:end], scores[start:end]
            positive = row_scores > 0
            terms, row_scores = terms[positive], row_scores[positive]
            # Highest score first, ties by term order: what a stable sort over the whole vocabulary gives.
            top = terms[np.lexsort((terms, -row_scores))[:TOP_WORDS]]
            centroid = normalised[members].mean(axis=0)
            closest = members[np.argsort(-(normalised[members] @ centroid), kind="stable")[:REPRESENTATIVE_DOCS]]
            summaries.append(
                TopicSummary(
                    topic=int(topic),
                    size=int(len(members)),
                    top_words=[str(vocabulary[i]) for i in top],
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
    missing (a result written before labels were kept) is left out."""
    summariser = TopicSummariser(texts)
    topics: dict[str, list[TopicSummary]] = {}
    for result in leaders:
        labels = store.labels(result.key, len(texts))
        if labels is None:
            continue
        params = TrialParams.from_dict(result.params)
        topics[result.key] = summariser.summarise(
            labels, embeddings_of(params), params.n_gram_max, vectorizer_stop_words(params, stopwords_language)
        )
    return topics


def topics_markdown(topics: list[TopicSummary], limit: int = 15) -> str:
    """The largest topics as a table: id, size, top words."""
    rows = sorted((t for t in topics if t.topic != -1), key=lambda t: -t.size)[:limit]
    lines = ["| topic | size | top words |", "|---|---|---|"]
    lines += [f"| {t.topic} | {t.size} | {', '.join(t.top_words[:8])} |" for t in rows]
    outliers = next((t.size for t in topics if t.topic == -1), 0)
    return "\n".join(lines) + (f"\n\n{outliers} documents are outliers (topic -1)." if outliers else "")

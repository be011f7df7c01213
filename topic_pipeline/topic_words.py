"""Topic summaries for display (MLflow artifacts, the UI): top words and representative documents.

Computed after scoring and never used for it. The words follow BERTopic's c-TF-IDF (term counts per
topic, L1-normalised, times log(1 + mean words per topic / term frequency)), from one document-term
matrix per vectorizer setting; BERTopic joins a topic's documents before counting, so n-grams spanning
two documents can differ. Representative documents are the three closest to the topic's embedding
centroid. The exported model (``topic_model``) uses BERTopic's own representation.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer

from topic_pipeline.trial import TOP_WORDS, TopicSummary

REPRESENTATIVE_DOCS = 3


class TopicSummariser:
    def __init__(self, texts: list[str]):
        self.texts = texts
        self._matrices: dict[tuple[int, object], tuple[sparse.csr_matrix, np.ndarray]] = {}

    def _document_terms(self, n_gram_max: int, stop_words: str | list[str] | None) -> tuple[sparse.csr_matrix, np.ndarray]:
        key = (n_gram_max, tuple(stop_words) if isinstance(stop_words, list) else stop_words)
        if key not in self._matrices:
            vectorizer = CountVectorizer(ngram_range=(1, n_gram_max), stop_words=stop_words)
            try:
                matrix = vectorizer.fit_transform(self.texts).tocsr()
                vocabulary = vectorizer.get_feature_names_out()
            except ValueError:  # empty vocabulary: every token was a stop word
                matrix, vocabulary = sparse.csr_matrix((len(self.texts), 0)), np.array([], dtype=object)
            self._matrices[key] = (matrix, vocabulary)
        return self._matrices[key]

    def summarise(
        self,
        labels: np.ndarray,
        embeddings: np.ndarray,
        n_gram_max: int,
        stop_words: str | list[str] | None,
    ) -> list[TopicSummary]:
        matrix, vocabulary = self._document_terms(n_gram_max, stop_words)
        topics, index = np.unique(labels, return_inverse=True)
        membership = sparse.csr_matrix(
            (np.ones(len(labels)), (index, np.arange(len(labels)))), shape=(len(topics), len(labels))
        )
        counts = (membership @ matrix).toarray() if matrix.shape[1] else np.zeros((len(topics), 0))
        totals = counts.sum(axis=1, keepdims=True)
        tf = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        term_frequency = counts.sum(axis=0)
        average_words = counts.sum() / max(len(topics), 1)
        idf = np.log(1 + np.divide(average_words, term_frequency, out=np.zeros_like(term_frequency), where=term_frequency > 0))
        scores = tf * idf
        normalised = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
        summaries = []
        for row, topic in enumerate(topics.tolist()):
            members = np.flatnonzero(index == row)
            top = np.argsort(-scores[row], kind="stable")[:TOP_WORDS] if scores.shape[1] else []
            centroid = normalised[members].mean(axis=0)
            closest = members[np.argsort(-(normalised[members] @ centroid), kind="stable")[:REPRESENTATIVE_DOCS]]
            summaries.append(
                TopicSummary(
                    topic=int(topic),
                    size=int(len(members)),
                    top_words=[str(vocabulary[i]) for i in top if scores[row, i] > 0],
                    representative_docs=[self.texts[i] for i in closest],
                )
            )
        return summaries

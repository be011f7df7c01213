"""Topic summaries: the sparse c-TF-IDF computation gives exactly what the dense formula gives."""

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer

from topic_pipeline.inputs.demo_corpus import generate_demo_corpus
from topic_pipeline.scoring.topic_words import REPRESENTATIVE_DOCS, TopicSummariser
from topic_pipeline.engine.reference import TOP_WORDS, TopicSummary


def dense_summaries(texts, labels, embeddings, n_gram_max, stop_words):
    """The formula written out on dense arrays, one stable sort over the whole vocabulary per topic."""
    vectorizer = CountVectorizer(ngram_range=(1, n_gram_max), stop_words=stop_words)
    matrix = vectorizer.fit_transform(texts)
    vocabulary = vectorizer.get_feature_names_out()
    topics, index = np.unique(labels, return_inverse=True)
    membership = sparse.csr_matrix((np.ones(len(labels)), (index, np.arange(len(labels)))), shape=(len(topics), len(labels)))
    counts = (membership @ matrix).toarray()
    totals = counts.sum(axis=1, keepdims=True)
    tf = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    term_frequency = counts.sum(axis=0)
    average_words = counts.sum() / len(topics)
    idf = np.log(1 + np.divide(average_words, term_frequency, out=np.zeros_like(term_frequency), where=term_frequency > 0))
    scores = tf * idf
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    summaries = []
    for row, topic in enumerate(topics.tolist()):
        members = np.flatnonzero(index == row)
        top = np.argsort(-scores[row], kind="stable")[:TOP_WORDS]
        centroid = unit[members].mean(axis=0)
        closest = members[np.argsort(-(unit[members] @ centroid), kind="stable")[:REPRESENTATIVE_DOCS]]
        summaries.append(TopicSummary(int(topic), len(members), [str(vocabulary[i]) for i in top if scores[row, i] > 0],
                                      [texts[i] for i in closest]))
    return summaries


def test_summaries_equal_the_dense_formula():
    sample = generate_demo_corpus(n_docs=600, n_topics=6)
    texts = list(sample.texts)
    rng = np.random.default_rng(3)
    embeddings = rng.normal(size=(len(texts), 16))
    summariser = TopicSummariser(texts)
    # Stop words come as a list for languages other than English (see trial.vectorizer_stop_words).
    for case in range(12):
        labels = rng.integers(-1, int(rng.integers(2, 30)), size=len(texts))
        n_gram_max, stop_words = 1 + case % 3, [None, "english", ["the", "and", "of"]][case % 3]
        assert summariser.summarise(labels, embeddings, n_gram_max, stop_words) == dense_summaries(
            texts, labels, embeddings, n_gram_max, stop_words
        ), case


def test_a_sweep_with_a_stop_word_file_summarises_without_those_words(tmp_path):
    """A stop-word file gives the vectorizer a list (not "english"): the leaders' summaries, from the labels
    the sweep stored, must take it."""
    from topic_pipeline.engine.fast import EmbeddingSource
    from topic_pipeline.inputs.grid import ParamGrid
    from topic_pipeline.storage.results import ResultStore
    from topic_pipeline.engine.sweep import LabelledSample, run_trials
    from topic_pipeline.scoring.topic_words import leader_topics

    texts = list(generate_demo_corpus(n_docs=300, n_topics=4).texts)
    embeddings = np.random.default_rng(0).normal(size=(len(texts), 16)).astype(np.float32)
    np.save(tmp_path / "embeddings.npy", embeddings)
    stop_word_file = tmp_path / "stop_words.txt"
    stop_word_file.write_text("the\nand\nof\nto\na\n")
    grid = ParamGrid.from_mapping({"umap_n_neighbors": [10], "hdbscan_min_cluster_size": [10], "remove_stopwords": [True],
                                   "n_gram_max": [1, 2]})
    trials = [(t.key, t) for t in grid.trials()]
    sources = {trials[0][1].embedding_set.key: EmbeddingSource(str(tmp_path / "embeddings.npy"), "test", len(texts))}
    scored = []
    run_trials(trials, sources, texts, LabelledSample(np.arange(20), np.arange(20) % 2), "fingerprint", 42,
               str(stop_word_file), tmp_path / "cache", scored.append, workers=1)
    assert [s.result.status for s in scored] == ["ok", "ok"], [s.result.error for s in scored]
    store = ResultStore(tmp_path / "results")
    for s in scored:
        store.save(s.result, s.labels)
    topics = leader_topics([s.result for s in scored], store, texts, lambda params: embeddings, str(stop_word_file))
    assert sorted(topics) == sorted(key for key, _ in trials)
    words = {word for summaries in topics.values() for topic in summaries for phrase in topic.top_words for word in phrase.split()}
    assert words and not words & {"the", "and", "of", "to", "a"}

"""Topic summaries: the words are those of the exported BERTopic model (computed without importing BERTopic)."""

import numpy as np
import pytest

from topic_pipeline.inputs.demo_corpus import generate_demo_corpus
from topic_pipeline.inputs.grid import ParamGrid
from topic_pipeline.integrations.export import build_topic_model
from topic_pipeline.scoring.topic_words import REPRESENTATIVE_DOCS, TOP_WORDS, TopicSummariser


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    texts = list(generate_demo_corpus(n_docs=600, n_topics=6).texts)
    embeddings = np.random.default_rng(3).normal(size=(len(texts), 16))
    stop_word_file = tmp_path_factory.mktemp("stop_words") / "stop_words.txt"
    stop_word_file.write_text("the\nand\nof\nin\nto\n")
    return texts, embeddings, str(stop_word_file)


def cases(stop_word_file):
    """Random labellings (many equal scores, so the order of ties is tested too), every n-gram range, and
    stop words off, English (the vectorizer's "english") and from a file (a list)."""
    rng = np.random.default_rng(7)
    for case in range(9):
        n_gram_max, remove_stopwords = 1 + case % 3, case % 3 != 0
        language = stop_word_file if case % 2 else "english"
        params = ParamGrid.from_mapping(
            {
                "umap_n_neighbors": [15],
                "hdbscan_min_cluster_size": [15],
                "n_gram_max": [n_gram_max],
                "remove_stopwords": [remove_stopwords],
            }
        ).trials()[0]
        yield params, language, rng.integers(-1, int(rng.integers(3, 25)), size=600)


def exported_words(texts, embeddings, labels, params, language):
    """``get_topic`` of the model the export builds, by our topic ids (the fit renumbers them by size):
    (word, score) pairs, all of them, not only the top ones."""
    model = build_topic_model(texts, embeddings, labels, params, language)
    fitted = np.asarray(model.topics_)
    words = {}
    for topic in np.unique(labels).tolist():
        (fitted_topic,) = set(fitted[labels == topic].tolist())
        words[topic] = [(word, score) for word, score in model.get_topic(fitted_topic) if word]
    return words


def test_summaries_have_the_exported_models_words(corpus):
    """The same words as ``get_topic``, in its order, except that words of equal score may be ordered
    otherwise (BERTopic's order among them is its sort's, not a rule): compared as groups of equal score,
    and at the cut after TOP_WORDS only the score is compared."""
    texts, embeddings, stop_word_file = corpus
    summariser = TopicSummariser(texts)
    ties_seen = False
    for params, language, labels in cases(stop_word_file):
        expected = exported_words(texts, embeddings, labels, params, language)
        summaries = summariser.summarise(labels, embeddings, params, language)
        assert sorted(s.topic for s in summaries) == sorted(expected), (params.key, language)
        for summary in summaries:
            theirs = expected[summary.topic]
            score_of = dict(theirs)
            ours = summary.top_words
            assert len(ours) == min(TOP_WORDS, len(theirs)), (params.key, summary.topic)
            if not ours:
                continue
            # get_topic lists only its top words: a word of ours tied at the cut may be missing from it.
            cut = theirs[len(ours) - 1][1]
            above = [w for w in ours if score_of.get(w, cut) > cut]
            assert sorted(above) == sorted(w for w, score in theirs[: len(ours)] if score > cut), (
                params.key,
                summary.topic,
            )
            assert [score_of[w] for w in above] == [score for _, score in theirs[: len(above)]], (
                params.key,
                summary.topic,
            )
            assert all(np.isclose(score_of[w], cut, rtol=0, atol=1e-12) for w in ours[len(above) :] if w in score_of)
            ties_seen |= len({score for _, score in theirs[: len(ours)]}) < len(ours)
        unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
        for summary in summaries:
            members = np.flatnonzero(labels == summary.topic)
            assert summary.size == len(members)
            closest = members[
                np.argsort(-(unit[members] @ unit[members].mean(axis=0)), kind="stable")[:REPRESENTATIVE_DOCS]
            ]
            assert summary.representative_docs == [texts[i] for i in closest]
    assert ties_seen, "the cases include words of equal score"


def test_the_leaderboard_step_does_not_import_bertopic():
    """Topic words must not pull in BERTopic (and with it torch) where the leaderboard runs."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from topic_pipeline.inputs.demo_corpus import generate_demo_corpus\n"
        "from topic_pipeline.inputs.grid import ParamGrid\n"
        "from topic_pipeline.scoring.topic_words import TopicSummariser\n"
        "texts = list(generate_demo_corpus(n_docs=100, n_topics=3).texts)\n"
        "params = ParamGrid.from_mapping({'umap_n_neighbors': [10]}).trials()[0]\n"
        "TopicSummariser(texts).summarise(np.arange(100) % 3, np.ones((100, 4)), params, 'english')\n"
        "print('bertopic' in sys.modules, 'torch' in sys.modules)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == [
        "False",
        "False",
    ]


def test_a_sweep_with_a_stop_word_file_summarises_without_those_words(tmp_path):
    """A stop-word file gives the vectorizer a list (not "english"): the leaders' summaries, from the labels
    the sweep stored, must take it."""
    from topic_pipeline.engine.fast import EmbeddingSource
    from topic_pipeline.engine.sweep import LabelledSample, run_trials
    from topic_pipeline.inputs.grid import ParamGrid
    from topic_pipeline.scoring.topic_words import leader_topics
    from topic_pipeline.storage.results import ResultStore

    texts = list(generate_demo_corpus(n_docs=300, n_topics=4).texts)
    embeddings = np.random.default_rng(0).normal(size=(len(texts), 16)).astype(np.float32)
    np.save(tmp_path / "embeddings.npy", embeddings)
    stop_word_file = tmp_path / "stop_words.txt"
    stop_word_file.write_text("the\nand\nof\nto\na\n")
    grid = ParamGrid.from_mapping(
        {"umap_n_neighbors": [10], "hdbscan_min_cluster_size": [10], "remove_stopwords": [True], "n_gram_max": [1, 2]}
    )
    trials = [(t.key, t) for t in grid.trials()]
    sources = {trials[0][1].embedding_set.key: EmbeddingSource(str(tmp_path / "embeddings.npy"), "test", len(texts))}
    scored = []
    run_trials(
        trials,
        sources,
        texts,
        LabelledSample(np.arange(20), np.arange(20) % 2),
        "fingerprint",
        42,
        str(stop_word_file),
        tmp_path / "cache",
        scored.append,
        workers=1,
    )
    assert [s.result.status for s in scored] == ["ok", "ok"], [s.result.error for s in scored]
    store = ResultStore(tmp_path / "results")
    for s in scored:
        store.save(s.result, s.labels)
    topics = leader_topics([s.result for s in scored], store, texts, lambda params: embeddings, str(stop_word_file))
    assert sorted(topics) == sorted(key for key, _ in trials)
    words = {
        word
        for summaries in topics.values()
        for topic in summaries
        for phrase in topic.top_words
        for word in phrase.split()
    }
    assert words and not words & {"the", "and", "of", "to", "a"}


def test_topic_words_leave_out_stop_words_even_when_the_embeddings_keep_them():
    """``remove_stopwords`` decides what is embedded (labels); topic words drop the language's stop words
    whatever it says, so "the" and "to" never head a topic."""
    texts = [f"the {word} went to the {word} in the morning" for word in ("river", "market") for _ in range(20)]
    labels = np.repeat([0, 1], 20)
    embeddings = np.random.default_rng(0).normal(size=(len(texts), 8))
    for remove_stopwords in (False, True):
        params = ParamGrid.from_mapping({"umap_n_neighbors": [15], "remove_stopwords": [remove_stopwords]}).trials()[0]
        summaries = TopicSummariser(texts).summarise(labels, embeddings, params, "english")
        words = {word for summary in summaries for word in summary.top_words}
        assert {"river", "market", "morning"} <= words and not words & {"the", "to", "in"}, (remove_stopwords, words)


# --- topics without a word: other scripts than Latin, emoji, punctuation, stop words only -----------------------------------

MANY_SCRIPTS = {  # made-up texts, one topic each
    "chinese": [
        "今天下雨了，我们在家做饭",
        "妈妈做的饭很好吃",
        "我们一起做饭吧",
        "下雨天在家做饭最舒服",
        "晚饭吃面条和饺子",
        "他做饭的时候听音乐",
    ],
    "japanese": [
        "電車が駅に着きました",
        "新しい電車のチケットを買いました",
        "駅のホームで電車を待っています",
        "電車はとても速いです",
        "朝の電車は混んでいます",
        "チケットは駅で買えます",
    ],
    "russian": [
        "Погода сегодня хорошая, идём гулять",
        "Хорошая погода для прогулки в парке",
        "В парке сегодня тепло",
        "Гулять в парке приятно",
        "Сегодня в парке много людей",
        "Погода тёплая, парк полон",
    ],
    "emoji": ["🎉🎉 🥳", "🎂🎉", "🎉 🎈🎈", "👍🏽🎉", "❤️🎂 🇯🇵", "🥳🎈"],
    "punctuation": ["!!! ???", "... 1 2 3", "- 4 + 5 = 9 -", "*** #", "(?) !", "1, 2; 3."],
    "stop_words": ["the and of it", "it is what it is", "and the", "of the", "to be or not to be", "as it is"],
    "english": [
        "The river flooded the market town",
        "Market stalls by the river were flooded",
        "Flood water reached the market",
        "The river rose over the town bridge",
        "Town market closed after the flood",
        "River levels fell in town",
    ],
}


@pytest.fixture(scope="module")
def many_scripts():
    texts = [text for texts in MANY_SCRIPTS.values() for text in texts]
    labels = np.repeat(np.arange(len(MANY_SCRIPTS)), [len(texts) for texts in MANY_SCRIPTS.values()])
    embeddings = np.random.default_rng(5).normal(size=(len(texts), 8))
    return texts, labels, embeddings


def trial(n_gram_max: int = 1):
    return ParamGrid.from_mapping({"umap_n_neighbors": [15], "n_gram_max": [n_gram_max]}).trials()[0]


def test_a_topic_without_words_gets_a_warning_naming_it(many_scripts):
    """Topics left without a word (Chinese, Japanese, Russian and emoji, which BERTopic's English cleaning
    drops; punctuation and single digits; stop words only) are named, with their sizes, in one warning per
    trial; topics with words and the outliers are not."""
    from topic_pipeline.scoring.topic_words import TopicSummary, topic_word_warnings

    texts, labels, embeddings = many_scripts
    summaries = TopicSummariser(texts).summarise(labels, embeddings, trial(), "english")
    assert topic_word_warnings({"trial-a": summaries}) == [
        (
            "trial 'trial-a': topics 0 (6 documents), 1 (6 documents), 2 (6 documents), 3 (6 documents), 4 (6 documents) and 1 more have no topic words: their documents hold "
            "no token the vectorizer keeps: BERTopic's English cleaning leaves ASCII letters and digits only (text in other "
            "scripts and emoji go), and single letters or digits and stop words are not counted"
        )
    ]
    one = [TopicSummary(-1, 9, [], []), TopicSummary(0, 40, ["river"], []), TopicSummary(3, 41, [], [])]
    assert topic_word_warnings({"trial-b": one, "trial-c": one[:2]}) == [
        (
            "trial 'trial-b': topic 3 (41 documents) has no topic words: its documents hold no token the "
            "vectorizer keeps: BERTopic's English cleaning leaves ASCII letters and digits only (text in other "
            "scripts and emoji go), and single letters or digits and stop words are not counted"
        )
    ]
    many = [TopicSummary(t, 1, [], []) for t in range(8)]
    assert topic_word_warnings({"trial-d": many}, limit=2)[0].startswith(
        "trial 'trial-d': topics 0 (1 document), 1 (1 document) and 6 more have no topic words"
    )

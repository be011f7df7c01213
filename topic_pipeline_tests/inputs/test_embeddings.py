"""Embeddings with the real packaged model: cached once, reused, corrupt entries recomputed."""

import numpy as np
import pytest

from topic_pipeline.domain.trials import DEFAULT_EMBEDDING_MODEL, EmbeddingSet
from topic_pipeline.errors import EmbeddingModelError, MissingEmbeddingsError
from topic_pipeline.inputs import embeddings as embeddings_module
from topic_pipeline.inputs.embeddings import (
    EmbeddingCache,
    EmbeddingSettings,
    embed_corpus,
    load_model,
    stop_words,
    strip_stop_words,
)

TEXTS = [
    "Central bank raises interest rates again",
    "Striker scores twice in the derby",
    "New vaccine trial shows strong results",
    "Wind farm opens off the northern coast",
]
SETTINGS = EmbeddingSettings(device="cpu", batch_size=2, local_files_only=True)


def test_computes_once_then_loads_from_cache(tmp_path, monkeypatch):
    cache = EmbeddingCache(tmp_path)
    embedding_set = EmbeddingSet(DEFAULT_EMBEDDING_MODEL, False)
    first = embed_corpus(TEXTS, "corpus-a", embedding_set, cache, SETTINGS)
    assert not first.from_cache
    assert first.embeddings.shape == (4, 384) and first.embeddings.dtype == np.float32
    assert cache.path(first.cache_key).exists()

    def no_model(*args, **kwargs):
        raise AssertionError("the model must not be loaded when the cache holds the embeddings")

    monkeypatch.setattr(embeddings_module, "load_model", no_model)
    second = embed_corpus(TEXTS, "corpus-a", embedding_set, cache, SETTINGS)
    assert second.from_cache and second.cache_key == first.cache_key
    np.testing.assert_array_equal(second.embeddings, first.embeddings)
    # The cache file is a plain .npy readable without pickle.
    np.testing.assert_array_equal(np.load(cache.path(first.cache_key), allow_pickle=False), first.embeddings)


def test_cache_key_depends_on_corpus_model_and_stopwords(tmp_path):
    cache = EmbeddingCache(tmp_path)
    plain = EmbeddingSet(DEFAULT_EMBEDDING_MODEL, False)
    no_stop = EmbeddingSet(DEFAULT_EMBEDDING_MODEL, True)
    keys = {
        cache.key(plain, "a", "english"),
        cache.key(plain, "b", "english"),
        cache.key(no_stop, "a", "english"),
        cache.key(EmbeddingSet("other/model", False), "a", "english"),
    }
    assert len(keys) == 4
    # The stop-word language only matters when stop words are removed.
    assert cache.key(plain, "a", "english") == cache.key(plain, "a", "/some/list.txt")


def test_removing_stopwords_changes_the_embeddings(tmp_path):
    cache = EmbeddingCache(tmp_path)
    plain = embed_corpus(TEXTS, "c", EmbeddingSet(DEFAULT_EMBEDDING_MODEL, False), cache, SETTINGS)
    stripped = embed_corpus(TEXTS, "c", EmbeddingSet(DEFAULT_EMBEDDING_MODEL, True), cache, SETTINGS)
    assert plain.cache_key != stripped.cache_key
    assert not np.allclose(plain.embeddings, stripped.embeddings)
    assert strip_stop_words(["The bank raises the rates"], stop_words("english")) == ["bank raises rates"]


def test_stopword_language_from_file_and_unknown_language(tmp_path):
    words = tmp_path / "stop.txt"
    words.write_text("der\ndie\ndas\n")
    assert stop_words(str(words)) == {"der", "die", "das"}
    with pytest.raises(EmbeddingModelError, match="klingon"):
        stop_words("klingon")


def test_stopword_file_with_a_byte_order_mark_reads_as_without(tmp_path):
    plain, with_bom = tmp_path / "plain.txt", tmp_path / "bom.txt"
    plain.write_text("der\ndie\ndas\n", encoding="utf-8")
    with_bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    assert stop_words(str(with_bom)) == stop_words(str(plain)) == {"der", "die", "das"}


@pytest.mark.parametrize("damage", ["truncate", "wrong_shape", "wrong_dtype", "pickled_object"])
def test_damaged_cache_entry_is_recomputed_not_used(tmp_path, damage):
    cache = EmbeddingCache(tmp_path)
    embedding_set = EmbeddingSet(DEFAULT_EMBEDDING_MODEL, False)
    good = embed_corpus(TEXTS, "c", embedding_set, cache, SETTINGS)
    path = cache.path(good.cache_key)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "wrong_shape":
        np.save(path, np.zeros((3, 384), dtype=np.float32))
    elif damage == "wrong_dtype":
        np.save(path, np.zeros((4, 384), dtype=np.float64))
    else:
        np.save(path, np.array([{"not": "an array"}], dtype=object), allow_pickle=True)
    assert cache.load(good.cache_key, len(TEXTS)) is None
    again = embed_corpus(TEXTS, "c", embedding_set, cache, SETTINGS)
    assert not again.from_cache
    np.testing.assert_allclose(again.embeddings, good.embeddings, atol=1e-5)


def test_trial_without_embeddings_gets_a_clear_error(tmp_path):
    cache = EmbeddingCache(tmp_path)
    embedding_set = EmbeddingSet(DEFAULT_EMBEDDING_MODEL, True)
    with pytest.raises(MissingEmbeddingsError, match="all-minilm-l6-v2-nostop"):
        cache.require(cache.key(embedding_set, "c", "english"), 4, embedding_set)


def test_model_that_cannot_be_loaded_offline():
    with pytest.raises(EmbeddingModelError) as error:
        load_model("no-such-org/no-such-model", "cpu", local_files_only=True)
    assert "no-such-org/no-such-model" in str(error.value)
    assert "offline" in str(error.value)


def test_a_device_that_is_not_here_is_refused_by_name_not_blamed_on_loading_the_model():
    import torch

    from topic_pipeline.errors import EmbeddingModelError
    from topic_pipeline.inputs.embeddings import choose_device

    assert choose_device("cpu") == "cpu"
    assert choose_device("auto") in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():  # this machine, and CI's: no GPU
        with pytest.raises(
            EmbeddingModelError,
            match=r"^TOPIC_PIPELINE_EMBEDDING_DEVICE='cuda:1': no CUDA device is "
            r"available here; use auto or cpu$",
        ):
            choose_device("cuda:1")
    else:  # a GPU machine: an index past its devices
        with pytest.raises(EmbeddingModelError, match="CUDA device"):
            choose_device(f"cuda:{torch.cuda.device_count()}")

"""Chunked embeddings with the real packaged model: equal to one unchunked encode, resumed after an interrupted
encode from its finished chunks, damaged or foreign chunks never used, progress logged."""

import json
import random
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from topic_pipeline.domain.trials import DEFAULT_EMBEDDING_MODEL, EmbeddingSet
from topic_pipeline.inputs import embeddings as embeddings_module
from topic_pipeline.inputs.embeddings import (
    CHUNKS_SUFFIX,
    EmbeddingCache,
    EmbeddingSettings,
    EncodeProgress,
    embed_corpus,
)

_WORDS = [
    "bank",
    "rates",
    "striker",
    "derby",
    "vaccine",
    "trial",
    "wind",
    "farm",
    "coast",
    "market",
    "shares",
    "election",
    "vote",
    "storm",
    "rain",
]
_RANDOM = random.Random(0)
# Lengths vary, and many are equal: the length sort must not move a text into another batch.
TEXTS = [" ".join(_RANDOM.choice(_WORDS) for _ in range(_RANDOM.randint(2, 20))) for _ in range(200)]
SETTINGS = EmbeddingSettings(device="cpu", batch_size=32, local_files_only=True)
PLAIN = EmbeddingSet(DEFAULT_EMBEDDING_MODEL, False)
CHUNK = 64  # two batches a chunk; the corpus ends in a short chunk


class _Interrupted(Exception):
    pass


class _CountingModel:
    """The real model, counting the documents it encodes, raising once it has encoded ``stop_after``."""

    def __init__(self, model, stop_after: int | None = None):
        self.model = model
        self.stop_after = stop_after
        self.encoded = 0

    def encode(self, texts, **kwargs):
        if self.stop_after is not None and self.encoded + len(texts) > self.stop_after:
            raise _Interrupted
        self.encoded += len(texts)
        return self.model.encode(texts, **kwargs)


class _Lines:
    def __init__(self):
        self.lines: list[str] = []

    def info(self, msg, *args):
        self.lines.append(msg % args)


@pytest.fixture(scope="module")
def model():
    return embeddings_module.load_model(DEFAULT_EMBEDDING_MODEL, "cpu", True)


@pytest.fixture(scope="module")
def unchunked(model):
    """One call over the whole corpus, as the cache was filled before chunks."""
    return np.asarray(model.encode(TEXTS, batch_size=SETTINGS.batch_size, convert_to_numpy=True), dtype=np.float32)


def _use(monkeypatch, counting: _CountingModel) -> _CountingModel:
    monkeypatch.setattr(embeddings_module, "load_model", lambda *args: counting)
    return counting


def _interrupt_after_chunks(tmp_path, monkeypatch, model, chunks: int, corpus_hash: str = "corpus-a") -> EmbeddingCache:
    cache = EmbeddingCache(tmp_path)
    _use(monkeypatch, _CountingModel(model, stop_after=chunks * CHUNK))
    with pytest.raises(_Interrupted):
        embed_corpus(TEXTS, corpus_hash, PLAIN, cache, SETTINGS, chunk_documents=CHUNK)
    key = cache.key(PLAIN, corpus_hash, SETTINGS.stopwords_language)
    assert not cache.path(key).exists()
    assert len(list((tmp_path / f"{key}{CHUNKS_SUFFIX}").rglob("*.npy"))) == chunks
    return cache


@pytest.mark.parametrize("chunk_documents", [CHUNK, 50])
def test_chunked_embeddings_equal_an_unchunked_encode_bit_for_bit(
    tmp_path, monkeypatch, model, unchunked, chunk_documents
):
    # A chunk size that is not a whole number of batches is rounded up to one.
    cache = EmbeddingCache(tmp_path)
    counting = _use(monkeypatch, _CountingModel(model))
    outcome = embed_corpus(TEXTS, "corpus-a", PLAIN, cache, SETTINGS, chunk_documents=chunk_documents)
    assert counting.encoded == len(TEXTS)
    assert np.array_equal(outcome.embeddings, unchunked)
    assert np.array_equal(cache.load(outcome.cache_key, len(TEXTS)), unchunked)
    assert not (tmp_path / f"{outcome.cache_key}{CHUNKS_SUFFIX}").exists()


def test_an_interrupted_encode_resumes_from_its_finished_chunks_and_logs_progress(
    tmp_path, monkeypatch, model, unchunked
):
    cache = _interrupt_after_chunks(tmp_path, monkeypatch, model, chunks=2)
    counting = _use(monkeypatch, _CountingModel(model))
    lines = _Lines()
    outcome = embed_corpus(
        TEXTS, "corpus-a", PLAIN, cache, SETTINGS, logger=lines, chunk_documents=CHUNK, progress_interval_s=0
    )
    assert counting.encoded == len(TEXTS) - 2 * CHUNK
    assert np.array_equal(outcome.embeddings, unchunked)
    assert not (tmp_path / f"{outcome.cache_key}{CHUNKS_SUFFIX}").exists()
    assert "resuming an interrupted encode, 128 of 200 documents already encoded" in lines.lines[0]
    progress = lines.lines[1:]
    assert "documents 160/200 (128 from an earlier run)" in progress[0] and "/min" in progress[0]
    assert "documents 200/200" in progress[-1]
    assert any(line.endswith(" left") for line in progress)


# Encodes the corpus as ``embed_corpus`` does and kills its own process (SIGKILL: no exception, no cleanup)
# when the given number of documents is encoded.
_KILLED_ENCODE = textwrap.dedent(
    """
    import json, os, signal, sys
    from topic_pipeline.domain.trials import DEFAULT_EMBEDDING_MODEL, EmbeddingSet
    from topic_pipeline.inputs import embeddings as E

    directory, texts, limit = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    model = E.load_model(DEFAULT_EMBEDDING_MODEL, "cpu", True)

    class Killing:
        encoded = 0

        def encode(self, batch, **kwargs):
            if self.encoded + len(batch) > limit:
                os.kill(os.getpid(), signal.SIGKILL)
            self.encoded += len(batch)
            return model.encode(batch, **kwargs)

    E.load_model = lambda *args: Killing()
    settings = E.EmbeddingSettings(device="cpu", batch_size=32, local_files_only=True)
    plain = EmbeddingSet(DEFAULT_EMBEDDING_MODEL, False)
    E.embed_corpus(texts, "corpus-a", plain, E.EmbeddingCache(directory), settings, chunk_documents=64)
    """
)


def test_an_encode_killed_with_sigkill_resumes_from_its_finished_chunks(tmp_path, monkeypatch, model, unchunked):
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_ENCODE, str(tmp_path), json.dumps(TEXTS), str(3 * CHUNK)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    cache = EmbeddingCache(tmp_path)
    key = cache.key(PLAIN, "corpus-a", SETTINGS.stopwords_language)
    assert not cache.path(key).exists()
    assert len(list((tmp_path / f"{key}{CHUNKS_SUFFIX}").rglob("*.npy"))) == 3
    counting = _use(monkeypatch, _CountingModel(model))
    outcome = embed_corpus(TEXTS, "corpus-a", PLAIN, cache, SETTINGS, chunk_documents=CHUNK)
    assert counting.encoded == len(TEXTS) - 3 * CHUNK
    assert np.array_equal(outcome.embeddings, unchunked)


def test_a_damaged_chunk_is_encoded_again_not_used(tmp_path, monkeypatch, model, unchunked):
    cache = _interrupt_after_chunks(tmp_path, monkeypatch, model, chunks=2)
    second = next((tmp_path).rglob("000001.npy"))
    data = bytearray(second.read_bytes())
    data[200] ^= 0xFF  # a bit flip in the rows: the file no longer matches its sha256
    second.write_bytes(bytes(data))
    counting = _use(monkeypatch, _CountingModel(model))
    outcome = embed_corpus(TEXTS, "corpus-a", PLAIN, cache, SETTINGS, chunk_documents=CHUNK)
    assert counting.encoded == len(TEXTS) - CHUNK
    assert np.array_equal(outcome.embeddings, unchunked)


def test_chunks_of_another_corpus_or_stop_word_setting_are_never_used(tmp_path, monkeypatch, model):
    cache = _interrupt_after_chunks(tmp_path, monkeypatch, model, chunks=2, corpus_hash="corpus-a")
    for corpus_hash, embedding_set in [("corpus-b", PLAIN), ("corpus-a", EmbeddingSet(DEFAULT_EMBEDDING_MODEL, True))]:
        counting = _use(monkeypatch, _CountingModel(model))
        embed_corpus(TEXTS, corpus_hash, embedding_set, cache, SETTINGS, chunk_documents=CHUNK)
        assert counting.encoded == len(TEXTS)
    # The interrupted encode's chunks are still there for its own rerun.
    key = cache.key(PLAIN, "corpus-a", SETTINGS.stopwords_language)
    assert len(list((tmp_path / f"{key}{CHUNKS_SUFFIX}").rglob("*.npy"))) == 2


def test_chunks_of_another_batch_size_are_never_assembled_with_these(tmp_path, monkeypatch, model):
    cache = _interrupt_after_chunks(tmp_path, monkeypatch, model, chunks=2)
    counting = _use(monkeypatch, _CountingModel(model))
    embed_corpus(TEXTS, "corpus-a", PLAIN, cache, EmbeddingSettings(device="cpu", batch_size=16), chunk_documents=CHUNK)
    assert counting.encoded == len(TEXTS)


def test_chunks_written_in_another_order_of_equal_lengths_are_never_used(tmp_path, monkeypatch, model, unchunked):
    # Another machine's or numpy version's default sort may order texts of equal length otherwise.
    default_argsort = np.argsort

    def ties_reversed(values, **kwargs):
        values = np.asarray(values)
        return len(values) - 1 - default_argsort(values[::-1], kind="stable")

    with monkeypatch.context() as patched:
        patched.setattr(embeddings_module.np, "argsort", ties_reversed)
        _interrupt_after_chunks(tmp_path, patched, model, chunks=2)
    counting = _use(monkeypatch, _CountingModel(model))
    outcome = embed_corpus(TEXTS, "corpus-a", PLAIN, EmbeddingCache(tmp_path), SETTINGS, chunk_documents=CHUNK)
    assert counting.encoded == len(TEXTS)
    assert np.array_equal(outcome.embeddings, unchunked)


def test_progress_line_wording():
    progress = EncodeProgress(total=1000, resumed=200, done=400, started_at=0.0)
    assert progress.describe(now=60.0) == "documents 600/1000 (200 from an earlier run), 400.0/min, about 60 s left"
    assert EncodeProgress(total=1000, started_at=0.0).describe(now=1.0) == "documents 0/1000, 0.0/min"

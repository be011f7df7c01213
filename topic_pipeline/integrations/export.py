"""Turn one trial into a shareable BERTopic model.

The model's topics are exactly the trial's labels (recomputed through the engine's caches, so no
UMAP is refitted when the reduction is cached), outlier reduction included: the model is what a BERTopic
user's reduce_outliers then update_topics gives (the same topics, and c-TF-IDF over them), except that
its topic embeddings are the centroids of the full document embeddings of the final topics (update_topics,
without an embedding model, would keep the topic embeddings of before the reduction). Its representation
uses the trial's n-gram range and stop-word setting.
It is saved with BERTopic's own serialisation (safetensors by default, with c-TF-IDF and a pointer to
the embedding model). ``tuning.json`` beside it records what BERTopic's config.json drops.

Exports are written to a temporary folder next to the target and moved into place, so a failed
export leaves any earlier one intact. Only an earlier export is ever replaced: a target folder that
holds anything else, or a file the earlier export wrote whose content has changed since (a user's edit
of ``tuning.json``, say: the folder's marker records each file's sha256), is refused and left as it is
(``storage.replace_folder``).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from topic_pipeline._compat import installed_versions
from topic_pipeline.domain.trials import DEFAULT_EMBEDDING_MODEL, TrialParams
from topic_pipeline.engine.bertopic_model import bertopic_model
from topic_pipeline.engine.fast import EmbeddingSource, plan_groups, run_group
from topic_pipeline.errors import TopicPipelineError
from topic_pipeline.storage.files import (
    OWNERSHIP_MARKER,
    FolderNotOursError,
    replace_folder,
    staging_folder,
    write_json,
)

SERIALIZATIONS = ("safetensors", "pytorch", "pickle")
MODEL_FOLDER = "model"
RECORD_FILE = "tuning.json"
RECORDED_PACKAGES = (
    "bertopic",
    "sentence-transformers",
    "umap-learn",
    "hdbscan",
    "scikit-learn",
    "numpy",
    "topic_pipeline",
)


class ExportError(TopicPipelineError):
    """The chosen trial cannot be exported as asked."""


def library_versions() -> dict[str, str]:
    return {"python": platform.python_version(), **installed_versions(dict.fromkeys(RECORDED_PACKAGES, ()))}


def embedding_model_pointer(model_name: str) -> str:
    """What the saved model records as its embedding model: a hub name, or an absolute local path.

    BERTopic.load hands this string to sentence-transformers, so it must mean the same model on
    another machine: a relative path would not, and a path that does not exist is a mistake.
    """
    if model_name in {DEFAULT_EMBEDDING_MODEL, "all-MiniLM-L6-v2"}:
        return DEFAULT_EMBEDDING_MODEL
    path = Path(model_name).expanduser()
    looks_like_path = model_name.startswith((".", "/", "~")) or path.exists() or model_name.count("/") > 1
    if looks_like_path:
        if not path.exists():
            raise ExportError(
                f"embedding model '{model_name}' cannot be recorded in the export: the local path does not exist"
            )
        return str(path.resolve())
    return model_name


def trial_labels(
    params: TrialParams,
    source: EmbeddingSource,
    texts: list[str],
    seed: int,
    cache_dir: Path,
    stopwords_language: str = "english",
) -> np.ndarray:
    """The trial's labels, computed exactly as in the sweep (cached reduction, same HDBSCAN calls, the same
    outlier reduction)."""
    ((task, clusterings),) = plan_groups(
        [(params.key, params)], {params.embedding_set.key: source}, texts, seed, cache_dir, stopwords_language
    )
    (clustering,) = clusterings
    outcome = run_group(task)
    if clustering in outcome.errors:
        raise ExportError(f"trial '{params.key}' cannot be recomputed: {outcome.errors[clustering]}")
    return outcome.labels[clustering]


def build_topic_model(
    texts: list[str],
    embeddings: np.ndarray,
    labels: np.ndarray,
    params: TrialParams,
    stopwords_language: str,
    embedding_model: Any = None,
) -> Any:
    """A BERTopic model whose topics are ``labels``: clustering replaced by the given labels."""
    from bertopic.cluster import BaseCluster
    from bertopic.dimensionality import BaseDimensionalityReduction

    model = bertopic_model(
        params,
        umap_model=BaseDimensionalityReduction(),
        hdbscan_model=BaseCluster(),
        stopwords_language=stopwords_language,
        embedding_model=embedding_model,
    )
    model.fit(texts, embeddings, y=np.asarray(labels))
    return model


def _folder_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@dataclasses.dataclass(frozen=True)
class ExportedModel:
    directory: Path
    model_path: Path
    size_bytes: int
    record: dict[str, Any]


def save_export(model: Any, target: Path, serialization: str, pointer: str, record: dict[str, Any]) -> ExportedModel:
    """Save into a temporary sibling of ``target``, then move it into place.

    ``target`` may be new, empty or an earlier export with no file added or changed since; any other
    folder is refused untouched.
    """
    if serialization not in SERIALIZATIONS:
        raise ExportError(f"unknown serialization '{serialization}'; choose one of {', '.join(SERIALIZATIONS)}")
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = staging_folder(target)
    except OSError as exc:
        raise ExportError(f"cannot write the export to '{target.parent}': {exc.strerror or exc}") from None
    try:
        if serialization == "pickle":
            model_path = staging / f"{MODEL_FOLDER}.pickle"
            model.save(str(model_path), serialization="pickle", save_embedding_model=False)
        else:
            model_path = staging / MODEL_FOLDER
            model.save(str(model_path), serialization=serialization, save_ctfidf=True, save_embedding_model=pointer)
        write_json(
            staging / RECORD_FILE, {**record, "serialization": serialization, "embedding_model_pointer": pointer}
        )
        replace_folder(
            staging,
            target,
            "export",
            another_folder="choose another --target-dir (launch config target_dir)",
        )
    except FolderNotOursError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ExportError(f"export target {exc}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    final_model = target / model_path.name
    return ExportedModel(target, final_model, _folder_size(final_model), {**record, "serialization": serialization})


def push_to_hub(folder: Path, repo_id: str, private: bool, token: str | None) -> str:
    """Upload an exported safetensors folder to the Hugging Face Hub; returns the repo URL."""
    if not token:
        raise ExportError("no Hugging Face token: set HF_TOKEN in the environment to push to the Hub")
    if os.environ.get("HF_HUB_OFFLINE") in {"1", "true", "TRUE", "yes"}:
        raise ExportError("HF_HUB_OFFLINE is set: this machine is offline, so nothing can be pushed to the Hub")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id=repo_id, private=private, exist_ok=True)
        # The ownership marker concerns this machine's folder only.
        api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            commit_message="topic_pipeline export",
            ignore_patterns=[OWNERSHIP_MARKER],
        )
    except (HfHubHTTPError, OSError, ValueError) as exc:
        message = str(exc).replace(token, "***").splitlines()[0] if str(exc) else type(exc).__name__
        raise ExportError(f"pushing to the Hub repo '{repo_id}' failed: {message}") from None
    return f"https://huggingface.co/{repo_id}"

"""Exporting a trial as a BERTopic model: every serialisation loads back with BERTopic.load."""

import json
import os

import numpy as np
import pytest

from topic_pipeline.embeddings import EmbeddingCache, EmbeddingSettings, embed_corpus, load_model, resolve_model_location
from topic_pipeline.engine import EmbeddingSource
from topic_pipeline.export import (
    RECORD_FILE,
    ExportError,
    build_topic_model,
    embedding_model_pointer,
    push_to_hub,
    save_export,
    trial_labels,
)
from topic_pipeline.grid import DEFAULT_EMBEDDING_MODEL, ParamGrid
from topic_pipeline.sample_corpus import generate_sample_corpus

pytestmark = pytest.mark.slow


def canonical(labels):
    mapping = {}
    return np.asarray([-1 if label == -1 else mapping.setdefault(label, len(mapping)) for label in np.asarray(labels).tolist()])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    corpus = generate_sample_corpus(n_docs=300, n_topics=4)
    texts = list(corpus.texts)
    params = ParamGrid.from_mapping(
        {"umap_n_neighbors": [15], "hdbscan_min_cluster_size": [15], "n_gram_max": [2], "remove_stopwords": [True]}
    ).trials()[0]
    cache = EmbeddingCache(root / "embeddings")
    outcome = embed_corpus(texts, "c", params.embedding_set, cache, EmbeddingSettings(device="cpu", local_files_only=True))
    source = EmbeddingSource(str(cache.path(outcome.cache_key)), outcome.cache_key, len(texts))
    labels = trial_labels(params, source, texts, 42, root / "cache")
    model = build_topic_model(texts, outcome.embeddings, labels, params, "english")
    return root, texts, params, labels, model


@pytest.mark.parametrize("serialization", ["safetensors", "pytorch", "pickle"])
def test_each_serialisation_loads_with_the_trials_topics(fitted, serialization):
    from bertopic import BERTopic

    root, texts, params, labels, model = fitted
    exported = save_export(model, root / f"out-{serialization}", serialization, DEFAULT_EMBEDDING_MODEL, {"trial_key": params.key})
    record = json.loads((exported.directory / RECORD_FILE).read_text())
    assert record["trial_key"] == params.key and record["serialization"] == serialization
    assert record["embedding_model_pointer"] == DEFAULT_EMBEDDING_MODEL
    assert exported.size_bytes > 0

    embedder = load_model(DEFAULT_EMBEDDING_MODEL, "cpu", local_files_only=True)
    loaded = BERTopic.load(str(exported.model_path), embedding_model=embedder)
    np.testing.assert_array_equal(canonical(loaded.topics_), canonical(labels))
    # Both number topics by decreasing size, so where no two topics are equal in size (as in this
    # fixture) even the topic ids agree, not only the partition.
    sizes = np.bincount(labels[labels >= 0])
    assert len(set(sizes.tolist())) == len(sizes), sizes
    np.testing.assert_array_equal(np.asarray(loaded.topics_), labels)
    assert len(loaded.get_topic_info()) == len(np.unique(labels))
    new_topics, _ = loaded.transform(["Striker scores twice as the derby ends in a draw", "Central bank holds rates"])
    assert len(new_topics) == 2 and all(isinstance(int(t), int) for t in new_topics)
    if serialization == "safetensors":
        files = sorted(p.name for p in exported.model_path.iterdir())
        assert {"config.json", "topics.json", "topic_embeddings.safetensors", "ctfidf.safetensors", "ctfidf_config.json"} <= set(files)
        for path in exported.model_path.rglob("*"):
            if path.is_file():
                head = path.read_bytes()[:2]
                assert not head.startswith(b"\x80"), f"{path.name} looks like a pickle"
                assert path.suffix not in {".pkl", ".pickle", ".bin", ".pt"}
        config = json.loads((exported.model_path / "config.json").read_text())
        assert config["embedding_model"] == DEFAULT_EMBEDDING_MODEL
        ctfidf = json.loads((exported.model_path / "ctfidf_config.json").read_text())
        assert ctfidf["vectorizer_model"]["params"]["ngram_range"] == [1, 2]


def test_pointer_to_the_packaged_model_loads_here():
    # The recorded pointer is the hub name; on this offline machine it resolves to the packaged copy.
    assert resolve_model_location(embedding_model_pointer(DEFAULT_EMBEDDING_MODEL)) != DEFAULT_EMBEDDING_MODEL


def test_a_failed_export_leaves_the_earlier_one_intact(fitted, monkeypatch):
    root, _, params, _, model = fitted
    target = root / "kept"
    first = save_export(model, target, "safetensors", DEFAULT_EMBEDDING_MODEL, {"trial_key": "first"})
    before = sorted(p.relative_to(target) for p in target.rglob("*"))

    def broken_save(*args, **kwargs):
        (root / "kept-partial-marker").write_text("save started")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        save_export(model, target, "safetensors", DEFAULT_EMBEDDING_MODEL, {"trial_key": "second"})
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before
    assert json.loads((first.directory / RECORD_FILE).read_text())["trial_key"] == "first"
    assert not [p for p in root.iterdir() if p.name.startswith(".kept.")]  # no staging folder left behind


def test_unwritable_target_and_unknown_serialisation(fitted):
    root, _, _, _, model = fitted
    blocker = root / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError, match="cannot write the export"):
        save_export(model, blocker / "model", "safetensors", DEFAULT_EMBEDDING_MODEL, {})
    with pytest.raises(ExportError, match="unknown serialization 'onnx'"):
        save_export(model, root / "x", "onnx", DEFAULT_EMBEDDING_MODEL, {})


def test_embedding_model_that_cannot_be_recorded(tmp_path):
    with pytest.raises(ExportError, match="cannot be recorded"):
        embedding_model_pointer("./models/missing-model")
    folder = tmp_path / "my-model"
    folder.mkdir()
    assert embedding_model_pointer(str(folder)) == str(folder.resolve())
    assert embedding_model_pointer("BAAI/bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5"


class _FakeHub:
    """Stands in for the Hugging Face Hub, which cannot be reached from here: only the network boundary is stubbed."""

    def __init__(self, token=None):
        self.token = token
        self.calls = []

    def create_repo(self, repo_id, private, exist_ok):
        _FakeHub.last.calls.append(("create_repo", repo_id, private))

    def upload_folder(self, folder_path, repo_id, commit_message):
        _FakeHub.last.calls.append(("upload_folder", sorted(os.listdir(folder_path)), repo_id))


def test_hub_push_uses_the_token_from_the_environment_and_never_leaks_it(fitted, monkeypatch):
    import huggingface_hub

    root, _, _, _, model = fitted
    exported = save_export(model, root / "to-push", "safetensors", DEFAULT_EMBEDDING_MODEL, {"trial_key": "t"})
    _FakeHub.last = _FakeHub()
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: _FakeHub.last)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert push_to_hub(exported.directory, "org/topics", True, "hf_secret_token") == "https://huggingface.co/org/topics"
    assert _FakeHub.last.calls[0] == ("create_repo", "org/topics", True)
    assert _FakeHub.last.calls[1][1] == ["model", "tuning.json"]

    with pytest.raises(ExportError, match="HF_TOKEN"):
        push_to_hub(exported.directory, "org/topics", True, None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ExportError, match="offline"):
        push_to_hub(exported.directory, "org/topics", True, "hf_secret_token")

"""Exporting a trial as a BERTopic model: every serialisation loads back with BERTopic.load."""

import fnmatch
import json
import os

import numpy as np
import pytest

from topic_pipeline.domain.results import STATUS_OK, TrialResult
from topic_pipeline.domain.trials import DEFAULT_EMBEDDING_MODEL
from topic_pipeline.engine.fast import EmbeddingSource
from topic_pipeline.inputs.demo_corpus import generate_demo_corpus
from topic_pipeline.inputs.embeddings import (
    EmbeddingCache,
    EmbeddingSettings,
    embed_corpus,
    load_model,
    resolve_model_location,
)
from topic_pipeline.inputs.grid import ParamGrid
from topic_pipeline.inputs.ground_truth import GroundTruth
from topic_pipeline.integrations.export import (
    RECORD_FILE,
    ExportError,
    build_topic_model,
    embedding_model_pointer,
    push_to_hub,
    save_export,
    trial_labels,
)
from topic_pipeline.scoring.leaderboard import build_leaderboard
from topic_pipeline.workflow.export import export_warnings

pytestmark = pytest.mark.slow


def canonical(labels):
    mapping = {}
    return np.asarray(
        [-1 if label == -1 else mapping.setdefault(label, len(mapping)) for label in np.asarray(labels).tolist()]
    )


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    corpus = generate_demo_corpus(n_docs=300, n_topics=4)
    texts = list(corpus.texts)
    params = ParamGrid.from_mapping(
        {"umap_n_neighbors": [15], "hdbscan_min_cluster_size": [15], "n_gram_max": [2], "remove_stopwords": [True]}
    ).trials()[0]
    cache = EmbeddingCache(root / "embeddings")
    outcome = embed_corpus(
        texts, "c", params.embedding_set, cache, EmbeddingSettings(device="cpu", local_files_only=True)
    )
    source = EmbeddingSource(str(cache.path(outcome.cache_key)), outcome.cache_key, len(texts))
    labels = trial_labels(params, source, texts, 42, root / "cache")
    model = build_topic_model(texts, outcome.embeddings, labels, params, "english")
    return root, texts, params, labels, model


@pytest.mark.parametrize("serialization", ["safetensors", "pytorch", "pickle"])
def test_each_serialisation_loads_with_the_trials_topics(fitted, serialization):
    from bertopic import BERTopic

    root, texts, params, labels, model = fitted
    exported = save_export(
        model, root / f"out-{serialization}", serialization, DEFAULT_EMBEDDING_MODEL, {"trial_key": params.key}
    )
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
        assert {
            "config.json",
            "topics.json",
            "topic_embeddings.safetensors",
            "ctfidf.safetensors",
            "ctfidf_config.json",
        } <= set(files)
        for path in exported.model_path.rglob("*"):
            if path.is_file():
                head = path.read_bytes()[:2]
                assert not head.startswith(b"\x80"), f"{path.name} looks like a pickle"
                assert path.suffix not in {".pkl", ".pickle", ".bin", ".pt"}
        config = json.loads((exported.model_path / "config.json").read_text())
        assert config["embedding_model"] == DEFAULT_EMBEDDING_MODEL
        ctfidf = json.loads((exported.model_path / "ctfidf_config.json").read_text())
        assert ctfidf["vectorizer_model"]["params"]["ngram_range"] == [1, 2]


def test_an_outlier_reducing_trial_exports_its_reduced_topics(fitted):
    """The export recomputes the trial's labels with its outlier reduction (those of a plain BERTopic fit
    followed by reduce_outliers), and the model's topics are exactly those labels."""
    import dataclasses

    from topic_pipeline.engine.reference import run_reference_trial

    root, texts, params, _, _ = fitted
    cache = EmbeddingCache(root / "embeddings")
    outcome = embed_corpus(
        texts, "c", params.embedding_set, cache, EmbeddingSettings(device="cpu", local_files_only=True)
    )
    source = EmbeddingSource(str(cache.path(outcome.cache_key)), outcome.cache_key, len(texts))
    # The fixture's trial has no outliers; smaller clusters on the same reduction leave some.
    plain = dataclasses.replace(params, hdbscan_min_cluster_size=5, hdbscan_min_samples=5)
    labels = trial_labels(plain, source, texts, 42, root / "cache")
    assert (labels == -1).sum() >= 5
    reducing = dataclasses.replace(plain, outlier_reduction="c-tf-idf", outlier_threshold=0.05)
    reduced = trial_labels(reducing, source, texts, 42, root / "cache")
    assert (reduced == -1).sum() < (labels == -1).sum()
    np.testing.assert_array_equal(
        canonical(reduced), canonical(run_reference_trial(outcome.embeddings, texts, reducing).labels)
    )
    model = build_topic_model(texts, outcome.embeddings, reduced, reducing, "english")
    np.testing.assert_array_equal(canonical(model.topics_), canonical(reduced))


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


def _snapshot(folder):
    """Every path under ``folder`` with its bytes and modification time."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def test_export_replaces_only_an_earlier_export_of_its_own(fitted):
    root, _, _, _, model = fitted
    # A shared folder with a user's files (a home or models folder): refused, nothing in it touched.
    shared = root / "shared-models"
    (shared / "photos").mkdir(parents=True)
    (shared / "notes.txt").write_text("mine")
    (shared / "photos" / "a.jpg").write_bytes(b"\xff\xd8")
    (shared / "tuning.json").write_text('{"not": "an export"}')
    before = _snapshot(shared)
    with pytest.raises(
        ExportError, match="is not empty and is not an earlier export of topic_pipeline.*nothing in it was touched"
    ):
        save_export(model, shared, "safetensors", DEFAULT_EMBEDDING_MODEL, {"trial_key": "t"})
    assert _snapshot(shared) == before
    assert not [p for p in root.iterdir() if p.name.startswith(".shared-models.")]  # no staging folder left

    # An empty folder is taken; a second export replaces the first.
    target = root / "empty-then-replaced"
    target.mkdir()
    save_export(model, target, "safetensors", DEFAULT_EMBEDDING_MODEL, {"trial_key": "first"})
    save_export(model, target, "pytorch", DEFAULT_EMBEDDING_MODEL, {"trial_key": "second"})
    assert json.loads((target / RECORD_FILE).read_text())["trial_key"] == "second"
    assert not [p for p in root.iterdir() if p.name.startswith(".empty-then-replaced.")]

    # An earlier export that someone added a file to is not ours alone any more.
    (target / "model" / "my-notes.md").write_text("added by hand")
    before = _snapshot(target)
    with pytest.raises(ExportError, match="files were added since"):
        save_export(model, target, "safetensors", DEFAULT_EMBEDDING_MODEL, {"trial_key": "third"})
    assert _snapshot(target) == before

    # A file where the folder should be.
    a_file = root / "a-plain-file"
    a_file.write_text("keep me")
    with pytest.raises(ExportError, match="exists and is not a folder"):
        save_export(model, a_file, "safetensors", DEFAULT_EMBEDDING_MODEL, {"trial_key": "t"})
    assert a_file.read_text() == "keep me"


def test_an_export_whose_files_were_edited_is_refused_and_the_edits_kept(fitted):
    """A file the export wrote and the user changed since is treated as the user's: the next export into the
    folder is refused, naming it, and changes nothing; an unchanged folder is re-exported as before."""
    root, _, _, _, model = fitted
    target = root / "edited"
    save_export(model, target, "safetensors", DEFAULT_EMBEDDING_MODEL, {"trial_key": "first"})
    save_export(model, target, "safetensors", DEFAULT_EMBEDDING_MODEL, {"trial_key": "second"})  # unchanged: replaced
    assert json.loads((target / RECORD_FILE).read_text())["trial_key"] == "second"

    edited = b'{\n  "trial_key": "second",\n  "note": "my own comments, keep them"\n}\n'
    (target / RECORD_FILE).write_bytes(edited)
    before = _snapshot(target)
    with pytest.raises(ExportError) as refused:
        save_export(model, target, "pytorch", DEFAULT_EMBEDDING_MODEL, {"trial_key": "third"})
    message = str(refused.value)
    assert message == (
        f"export target '{target}' holds a file changed since topic_pipeline's export wrote it: tuning.json; nothing in "
        "it was touched: choose another --target-dir (launch config target_dir), or remove the changed file yourself"
    )
    assert "\n" not in message
    assert (target / RECORD_FILE).read_bytes() == edited  # byte for byte
    assert _snapshot(target) == before
    assert not [p for p in root.iterdir() if p.name.startswith(".edited.")]  # no staging folder left

    # Two edited files, one inside the model folder: both named.
    config = target / "model" / "config.json"
    config.write_bytes(config.read_bytes().replace(b"{", b"{ ", 1))
    with pytest.raises(
        ExportError,
        match=r"holds 2 files changed since topic_pipeline's export wrote them: "
        r"model/config\.json, tuning\.json; .*remove the changed files yourself",
    ):
        save_export(model, target, "pytorch", DEFAULT_EMBEDDING_MODEL, {"trial_key": "third"})
    assert (target / RECORD_FILE).read_bytes() == edited

    # Once the user has moved the edited files away, the folder holds only what the export wrote: replaced.
    (target / RECORD_FILE).rename(root / "my-tuning.json")
    config.unlink()
    save_export(model, target, "safetensors", DEFAULT_EMBEDDING_MODEL, {"trial_key": "third"})
    assert json.loads((target / RECORD_FILE).read_text())["trial_key"] == "third"
    assert (root / "my-tuning.json").read_bytes() == edited


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

    def upload_folder(self, folder_path, repo_id, commit_message, ignore_patterns=()):
        uploaded = sorted(
            name for name in os.listdir(folder_path) if not any(fnmatch.fnmatch(name, p) for p in ignore_patterns)
        )
        _FakeHub.last.calls.append(("upload_folder", uploaded, repo_id))


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


# --- degenerate trials: refused by default, recorded when named ----------------------------------


def _scored(params, **metrics):
    values = {
        "ari": 0.5,
        "ami": 0.5,
        "nmi": 0.5,
        "outlier_fraction": 0.1,
        "topic_count": 4.0,
        "labelled_documents": 6.0,
    }
    return TrialResult(params.key, params.to_dict(), "f" * 16, STATUS_OK, metrics=values | metrics, finished_at=1.0)


def test_a_trial_without_topics_is_refused_unless_named_and_an_unrankable_sample_is_recorded():
    trials = ParamGrid.from_mapping({"hdbscan_min_cluster_size": [5, 50]}).trials()
    empty, sound = _scored(trials[1], ari=0.9, topic_count=0.0, outlier_fraction=1.0), _scored(trials[0], ari=0.4)
    board = build_leaderboard({t.key: t.to_dict() for t in trials}, {empty.key: empty, sound.key: sound})
    assert board["trial"].iloc[0] == empty.key
    paired = GroundTruth.from_mapping({"a": [1, 2], "b": [3, 4]})
    where = "ground truth file 'labels.json'"

    # Taken by default as the leaderboard's first: refused, with the way to override it.
    with pytest.raises(ExportError) as info:
        export_warnings(empty.key, empty.metrics, board, "ari", paired, named=False, where=where)
    message = str(info.value)
    assert message.startswith(f"trial '{empty.key}' is the leaderboard's first but found no topic")
    assert f"is '{sound.key}' (rank 2)" in message
    assert message.endswith(f"name it: topic-pipeline export --trial {empty.key} (launch config trial_key)")

    # Named: exported, with the warning to record.
    (warning,) = export_warnings(empty.key, empty.metrics, board, "ari", paired, named=True, where=where)
    assert warning.startswith(f"trial '{empty.key}' found no topic")
    # A sound trial on a sample that can rank: nothing to record, named or not.
    assert export_warnings(sound.key, sound.metrics, board, "ari", paired, named=True, where=where) == []

    # One document per class: exported either way, the warning recorded and naming the exported trial.
    board = build_leaderboard({t.key: t.to_dict() for t in trials}, {sound.key: sound})
    singletons = GroundTruth.from_mapping({"a": [1], "b": [2]})
    (warning,) = export_warnings(sound.key, sound.metrics, board, "ari", singletons, named=False, where=where)
    assert warning.startswith(f"{where} cannot rank trials: each of its 2 classes holds one document")
    assert f"trial '{sound.key}'" in warning

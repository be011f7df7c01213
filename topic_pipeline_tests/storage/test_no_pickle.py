"""No pickle is ever loaded from a cache, a result, an asset value or a user file.

Pickle runs code: a payload placed in any store the pipeline reads must never run. The export's
``pickle`` and ``pytorch`` formats write pickles only when asked, and the project never loads them.
"""

import ast
import pickle
from pathlib import Path

import numpy as np
import pytest

import topic_pipeline
from topic_pipeline.errors import GridError, GroundTruthError
from topic_pipeline.inputs.embeddings import EmbeddingCache
from topic_pipeline.inputs.grid import ParamGrid
from topic_pipeline.inputs.ground_truth import GroundTruth
from topic_pipeline.storage.array_cache import ArrayCache
from topic_pipeline.storage.files import read_array
from topic_pipeline.storage.results import ResultStore

PICKLE_LOADERS = {
    ("pickle", "load"),
    ("pickle", "loads"),
    ("torch", "load"),
    ("joblib", "load"),
    ("cloudpickle", "load"),
    ("cloudpickle", "loads"),
    ("dill", "load"),
    ("dill", "loads"),
    ("pd", "read_pickle"),
    ("pandas", "read_pickle"),
}


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
        ):
            yield node, (node.func.value.id, node.func.attr)


def test_the_library_calls_no_pickle_loader_and_every_numpy_load_refuses_pickles():
    offences = []
    for path in Path(topic_pipeline.__file__).parent.rglob("*.py"):
        for node, name in _calls(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.name}:{node.lineno}"
            if name in PICKLE_LOADERS:
                offences.append(f"{where} calls {'.'.join(name)}")
            if name in {("np", "load"), ("numpy", "load")}:
                keywords = {keyword.arg: keyword.value for keyword in node.keywords}
                refused = keywords.get("allow_pickle")
                if not (isinstance(refused, ast.Constant) and refused.value is False):
                    offences.append(f"{where} calls np.load without allow_pickle=False")
    assert offences == []


class _Payload:
    """Unpickling this creates ``marker``: the proof that a pickle was loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_payloads_planted_in_every_store_never_run(tmp_path):
    marker = tmp_path / "pickle-was-loaded"
    payload = np.array([_Payload(marker)], dtype=object)

    embeddings = EmbeddingCache(tmp_path / "embeddings")
    embeddings.directory.mkdir()
    np.save(embeddings.path("entry"), payload, allow_pickle=True)
    assert embeddings.load("entry", 1) is None
    with pytest.raises(ValueError, match="allow_pickle=False"):
        read_array(embeddings.path("entry"))

    arrays = ArrayCache(tmp_path / "cache")
    arrays.directory.mkdir()
    np.savez(arrays.path("entry"), reduction=payload)
    assert arrays.load("entry") is None

    results = ResultStore(tmp_path / "results")
    results.directory.mkdir()
    results.path("trial").write_bytes(pickle.dumps({"key": "trial", "status": "ok", "payload": _Payload(marker)}))
    assert results.load("trial") is None
    np.save(results.labels_path("trial"), payload, allow_pickle=True)
    assert results.labels("trial", 1) is None

    user_file = tmp_path / "labels.json"
    user_file.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(GroundTruthError):
        GroundTruth.from_file(user_file)
    with pytest.raises(GridError):
        ParamGrid.from_file(user_file)

    assert not marker.exists()

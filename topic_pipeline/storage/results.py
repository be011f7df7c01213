"""Per-trial result rows, one small JSON file per trial key, and each scored trial's topic labels.

Trials write here and the leaderboard reads here, so no downstream step ever loads every trial's
output through an IO manager. A row carries the fingerprint of the inputs it was computed from; a
row with another fingerprint is stale (the corpus, labels or settings changed) and counts as missing.
A trial's labels (one topic per document, ``.npy``) are written before its row, so a current row's
labels are those of the same computation; the leaderboard summarises its leaders' topics from them.
A scored row whose labels file is damaged (cut short, garbled: ``files.read_array`` checks its checksum)
is not current either: the trial counts as not run, so the sweep reruns it and rewrites both. A row
without a labels file stays current: only a labels file that is there and damaged counts against it.

A trial's row is one file named by its key, replaced whole by a rename: a trial stored twice (two workers
sharing the data directory, a retry beside an attempt thought dead) is still one row, the last stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from topic_pipeline.domain.results import STATUS_OK, TrialResult
from topic_pipeline.storage.files import json_bytes, read_array, read_json, save_array
from topic_pipeline.storage.store import FileStore


def _read_result(path: Path) -> TrialResult:
    raw = read_json(path)
    # Valid JSON that is not an object (e.g. "[]") cannot be a result either.
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    return TrialResult.from_dict(raw)


def _write_result(stream: BinaryIO, result: TrialResult) -> None:
    stream.write(json_bytes(result.to_dict()))


class ResultStore:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._rows = FileStore(
            self.directory, ".json", _read_result, _write_result, "trial result", "the trial counts as not run"
        )
        self._labels = FileStore(
            self.directory,
            ".labels.npy",
            read_array,
            save_array,
            "trial labels",
            "the trial counts as not run (its topics are not shown until it is rerun)",
        )

    def path(self, key: str) -> Path:
        return self._rows.path(key)

    def labels_path(self, key: str) -> Path:
        return self._labels.path(key)

    def save(self, result: TrialResult, labels: np.ndarray | None = None) -> None:
        if labels is not None:
            self._labels.save(result.key, np.asarray(labels, dtype=np.int32))
        self._rows.save(result.key, result)

    def labels(self, key: str, n_documents: int) -> np.ndarray | None:
        """The topic of each document for this trial's stored result, or None if absent or not this corpus's."""

        def problem(labels: np.ndarray) -> str | None:
            if labels.shape == (n_documents,) and labels.dtype == np.int32:
                return None
            return f"has shape {labels.shape} and dtype {labels.dtype}, expected ({n_documents},) int32"

        return self._labels.load(key, problem, if_rejected="that trial's topics are not shown")

    def load(self, key: str) -> TrialResult | None:
        return self._rows.load(key)

    def current(self, key: str, fingerprint: str, params: dict[str, Any]) -> TrialResult | None:
        """The stored result if it was computed from these inputs and exactly these parameters, and, for a
        scored trial, its labels file is not damaged (a damaged one is logged; the trial counts as not run).

        Parameters are compared, not only the key: two models may share a short name.
        """
        result = self.load(key)
        if result is None or result.fingerprint != fingerprint or result.params != dict(params):
            return None
        if result.status == STATUS_OK and self._labels.damaged(key):
            return None
        return result

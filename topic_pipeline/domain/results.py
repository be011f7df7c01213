"""A trial's result as every part of the package speaks of it: ``TrialResult``, its status, and the
fingerprint of the inputs it was computed from (a row with another fingerprint is stale)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from topic_pipeline.domain.versions import TRIAL_LIBRARIES, cache_key

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_MISSING = "missing"


def inputs_fingerprint(
    corpus_hash: str,
    ground_truth_hash: str,
    seed: int,
    stopwords_language: str,
    *,
    holdout_fraction: float,
    holdout_seed: int,
) -> str:
    """What every trial result depends on besides its own parameters, library versions included
    (upgrading one of ``TRIAL_LIBRARIES`` reruns the grid rather than mixing old and new results).
    The held-out split (``scoring.holdout``) decides which labelled documents each metric covers; without
    one (fraction 0) every metric covers all of them, and the split adds nothing to the fingerprint."""
    identity = {"corpus": corpus_hash, "ground_truth": ground_truth_hash, "seed": seed, "stopwords": stopwords_language}
    if holdout_fraction:
        identity["holdout"] = [float(holdout_fraction), int(holdout_seed)]
    return cache_key("inputs", identity, TRIAL_LIBRARIES)


def results_digest(grid_fingerprint: str, fingerprint: str, results: dict[str, TrialResult | None]) -> str:
    """Identifies one state of a grid's results: the leaderboard is current while this is unchanged."""
    state = sorted((key, result.finished_at if result else None) for key, result in results.items())
    return hashlib.sha256(json.dumps([grid_fingerprint, fingerprint, state]).encode()).hexdigest()[:16]


@dataclasses.dataclass
class TrialResult:
    key: str
    params: dict[str, Any]
    fingerprint: str
    status: str
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    error: str | None = None
    duration_s: float = 0.0
    finished_at: float = 0.0
    tags: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrialResult:
        fields = {field.name for field in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in values.items() if name in fields})

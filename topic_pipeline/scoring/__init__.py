"""How a trial's labels compare with the labelled sample: metrics, held-out split, leaderboard, confidence, topic words."""

from __future__ import annotations

import importlib
from typing import Any

# Each public name, by the module that defines it. A name is imported from its module on first use, so
# importing one module of the folder does not import the others (a worker that builds a BERTopic model needs the vectorizer rule, not the leaderboard).
_EXPORTS: dict[str, tuple[str, ...]] = {
    "metrics": ("METRIC_NAMES", "REPORTED_NAMES", "score"),
    "holdout": ("DEFAULT_HOLDOUT_FRACTION", "DEFAULT_HOLDOUT_SEED", "HoldoutSplit", "score_parts", "split_labels"),
    "leaderboard": (
        "best_sound_trial", "build_leaderboard", "has_no_topic", "leaderboard_warnings", "read_leaderboard_trust",
        "read_leaderboard_warnings", "sample_warnings", "stability_markdown", "to_markdown", "trial_outcomes",
        "trial_problem", "write_leaderboard_warnings",
    ),
    "confidence": ("add_intervals", "exported_trust", "trust_lines", "trust_markdown", "trust_summary"),
    "topic_words": (
        "TOP_WORDS", "TopicSummariser", "TopicSummary", "count_vectorizer", "leader_topics", "topics_markdown",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [name for names in _EXPORTS.values() for name in names]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

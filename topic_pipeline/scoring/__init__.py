"""How a trial's labels compare with the labelled sample: metrics, held-out split, leaderboard, confidence,
parameter importance, topic words."""

from __future__ import annotations

from topic_pipeline.lazy_exports import lazy_exports

# Each public name, by the module that defines it. A name is imported from its module on first use, so
# importing one module of the folder does not import the others (a worker that builds a BERTopic model needs the vectorizer rule, not the leaderboard).
_EXPORTS: dict[str, tuple[str, ...]] = {
    "metrics": ("METRIC_NAMES", "REPORTED_NAMES", "score"),
    "holdout": (
        "DEFAULT_HOLDOUT_FRACTION",
        "DEFAULT_HOLDOUT_SEED",
        "HoldoutSplit",
        "score_order",
        "score_parts",
        "split_labels",
    ),
    "leaderboard": (
        "best_sound_trial",
        "build_leaderboard",
        "configurations",
        "has_no_topic",
        "leaderboard_warnings",
        "read_leaderboard_trust",
        "read_leaderboard_warnings",
        "sample_warnings",
        "to_markdown",
        "trial_outcomes",
        "trial_problem",
        "write_leaderboard_warnings",
    ),
    "confidence": ("add_intervals", "exported_trust", "trust_lines", "trust_markdown", "trust_summary", "verdict_line"),
    "importance": ("ParameterImportance", "parameter_importance"),
    "topic_words": (
        "TOP_WORDS",
        "TopicSummariser",
        "TopicSummary",
        "count_vectorizer",
        "leader_topics",
        "topics_markdown",
    ),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

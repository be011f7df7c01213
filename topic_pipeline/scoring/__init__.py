"""How a trial's labels compare with the labelled sample: ``metrics``, the ``leaderboard`` that ranks trials,
and the ``topic_words`` shown beside them.

May import: ``inputs``, ``storage``, ``errors``. Never Dagster, never the engine.
"""

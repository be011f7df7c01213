"""How a trial's labels compare with the labelled sample: ``metrics``, the ``leaderboard`` that ranks trials,
and the ``topic_words`` shown beside them (with the vectorizer rule every BERTopic model takes).

May import: ``inputs``, ``storage``, ``errors``. Never Dagster, never the engine, never BERTopic itself
(its import would cost the leaderboard step more than the words).
"""

"""A good configuration without a hand-written grid: ``coarse_to_fine`` proposes rounds of trials from the
scores of the last.

May import: ``inputs``, ``scoring``, ``storage``, ``errors``. Never Dagster.
"""

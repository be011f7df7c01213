"""Data stored under an earlier layout, carried over to the current one when it is next used.

Trial keys changed form once: the first form put the embedding set first and every value after it
(``TrialParams.legacy_key``); the current one puts the UMAP values first and the HDBSCAN values last
(``TrialParams.key``), because the Dagster UI shortens long keys in the middle. A key names a trial's
result row, labels, parameters file and partition, so a grid or search registered under the first form
is carried over here, without rerunning a trial:

* a result stored only under a trial's legacy key is copied to its current key (the row, with its
  ``key`` field updated, and its labels). The legacy files stay where they were: the history of the old
  partitions, and any older installation reading the same data directory, still find them;
* a search state's trials and rounds are renamed when it is read (``search.coarse_to_fine``);
* a legacy key given by a user (an export's ``trial_key``) resolves through its registered parameters
  (``DataPaths.current_key``);
* the Dagster layer records the new partitions of carried-over results as materialised (``defs.planning``).
"""

from __future__ import annotations

from collections.abc import Iterable

from topic_pipeline.domain.trials import TrialParams
from topic_pipeline.storage.results import ResultStore

# On a copied result row: the key it was stored under.
CARRIED_OVER_FROM_TAG = "carried_over_from"


def carry_over_legacy_results(store: ResultStore, trials: Iterable[TrialParams]) -> dict[str, str]:
    """Copy each trial's result stored only under its legacy key; returns {legacy key: current key} of those copied.

    Runs whenever a grid is registered: a file-existence check or two per trial, little beside the manifest's
    own writes."""
    carried: dict[str, str] = {}
    for trial in trials:
        legacy = trial.legacy_key
        # The two forms never coincide (a current key's first part holds '_', a model's short name never does).
        if store.path(trial.key).exists() or not store.path(legacy).exists():
            continue
        if store.copy(legacy, trial.key, {CARRIED_OVER_FROM_TAG: legacy}):
            carried[legacy] = trial.key
    return carried


def current_keys(trials: Iterable[dict]) -> dict[str, str]:
    """{key in either form: current key} for stored trial parameters."""
    renamed: dict[str, str] = {}
    for values in trials:
        params = TrialParams.from_dict(values)
        renamed[params.legacy_key] = renamed[params.key] = params.key
    return renamed


def carried_over_message(carried: dict[str, str]) -> str:
    legacy, current = next(iter(carried.items()))
    return (
        f"{len(carried)} trial result(s) stored under the first form of trial keys were carried over to the "
        f"current keys, without a rerun (e.g. {legacy} is now {current}); the old partitions keep their history"
    )

"""The labelled sample split into a selection part and a held-out part, and each trial scored on both.

A search scores many configurations against the same labels and keeps the best: that best is
optimistic by construction (it was chosen because it scored high on these labels). Labels that no
decision ever reads give an estimate free of that selection. The split is stratified by class and
seeded, so it is the same for every trial of a sweep and for a rerun; its fraction and seed are part
of the inputs fingerprint (``domain.results.inputs_fingerprint``).

Metric names: the plain names (``ari``, ...) are the selection part, the only part ranking and the
search read; ``heldout_<name>`` the held-out part; ``all_<name>`` every labelled document. Without a
split the plain names cover every labelled document and no prefixed metric is recorded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from topic_pipeline.inputs.ground_truth import GroundTruth
from topic_pipeline.scoring.metrics import REPORTED_NAMES, score

DEFAULT_HOLDOUT_FRACTION = 0.3
DEFAULT_HOLDOUT_SEED = 42
# Fewer labelled documents of a class than this on either side make that side's score mostly noise.
MIN_PER_CLASS_AND_SIDE = 10

HELDOUT_PREFIX = "heldout_"
ALL_PREFIX = "all_"
# Corpus-wide, the same on every part: recorded once, unprefixed.
_SHARED_METRICS = ("topic_count",)


@dataclasses.dataclass(frozen=True)
class HoldoutSplit:
    """Which labelled text ids are held out. Empty when there is no split; ``warning`` then says why,
    unless no split was asked for (fraction 0)."""

    fraction: float
    seed: int
    heldout_ids: frozenset[int]
    selection_count: int
    warning: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.heldout_ids)

    def mask(self, text_ids: np.ndarray) -> np.ndarray | None:
        """True for each of ``text_ids`` that is held out; None without a split."""
        if not self.active:
            return None
        return np.isin(np.asarray(text_ids, dtype=np.int64), np.fromiter(self.heldout_ids, dtype=np.int64))

    def describe(self) -> str:
        if not self.active:
            return f"all {self.selection_count} labelled documents used for selection, none held out"
        return (
            f"{self.selection_count} labelled documents used for selection, {len(self.heldout_ids)} held out "
            f"({self.fraction:.0%} per class, seed {self.seed})"
        )


def check_fraction(fraction: float) -> float:
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the held-out fraction must be at least 0 and below 1, got {fraction}")
    return float(fraction)


def _heldout_count(class_size: int, fraction: float) -> int:
    return int(np.floor(fraction * class_size + 0.5))


def class_splits(class_size: int, fraction: float) -> bool:
    """Whether a class of this size keeps ``MIN_PER_CLASS_AND_SIDE`` documents on each side of the split."""
    count = _heldout_count(class_size, fraction)
    return min(count, class_size - count) >= MIN_PER_CLASS_AND_SIDE


def smallest_class_that_splits(fraction: float) -> int:
    size = 2 * MIN_PER_CLASS_AND_SIDE
    while not class_splits(size, fraction):
        size += 1
    return size


def split_labels(
    labels: GroundTruth, fraction: float = DEFAULT_HOLDOUT_FRACTION, seed: int = DEFAULT_HOLDOUT_SEED
) -> HoldoutSplit:
    """Hold out ``fraction`` of each class's labelled documents (rounded), chosen at random with ``seed``.

    The same labels, fraction and seed always give the same split. A class that would keep fewer than
    ``MIN_PER_CLASS_AND_SIDE`` documents on either side means no split at all (a held-out part missing
    a class would measure another clustering problem), with a warning saying what to do.
    """
    fraction = check_fraction(fraction)
    total = len(labels.cluster_of)
    if fraction == 0.0:
        return HoldoutSplit(fraction, seed, frozenset(), total)
    rng = np.random.default_rng(seed)
    heldout: list[int] = []
    too_small: list[tuple[str, int]] = []
    for cluster, ids in labels.to_mapping().items():  # classes and ids sorted: the order is part of the seed's meaning
        count = _heldout_count(len(ids), fraction)
        if not class_splits(len(ids), fraction):
            too_small.append((cluster, len(ids)))
        chosen = rng.permutation(len(ids))[:count]
        heldout.extend(ids[i] for i in chosen)
    if too_small:
        smallest = min(too_small, key=lambda item: item[1])
        needed = smallest_class_that_splits(fraction)
        warning = (
            f"no labelled documents held out: {len(too_small)} of {labels.n_clusters} classes are too small to keep "
            f"{MIN_PER_CLASS_AND_SIDE} documents on each side of a {fraction:.0%} held-out split (class "
            f"'{smallest[0]}' has {smallest[1]}), so every score, the leader's included, is measured on the labels "
            f"that chose it and is optimistic. Label at least {needed} documents per class to get an estimate free of "
            f"that selection"
        )
        return HoldoutSplit(fraction, seed, frozenset(), total, warning)
    return HoldoutSplit(fraction, seed, frozenset(heldout), total - len(heldout))


def prefixed(prefix: str, metrics: Mapping[str, float]) -> dict[str, float]:
    return {f"{prefix}{name}": value for name, value in metrics.items() if name not in _SHARED_METRICS}


def score_parts(
    classes: np.ndarray, predicted: np.ndarray, heldout: np.ndarray | None, topic_count: int
) -> dict[str, float]:
    """A trial's metrics on the selection part (plain names), the held-out part (``heldout_``) and all
    labelled documents (``all_``), from one labels array: ``classes`` and ``predicted`` per labelled
    document, ``heldout`` a mask over them (None: no split)."""
    if heldout is None or not heldout.any():
        return score(classes, predicted, topic_count=topic_count)
    selection = ~heldout
    return {
        **score(classes[selection], predicted[selection], topic_count=topic_count),
        **prefixed(HELDOUT_PREFIX, score(classes[heldout], predicted[heldout], topic_count=topic_count)),
        **prefixed(ALL_PREFIX, score(classes, predicted, topic_count=topic_count)),
    }


def part_names(prefix: str) -> tuple[str, ...]:
    """The metric names recorded for one part (``HELDOUT_PREFIX`` or ``ALL_PREFIX``)."""
    return tuple(f"{prefix}{name}" for name in REPORTED_NAMES if name not in _SHARED_METRICS)


def score_order(name: str) -> tuple[int, int, str]:
    """Where a trial's metric goes wherever its scores are listed: the selection part's (what ranking reads) in
    the metrics' order (``ari`` first), then the held-out part's, then all labelled documents'."""
    family = 1 if name.startswith(HELDOUT_PREFIX) else 2 if name.startswith(ALL_PREFIX) else 0
    base = name.removeprefix(HELDOUT_PREFIX) if family == 1 else name.removeprefix(ALL_PREFIX)
    return family, REPORTED_NAMES.index(base) if base in REPORTED_NAMES else len(REPORTED_NAMES), base

"""Which reduction each worker computes next, so that the workers finish together.

A sweep's time is mostly its UMAP layouts: a few dozen tasks of seconds each, one at a time per worker.
Handed out largest first, the last layout often runs alone while the other workers wait: with 15
layouts of about 5 s on two workers, that is one layout's time with a core idle. ``LayoutQueue`` hands
out one task at a time, as a worker frees up, and each time splits what is left between the free
worker and the busy ones (each counted from when its running task should end) so that they end
together; the free worker takes the largest task of its share.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

# The work of one edge sample that does not grow with n_components (the power functions, the random
# negative samples), in units of the work per component. Measured on 5,000 documents: a layout took
# about 10% longer with 11 components than with 7, at every n_neighbors.
PER_SAMPLE_WORK = 33.0

# Re-planning moves and swaps tasks between workers only when so few are left; with more, largest
# first is close to balanced, and the end of the sweep is re-planned anyway.
REFINED_BELOW = 64

Job = TypeVar("Job", bound=Hashable)


def layout_cost(n_documents: int, n_neighbors: int, n_components: int) -> float:
    """A UMAP layout's work in arbitrary units (``LayoutQueue`` learns their worth in seconds).

    The layout samples each edge of the fuzzy graph in proportion to its weight, every epoch. A point's
    weights sum to log2(n_neighbors) (UMAP calibrates them so), so a layout draws about
    epochs * n_documents * log2(n_neighbors) samples, each costing a fixed part plus a part per component.
    """
    epochs = 500 if n_documents <= 10_000 else 200  # UMAP's default n_epochs
    return epochs * n_documents * math.log2(max(2, n_neighbors)) * (PER_SAMPLE_WORK + n_components)


def balanced_lanes(costs: Mapping[Job, float], offsets: Sequence[float]) -> list[list[Job]]:
    """The jobs split into one lane per offset (lane i starts after offsets[i]), so that the last lane
    ends as early as possible: largest first onto the lane that ends first; then, for a few jobs, moves
    and swaps of single jobs while they shorten the longest lane, and the fullest lanes given to the
    earliest starts (moves and swaps alone cannot reach that: it may exchange whole lanes)."""
    lanes: list[list[Job]] = [[] for _ in offsets]
    loads = [float(offset) for offset in offsets]
    for job in sorted(costs, key=costs.__getitem__, reverse=True):
        lane = min(range(len(loads)), key=loads.__getitem__)
        lanes[lane].append(job)
        loads[lane] += costs[job]
    if len(costs) >= REFINED_BELOW:
        return lanes
    for _ in range(2):
        _even_out(lanes, loads, costs)
        work = sorted((sum(costs[job] for job in lane), index) for index, lane in enumerate(lanes))
        starts = sorted(range(len(offsets)), key=offsets.__getitem__)
        paired = [[] for _ in offsets]
        for (_, index), start in zip(reversed(work), starts):
            paired[start] = lanes[index]
        lanes[:] = paired
        loads[:] = [offset + sum(costs[job] for job in lane) for offset, lane in zip(offsets, lanes)]
    return lanes


def _even_out(lanes: list[list[Job]], loads: list[float], costs: Mapping[Job, float]) -> None:
    """Moves and swaps single jobs out of the longest lane while that shortens it (in place)."""
    for _ in range(4 * len(costs)):
        longest = max(range(len(loads)), key=loads.__getitem__)
        best: tuple[float, int, Job, Job | None] | None = None
        for other in range(len(loads)):
            gap = loads[longest] - loads[other]
            if other == longest or gap <= 0:
                continue
            # Moving work d from the longest lane to another shortens it if 0 < d < gap; d = gap / 2 evens them.
            for job in lanes[longest]:
                candidates = [(costs[job], None)] + [(costs[job] - costs[swap], swap) for swap in lanes[other]]
                for moved, swap in candidates:
                    if 0 < moved < gap and (best is None or abs(gap - 2 * moved) < best[0]):
                        best = (abs(gap - 2 * moved), other, job, swap)
        if best is None:
            return
        _, other, job, swap = best
        lanes[longest].remove(job)
        lanes[other].append(job)
        loads[longest] -= costs[job]
        loads[other] += costs[job]
        if swap is not None:
            lanes[other].remove(swap)
            lanes[longest].append(swap)
            loads[other] -= costs[swap]
            loads[longest] += costs[swap]


class LayoutQueue:
    """Hands out jobs one at a time, each to one of ``workers`` that has just freed up.

    Costs are in any unit (``layout_cost``); the seconds per unit are learnt from the jobs that finish,
    to tell how much of each running job is left. A job of cost 0 (a reduction already cached) only
    clusters: it goes to whichever worker asks once nothing larger is left for it.
    """

    def __init__(self, costs: Mapping[Job, float], workers: int):
        self.costs = dict(costs)
        self.workers = workers
        self._waiting = dict(costs)
        self._running: dict[Job, float] = {}  # job -> when it was handed out
        self._seconds = 0.0
        self._units = 0.0

    def __len__(self) -> int:
        return len(self._waiting)

    def _left_of(self, job: Job, now: float) -> float:
        if self._units <= 0:
            return self.costs[job]  # nothing measured yet: as if it had just started
        return max(0.0, self.costs[job] - (now - self._running[job]) * self._units / self._seconds)

    def take(self, now: float) -> Job | None:
        """The next job for a worker that is free at ``now`` (None once all are handed out)."""
        if not self._waiting:
            return None
        offsets = [0.0] + [self._left_of(job, now) for job in self._running]
        offsets += [0.0] * (self.workers - len(offsets))  # workers yet to ask for their first job
        mine = balanced_lanes(self._waiting, offsets)[0]
        if mine:
            job = max(mine, key=self._waiting.__getitem__)
        else:  # the others end before any job would on this worker: the smallest, not idleness
            job = min(self._waiting, key=self._waiting.__getitem__)
        del self._waiting[job]
        self._running[job] = now
        return job

    def finished(self, job: Job, seconds: float) -> None:
        """``job`` is done, after ``seconds`` of work (as the worker measured it)."""
        del self._running[job]
        if self.costs[job] > 0 and seconds > 0:
            self._seconds += seconds
            self._units += self.costs[job]

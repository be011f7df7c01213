"""The work queue that decides which UMAP layout each worker computes next (engine/work_queue.py)."""

import random

import pytest

from topic_pipeline.engine.work_queue import LayoutQueue, balanced_lanes, layout_cost

ISSUE_GROUPS = [(nn, nc) for nn in (12, 14, 16) for nc in (7, 8, 9, 10, 11)]


def test_layout_cost_grows_with_neighbours_components_and_documents():
    assert layout_cost(5000, 16, 9) > layout_cost(5000, 12, 9) > layout_cost(5000, 12, 7) > 0
    assert layout_cost(6000, 12, 7) > layout_cost(5000, 12, 7)
    # UMAP's default drops from 500 epochs to 200 above 10,000 documents.
    assert layout_cost(10_001, 12, 7) < layout_cost(10_000, 12, 7)


def test_balanced_lanes_split_the_issue_grid_evenly():
    costs = {group: layout_cost(5000, *group) for group in ISSUE_GROUPS}
    lanes = balanced_lanes(costs, [0.0, 0.0])
    assert sorted(job for lane in lanes for job in lane) == sorted(costs)
    loads = [sum(costs[job] for job in lane) for lane in lanes]
    # Largest first ends with one layout alone (8 against 7): the lanes differ by about the smallest.
    # The best split here puts the 7 largest against the 8 smallest, a third of the smallest apart.
    assert abs(loads[0] - loads[1]) < 0.4 * min(costs.values())


def test_balanced_lanes_count_each_lanes_start():
    costs = {job: 1.0 for job in range(6)}
    lanes = balanced_lanes(costs, [4.0, 0.0])
    assert [len(lane) for lane in lanes] == [1, 5]


def simulate(queue: LayoutQueue, durations: dict, workers: int) -> float:
    """Workers free up in time order; each asks the queue for its next job. Returns when the last ends."""
    ends = [0.0] * workers
    jobs = [queue.take(0.0) for _ in range(workers)]
    for worker, job in enumerate(jobs):
        if job is not None:
            ends[worker] = durations[job]
    while any(job is not None for job in jobs):
        worker = min((w for w in range(workers) if jobs[w] is not None), key=ends.__getitem__)
        queue.finished(jobs[worker], durations[jobs[worker]])
        jobs[worker] = queue.take(ends[worker])
        if jobs[worker] is not None:
            ends[worker] += durations[jobs[worker]]
    return max(ends)


class LargestFirst(LayoutQueue):
    """What the engine did before: the largest job left, whatever the others are doing."""

    def take(self, now):
        if not self._waiting:
            return None
        job = max(self._waiting, key=self._waiting.__getitem__)
        del self._waiting[job]
        self._running[job] = now
        return job


@pytest.mark.parametrize("workers", [2, 3])
def test_the_queue_has_the_workers_finish_together(workers):
    """Costs known only roughly (each layout's real time off by up to 5%), the queue still ends close to
    the ideal (all work spread evenly). On two workers, largest first leaves a layout running alone
    (15 layouts: 8 against 7); on three, it splits them 5, 5, 5 and does about as well."""
    costs = {group: layout_cost(5000, *group) for group in ISSUE_GROUPS}
    seconds_per_unit = 5.0 / max(costs.values())
    rng = random.Random(0)
    ours, largest_first = [], []
    for _ in range(50):
        durations = {job: cost * seconds_per_unit * rng.uniform(0.95, 1.05) for job, cost in costs.items()}
        ideal = sum(durations.values()) / workers
        ours.append(simulate(LayoutQueue(costs, workers), durations, workers) - ideal)
        largest_first.append(simulate(LargestFirst(costs, workers), durations, workers) - ideal)
    smallest = min(costs.values()) * seconds_per_unit
    assert sum(ours) / len(ours) < 0.2 * smallest
    if workers == 2:
        assert sum(ours) / len(ours) < 0.5 * sum(largest_first) / len(largest_first)


def test_the_queue_hands_out_every_job_once_cached_ones_last():
    costs = {"a": 3.0, "cached": 0.0, "b": 2.0, "c": 1.0}
    queue = LayoutQueue(costs, workers=1)
    order = []
    while (job := queue.take(0.0)) is not None:
        order.append(job)
        queue.finished(job, costs[job])
    assert order == ["a", "b", "c", "cached"]
    assert len(queue) == 0

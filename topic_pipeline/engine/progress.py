"""How far a batch of trials is: trials done of the total, the rate, the sweep's best trial score so far (earlier
batches included), the time left.

The trials step keeps one ``SweepProgress`` as its trials finish. It logs ``describe()`` at a steady
rate (the run's log in the Dagster UI), and, when the command line asks for it, keeps a small JSON file
current that the command line reads to draw its progress bar. One record, one wording, for both.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

from topic_pipeline.domain.durations import format_duration
from topic_pipeline.storage.files import read_json, write_json


@dataclasses.dataclass
class SweepProgress:
    total: int
    rank_by: str
    round: int | None = None  # the search round these trials belong to, if a search proposed them
    done: int = 0
    failed: int = 0
    best_key: str | None = None
    best_score: float | None = None
    started_at: float = dataclasses.field(default_factory=time.time)
    updated_at: float = dataclasses.field(default_factory=time.time)

    def add(self, key: str, score: float | None) -> None:
        """One trial finished; ``score`` is its ranking metric, None for a failed trial."""
        self.done += 1
        self.updated_at = time.time()
        if score is None or math.isnan(score):
            self.failed += 1
        elif self.best_score is None or score > self.best_score:
            self.best_key, self.best_score = key, float(score)

    def add_earlier(self, key: str, score: float | None) -> None:
        """A trial an earlier batch of the sweep scored: counts for the best so far, not for this batch."""
        if score is not None and not math.isnan(score) and (self.best_score is None or score > self.best_score):
            self.best_key, self.best_score = key, float(score)

    @property
    def finished(self) -> bool:
        return self.done >= self.total

    def trials_per_minute(self, now: float | None = None) -> float:
        elapsed = (now or time.time()) - self.started_at
        return 60.0 * self.done / elapsed if elapsed > 0 else 0.0

    def seconds_left(self, now: float | None = None) -> float | None:
        """None until a twentieth of the trials (at least two) is done: the first trials carry the workers'
        start and say little about the rate."""
        rate = self.trials_per_minute(now)
        if self.done < max(2, self.total / 20) or rate <= 0:
            return None
        return 60.0 * (self.total - self.done) / rate

    def best_text(self) -> str:
        return (
            "no score yet"
            if self.best_score is None
            else f"best so far {self.rank_by} {self.best_score:.3f} ({self.best_key})"
        )

    def describe(self, now: float | None = None) -> str:
        """One line: ``round 2: trials 40/180 (1 failed), 45.1/min, best so far ari 0.712 (key), about 3 min left``."""
        left = self.seconds_left(now)
        parts = [
            f"{'' if self.round is None else f'round {self.round}: '}trials {self.done}/{self.total}"
            + (f" ({self.failed} failed)" if self.failed else ""),
            f"{self.trials_per_minute(now):.1f}/min",
            self.best_text(),
        ]
        if left is not None and not self.finished:
            parts.append(f"about {format_duration(left)} left")
        return ", ".join(parts)

    def save(self, path: Path) -> None:
        write_json(path, dataclasses.asdict(self))

    @classmethod
    def load(cls, path: Path) -> SweepProgress | None:
        """The record at ``path``; None while it does not exist yet (or is not a progress record)."""
        try:
            return cls(**read_json(path))
        except (OSError, ValueError, TypeError, json.JSONDecodeError):
            return None

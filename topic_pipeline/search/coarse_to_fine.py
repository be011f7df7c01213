"""Coarse-to-fine search: a good configuration without a hand-written grid, and how much to trust it.

A search runs in rounds of ordinary trials:

1. **broad**: a wide grid chosen for the corpus size. UMAP reductions are the expensive part, so the
   broad round takes few of them (n_neighbors x n_components) and many HDBSCAN variants on each,
   which the engine derives from one single-linkage tree per min_samples almost for free.
2. **refine** (repeated): around the best configurations so far, one step either way on every
   parameter's ladder (finer than the broad round's steps). HDBSCAN neighbourhoods around the top
   ``top_k`` configurations; UMAP neighbourhoods (new reductions) around the best
   ``UMAP_REFINED`` distinct reductions only. Stops when a round improves the best score by less
   than ``min_improvement``, after ``max_rounds`` refinements, when a round proposes nothing new, or
   when the time or trial budget would be exceeded.
3. **outliers**: the top ``top_k`` configurations with BERTopic's outlier reduction (``OUTLIER_VARIANTS``),
   what most BERTopic users do after clustering; whether it helps depends on the corpus and the
   configuration. The engine derives each from its configuration's clustering (no new UMAP reduction).
4. **stability**: the top ``stability_top`` configurations (outlier variants included) re-run with
   ``stability_seeds - 1`` more UMAP seeds (``TrialParams.seed_replicate``), so the leaderboard can show
   mean and spread.

Everything here is plain data: the caller runs each round's trials (the Dagster assets, or the
benchmark directly) and hands back their scores. ``SearchState`` is JSON, so a search survives
restarts and its history is readable.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from topic_pipeline.domain.trials import DEFAULT_EMBEDDING_MODEL, TrialParams
from topic_pipeline.errors import GridError
from topic_pipeline.inputs.grid import ParamGrid, check_grid_values, parse_grid_json
from topic_pipeline.storage.files import read_json, read_user_text, write_json

ROUND_BROAD = "broad"
ROUND_REFINE = "refine"
ROUND_OUTLIERS = "outliers"
ROUND_STABILITY = "stability"

# The search space: each parameter moves along its ladder. The broad round takes every other value
# (within the corpus-size caps); refinement steps to the adjacent values.
NEIGHBOURS_LADDER = (5, 10, 15, 20, 30, 50, 75, 100)
COMPONENTS_LADDER = (2, 3, 5, 8, 10, 15)
MIN_DIST_LADDER = (0.0, 0.1, 0.25, 0.5)
MIN_CLUSTER_SIZE_LADDER = (2, 3, 5, 8, 10, 15, 20, 30, 40, 60, 80, 100, 150, 200, 300, 500, 800, 1200)
MIN_SAMPLES_LADDER = (1, 2, 3, 5, 8, 10, 15, 20)
EPSILON_LADDER = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)

# The outlier round's (strategy, threshold) pairs, beside each leader's own "none". "embeddings" assigns an
# outlier to the topic whose centroid its embedding is most similar to (cosine), if at least the threshold:
# the cheapest strategy (no texts, no model fit), and the one issue #20 saw raise a top trial's ARI. 0
# assigns every outlier with any positive similarity; higher thresholds leave those far from every topic.
OUTLIER_VARIANTS = (("embeddings", 0.0), ("embeddings", 0.25), ("embeddings", 0.5))

# Distinct UMAP reductions whose neighbourhoods a refinement round explores: each costs up to six new
# reductions, the dominant cost of a round.
UMAP_REFINED = 2


@dataclasses.dataclass(frozen=True)
class SearchSpec:
    """How a search runs; the grid file's form is ``{"search": "auto", <any of these fields>}``."""

    time_budget_s: float = 3600.0
    trial_budget: int = 5000
    max_rounds: int = 4
    top_k: int = 3
    min_improvement: float = 0.002
    stability_top: int = 5
    stability_seeds: int = 5
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    remove_stopwords: bool = False
    n_gram_max: int = 1
    nr_topics: str | int = "none"

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], where: str = "grid") -> SearchSpec:
        if raw.get("search") != "auto":
            raise GridError(f"{where}: key 'search' has value {json.dumps(raw.get('search'))}; expected \"auto\"")
        fields = {field.name: field for field in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key == "search":
                continue
            if key not in fields:
                close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.5)
                hint = f" Did you mean '{close[0]}'?" if close else f" Known keys: search, {', '.join(fields)}."
                raise GridError(f"{where}: unknown search key '{key}'.{hint}")
            values[key] = _checked_option(key, value, where)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {"search": "auto", **dataclasses.asdict(self)}

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _checked_option(key: str, value: Any, where: str) -> Any:
    def fail(expected: str) -> GridError:
        return GridError(f"{where}: search key '{key}' has value {json.dumps(value)}; expected {expected}")

    is_int = isinstance(value, int) and not isinstance(value, bool)
    if key == "time_budget_s":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise fail("a number of seconds > 0")
        return float(value)
    if key == "min_improvement":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise fail("a number >= 0")
        return float(value)
    if key in ("trial_budget", "top_k", "stability_seeds"):
        if not is_int or value < 1:
            raise fail("an integer >= 1")
        return value
    if key in ("max_rounds", "stability_top"):
        if not is_int or value < 0:
            raise fail("an integer >= 0")
        return value
    # The remaining options are fixed grid values for every trial of the search.
    return check_grid_values(key, [value], where)[0]


def read_sweep_definition(path: str | Path | None) -> ParamGrid | SearchSpec:
    """A grid file's content: an explicit grid, or a search. No file at all means the default search."""
    if path is None:
        return SearchSpec()
    path = Path(path)
    where = f"grid file '{path}'"
    raw = parse_grid_json(read_user_text(path, "grid file", GridError), where)
    if isinstance(raw, Mapping) and "search" in raw:
        return SearchSpec.from_mapping(raw, where)
    return ParamGrid.from_mapping(raw, where)


class SearchSpace:
    """The ladders, cut to what a corpus of ``n_documents`` allows."""

    def __init__(self, n_documents: int):
        self.n_documents = n_documents
        # Wider neighbourhoods only pay off on larger corpora (and cost more per reduction).
        self.neighbours = tuple(v for v in NEIGHBOURS_LADDER if v < n_documents and v <= max(15, n_documents // 40))
        self.components = tuple(v for v in COMPONENTS_LADDER if v < n_documents - 1)
        self.min_dist = MIN_DIST_LADDER
        # A topic of a tenth of the corpus is the smallest "largest topic" worth requiring.
        self.min_cluster_size = tuple(v for v in MIN_CLUSTER_SIZE_LADDER if v <= max(3, n_documents // 10))
        self.min_samples = tuple(v for v in MIN_SAMPLES_LADDER if v < n_documents)
        self.epsilon = EPSILON_LADDER

    def _ladders(self) -> dict[str, tuple]:
        return {
            "umap_n_neighbors": self.neighbours,
            "umap_n_components": self.components,
            "umap_min_dist": self.min_dist,
            "hdbscan_min_cluster_size": self.min_cluster_size,
            "hdbscan_min_samples": self.min_samples,
            "hdbscan_cluster_selection_epsilon": self.epsilon,
        }

    def broad_values(self) -> dict[str, list]:
        """Every other ladder value; UMAP's min_dist at BERTopic's default 0 (refinement moves it)."""
        values = {key: list(ladder[::2]) for key, ladder in self._ladders().items()}
        values["umap_min_dist"] = [self.min_dist[0]]
        # The smallest min_cluster_size splits every topic into fragments; start one step up.
        values["hdbscan_min_cluster_size"] = list(self.min_cluster_size[1::2]) or list(self.min_cluster_size)
        return values

    def exhaustive_values(self) -> dict[str, list]:
        """The space at refinement resolution for UMAP, with the broad HDBSCAN values: what a grid
        would need to cover, without search, to reach the reductions a search can reach."""
        values = self.broad_values()
        for key in ("umap_n_neighbors", "umap_n_components", "umap_min_dist"):
            values[key] = list(self._ladders()[key])
        return values

    def steps(self, key: str, value: Any) -> list[Any]:
        """The value and its neighbours on the ladder (a value off the ladder stays as it is)."""
        ladder = self._ladders()[key]
        if value not in ladder:
            return [value]
        index = ladder.index(value)
        return list(ladder[max(0, index - 1) : index + 2])


def _trials(spec: SearchSpec, values: Mapping[str, Iterable[Any]]) -> list[TrialParams]:
    grid_values = {
        **{key: list(v) for key, v in values.items()},
        "nr_topics": [spec.nr_topics],
        "n_gram_max": [spec.n_gram_max],
        "embedding_model": [spec.embedding_model],
        "remove_stopwords": [spec.remove_stopwords],
    }
    return ParamGrid(grid_values).trials()


def broad_round(spec: SearchSpec, n_documents: int) -> list[TrialParams]:
    return _trials(spec, SearchSpace(n_documents).broad_values())


def exhaustive_grid(spec: SearchSpec, n_documents: int) -> list[TrialParams]:
    return _trials(spec, SearchSpace(n_documents).exhaustive_values())


_UMAP_KEYS = ("umap_n_neighbors", "umap_n_components", "umap_min_dist")
_HDBSCAN_KEYS = ("hdbscan_min_cluster_size", "hdbscan_min_samples", "hdbscan_cluster_selection_epsilon")


def _reduction_of(params: TrialParams) -> tuple:
    return tuple(getattr(params, key) for key in _UMAP_KEYS)


def refinement_round(spec: SearchSpec, n_documents: int, ranked: list[TrialParams]) -> list[TrialParams]:
    """One step either way around the best configurations (``ranked``: best first, replicate 0).

    Candidates come in the leaders' rank order, each leader's own reduction first, so a trial budget
    cuts the neighbourhoods of the weaker leaders.
    """
    space = SearchSpace(n_documents)
    leaders = ranked[: spec.top_k]
    proposals: list[TrialParams] = []
    refined_reductions: list[tuple] = []
    for leader in leaders:
        hdbscan_steps = [space.steps(key, getattr(leader, key)) for key in _HDBSCAN_KEYS]
        reductions = [_reduction_of(leader)]
        if _reduction_of(leader) not in refined_reductions and len(refined_reductions) < UMAP_REFINED:
            refined_reductions.append(_reduction_of(leader))
            # Coordinate steps: one UMAP parameter at a time, the others held.
            for position, key in enumerate(_UMAP_KEYS):
                for value in space.steps(key, getattr(leader, key)):
                    moved = list(_reduction_of(leader))
                    moved[position] = value
                    if tuple(moved) not in reductions:
                        reductions.append(tuple(moved))
        for reduction in reductions:
            for hdbscan_values in itertools.product(*hdbscan_steps):
                proposals.append(
                    dataclasses.replace(
                        leader, **dict(zip(_UMAP_KEYS, reduction)), **dict(zip(_HDBSCAN_KEYS, hdbscan_values))
                    )
                )
    return list(dict.fromkeys(proposals))


def outlier_round(spec: SearchSpec, ranked: list[TrialParams]) -> list[TrialParams]:
    """The top ``top_k`` configurations without outlier reduction, each with every ``OUTLIER_VARIANTS`` pair."""
    leaders = [params for params in ranked if params.outlier_reduction == "none"][: spec.top_k]
    return [
        dataclasses.replace(leader, outlier_reduction=strategy, outlier_threshold=threshold)
        for leader in leaders
        for strategy, threshold in OUTLIER_VARIANTS
    ]


def stability_round(spec: SearchSpec, ranked: list[TrialParams]) -> list[TrialParams]:
    leaders = ranked[: spec.stability_top]
    return [
        dataclasses.replace(leader, seed_replicate=replicate)
        for leader in leaders
        for replicate in range(1, spec.stability_seeds)
    ]


@dataclasses.dataclass
class SearchRound:
    number: int
    kind: str
    trial_keys: list[str]
    started_at: float
    best_key: str | None = None
    best_score: float | None = None
    finished_at: float | None = None


def search_identity(spec: SearchSpec, n_documents: int, inputs_fingerprint: str) -> str:
    """A search restarts when its spec, corpus size or inputs change."""
    return f"{spec.fingerprint}:{n_documents}:{inputs_fingerprint}"


@dataclasses.dataclass
class SearchState:
    """A search's history: its spec, its rounds and why it stopped. Stored as JSON."""

    spec: SearchSpec
    n_documents: int
    inputs_fingerprint: str
    started_at: float
    rounds: list[SearchRound] = dataclasses.field(default_factory=list)
    trials: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # key -> params, every round
    search_stop_reason: str | None = None  # why refinement ended (the stability round may follow)
    stop_reason: str | None = None  # why the whole search ended

    @property
    def finished(self) -> bool:
        return self.stop_reason is not None

    @property
    def identity(self) -> str:
        return search_identity(self.spec, self.n_documents, self.inputs_fingerprint)

    def round_of(self) -> dict[str, int]:
        """The round that first proposed each trial."""
        first: dict[str, int] = {}
        for search_round in self.rounds:
            for key in search_round.trial_keys:
                first.setdefault(key, search_round.number)
        return first

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "n_documents": self.n_documents,
            "inputs_fingerprint": self.inputs_fingerprint,
            "started_at": self.started_at,
            "rounds": [dataclasses.asdict(r) for r in self.rounds],
            "trials": self.trials,
            "search_stop_reason": self.search_stop_reason,
            "stop_reason": self.stop_reason,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SearchState:
        return cls(
            spec=SearchSpec.from_mapping(values["spec"], "search state"),
            n_documents=int(values["n_documents"]),
            inputs_fingerprint=str(values["inputs_fingerprint"]),
            started_at=float(values["started_at"]),
            rounds=[SearchRound(**r) for r in values["rounds"]],
            trials=dict(values["trials"]),
            search_stop_reason=values.get("search_stop_reason"),
            stop_reason=values.get("stop_reason"),
        )

    def save(self, path: Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> SearchState | None:
        if not path.exists():
            return None
        return cls.from_dict(read_json(path))


def start_search(spec: SearchSpec, n_documents: int, inputs_fingerprint: str, now: float | None = None) -> SearchState:
    """A new search with its broad round proposed."""
    state = SearchState(spec, n_documents, inputs_fingerprint, started_at=time.time() if now is None else now)
    reserved = spec.stability_top * max(0, spec.stability_seeds - 1)
    _add_round(
        state, ROUND_BROAD, broad_round(spec, n_documents)[: max(1, spec.trial_budget - reserved)], state.started_at
    )
    return state


def _add_round(state: SearchState, kind: str, proposals: list[TrialParams], now: float) -> None:
    for params in proposals:
        state.trials[params.key] = params.to_dict()
    state.rounds.append(SearchRound(len(state.rounds) + 1, kind, [p.key for p in proposals], started_at=now))


def ranked_configurations(state: SearchState, scores: Mapping[str, float | None]) -> list[TrialParams]:
    """Scored configurations at the configured seed, best first, one per distinct score.

    Many HDBSCAN settings give the very same clustering (hence the same score); taking several of them
    as leaders would refine, or re-seed, one result several times. Ties keep the smallest key.
    """
    scored = sorted(
        (
            (scores[key], key)
            for key, params in state.trials.items()
            if scores.get(key) is not None and not params.get("seed_replicate")
        ),
        key=lambda item: (-item[0], item[1]),
    )
    first_of_score: dict[float, str] = {}
    for score, key in scored:
        first_of_score.setdefault(score, key)
    return [TrialParams.from_dict(state.trials[key]) for key in first_of_score.values()]


def _best(
    state: SearchState, scores: Mapping[str, float | None], rounds: Iterable[SearchRound]
) -> tuple[str | None, float | None]:
    keys = {key for r in rounds if r.kind != ROUND_STABILITY for key in r.trial_keys}
    scored = [(scores[key], key) for key in keys if scores.get(key) is not None]
    if not scored:
        return None, None
    score, key = min(scored, key=lambda item: (-item[0], item[1]))
    return key, score


def advance(state: SearchState, scores: Mapping[str, float | None], now: float | None = None) -> SearchRound | None:
    """Close the last round (all its trials have run; ``scores`` holds None for failed ones) and
    propose the next, or set ``stop_reason``. Returns the new round, or None when the search is over."""
    now = time.time() if now is None else now
    if state.finished:
        return None
    last = state.rounds[-1]
    last.best_key, last.best_score = _best(state, scores, state.rounds)
    last.finished_at = now
    if last.kind == ROUND_STABILITY:
        state.stop_reason = f"{state.search_stop_reason}; stability round done"
        return None
    ranked = ranked_configurations(state, scores)
    if not ranked:
        state.stop_reason = "no trial could be scored"
        return None

    spec = state.spec
    stability = stability_round(spec, ranked)
    # The stability round's trials are reserved from the trial budget, so it always fits.
    search_budget = spec.trial_budget - len(stability)
    # The last round's duration predicts the next one's; a round that would overrun is not started.
    out_of_time = (now - state.started_at) + (last.finished_at - last.started_at) > spec.time_budget_s
    previous_best = _best(state, scores, state.rounds[:-1])[1]
    if out_of_time:
        state.stop_reason = f"time budget of {spec.time_budget_s:.0f} s reached"
        return None
    if last.kind == ROUND_OUTLIERS:
        reason = state.search_stop_reason or "outlier round done"
    elif len(state.trials) >= search_budget:
        reason = f"trial budget of {spec.trial_budget} reached"
    elif last.kind == ROUND_REFINE and (
        previous_best is None or last.best_score - previous_best < spec.min_improvement
    ):
        reason = f"round {last.number} improved the best score by less than {spec.min_improvement}"
    elif sum(r.kind == ROUND_REFINE for r in state.rounds) >= spec.max_rounds:
        reason = f"{spec.max_rounds} refinement round(s) done"
    else:
        proposals = [p for p in refinement_round(spec, state.n_documents, ranked) if p.key not in state.trials]
        proposals = proposals[: max(0, search_budget - len(state.trials))]
        if proposals:
            _add_round(state, ROUND_REFINE, proposals, now)
            return state.rounds[-1]
        reason = "refinement proposed no new trial"
    if last.kind != ROUND_OUTLIERS:
        state.search_stop_reason = reason
        # Once refinement has ended: outlier reduction on the leaders, within the trial budget.
        outliers = [p for p in outlier_round(spec, ranked) if p.key not in state.trials]
        outliers = outliers[: max(0, search_budget - len(state.trials))]
        if outliers:
            _add_round(state, ROUND_OUTLIERS, outliers, now)
            return state.rounds[-1]
    state.search_stop_reason = reason
    stability = [p for p in stability if p.key not in state.trials]
    if not stability:
        state.stop_reason = reason
        return None
    _add_round(state, ROUND_STABILITY, stability, now)
    return state.rounds[-1]


def run_search(
    spec: SearchSpec,
    n_documents: int,
    inputs_fingerprint: str,
    execute: Callable[[list[TrialParams]], Mapping[str, float | None]],
    on_round: Callable[[SearchState], None] | None = None,
) -> tuple[SearchState, dict[str, float | None]]:
    """The whole search in one process: ``execute`` runs a round's trials and returns each key's score
    (None for a failed trial). The Dagster assets take the same steps, one asset run per round."""
    state = start_search(spec, n_documents, inputs_fingerprint)
    scores: dict[str, float | None] = {}
    while True:
        current = state.rounds[-1]
        scores.update(execute([TrialParams.from_dict(state.trials[key]) for key in current.trial_keys]))
        following = advance(state, scores)
        if on_round:
            on_round(state)
        if following is None:
            return state, scores

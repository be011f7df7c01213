"""Benchmark: the default search against an exhaustive grid over the same space, and BERTopic's defaults.

On a labelled corpus the benchmark generates (default 3,000 documents), in one run:

(a) the exhaustive grid: every UMAP reduction the search could reach (the ladders of
    ``topic_pipeline.search.coarse_to_fine`` at refinement resolution) times the broad round's HDBSCAN values;
(b) the default search (``{"search": "auto"}``): broad round, refinement rounds, stability round;
(c) BERTopic's defaults, one plain BERTopic fit.

(a) and (b) run through the same fast engine with the same workers, each on its own empty cache (so
neither reuses the other's reductions) and its own worker pool, started once per arm: (b)'s rounds
share theirs, as they can in one process. (Through Dagster each round is a run and starts its own.) Embeddings are computed once, before any clock starts.
Prints best ARI (on the selection part of the labels) and wall time for each, the stability table of
(b), and the winner's curse measured: (b)'s top trial's selection ARI against its held-out ARI, and the
held-out ARI of the configuration the leaderboard recommends (seed-averaged).

    topic-pipeline benchmark-search                # 3,000 documents
    topic-pipeline benchmark-search --docs 2000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="make benchmark-search ARGS=...", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--topics", type=int, default=12)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-exhaustive", action="store_true", help="run only (b) and (c)")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the benchmark's files here (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="topic-pipeline-search-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    _run(args, workdir)


def _run(args, workdir: Path) -> None:
    from topic_pipeline.domain.results import inputs_fingerprint
    from topic_pipeline.domain.trials import DEFAULT_GRID, TrialParams
    from topic_pipeline.engine.fast import EmbeddingSource, WorkerPool
    from topic_pipeline.engine.sweep import LabelledSample, run_trials
    from topic_pipeline.inputs.corpus import Corpus
    from topic_pipeline.inputs.demo_corpus import generate_demo_corpus
    from topic_pipeline.inputs.embeddings import EmbeddingCache, EmbeddingSettings, embed_corpus
    from topic_pipeline.inputs.grid import ParamGrid
    from topic_pipeline.inputs.ground_truth import GroundTruth
    from topic_pipeline.scoring.confidence import trust_summary
    from topic_pipeline.scoring.holdout import split_labels
    from topic_pipeline.scoring.leaderboard import build_leaderboard, to_markdown
    from topic_pipeline.search.coarse_to_fine import SearchSpec, exhaustive_grid, run_search

    print(f"workdir: {workdir}")
    sample = generate_demo_corpus(n_docs=args.docs, n_topics=args.topics)
    corpus = Corpus(np.asarray(sample.ids, dtype=np.int64), list(sample.texts))
    labels = GroundTruth.from_mapping(sample.ground_truth())
    positions, classes = labels.aligned(corpus.ids)
    split = split_labels(labels)
    labelled = LabelledSample(positions, classes, split.mask(corpus.ids[positions]))
    fingerprint = inputs_fingerprint(
        corpus.content_hash,
        labels.content_hash,
        42,
        "english",
        holdout_fraction=split.fraction,
        holdout_seed=split.seed,
    )
    spec = SearchSpec()
    print(f"corpus: {len(corpus)} documents, {labels.n_clusters} labelled topics, {split.describe()}")
    if split.warning:
        print(f"WARNING: {split.warning}")

    embedding_set = TrialParams.from_dict({k: v[0] for k, v in DEFAULT_GRID.items()}).embedding_set
    cache = EmbeddingCache(workdir / "embeddings")
    started = time.perf_counter()
    embedded = embed_corpus(
        corpus.texts, corpus.content_hash, embedding_set, cache, EmbeddingSettings(local_files_only=True)
    )
    print(f"embeddings: {embedded.embeddings.shape} in {time.perf_counter() - started:.1f}s")
    sources = {embedding_set.key: EmbeddingSource(str(cache.path(embedded.cache_key)), embedded.cache_key, len(corpus))}

    def executor(cache_dir: Path, engine: str = "fast", pool: WorkerPool | None = None):
        def execute(trials: list[TrialParams]) -> dict[str, float | None]:
            scores: dict[str, float | None] = {}
            results = {}

            def collect(scored) -> None:
                results[scored.result.key] = scored.result
                scores[scored.result.key] = scored.result.metrics.get("ari") if scored.result.status == "ok" else None

            run_trials(
                [(t.key, t) for t in trials],
                sources,
                corpus.texts,
                labelled,
                fingerprint,
                42,
                "english",
                cache_dir,
                collect,
                engine=engine,
                workers=args.workers,
                pool=pool,
            )
            execute.results.update(results)
            return scores

        execute.results = {}
        return execute

    rows = []
    # (c) BERTopic's defaults: one plain fit.
    defaults = ParamGrid.from_mapping({}).trials()
    run_defaults = executor(workdir / "cache-defaults", engine="reference")
    started = time.perf_counter()
    default_score = run_defaults(defaults)[defaults[0].key]
    rows.append(
        ("(c) BERTopic defaults (one plain fit)", 1, time.perf_counter() - started, default_score, defaults[0].key)
    )

    # (b) the default search: its rounds share one warm worker pool, as in one process they can.
    started, wall_started = time.perf_counter(), time.time()

    def report(state) -> None:
        finished = [r for r in state.rounds if r.finished_at is not None][-1]
        print(
            f"  round {finished.number} ({finished.kind}, {len(finished.trial_keys)} trials) done at "
            f"{time.perf_counter() - started:.0f}s, best ARI so far {finished.best_score}"
        )

    with WorkerPool(args.workers) as pool:
        run_searched = executor(workdir / "cache-search", pool=pool)
        state, scores = run_search(spec, len(corpus), fingerprint, run_searched, on_round=report)
    search_seconds = time.perf_counter() - started
    search_phase = [k for r in state.rounds if r.kind != "stability" for k in r.trial_keys]
    search_phase_seconds = max(r.finished_at for r in state.rounds if r.kind != "stability") - wall_started
    best_key = max((k for k in search_phase if scores.get(k) is not None), key=lambda k: scores[k])
    rows.insert(
        0,
        (
            f"(b) default search, {len(state.rounds)} rounds incl. stability",
            len(state.trials),
            search_seconds,
            scores[best_key],
            best_key,
        ),
    )
    rows.insert(
        1,
        (
            "    of which the search rounds (no stability)",
            len(search_phase),
            search_phase_seconds,
            scores[best_key],
            best_key,
        ),
    )
    print(f"search stopped: {state.stop_reason}")
    _report_outlier_round(state, scores)

    if not args.skip_exhaustive:
        exhaustive = exhaustive_grid(spec, len(corpus))
        started = time.perf_counter()
        with WorkerPool(args.workers) as pool:
            exhaustive_scores = executor(workdir / "cache-exhaustive", pool=pool)(exhaustive)
        seconds = time.perf_counter() - started
        best = max((k for k, v in exhaustive_scores.items() if v is not None), key=lambda k: exhaustive_scores[k])
        rows.insert(
            0, ("(a) exhaustive grid over the search space", len(exhaustive), seconds, exhaustive_scores[best], best)
        )

    print()
    print(f"{'':52s} {'trials':>7s} {'wall s':>8s} {'best ARI':>9s}  best trial")
    for name, count, seconds, best_score, key in rows:
        print(f"{name:52s} {count:7d} {seconds:8.1f} {best_score:9.4f}  {key}")
    if not args.skip_exhaustive:
        exhaustive_seconds, exhaustive_best = rows[0][2], rows[0][3]
        print(
            f"\n(b) time / (a) time: {search_seconds / exhaustive_seconds:.3f} (search rounds only: "
            f"{search_phase_seconds / exhaustive_seconds:.3f}); (a) best ARI - (b) best ARI: "
            f"{exhaustive_best - scores[best_key]:+.4f}"
        )
    frame = build_leaderboard(state.trials, run_searched.results, rank_by="ari", rounds=state.round_of())
    print("\nthe top configurations, one row each (seed-averaged ones: 5 UMAP seeds):")
    print(to_markdown(frame, "ari", limit=10))
    trust = trust_summary(frame, "ari", split)
    if trust and trust["heldout_score"] is not None:
        top = run_searched.results[best_key].metrics
        print(
            f"\nwinner's curse, (b): top trial {best_key}: selection ARI {top['ari']:.4f}, held-out ARI "
            f"{top['heldout_ari']:.4f} ({top['ari'] - top['heldout_ari']:+.4f})"
        )
        print(
            f"recommended configuration {trust['recommended_configuration']} ({trust['seeds']} seed(s)): selection ARI "
            f"{trust['selection_score']:.4f}, held-out ARI {trust['heldout_score']:.4f} ({trust['gap']:+.4f})"
        )


def _report_outlier_round(state, scores: dict) -> None:
    """Whether the search's outlier round helped: each leader's score without outlier reduction against its
    best variant, and the best search score before the round against after it."""
    import dataclasses

    from topic_pipeline.domain.trials import TrialParams

    rounds = [r for r in state.rounds if r.kind == "outliers"]
    if not rounds:
        print("outlier reduction: no outlier round ran (trial or time budget)")
        return
    variants: dict[str, list[tuple[float, TrialParams]]] = {}
    for key in rounds[0].trial_keys:
        params = TrialParams.from_dict(state.trials[key])
        base = dataclasses.replace(params, outlier_reduction="none").key
        if scores.get(key) is not None:
            variants.setdefault(base, []).append((scores[key], params))
    print(f"outlier reduction (round {rounds[0].number}, {len(rounds[0].trial_keys)} trials):")
    for base, tried in variants.items():
        score, params = max(tried, key=lambda item: item[0])
        print(
            f"  {base}: ARI {scores[base]:.4f} without, {score:.4f} with {params.outlier_reduction} at "
            f"{params.outlier_threshold:g} ({score - scores[base]:+.4f})"
        )
    before = [
        scores[k]
        for r in state.rounds
        if r.number < rounds[0].number and r.kind != "stability"
        for k in r.trial_keys
        if scores.get(k) is not None
    ]
    after = [score for tried in variants.values() for score, _ in tried]
    if before and after:
        gain = max(after) - max(before)
        verdict = "helped" if gain > 0 else "did not help"
        print(
            f"  outlier reduction {verdict}: best ARI {max(before):.4f} before the round, {max(before + after):.4f} "
            f"after ({gain:+.4f})"
        )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])

"""Benchmark: what outlier reduction costs next to the clustering it reduces.

On the demo corpus (default 3,000 documents, MiniLM embeddings computed once, before any clock), one
BERTopic-default configuration (n_neighbors 15, 5 components, min_cluster_size 10): the UMAP reduction
and the HDBSCAN labels, then each outlier reduction strategy with one threshold and with five, as the
engine's workers compute them (``engine.outliers``). The difference between the two is what each further
threshold costs; the rest is the per-clustering preparation. Every step runs once untimed first, so imports
and compilation are not counted.

    python -m benchmarks.outlier_cost                 # 3,000 documents
    python -m benchmarks.outlier_cost --docs 2000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

THRESHOLDS = [0.0, 0.1, 0.2, 0.3, 0.5]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=3000)
    args = parser.parse_args(argv)

    from topic_pipeline.domain.trials import OUTLIER_STRATEGIES, VECTORIZER_STRATEGIES
    from topic_pipeline.engine.clustering import TreeClusterer, renumber_by_frequency
    from topic_pipeline.engine.outliers import Clustering, reduce_outliers, vectorizer_params
    from topic_pipeline.engine.reduction import ReductionSpec, cached_reduction
    from topic_pipeline.inputs.demo_corpus import generate_demo_corpus
    from topic_pipeline.inputs.embeddings import EmbeddingCache, EmbeddingSettings, embed_corpus
    from topic_pipeline.inputs.grid import ParamGrid
    from topic_pipeline.storage.array_cache import ArrayCache

    workdir = Path(tempfile.mkdtemp(prefix="topic-pipeline-outlier-cost-"))
    texts = list(generate_demo_corpus(n_docs=args.docs, n_topics=12).texts)
    (params,) = ParamGrid.from_mapping({}).trials()
    embedded = embed_corpus(
        texts,
        f"demo-{args.docs}",
        params.embedding_set,
        EmbeddingCache(workdir / "embeddings"),
        EmbeddingSettings(local_files_only=True),
    )
    embeddings = embedded.embeddings
    spec = ReductionSpec(params.umap_n_neighbors, params.umap_n_components, params.umap_min_dist, 42)

    def timed(step):
        started = time.perf_counter()
        result = step()
        return result, time.perf_counter() - started

    # Warm-up on a throwaway cache: UMAP's and HDBSCAN's compiled code, BERTopic's import.
    warm, _ = cached_reduction(ArrayCache(workdir / "warm"), "warm", embeddings, spec, params.umap_n_neighbors)
    reduction, umap_seconds = timed(
        lambda: cached_reduction(ArrayCache(workdir / "cache"), "demo", embeddings, spec, params.umap_n_neighbors)[0]
    )
    clusterer = TreeClusterer(reduction)
    clusters, hdbscan_seconds = timed(
        lambda: clusterer.labels(
            params.hdbscan_min_cluster_size, params.hdbscan_min_samples, params.hdbscan_cluster_selection_epsilon
        )
    )
    labels = renumber_by_frequency(clusters)

    def clustering():
        # A fresh one per call: the models it fits for the c-TF-IDF strategies are kept in it.
        return Clustering(
            clusters,
            labels,
            embeddings,
            texts,
            clusterer.data,
            params.hdbscan_min_cluster_size,
            params.hdbscan_min_samples,
            params.hdbscan_cluster_selection_epsilon,
            "none",
        )

    vectorizer = vectorizer_params(params.n_gram_max)

    print(
        f"{len(texts)} documents, {int(labels.max()) + 1} topics, {int((labels == -1).sum())} outliers "
        f"({(labels == -1).mean():.1%})"
    )
    print(f"UMAP reduction {umap_seconds:.2f} s, HDBSCAN labels (tree built) {hdbscan_seconds:.3f} s")
    print(
        f"{'strategy':15s} {'1 threshold s':>14s} {f'{len(THRESHOLDS)} thresholds s':>15s} {'per further s':>14s} "
        f"{'outliers left at ' + '/'.join(f'{t:g}' for t in THRESHOLDS)}"
    )
    for strategy in OUTLIER_STRATEGIES:
        needs = vectorizer if strategy in VECTORIZER_STRATEGIES else None
        reduce_outliers(clustering(), strategy, [0.0], needs)  # warm-up
        _, one = timed(lambda: reduce_outliers(clustering(), strategy, [0.0], needs))
        reduced, several = timed(lambda: reduce_outliers(clustering(), strategy, THRESHOLDS, needs))
        left = "/".join(str(int((reduced[t] == -1).sum())) for t in THRESHOLDS)
        print(f"{strategy:15s} {one:14.3f} {several:15.3f} {(several - one) / (len(THRESHOLDS) - 1):14.4f} {left}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])

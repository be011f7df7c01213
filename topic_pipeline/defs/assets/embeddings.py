"""Sentence embeddings, once per embedding set, cached on disk so no trial ever re-embeds."""

import dagster as dg
import numpy as np
import pandas as pd

from topic_pipeline.defs.partitions import embedding_set_partitions
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.inputs.corpus import Corpus
from topic_pipeline.inputs.embeddings import EmbeddingCache, embed_corpus
from topic_pipeline.processes import exit_with_parent


@dg.asset(
    group_name="embeddings",
    partitions_def=embedding_set_partitions,
    # One embedding job at a time holds the GPU; set the limit with `dagster instance concurrency set gpu 1`.
    pool="gpu",
    op_tags={"gpu": "true"},
    kinds={"pytorch", "numpy"},
    check_specs=[
        dg.AssetCheckSpec(
            "embeddings_are_usable",
            asset="embeddings",
            blocking=True,
            description=(
                "Whether the embeddings can be clustered: one row per document, of the model's width, every "
                "value finite. Blocking: trials never run on embeddings that fail it."
            ),
        )
    ],
)
def embeddings(
    context: dg.AssetExecutionContext, documents: pd.DataFrame, settings: PipelineSettings
) -> dg.MaterializeResult:
    """Embeddings of every document for one (model, stop-word setting), cached as .npy."""
    exit_with_parent()  # a step whose run's process was killed has nobody to deliver its embeddings to
    corpus = Corpus.from_frame(documents)
    embedding_set = settings.paths.embedding_set(context.partition_key)
    cache = EmbeddingCache(settings.paths.embeddings)
    # Progress lines go to the run's log (the UI and the terminal) while a large corpus is encoded.
    outcome = embed_corpus(
        corpus.texts, corpus.content_hash, embedding_set, cache, settings.embedding_settings(), logger=context.log
    )
    context.log.info(
        "%s embeddings for %s: %s",
        "reused cached" if outcome.from_cache else "computed",
        embedding_set.key,
        outcome.embeddings.shape,
    )
    return dg.MaterializeResult(
        check_results=[embeddings_check(outcome.embeddings, len(corpus))],
        data_version=dg.DataVersion(outcome.cache_key),
        metadata={
            "model": embedding_set.embedding_model,
            "remove_stopwords": embedding_set.remove_stopwords,
            "cache_key": outcome.cache_key,
            "path": dg.MetadataValue.path(str(cache.path(outcome.cache_key))),
            "shape": str(list(outcome.embeddings.shape)),
            "from_cache": outcome.from_cache,
            "device": outcome.device,
            "corpus_hash": corpus.content_hash,
        },
    )


def embeddings_check(array: np.ndarray, n_documents: int) -> dg.AssetCheckResult:
    """Checked as they are made: the array is in memory here, and a later step would only reload it."""
    problems = []
    if array.ndim != 2 or array.shape[0] != n_documents or array.shape[1] == 0:
        problems.append(f"shape {list(array.shape)}, expected [{n_documents}, width] (one row per document)")
    bad_rows = int((~np.isfinite(array)).any(axis=1).sum()) if array.ndim == 2 else 0
    if bad_rows:
        problems.append(f"{bad_rows} document(s) with a NaN or infinite value")
    return dg.AssetCheckResult(
        check_name="embeddings_are_usable",
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"shape": str(list(array.shape)), "non_finite_rows": bad_rows},
        description="; ".join(problems) or f"{array.shape[0]} documents x {array.shape[1]} dimensions, all finite.",
    )

"""Sentence embeddings, once per embedding set, cached on disk so no trial ever re-embeds."""


import dagster as dg
import pandas as pd

from topic_pipeline.inputs.corpus import Corpus
from topic_pipeline.defs.partitions import embedding_set_partitions
from topic_pipeline.inputs.embeddings import EmbeddingCache, embed_corpus
from topic_pipeline.processes import exit_with_parent
from topic_pipeline.defs.resources.settings import PipelineSettings


@dg.asset(
    group_name="embeddings",
    partitions_def=embedding_set_partitions,
    # One embedding job at a time holds the GPU; set the limit with `dagster instance concurrency set gpu 1`.
    pool="gpu",
    op_tags={"gpu": "true"},
    kinds={"pytorch", "numpy"},
)
def embeddings(context: dg.AssetExecutionContext, documents: pd.DataFrame, settings: PipelineSettings) -> dg.MaterializeResult:
    """Embeddings of every document for one (model, stop-word setting), cached as .npy."""
    exit_with_parent()  # a step whose run's process was killed has nobody to deliver its embeddings to
    corpus = Corpus.from_frame(documents)
    embedding_set = settings.paths.embedding_set(context.partition_key)
    cache = EmbeddingCache(settings.paths.embeddings)
    outcome = embed_corpus(corpus.texts, corpus.content_hash, embedding_set, cache, settings.embedding_settings())
    context.log.info(
        "%s embeddings for %s: %s", "reused cached" if outcome.from_cache else "computed", embedding_set.key, outcome.embeddings.shape
    )
    return dg.MaterializeResult(
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

"""The inputs of a sweep: the texts, the labelled sample and the grid."""


import dagster as dg
import pandas as pd

from topic_pipeline.corpus import Corpus, load_corpus, safe_url
from topic_pipeline.defs.partitions import embedding_set_partitions, trial_partitions
from topic_pipeline.grid import ParamGrid
from topic_pipeline.ground_truth import GroundTruth
from topic_pipeline.resources.database import WINDOW_END_TAG, DocumentsDatabase
from topic_pipeline.resources.settings import PipelineSettings
from topic_pipeline.storage import write_json

GROUP = "inputs"


def _preview(corpus: Corpus, rows: int = 5) -> str:
    lines = ["| id | text |", "|---|---|"]
    for text_id, text in list(zip(corpus.ids.tolist(), corpus.texts))[:rows]:
        lines.append(f"| {text_id} | {text.replace('|', '/')[:120]} |")
    return "\n".join(lines)


@dg.asset(group_name=GROUP, kinds={"sql", "parquet"})
def documents(context: dg.AssetExecutionContext, database: DocumentsDatabase, settings: PipelineSettings) -> dg.Output[pd.DataFrame]:
    """The SQL export of the collected texts: (id, text) rows sorted by id, with a content hash."""
    source = database.source(settings.layout.sample, window_reference=context.run.tags.get(WINDOW_END_TAG))
    corpus = load_corpus(source)
    context.log.info("exported %d texts from %s, window %s", len(corpus), safe_url(source.url), source.window.describe())
    return dg.Output(
        corpus.to_frame(),
        data_version=dg.DataVersion(corpus.content_hash),
        metadata={
            "dagster/row_count": len(corpus),
            "content_hash": corpus.content_hash,
            "source": safe_url(source.url),
            "window": source.window.describe(),
            "preview": dg.MetadataValue.md(_preview(corpus)),
        },
    )


@dg.asset(group_name=GROUP, kinds={"json"})
def ground_truth(context: dg.AssetExecutionContext, documents: pd.DataFrame, settings: PipelineSettings) -> dg.Output[dict]:
    """The labelled sample ``{"<cluster id>": [text ids]}``, validated against the documents."""
    path = settings.ground_truth_file()
    labels = GroundTruth.from_file(path)
    labels.validate_against(documents["id"].tolist(), where=f"ground truth file '{path}'")
    sizes = {cluster: len(ids) for cluster, ids in labels.to_mapping().items()}
    return dg.Output(
        labels.to_mapping(),
        data_version=dg.DataVersion(labels.content_hash),
        metadata={
            "content_hash": labels.content_hash,
            "path": str(path),
            "clusters": labels.n_clusters,
            "labelled_documents": len(labels.cluster_of),
            "coverage": round(len(labels.cluster_of) / len(documents), 4),
            "cluster_sizes": dg.MetadataValue.json(sizes),
        },
    )


@dg.asset(group_name=GROUP, kinds={"json"})
def param_grid(context: dg.AssetExecutionContext, documents: pd.DataFrame, settings: PipelineSettings) -> dg.Output[dict]:
    """The grid, expanded: one trial partition per combination, registered with its parameters."""
    path = settings.grid_file()
    grid = ParamGrid.from_file(path)
    grid.validate_for_corpus(len(documents), where=f"grid file '{path}'")
    trials = grid.trials()
    layout = settings.layout
    new_keys = [trial.key for trial in trials if layout.register_trial(trial)]
    embedding_sets = {trial.embedding_set.key: trial.embedding_set.to_dict() for trial in trials}

    instance = context.instance
    for partitions, keys in ((embedding_set_partitions, list(embedding_sets)), (trial_partitions, [t.key for t in trials])):
        known = set(instance.get_dynamic_partitions(partitions.name))
        missing = [key for key in keys if key not in known]
        if missing:
            instance.add_dynamic_partitions(partitions.name, missing)
    manifest = {
        "grid_fingerprint": grid.fingerprint,
        "source": str(path),
        "grid": grid.to_dict(),
        "embedding_sets": embedding_sets,
        "trials": {trial.key: trial.to_dict() for trial in trials},
    }
    write_json(layout.current_grid, manifest)
    context.log.info("grid %s: %d trials, %d new", path, len(trials), len(new_keys))
    return dg.Output(
        manifest,
        data_version=dg.DataVersion(grid.fingerprint),
        metadata={
            "grid_fingerprint": grid.fingerprint,
            "path": str(path),
            "trials": len(trials),
            "new_trial_keys": len(new_keys),
            "embedding_sets": dg.MetadataValue.json(sorted(embedding_sets)),
            "grid": dg.MetadataValue.json(grid.to_dict()),
        },
    )

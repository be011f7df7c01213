"""The inputs of a sweep: the texts, the labelled sample and the grid."""

import dagster as dg
import pandas as pd

from topic_pipeline.defs.resources.database import WINDOW_END_TAG, DocumentsDatabase
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.errors import listing
from topic_pipeline.inputs.corpus import Corpus, load_corpus
from topic_pipeline.inputs.ground_truth import GroundTruth, LabelCoverage
from topic_pipeline.redaction import mask_url
from topic_pipeline.workflow.grid import make_grid_current
from topic_pipeline.workflow.sweep_inputs import SweepInputs

GROUP = "inputs"


def _preview(corpus: Corpus, rows: int = 5) -> str:
    lines = ["| id | text |", "|---|---|"]
    for text_id, text in list(zip(corpus.ids.tolist(), corpus.texts))[:rows]:
        lines.append(f"| {text_id} | {text.replace('|', '/')[:120]} |")
    return "\n".join(lines)


@dg.asset(group_name=GROUP, kinds={"sql", "parquet"})
def documents(
    context: dg.AssetExecutionContext, database: DocumentsDatabase, settings: PipelineSettings
) -> dg.Output[pd.DataFrame]:
    """The SQL export of the collected texts: (id, text) rows sorted by id, with a content hash."""
    source = database.source(settings.paths.demo, window_reference=context.run.tags.get(WINDOW_END_TAG))
    corpus = load_corpus(source)
    for note in corpus.notes:
        context.log.warning(note)
    context.log.info(
        "exported %d texts from %s, window %s", len(corpus), mask_url(source.url), source.window.describe()
    )
    return dg.Output(
        corpus.to_frame(),
        data_version=dg.DataVersion(corpus.content_hash),
        metadata={
            "dagster/row_count": len(corpus),
            "content_hash": corpus.content_hash,
            "source": mask_url(source.url),
            "window": source.window.describe(),
            "preview": dg.MetadataValue.md(_preview(corpus)),
            **({"notes": "\n".join(corpus.notes)} if corpus.notes else {}),
        },
    )


@dg.asset(
    group_name=GROUP,
    kinds={"json"},
    check_specs=[
        dg.AssetCheckSpec(
            "labels_found_in_export",
            asset="ground_truth",
            description=(
                "Whether every labelled text id is in the SQL export. Warns when some are not: they are left out "
                "of every score (the metadata lists them), and a cluster that loses all its ids is dropped. Below "
                "the minimum share found (TOPIC_PIPELINE_MIN_LABELS_FOUND, default 90 %) the labels are refused "
                "and the asset fails, so nothing downstream runs on them."
            ),
        )
    ],
)
def ground_truth(context: dg.AssetExecutionContext, documents: pd.DataFrame, settings: PipelineSettings):
    """The labelled sample ``{"<cluster id>": [text ids]}``: the ids the documents hold, validated."""
    path = settings.ground_truth_file()
    where = f"ground truth file '{path}'"
    labels, coverage = GroundTruth.from_file(path).found_in(
        documents["id"].tolist(), settings.min_labels_found, where=where
    )
    if coverage.missing:
        context.log.warning("%s", labels_found_description(coverage, where))
    sizes = {cluster: len(ids) for cluster, ids in labels.to_mapping().items()}
    yield dg.Output(
        labels.to_mapping(),
        data_version=dg.DataVersion(labels.content_hash),
        metadata={
            "content_hash": labels.content_hash,
            "path": str(path),
            "clusters": labels.n_clusters,
            "labelled_documents": len(labels.cluster_of),
            "labelled_share_of_corpus": round(len(labels.cluster_of) / len(documents), 4),
            "labelled_ids_found_share": round(coverage.found_share, 4),
            "cluster_sizes": dg.MetadataValue.json(sizes),
        },
    )
    yield labels_found_check(coverage, where)


def labels_found_description(coverage: LabelCoverage, where: str) -> str:
    if not coverage.missing:
        return f"All {coverage.labelled} labelled text ids are in the export."
    lost = (
        f" Clusters left without any id, dropped: {listing(coverage.lost_clusters)}." if coverage.lost_clusters else ""
    )
    return (
        f"{where}: {len(coverage.missing)} of {coverage.labelled} labelled text id(s) are not in the export and are left "
        f"out of every score ({coverage.found_share:.1%} found): {listing(coverage.missing)}.{lost}"
    )


def labels_found_check(coverage: LabelCoverage, where: str) -> dg.AssetCheckResult:
    """Evaluated as the labels are matched: only here are the ids the export lacks still known."""
    return dg.AssetCheckResult(
        check_name="labels_found_in_export",
        passed=not coverage.missing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "labelled_ids": coverage.labelled,
            "found": coverage.found,
            "found_share": round(coverage.found_share, 4),
            "missing_ids": dg.MetadataValue.json(list(coverage.missing[:100])),
            "clusters_dropped": dg.MetadataValue.json(list(coverage.lost_clusters)),
        },
        description=labels_found_description(coverage, where),
    )


@dg.asset(group_name=GROUP, kinds={"json"})
def param_grid(
    context: dg.AssetExecutionContext, documents: pd.DataFrame, ground_truth: dict, settings: PipelineSettings
) -> dg.MaterializeResult:
    """The sweep's trials, one partition each: the grid file expanded, or a search's rounds so far.

    A grid file ``{"search": "auto", ...}`` (or no grid file) starts the default search with its broad
    round; ``search_refinement`` adds the later rounds. An unchanged search (same spec, corpus and
    labels) keeps its rounds: re-materialising this asset never restarts it.

    The manifest is written to the data directory. The partitions it needs are added where the runs
    that target them are planned, not here: by the sweep sensor (through its ``SensorResult``; with the
    sensor stopped, when it starts) or by ``topic-pipeline sweep``. No run could materialise them
    earlier (partitions added during a run cannot be materialised in it), and the sensor's tick
    records what it added.
    """
    inputs = SweepInputs.load(settings.sweep_config(), documents, ground_truth)
    grid = make_grid_current(inputs, settings.grid_file(), settings.max_grid_trials, log=context.log)
    manifest = grid.manifest
    extra: dict[str, object] = {}
    if grid.search_rounds is not None:
        extra.update({"search_rounds": grid.search_rounds, "search_finished": grid.search_finished})
    # No value for the IO manager: the manifest's one copy is the file every consumer reads (a search's
    # later rounds rewrite it, so a stored value would go stale).
    return dg.MaterializeResult(
        data_version=dg.DataVersion(manifest["grid_fingerprint"]),
        metadata={
            "grid_fingerprint": manifest["grid_fingerprint"],
            "manifest": dg.MetadataValue.path(str(inputs.paths.current_grid)),
            "path": grid.where,
            "trials": len(manifest["trials"]),
            "new_trial_keys": grid.new,
            "embedding_sets": dg.MetadataValue.json(sorted(manifest["embedding_sets"])),
            "grid": dg.MetadataValue.json(grid.definition),
            **extra,
        },
    )

"""Grid trials: one partition per combination, scored against the labelled sample."""

import contextlib
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd

from topic_pipeline._compat.dagster import root_run_tag
from topic_pipeline.defs.assets.embeddings import embeddings
from topic_pipeline.defs.partitions import trial_partitions
from topic_pipeline.defs.resources.mlflow import MlflowTracking
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.domain.results import STATUS_OK, TrialResult
from topic_pipeline.processes import exit_with_parent, process_identity
from topic_pipeline.scoring.holdout import score_order
from topic_pipeline.storage.run_records import PROGRESS_FILE, STEP_PROCESS, RunRecords
from topic_pipeline.workflow.sweep_inputs import SweepInputs
from topic_pipeline.workflow.trials import RecordedTrial, TrialBatchSummary, run_trial_batch

# The most trial partitions one run takes: every run starts its worker pool (imports, numba compilation)
# once. The sweep sensor and the command line cut runs along shared work (``planning._trials_runs``,
# ``TOPIC_PIPELINE_SWEEP_RUNS``); a UI backfill is split by count alone (the ``BackfillPolicy`` below), so a
# group may be cut where a run fills up.
TRIALS_PER_RUN = 1000

ROOT_RUN_ID_TAG = root_run_tag()

# Decimals of the scores a partition shows: finer than any difference a labelled sample resolves (the
# result store keeps them whole).
SHOWN_DECIMALS = 4


def trial_metadata(result: TrialResult, run_url: str | None = None) -> dict[str, object]:
    """A trial partition's materialisation metadata, from its stored result row, in the order the UI lists it:
    its MLflow run, its status, its scores (the ranking ones first), then where it came from."""
    metadata: dict[str, object] = {"mlflow_run": dg.MetadataValue.url(run_url)} if run_url else {}
    metadata["status"] = result.status
    if result.status == STATUS_OK:
        for name in sorted(result.metrics, key=score_order):
            metadata[name] = round(float(result.metrics[name]), SHOWN_DECIMALS)
    else:
        metadata["error"] = dg.MetadataValue.text(result.error or "")
    metadata.update(
        {
            "duration_s": round(result.duration_s, 3),
            "mlflow_run_id": result.tags.get("mlflow_run_id", ""),
            "inputs_fingerprint": result.fingerprint,
            "params": dg.MetadataValue.json(result.params),
        }
    )
    return metadata


def recorded_trial_metadata(recorded: RecordedTrial) -> dict[str, object]:
    """A trial's materialisation metadata as its step records it: with its MLflow link and search round."""
    metadata = trial_metadata(recorded.result, recorded.run_url)
    if recorded.search_round is not None:
        metadata["search_round"] = int(recorded.search_round)
    return metadata


def batch_metadata(summary: TrialBatchSummary) -> dict[str, object]:
    """The run's engine figures, observed on the asset once its trials are done."""
    stats = summary.stats
    return {
        "trials_in_run": summary.trials,
        "failed_in_run": len(summary.failed),
        "engine": summary.engine,
        "run_seconds": round(stats.seconds, 2),
        "umap_reductions_computed": stats.reductions_computed,
        "umap_reductions_reused": stats.reductions_reused,
        "hdbscan_trees_built": stats.trees_built,
        # What outlier reduction cost in the workers (included in run_seconds' work).
        "outlier_variants": stats.outlier_variants,
        "outlier_seconds": round(stats.outlier_seconds, 2),
        # Where the work went, summed over the engine's workers (docs/engine.md).
        "graph_seconds": round(stats.graph_seconds, 2),
        "layout_seconds": round(stats.layout_seconds, 2),
        "clustering_seconds": round(stats.clustering_seconds, 2),
        "scoring_seconds": round(stats.scoring_seconds, 2),
    }


def earlier_attempts(context: dg.AssetExecutionContext) -> set[str]:
    """For a re-execution (a retry of a run whose worker died, say): the other runs of its group, the root
    run and its re-executions. Empty for a first attempt."""
    run = context.run
    if run.parent_run_id is None:
        return set()
    root = run.root_run_id or run.parent_run_id
    group = context.instance.get_runs(dg.RunsFilter(tags={ROOT_RUN_ID_TAG: root}))
    return ({root} | {other.run_id for other in group}) - {run.run_id}


@dg.asset(
    group_name="sweep",
    partitions_def=trial_partitions,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=TRIALS_PER_RUN),
    deps=[dg.AssetDep(embeddings, partition_mapping=dg.AllPartitionMapping())],
    kinds={"python"},
    output_required=False,  # its partitions materialise as events, one as each trial finishes
)
def grid_trials(
    context: dg.AssetExecutionContext,
    documents: pd.DataFrame,
    ground_truth: dict,
    settings: PipelineSettings,
    mlflow: MlflowTracking,
) -> Iterator[dg.AssetMaterialization | dg.AssetObservation]:
    """UMAP -> HDBSCAN -> BERTopic labels on the cached embeddings, scored against the labelled sample.

    Each partition materialises the moment its trial is done (the UI shows a run's progress), with its
    own metadata and MLflow run. A failing combination is recorded as failed (here, in MLflow and on the
    leaderboard); the others go on. The run's engine figures close it as an observation.
    """
    # A step killed with its run's process must not go on computing trials that a rerun plans again;
    # recovery reads the step's own identity to wait for it.
    exit_with_parent()
    records = RunRecords(settings.paths.run_records)
    # A run the command line executes in-process, or a cluster's worker executes, has a record: the command line
    # asks for a progress file (its progress bar) there, and recovery reads the step's own identity there to
    # wait for it. The UI reads the log.
    record = records.read(context.run_id)
    if record:
        records.update(context.run_id, **{STEP_PROCESS: process_identity()})
    inputs = SweepInputs.load(settings.sweep_config(), documents, ground_truth)
    progress_file = record.get(PROGRESS_FILE)
    batch = run_trial_batch(
        inputs,
        context.partition_keys,
        mlflow.tracker(inputs.paths),
        context.run.run_id,
        log=context.log,
        progress_file=Path(progress_file) if progress_file else None,
        # A trial an earlier attempt recorded is shown already, by it or by recovery: not run or shown again.
        earlier_attempts=earlier_attempts(context),
    )
    with contextlib.closing(batch):  # a step that stops stops the sweep at its next trial
        for outcome in batch:
            if isinstance(outcome, TrialBatchSummary):
                yield dg.AssetObservation(asset_key=context.asset_key, metadata=batch_metadata(outcome))
            else:
                yield dg.AssetMaterialization(
                    asset_key=context.asset_key, partition=outcome.key, metadata=recorded_trial_metadata(outcome)
                )

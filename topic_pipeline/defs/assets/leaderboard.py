"""The leaderboard of the current grid: the ranking stage (``workflow.ranking``) mapped onto Dagster."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from topic_pipeline.defs.assets.inputs import param_grid
from topic_pipeline.defs.assets.trials import grid_trials
from topic_pipeline.defs.checks import leaderboard_check_results, leaderboard_check_specs
from topic_pipeline.defs.resources.mlflow import MlflowTracking
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.domain.results import STATUS_FAILED, STATUS_MISSING, STATUS_OK
from topic_pipeline.workflow.ranking import Ranking, rank_sweep
from topic_pipeline.workflow.sweep_inputs import SweepInputs

# Rows of the leaderboard's table in the Dagster UI: the scored leaders, then every failed or missing
# trial (up to as many again); the CSV has them all.
TABLE_ROWS = 100
TABLE_METRICS = ("ari", "ami", "nmi", "f1_macro", "f1_weighted", "outlier_fraction")


def leaderboard_table(frame: pd.DataFrame, rank_by: str, varying: list[str]) -> dg.TableMetadataValue:
    """The leaderboard as a table the Dagster UI renders and sorts: rank, trial, search round, the metrics
    (three decimals) and the grid parameters that vary in this sweep."""
    metrics = [rank_by] + [name for name in TABLE_METRICS if name != rank_by]
    seeds = f"{rank_by}_seeds"
    columns = [
        dg.TableColumn("rank", "int"),
        dg.TableColumn("trial", "string"),
        dg.TableColumn("status", "string"),
        dg.TableColumn("round", "int", description="the search round that proposed the trial"),
        *(dg.TableColumn(name, "float") for name in metrics),
        dg.TableColumn("topic_count", "int"),
        dg.TableColumn(f"heldout_{rank_by}", "float", description="on the held-out labels, which no ranking reads"),
        dg.TableColumn("estimate", "float", description="the configuration's held-out score (its seeds' mean)"),
        dg.TableColumn("ci_low", "float", description="95 % bootstrap interval of the estimate, low end"),
        dg.TableColumn("ci_high", "float", description="95 % bootstrap interval of the estimate, high end"),
        dg.TableColumn(
            "versus_recommended", "string", description="whether its interval overlaps the recommended one's"
        ),
        dg.TableColumn("seed_averaged", "bool", description="ranked by its seeds' mean"),
        dg.TableColumn(f"{rank_by}_seed_mean", "float", description="mean over the configuration's UMAP seeds"),
        dg.TableColumn(seeds, "int", description="UMAP seeds the configuration ran with"),
        *(dg.TableColumn(name, "string") for name in varying),
    ]

    def value(row: pd.Series, name: str, kind: str) -> object:
        cell = row.get(name)
        if cell is None or (not isinstance(cell, str) and pd.isna(cell)):
            return None
        return {"int": int, "float": lambda v: round(float(v), 3), "string": str, "bool": bool}[kind](cell)

    shown = pd.concat(
        [frame[frame["status"] == STATUS_OK].head(TABLE_ROWS), frame[frame["status"] != STATUS_OK].head(TABLE_ROWS)]
    )
    sources = {f"{rank_by}_seed_mean": f"{rank_by}_mean"}
    records = [
        dg.TableRecord(
            {column.name: value(row, sources.get(column.name, column.name), column.type) for column in columns}
        )
        for _, row in shown.iterrows()
    ]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns))


@dg.asset(
    group_name="sweep", deps=[grid_trials, param_grid], kinds={"csv", "mlflow"}, check_specs=leaderboard_check_specs()
)
def leaderboard(
    context: dg.AssetExecutionContext,
    documents: pd.DataFrame,
    ground_truth: dict,
    settings: PipelineSettings,
    mlflow: MlflowTracking,
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetCheckResult]:
    """Every trial of the current sweep, ranked; failed and not-yet-run trials listed as such.

    The current sweep is read from the data directory, not from ``param_grid``'s value: a search's
    refinement rounds add trials after ``param_grid`` was materialised. The leading trials' topic words
    are shown here (the best trial's, in the summary) and logged as ``topics.json`` on their MLflow runs.
    The HTML report is the ``sweep_report`` asset, downstream: ranking never waits on plots.
    """
    inputs = SweepInputs.load(settings.sweep_config(), documents, ground_truth)
    ranking = rank_sweep(inputs, mlflow.tracker(settings.paths), context.run.run_id)
    for warning in ranking.warnings:
        context.log.warning(warning)
    yield dg.Output(ranking.frame, metadata=leaderboard_metadata(ranking))
    yield from leaderboard_check_results(ranking.frame, inputs.labels, settings)


def leaderboard_metadata(ranking: Ranking) -> dict[str, object]:
    """The asset's metadata: the ranking as a table, what a table cannot say as Markdown, the counts and
    the fingerprints the planner compares (``results_digest``)."""
    rank_by, counts = ranking.rank_by, ranking.counts
    metadata = {
        "leaderboard": leaderboard_table(ranking.frame, rank_by, ranking.varying),
        "summary": dg.MetadataValue.md("\n\n".join(ranking.summary) if ranking.summary else "No warnings."),
        "csv": dg.MetadataValue.path(str(ranking.csv_path)),
        "best_trial": ranking.best_trial or "none",
        f"best_{rank_by}": ranking.best_score,
        "scored": counts[STATUS_OK],
        "failed": counts[STATUS_FAILED],
        "missing": counts[STATUS_MISSING],
        "rank_by": rank_by,
        "rank_by_stability": ranking.rank_by_stability,
        "grid_fingerprint": ranking.grid_fingerprint,
        "inputs_fingerprint": ranking.inputs_fingerprint,
        "results_digest": ranking.results_digest,
        "mlflow_run_id": ranking.mlflow_run_id,
        "warnings": dg.MetadataValue.text("\n".join(ranking.warnings) if ranking.warnings else "none"),
        "heldout_documents": ranking.heldout_documents,
        f"expected_{rank_by}": ranking.expected_score,
    }
    if ranking.mlflow_run_url:
        metadata["mlflow_run"] = dg.MetadataValue.url(ranking.mlflow_run_url)
    return metadata

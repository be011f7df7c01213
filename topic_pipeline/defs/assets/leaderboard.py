"""The leaderboard of the current grid: the ranking stage (``workflow.ranking``) mapped onto Dagster."""

from collections.abc import Iterator
from urllib.parse import quote

import dagster as dg
import pandas as pd

from topic_pipeline.defs.assets.inputs import param_grid
from topic_pipeline.defs.assets.trials import grid_trials
from topic_pipeline.defs.checks import leaderboard_check_results, leaderboard_check_specs
from topic_pipeline.defs.resources.mlflow import MlflowTracking
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.domain.results import STATUS_FAILED, STATUS_MISSING, STATUS_OK
from topic_pipeline.scoring.leaderboard import RANKING_VALUE, configurations, to_markdown
from topic_pipeline.workflow.ranking import Ranking, rank_sweep
from topic_pipeline.workflow.sweep_inputs import SweepInputs

# Rows of the trials table in the Dagster UI: the scored leaders, then every failed or missing trial (up to as
# many again); the CSV has them all. The configurations table shows as many configurations.
TABLE_ROWS = 100
TABLE_METRICS = ("ari", "ami", "nmi", "f1_macro", "f1_weighted", "outlier_fraction")
# Configurations in the summary's Markdown table, each linked to its best seed's partition.
SUMMARY_CONFIGURATIONS = 10
# Decimals of the figures the UI shows: finer than any difference a labelled sample resolves.
SHOWN_DECIMALS = 4


def partition_link(trial_key: str) -> str:
    """The trial's partition page in the Dagster UI, relative to the UI's own address."""
    return f"/assets/{grid_trials.key.to_user_string()}?view=partitions&partition={quote(trial_key, safe='')}"


def _cell(row: pd.Series, name: str, kind: str) -> object:
    cell = row.get(name)
    if cell is None or (not isinstance(cell, str) and pd.isna(cell)):
        return None
    # A configuration's topic count is a mean over its seeds: rounded to the nearest, never truncated.
    return {"int": lambda v: round(float(v)), "float": lambda v: round(float(v), 3), "string": str, "bool": bool}[kind](
        cell
    )


def _table(frame: pd.DataFrame, columns: list[dg.TableColumn], sources: dict[str, str]) -> dg.TableMetadataValue:
    records = [
        dg.TableRecord({c.name: _cell(row, sources.get(c.name, c.name), c.type) for c in columns})
        for _, row in frame.iterrows()
    ]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns))


def _interval_columns() -> list[dg.TableColumn]:
    return [
        dg.TableColumn(
            "estimate",
            "float",
            description="the configuration's held-out score (its seeds' mean); in-sample where nothing is held out",
        ),
        dg.TableColumn("ci_low", "float", description="95 % bootstrap interval of the estimate, low end"),
        dg.TableColumn("ci_high", "float", description="95 % bootstrap interval of the estimate, high end"),
        dg.TableColumn(
            "versus_recommended", "string", description="whether its interval overlaps the recommended one's"
        ),
    ]


def configurations_table(frame: pd.DataFrame, rank_by: str, varying: list[str]) -> dg.TableMetadataValue:
    """One row per configuration, in rank order: what it is ranked by, its seeds' mean and spread of
    ``rank_by``, the held-out estimate and interval, and the grid parameters that vary in this sweep."""
    columns = [
        dg.TableColumn("rank", "int", description="the configuration's place"),
        dg.TableColumn("trial", "string", description="its best seed: the trial an export takes"),
        dg.TableColumn(RANKING_VALUE, "float", description="what it is ranked by: its seeds' mean (or mean - std)"),
        dg.TableColumn("seeds", "int", description="UMAP seeds it ran with"),
        dg.TableColumn(f"{rank_by}_mean", "float", description="mean over its seeds"),
        dg.TableColumn(f"{rank_by}_std", "float", description="spread over its seeds"),
        dg.TableColumn(f"heldout_{rank_by}", "float", description="held-out score, mean over its seeds"),
        *_interval_columns(),
        *(dg.TableColumn(name, "float") for name in TABLE_METRICS if name != rank_by),
        dg.TableColumn("topic_count", "int"),
        *(dg.TableColumn(name, "string") for name in varying),
    ]
    sources = {f"{rank_by}_mean": rank_by, f"{rank_by}_std": "std"}
    return _table(configurations(frame, rank_by).head(TABLE_ROWS), columns, sources)


def leaderboard_table(frame: pd.DataFrame, rank_by: str, varying: list[str]) -> dg.TableMetadataValue:
    """Every trial (each seed of a configuration its own row) as a table the Dagster UI renders and sorts: rank,
    trial, search round, what it is ranked by, the metrics (three decimals) and the varying grid parameters."""
    metrics = [rank_by] + [name for name in TABLE_METRICS if name != rank_by]
    columns = [
        dg.TableColumn("rank", "int"),
        dg.TableColumn("trial", "string"),
        dg.TableColumn("status", "string"),
        dg.TableColumn(
            RANKING_VALUE, "float", description="what it is ranked by: its configuration's seed mean, or its own score"
        ),
        dg.TableColumn("round", "int", description="the search round that proposed the trial"),
        *(dg.TableColumn(name, "float") for name in metrics),
        dg.TableColumn("topic_count", "int"),
        dg.TableColumn(f"heldout_{rank_by}", "float", description="on the held-out labels, which no ranking reads"),
        *_interval_columns(),
        dg.TableColumn("seed_averaged", "bool", description="ranked by its seeds' mean"),
        dg.TableColumn(f"{rank_by}_seeds", "int", description="UMAP seeds the configuration ran with"),
        *(dg.TableColumn(name, "string") for name in varying),
    ]
    shown = pd.concat(
        [frame[frame["status"] == STATUS_OK].head(TABLE_ROWS), frame[frame["status"] != STATUS_OK].head(TABLE_ROWS)]
    )
    return _table(shown, columns, {})


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
    """The asset's metadata, the answer first (the UI lists entries in this order): the verdict, the three
    figures a sweep's history plots, the summary with the top configurations linked to their partitions, the
    links, the counts, the tables, and last the fingerprints the planner compares (``results_digest``)."""
    rank_by, counts = ranking.rank_by, ranking.counts
    table = to_markdown(ranking.frame, rank_by, limit=SUMMARY_CONFIGURATIONS, link=partition_link)
    metadata: dict[str, object] = {
        "recommended": dg.MetadataValue.text(ranking.verdict),
        "recommended_trial": ranking.recommended_trial or "none",
        # Each its own series in the UI's plots: the first never falls, the others follow the recommendation.
        f"best_trial_{rank_by}": round(ranking.best_trial_score, SHOWN_DECIMALS),
        f"recommended_mean_{rank_by}": round(ranking.recommended_mean, SHOWN_DECIMALS),
        f"recommended_heldout_{rank_by}": round(ranking.recommended_heldout, SHOWN_DECIMALS),
        "summary": dg.MetadataValue.md("\n\n".join([*ranking.summary, f"**Top configurations**\n\n{table}"])),
    }
    if ranking.mlflow_run_url:
        metadata["mlflow_run"] = dg.MetadataValue.url(ranking.mlflow_run_url)
    metadata.update(
        {
            "warnings": dg.MetadataValue.text("\n".join(ranking.warnings) if ranking.warnings else "none"),
            "scored": counts[STATUS_OK],
            "failed": counts[STATUS_FAILED],
            "missing": counts[STATUS_MISSING],
            "heldout_documents": ranking.heldout_documents,
            "rank_by": rank_by,
            "rank_by_stability": ranking.rank_by_stability,
            "csv": dg.MetadataValue.path(str(ranking.csv_path)),
            "configurations": configurations_table(ranking.frame, rank_by, ranking.varying),
            "trials": leaderboard_table(ranking.frame, rank_by, ranking.varying),
            "mlflow_run_id": ranking.mlflow_run_id,
            "grid_fingerprint": ranking.grid_fingerprint,
            "inputs_fingerprint": ranking.inputs_fingerprint,
            "results_digest": ranking.results_digest,
        }
    )
    return metadata

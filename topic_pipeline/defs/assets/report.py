"""The sweep report: the report stage (``workflow.report``) mapped onto Dagster, downstream of the leaderboard."""

import dagster as dg
import pandas as pd

from topic_pipeline.defs.resources.mlflow import MlflowTracking
from topic_pipeline.defs.resources.settings import PipelineSettings
from topic_pipeline.errors import error_text
from topic_pipeline.scoring.importance import ParameterImportance
from topic_pipeline.workflow.report import write_sweep_report
from topic_pipeline.workflow.sweep_inputs import SweepInputs


@dg.asset(group_name="sweep", kinds={"html", "mlflow"})
def sweep_report(
    context: dg.AssetExecutionContext,
    leaderboard: pd.DataFrame,
    documents: pd.DataFrame,
    ground_truth: dict,
    settings: PipelineSettings,
    mlflow: MlflowTracking,
) -> dg.MaterializeResult:
    """The HTML report of the latest leaderboard (convergence, parameter effects and importance, the trials in
    parallel coordinates, the clustering heatmap, the top configurations and the best trial's topic map) with
    a PNG of each plot and ``importances.json``, in ``<data dir>/leaderboard/report/`` and on the sweep's
    MLflow run. Its metadata holds the parameters' importance as a table, the method named beside it.

    A display aid, never a reason to fail a sweep: what cannot be drawn or written is a warning in the
    run's log and in this asset's metadata, and the asset still succeeds.
    """
    try:
        inputs = SweepInputs.load(settings.sweep_config(), documents, ground_truth)
        report = write_sweep_report(inputs, leaderboard, mlflow.tracker(settings.paths))
    except Exception as error:  # a display aid: never a reason to fail the run that ranked
        context.log.warning(f"no report written: {error_text(error)}")
        return dg.MaterializeResult(metadata={"report": "none (see the run's log)", "problems": error_text(error)})
    for problem in report.problems:
        context.log.warning(f"report: {problem}")
    metadata = {
        "report": dg.MetadataValue.path(str(report.files.html)),
        "images": len(report.files.images),
        "trial_shown": report.chosen or "none",
        "map_documents": report.map_documents,
        "total_documents": report.total_documents,
        "map_layout": report.map_layout,
        "problems": dg.MetadataValue.text("\n".join(report.problems) if report.problems else "none"),
        "parameter_importance": _importance_table(report.files.importance),
        "importance_method": dg.MetadataValue.text(
            report.files.importance.describe()
            if not report.files.importance.reason
            else f"{report.files.importance.method}: none, {report.files.importance.reason}"
        ),
    }
    if report.mlflow_run_url:
        metadata["mlflow_run"] = dg.MetadataValue.url(report.mlflow_run_url)
    if report.mlflow_report_url:
        # A link the UI can follow (a file path it can only show): the page among the run's artifacts, to download.
        metadata["report_in_mlflow"] = dg.MetadataValue.url(report.mlflow_report_url)
    return dg.MaterializeResult(metadata=metadata)


def _importance_table(importance: ParameterImportance) -> dg.TableMetadataValue:
    """The parameters, most important first, each with its share of the ranking metric's variance."""
    columns = [
        dg.TableColumn("parameter", "string", description="a grid parameter that took several values"),
        dg.TableColumn(
            "importance",
            "float",
            description=f"share of the variance of {importance.rank_by} it explains alone ({importance.method})",
        ),
    ]
    records = [
        dg.TableRecord({"parameter": str(row.parameter), "importance": round(float(row.importance), 4)})
        for row in importance.table.itertuples()
    ]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=columns))

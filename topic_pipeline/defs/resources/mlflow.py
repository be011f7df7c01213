"""MLflow tracking. A small resource around ``MlflowClient`` (dagster-mlflow is legacy)."""

from __future__ import annotations

import dagster as dg

from topic_pipeline.storage.paths import DataPaths
from topic_pipeline.integrations.mlflow_tracking import MlflowTracker, local_tracking_uri


class MlflowTracking(dg.ConfigurableResource):
    """``tracking_uri`` empty means the local SQLite store under the data directory."""

    tracking_uri: str = ""
    experiment_name: str = "topic_pipeline"
    ui_url: str = "http://127.0.0.1:5000"

    def tracker(self, paths: DataPaths) -> MlflowTracker:
        if self.tracking_uri:
            return MlflowTracker(self.tracking_uri, self.experiment_name, ui_url=self.ui_url or None)
        artifacts = (paths.mlflow / "artifacts").resolve()
        return MlflowTracker(
            local_tracking_uri(paths.mlflow),
            self.experiment_name,
            artifact_location=artifacts.as_uri(),
            ui_url=self.ui_url or None,
        )

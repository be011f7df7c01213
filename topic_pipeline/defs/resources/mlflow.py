"""MLflow tracking. A small resource around ``MlflowClient`` (dagster-mlflow is legacy)."""

from __future__ import annotations

import dagster as dg

from topic_pipeline.integrations.mlflow_tracking import REACHABLE_TIMEOUT_S, MlflowTracker, local_tracking_uri
from topic_pipeline.storage.paths import DataPaths

# Where ``tracking_uri`` comes from (definitions.build_resources), as named in messages.
TRACKING_URI_SETTING = "MLFLOW_TRACKING_URI"


class MlflowTracking(dg.ConfigurableResource):
    """``tracking_uri`` empty means the local SQLite store under the data directory."""

    tracking_uri: str = ""
    experiment_name: str = "topic_pipeline"
    ui_url: str = "http://127.0.0.1:5000"

    def _tracking_uri(self) -> str:
        # Built outside a run (the command line, tests), the resource holds the EnvVar itself, unresolved.
        value = self.tracking_uri
        return (value.get_value() or "") if isinstance(value, dg.EnvVar) else value

    def tracker(self, paths: DataPaths) -> MlflowTracker:
        tracking_uri = self._tracking_uri()
        if tracking_uri:
            return MlflowTracker(
                tracking_uri, self.experiment_name, ui_url=self.ui_url or None, uri_setting=TRACKING_URI_SETTING
            )
        artifacts = (paths.mlflow / "artifacts").resolve()
        return MlflowTracker(
            local_tracking_uri(paths.mlflow),
            self.experiment_name,
            artifact_location=artifacts.as_uri(),
            ui_url=self.ui_url or None,
        )

    def check_reachable(self, paths: DataPaths, timeout_s: float = REACHABLE_TIMEOUT_S) -> None:
        """Raise ``TrackingUnavailableError`` (one line, credentials masked) within seconds unless the
        tracking store answers: for a sweep to fail at its start rather than when it first records a trial."""
        self.tracker(paths).check_reachable(timeout_s)

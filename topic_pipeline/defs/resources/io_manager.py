"""Asset values on disk without pickle: DataFrames as Parquet, JSON-able values as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from topic_pipeline.storage.files import read_json, write_atomically, write_json
from topic_pipeline.storage.paths import DataPaths


class ParquetJsonIOManager(dg.ConfigurableIOManager):
    data_dir: str = ""

    def _base(self, context: dg.OutputContext | dg.InputContext) -> Path:
        path = DataPaths(self.data_dir or None).assets.joinpath(*context.asset_key.path)
        if context.has_asset_partitions:
            path = path / context.asset_partition_key
        return path

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        base = self._base(context)
        if isinstance(obj, pd.DataFrame):
            write_atomically(base.with_suffix(".parquet"), lambda stream: obj.to_parquet(stream, index=False))
        else:
            write_json(base.with_suffix(".json"), obj)

    def load_input(self, context: dg.InputContext) -> Any:
        base = self._base(context)
        if base.with_suffix(".parquet").exists():
            return pd.read_parquet(base.with_suffix(".parquet"))
        if base.with_suffix(".json").exists():
            return read_json(base.with_suffix(".json"))
        raise FileNotFoundError(
            f"asset {context.asset_key.to_user_string()} has no stored value at {base}.parquet or .json; materialise it first"
        )

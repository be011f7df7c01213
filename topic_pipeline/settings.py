"""Every setting the pipeline reads from the environment: its variable, default, type, check and meaning.

``Settings.load()`` reads and checks them all at once, when a command or the code location starts, so a
bad value stops everything before any work is done, nothing is recomputed and nothing stored is
overwritten. A bad value gives one line per setting naming the variable, the value and what is expected
(``SettingsError``); a value that may hold credentials is never shown. The configuration table in
docs/configuration.md is generated from this class (``settings_table``; a test keeps them equal).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from topic_pipeline.errors import TopicPipelineError
from topic_pipeline.scoring.metrics import METRIC_NAMES

SEED_MAX = 2**32 - 1  # numpy's RandomState (UMAP's random_state) takes seeds in [0, 2**32)
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")
# What a variable of each type expects, for pydantic's own type errors (an unparsable number, say).
_EXPECTED_BY_ERROR = {
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "bool_parsing": "expected a boolean: 1, true, yes, on or 0, false, no, off",
    "literal_error": "expected one of {expected}",
}


class SettingsError(TopicPipelineError):
    """One or more settings hold values the pipeline cannot use; one line per setting."""


def _choices(field_name: str) -> tuple[str, ...]:
    from typing import get_args

    return get_args(Settings.model_fields[field_name].annotation)


class Settings(BaseSettings):
    """The pipeline's settings. Empty variables count as unset (their default applies)."""

    model_config = SettingsConfigDict(
        env_prefix="TOPIC_PIPELINE_",
        case_sensitive=True,
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    # Where things are.
    data_dir: Path = Field(
        Path("data"),
        description="caches, results, leaderboard, local MLflow store and demo data "
        "(layout: [configuration.md](configuration.md#the-data-directory))",
    )
    database_url: SecretStr = Field(
        SecretStr(""),
        description="SQLAlchemy URL of the source database "
        "(`postgresql+psycopg2://…`); empty: the demo SQLite database. Only ever read",
    )
    documents_table: str = Field("documents", description="table to export (a validated identifier, quoted)")
    documents_query: str = Field(
        "", description="one SELECT returning id and text, instead of a table; run in a read-only transaction"
    )
    id_column: str = Field("id", description="id column")
    text_column: str = Field("text", description="text column; several (`title,body`) are joined with a blank line")
    date_column: str = Field("", description="publication-time column the export window filters on")
    window_days: int = Field(
        0,
        ge=0,
        description="export the texts published in the N days before the run (the schedule's tick); 0: no window",
    )
    window_start: str = Field(
        "", description="fixed window start: an ISO date or date-time, included (UTC unless an offset is given)"
    )
    window_end: str = Field("", description="fixed window end: an ISO date or date-time, excluded")
    ground_truth: Path | None = Field(
        None, description='the labelled sample, JSON `{"<cluster id>": [text ids]}`; unset: the demo labels'
    )
    min_labels_found: float = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="share of the labelled ids the export must "
        "hold; the others are left out of scoring (`1`: refuse any missing id)",
    )
    grid: Path | None = Field(
        None, description='grid JSON: an explicit grid or `{"search": "auto", …}`; unset: the default search'
    )
    max_grid_trials: int = Field(
        5_000,
        ge=1,
        description="most combinations a grid file may have; a larger grid is refused before it is expanded",
    )
    # How trials are run and ranked.
    rank_by: str = Field(
        "ari",
        description="ranking metric: "
        + ", ".join(f"`{name}`" for name in METRIC_NAMES)
        + " (ties broken by the others, in this order)",
    )
    rank_by_stability: bool = Field(
        False,
        description="rank configurations run with several UMAP seeds by mean − one std of the ranking metric first",
    )
    umap_seed: int = Field(42, ge=0, le=SEED_MAX, description="UMAP `random_state`")
    holdout_fraction: float = Field(
        0.3,
        ge=0.0,
        lt=1.0,
        description="share of each class's labelled documents held out from ranking and search (0: none)",
    )
    holdout_seed: int = Field(42, ge=0, le=SEED_MAX, description="seed that picks the held-out documents")
    stopwords_language: str = Field(
        "english", description="`english`, or the path of a file with one stop word per line"
    )
    engine: Literal["fast", "reference"] = Field(
        "fast", description="`fast` (shared caches, worker pool) or `reference` (one plain BERTopic fit per trial)"
    )
    workers: int = Field(0, ge=0, description="worker processes of the fast engine; 0: one per CPU core")
    sweep_runs: int = Field(
        1,
        ge=1,
        description="`trials_job` runs a sweep is split into, for several machines: no UMAP reduction is "
        "computed in two runs, a neighbour graph only where that balances them; 1: as few runs as possible",
    )
    sensor_interval_s: int = Field(
        30,
        ge=1,
        description="seconds between the sweep sensor's ticks, each of which launches what the sweep needs next",
    )
    embedding_device: str = Field(
        "auto", description="`auto` (cuda, then mps, then cpu), `cpu`, `cuda`, `cuda:N` or `mps`"
    )
    embedding_batch_size: int = Field(64, ge=1, description="encode batch size")
    hf_hub_offline: bool = Field(
        False, validation_alias="HF_HUB_OFFLINE", description="load only local or cached models (the Makefile sets 1)"
    )
    hf_token: SecretStr = Field(
        SecretStr(""),
        validation_alias="HF_TOKEN",
        description="Hugging Face token for the `hub_model` push (never logged)",
    )
    # Tracking and execution.
    mlflow_tracking_uri: SecretStr = Field(
        SecretStr(""),
        validation_alias="MLFLOW_TRACKING_URI",
        description="MLflow tracking URI; empty: a SQLite store under the data directory",
    )
    experiment: str = Field("topic_pipeline", min_length=1, description="MLflow experiment (one per pipeline)")
    mlflow_ui_url: str = Field("http://127.0.0.1:5000", description="base URL of the MLflow UI, for the trial links")
    executor: Literal["multiprocess", "k8s"] = Field("multiprocess", description="`k8s`: every step a Kubernetes Job")
    k8s_executor_config: Path | None = Field(
        None, description="with `k8s`: the executor's YAML (`deploy/k8s/executor.yaml`)"
    )

    @field_validator("ground_truth", "grid", "k8s_executor_config")
    @classmethod
    def _existing_file(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError("not a file" if path.exists() else "no such file")
        return path

    @field_validator("data_dir")
    @classmethod
    def _folder(cls, path: Path) -> Path:
        for part in [path, *path.parents]:
            if part.exists() and not part.is_dir():
                raise ValueError(f"{part} is a file, not a folder" if part != path else "a file, not a folder")
        return path

    @field_validator("stopwords_language")
    @classmethod
    def _stopwords(cls, language: str) -> str:
        if language.lower() == "english" or Path(language).is_file():
            return language
        raise ValueError(
            "expected 'english' or the path of a file with one stop word per line "
            "(no such file; only English is built in)"
        )

    @field_validator("rank_by")
    @classmethod
    def _metric(cls, name: str) -> str:
        if name not in METRIC_NAMES:
            raise ValueError(f"expected one of {', '.join(METRIC_NAMES)}")
        return name

    @field_validator("embedding_device")
    @classmethod
    def _device(cls, device: str) -> str:
        if not _DEVICE.fullmatch(device):
            raise ValueError("expected auto, cpu, cuda, cuda:N or mps")
        return device

    @field_validator("mlflow_ui_url")
    @classmethod
    def _url(cls, url: str) -> str:
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            raise ValueError("expected an http:// or https:// URL")
        return url.rstrip("/")

    @field_validator("window_start", "window_end")
    @classmethod
    def _moment(cls, value: str) -> str:
        if value:
            try:
                dt.datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(
                    "expected an ISO 8601 date or date-time (2024-05-01 or 2024-05-01T06:00:00+00:00)"
                ) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.executor == "k8s" and self.k8s_executor_config is None:
            raise ValueError(
                "TOPIC_PIPELINE_EXECUTOR=k8s needs TOPIC_PIPELINE_K8S_EXECUTOR_CONFIG, the path of the "
                "executor's YAML file (deploy/k8s/executor.yaml)"
            )
        try:  # the export's identifiers, window and query, checked without connecting
            self.sql_source("sqlite://").statement()
        except TopicPipelineError as exc:
            raise ValueError(
                f"documents export (TOPIC_PIPELINE_DOCUMENTS_TABLE or _QUERY, _ID_COLUMN, _TEXT_COLUMN, "
                f"_DATE_COLUMN, _WINDOW_*): {exc}"
            ) from None
        return self

    def sql_source(self, url: str, window_reference: dt.datetime | str | None = None):
        """The export these settings describe, from the database at ``url``."""
        from topic_pipeline.inputs.corpus import DateWindow, SqlSource

        return SqlSource(
            url=url,
            table=self.documents_table or None,
            query=self.documents_query or None,
            id_column=self.id_column,
            text_column=self.text_column,
            date_column=self.date_column or None,
            window=DateWindow.from_settings(self.window_start, self.window_end, self.window_days, window_reference),
        )

    @classmethod
    def env_name(cls, field_name: str) -> str:
        alias = cls.model_fields[field_name].validation_alias
        return alias if isinstance(alias, str) else f"TOPIC_PIPELINE_{field_name.upper()}"

    @classmethod
    def load(cls, environ: dict[str, str] | None = None) -> Settings:
        """The settings of ``environ`` (the process environment if None), or a ``SettingsError``."""
        import os

        source = os.environ if environ is None else environ
        values = {}
        for name in cls.model_fields:
            raw = source.get(cls.env_name(name), "")
            if raw.strip():
                values[name] = raw.strip()
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise SettingsError("\n".join(_explain(error, values))) from None


def _explain(error: ValidationError, values: dict[str, str]) -> list[str]:
    lines = []
    for problem in error.errors():
        if not problem["loc"]:  # a check across settings names its variables itself
            lines.append(problem["msg"].removeprefix("Value error, "))
            continue
        name = str(problem["loc"][0])
        name = next((field_name for field_name in Settings.model_fields if Settings.env_name(field_name) == name), name)
        field = Settings.model_fields[name]
        shown = "(hidden)" if field.annotation is SecretStr else repr(values.get(name, ""))
        expected = _EXPECTED_BY_ERROR.get(problem["type"], "")
        if problem["type"] == "literal_error":
            expected = expected.format(expected=", ".join(_choices(name)))
        elif problem["type"] in {"greater_than_equal", "less_than_equal", "less_than", "greater_than"}:
            expected = "must be " + _range(field)
        elif not expected:
            expected = problem["msg"].removeprefix("Value error, ")
        lines.append(f"{Settings.env_name(name)}={shown}: {expected}")
    return lines


def _range(field) -> str:
    """A numeric setting's bounds in words: "at least 0 and at most 4294967295"."""
    words = {"ge": "at least {}", "gt": "above {}", "le": "at most {}", "lt": "below {}"}
    bounds = [
        words[kind].format(getattr(rule, kind)) for rule in field.metadata for kind in words if hasattr(rule, kind)
    ]
    return " and ".join(bounds)


def settings_table() -> str:
    """The Markdown table of every setting, as docs/configuration.md shows it."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        shown = "–" if default in ("", None) else f"`{str(default).lower() if isinstance(default, bool) else default}`"
        rows.append(f"| `{Settings.env_name(name)}` | {shown} | {field.description} |")
    return "\n".join(rows)


if __name__ == "__main__":  # python -m topic_pipeline.settings: the table docs/configuration.md shows
    print(settings_table())

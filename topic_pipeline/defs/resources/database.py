"""The source database of the texts (SQLAlchemy). The URL may hold a password: it comes from the
environment through ``dg.EnvVar`` and is masked wherever it is shown."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from topic_pipeline.inputs.corpus import DateWindow, SqlSource
from topic_pipeline.inputs.demo_data import ensure_demo_data

# A run tag holding the moment a relative window (``window_days``) ends: the schedule sets it to its
# tick's time, so a rerun of a scheduled run exports the same period. Runs without it use their start.
WINDOW_END_TAG = "topic_pipeline/window_end"


class DocumentsDatabase(dg.ConfigurableResource):
    """``url`` empty means the embedded SQLite sample database.

    ``text_column`` may list several columns (``title,body``). ``date_column`` with ``window_start`` /
    ``window_end`` (ISO dates, end excluded) or ``window_days`` (the days before the run) restricts the
    export to one publication period."""

    url: str = ""
    table: str = "documents"
    query: str = ""
    id_column: str = "id"
    text_column: str = "text"
    date_column: str = ""
    window_start: str = ""
    window_end: str = ""
    window_days: int = 0

    def source(self, demo_data_dir, window_reference: dt.datetime | str | None = None) -> SqlSource:
        url = self.url or f"sqlite:///{ensure_demo_data(demo_data_dir)[0]}"
        return SqlSource(
            url=url,
            table=self.table or None,
            query=self.query or None,
            id_column=self.id_column,
            text_column=self.text_column,
            date_column=self.date_column or None,
            window=DateWindow.from_settings(self.window_start, self.window_end, self.window_days, window_reference),
        )

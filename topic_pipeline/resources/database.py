"""The source database of the texts (SQLAlchemy). The URL may hold a password: it comes from the
environment through ``dg.EnvVar`` and is masked wherever it is shown."""

from __future__ import annotations

import dagster as dg

from topic_pipeline.corpus import SqlSource
from topic_pipeline.sample import ensure_sample_data


class DocumentsDatabase(dg.ConfigurableResource):
    """``url`` empty means the embedded SQLite sample database."""

    url: str = ""
    table: str = "documents"
    query: str = ""
    id_column: str = "id"
    text_column: str = "text"

    def source(self, data_dir_for_sample) -> SqlSource:
        url = self.url or f"sqlite:///{ensure_sample_data(data_dir_for_sample)[0]}"
        return SqlSource(
            url=url,
            table=self.table or None,
            query=self.query or None,
            id_column=self.id_column,
            text_column=self.text_column,
        )

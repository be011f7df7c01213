"""The SQL export of collected texts.

Any SQLAlchemy URL works; rows are streamed in chunks so a large table is never held twice. Table and
column names from configuration are validated and quoted by SQLAlchemy; a custom query is passed as-is
(it is configuration written by the operator, not user data) with its parameters bound.
"""

from __future__ import annotations

import dataclasses
import hashlib
import numbers
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from topic_pipeline.errors import CorpusError, DatabaseUnavailableError, listing

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FETCH_CHUNK_ROWS = 10_000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def safe_url(url: str) -> str:
    """The URL as it may appear in messages and logs: password masked."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL must still not leak
        return "<unparsable database URL>"


def _scrub(message: str, url: str) -> str:
    try:
        password = sa.engine.make_url(url).password
    except Exception:  # noqa: BLE001
        password = None
    first_line = message.strip().splitlines()[0] if message.strip() else ""
    if password:
        first_line = first_line.replace(str(password), "***")
    return first_line


def _check_identifier(name: str, what: str) -> str:
    parts = name.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.match(part) for part in parts):
        raise CorpusError(f"{what} '{name}' is not a valid SQL identifier (letters, digits and _; optionally schema.table)")
    return name


@dataclasses.dataclass(frozen=True)
class SqlSource:
    """Where the texts come from. Give ``table`` or ``query`` (a SELECT returning the two columns)."""

    url: str
    table: str | None = "documents"
    query: str | None = None
    id_column: str = "id"
    text_column: str = "text"
    query_params: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def statement(self) -> sa.sql.Executable:
        if self.query:
            return sa.text(self.query).bindparams(**dict(self.query_params))
        if not self.table:
            raise CorpusError("configure either a table or a query for the documents export")
        _check_identifier(self.table, "table")
        _check_identifier(self.id_column, "id column")
        _check_identifier(self.text_column, "text column")
        schema, _, name = self.table.rpartition(".")
        table = sa.table(name, sa.column(self.id_column), sa.column(self.text_column), schema=schema or None)
        return sa.select(table.c[self.id_column], table.c[self.text_column])


@dataclasses.dataclass(frozen=True)
class Corpus:
    """(id, text) rows sorted by id, with a hash of the content."""

    ids: np.ndarray
    texts: list[str]

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.texts):
            raise ValueError("ids and texts differ in length")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for text_id, text in zip(self.ids.tolist(), self.texts):
            digest.update(f"{text_id}\x1f{text}\x1e".encode())
        return digest.hexdigest()[:16]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"id": self.ids, "text": self.texts})

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Corpus:
        return cls(np.asarray(frame["id"], dtype=np.int64), [str(t) for t in frame["text"]])

    @classmethod
    def from_rows(cls, rows: list[tuple[Any, Any]], where: str = "documents export") -> Corpus:
        if not rows:
            raise CorpusError(f"{where} returned no rows; check the table or query and its filters")
        ids: list[int] = []
        bad_ids: list[Any] = []
        blank: list[Any] = []
        texts: list[str] = []
        for raw_id, text in rows:
            try:
                text_id = int(raw_id)
                # A float or Decimal (e.g. a PostgreSQL NUMERIC id) must not be silently truncated.
                if isinstance(raw_id, numbers.Number) and raw_id != text_id:
                    raise ValueError
                if not _INT64_MIN <= text_id <= _INT64_MAX:
                    raise ValueError
            except (TypeError, ValueError, OverflowError):
                bad_ids.append(raw_id)
                continue
            if text is None or not str(text).strip():
                blank.append(text_id)
            ids.append(text_id)
            texts.append("" if text is None else str(text))
        if bad_ids:
            raise CorpusError(f"{where}: ids must be integers; got {listing(repr(i) for i in bad_ids)}")
        if blank:
            raise CorpusError(f"{where}: {len(blank)} text(s) are empty or whitespace, ids: {listing(sorted(blank))}")
        id_array = np.asarray(ids, dtype=np.int64)
        unique, counts = np.unique(id_array, return_counts=True)
        duplicated = unique[counts > 1]
        if len(duplicated):
            raise CorpusError(f"{where}: {len(duplicated)} id(s) occur more than once: {listing(duplicated.tolist())}")
        order = np.argsort(id_array, kind="stable")
        return cls(id_array[order], [texts[i] for i in order])



def load_corpus(source: SqlSource) -> Corpus:
    """Export (id, text) rows from the database, streamed in chunks."""
    where = f"documents export from {safe_url(source.url)}"
    statement = source.statement()
    try:
        engine = sa.create_engine(source.url)
    except (sa.exc.ArgumentError, ImportError, ValueError) as exc:
        raise DatabaseUnavailableError(f"invalid database URL {safe_url(source.url)}: {_scrub(str(exc), source.url)}") from None
    rows: list[tuple[Any, Any]] = []
    try:
        try:
            connection = engine.connect()
        except sa.exc.DBAPIError as exc:
            raise DatabaseUnavailableError(
                f"cannot reach the database at {safe_url(source.url)}: {_scrub(str(exc.orig), source.url)}"
            ) from None
        with connection:
            try:
                result = connection.execution_options(stream_results=True).execute(statement)
            except sa.exc.DBAPIError as exc:
                raise CorpusError(
                    f"{where}: the query failed ({_scrub(str(exc.orig), source.url)}); "
                    f"check table '{source.table}' and columns '{source.id_column}', '{source.text_column}'"
                    if not source.query
                    else f"{where}: the query failed ({_scrub(str(exc.orig), source.url)})"
                ) from None
            if len(result.keys()) < 2:
                raise CorpusError(f"{where}: the query must return an id and a text column, got {list(result.keys())}")
            try:
                while chunk := result.fetchmany(FETCH_CHUNK_ROWS):
                    rows.extend((row[0], row[1]) for row in chunk)
            except sa.exc.DBAPIError as exc:
                raise CorpusError(f"{where}: reading rows failed ({_scrub(str(exc.orig), source.url)})") from None
    finally:
        engine.dispose()
    return Corpus.from_rows(rows, where)

"""The SQL export of collected texts.

SQLite, PostgreSQL and MySQL/MariaDB URLs work; rows are streamed in chunks (a server-side cursor where
the driver has one) so a large table is never read in one piece. The source database is never written:
the export runs in a read-only transaction that is rolled back at the end, and a custom query
(``TOPIC_PIPELINE_DOCUMENTS_QUERY``) must be exactly one statement, a query (``checked_query``), before
anything connects. Table and column names from configuration are validated and quoted by SQLAlchemy;
a custom query's parameters are bound. A date window (``DateWindow``) restricts the export to the texts
published in it, so a scheduled run exports its own period.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import numbers
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from topic_pipeline.errors import CorpusError, DatabaseUnavailableError, listing
from topic_pipeline.inputs.read_only_sql import (
    QUERY_SETTING,
    READ_ONLY_DIALECTS,
    begin_read_only,
    checked_query,
    write_refused,
)
from topic_pipeline.redaction import UNPARSABLE, mask_url, redact, unencoded_at_in_password

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Separates the parts of a text built from several columns (e.g. title and body).
TEXT_PART_SEPARATOR = "\n\n"
WINDOW_PARAMS = ("window_start", "window_end")
FETCH_CHUNK_ROWS = 10_000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# An id stored as text is taken only when it is an integer written the one way Python writes it: int()
# would also turn ' 7 ', '1_000', '+7' and '007' into numbers, silently merging ids the user keeps apart.
_CANONICAL_INTEGER = re.compile(r"0|-?[1-9][0-9]*")


def _driver_message(message: str, url: str) -> str:
    """The first line of a driver's error, with every secret of the URL hidden."""
    first_line = message.strip().splitlines()[0] if message.strip() else ""
    return redact(first_line, url)


def _check_identifier(name: str, what: str) -> str:
    parts = name.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.match(part) for part in parts):
        raise CorpusError(
            f"{what} '{name}' is not a valid SQL identifier (letters, digits and _; optionally schema.table)"
        )
    return name


def _parse_moment(value: str, setting: str) -> dt.datetime:
    """An ISO 8601 date or date-time; one without a UTC offset is taken as UTC."""
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise CorpusError(
            f"{setting} '{value}' is not an ISO 8601 date or date-time (e.g. 2024-05-01 or 2024-05-01T06:00:00+00:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@dataclasses.dataclass(frozen=True)
class DateWindow:
    """The half-open period [start, end) of publication dates to export; an absent bound is open."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.start and self.end and self.start >= self.end:
            raise CorpusError(f"window_start {self.start.isoformat()} is not before window_end {self.end.isoformat()}")

    @property
    def is_open(self) -> bool:
        return self.start is None and self.end is None

    def bounds(self) -> dict[str, dt.datetime]:
        """The set bounds as query parameters (``window_start``, ``window_end``)."""
        return {name: value for name, value in zip(WINDOW_PARAMS, (self.start, self.end)) if value is not None}

    def describe(self) -> str:
        def show(moment: dt.datetime | None) -> str:
            return moment.isoformat() if moment else "open"

        return f"[{show(self.start)}, {show(self.end)})"

    @classmethod
    def from_settings(
        cls, start: str = "", end: str = "", days: int = 0, reference: dt.datetime | str | None = None
    ) -> DateWindow:
        """``start``/``end`` are ISO dates; ``days`` > 0 means the ``days`` before ``end``, or before
        ``reference`` (the run's time; now if not given) when ``end`` is empty."""
        if days < 0:
            raise CorpusError(f"window_days must be 0 (no relative window) or a positive number of days, got {days}")
        start_moment = _parse_moment(start, "window_start") if start.strip() else None
        end_moment = _parse_moment(end, "window_end") if end.strip() else None
        if not days:
            return cls(start_moment, end_moment)
        if start_moment is not None:
            raise CorpusError(
                "set window_start or window_days, not both: window_days counts back from window_end or the run's time"
            )
        if end_moment is None:
            if isinstance(reference, str):
                end_moment = _parse_moment(reference, "the run's window reference time")
            elif reference is not None:
                end_moment = reference if reference.tzinfo else reference.replace(tzinfo=dt.UTC)
            else:
                end_moment = dt.datetime.now(dt.UTC)
        return cls(end_moment - dt.timedelta(days=days), end_moment)


@dataclasses.dataclass(frozen=True)
class SqlSource:
    """Where the texts come from. Give ``table`` or ``query`` (a SELECT returning id and text).

    ``text_column`` may name several columns separated by commas (``title,body``): their non-empty
    values are joined with a blank line. ``date_column`` is the publication time the ``window`` filters
    on; a custom query applies the window itself through the bound parameters ``:window_start`` and
    ``:window_end``.
    """

    url: str
    table: str | None = "documents"
    query: str | None = None
    id_column: str = "id"
    text_column: str = "text"
    query_params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    date_column: str | None = None
    window: DateWindow = DateWindow()

    @property
    def text_columns(self) -> list[str]:
        return [part.strip() for part in self.text_column.split(",")]

    def statement(self, dialect: str | None = None) -> sa.sql.Executable:
        """The export's SELECT. A custom query is checked with ``checked_query`` (as ``dialect`` reads
        it; without one, against every supported dialect, for checks made before the database is known)."""
        if self.query:
            return self._query_statement(dialect)
        if not self.table:
            raise CorpusError("configure either a table or a query for the documents export")
        _check_identifier(self.table, "table")
        _check_identifier(self.id_column, "id column")
        for column in self.text_columns:
            _check_identifier(column, "text column")
        if self.date_column:
            _check_identifier(self.date_column, "date column")
        elif not self.window.is_open:
            raise CorpusError(
                f"a date window {self.window.describe()} is set but no date column: set date_column to the publication time column"
            )
        schema, _, name = self.table.rpartition(".")
        date = sa.column(self.date_column, sa.DateTime(timezone=True)) if self.date_column else None
        columns = [sa.column(self.id_column), *(sa.column(c) for c in self.text_columns)]
        table = sa.table(name, *columns, *([date] if date is not None else []), schema=schema or None)
        statement = sa.select(table.c[self.id_column], *(table.c[c] for c in self.text_columns))
        if self.window.start is not None:
            statement = statement.where(table.c[self.date_column] >= self.window.start)
        if self.window.end is not None:
            statement = statement.where(table.c[self.date_column] < self.window.end)
        return statement

    def _query_statement(self, dialect: str | None) -> sa.sql.Executable:
        clause = sa.text(checked_query(self.query, dialect))
        window = self.window.bounds()
        if window:
            used = set(clause.compile().params)
            missing = [f":{name}" for name in window if name not in used]
            if missing:
                raise CorpusError(
                    f"a date window {self.window.describe()} is set but the documents query does not use "
                    f"{' and '.join(missing)}; filter on them in its WHERE clause"
                )
        return clause.bindparams(**dict(self.query_params), **window)

    def text_of(self, row: sa.Row) -> Any:
        """The text of one exported row; None when every part is empty. A part that is not text is
        returned as it is, for ``Corpus.from_rows`` to report with the row's id."""
        if self.query or len(self.text_columns) == 1:
            return row[1]
        parts = []
        for part in row[1 : 1 + len(self.text_columns)]:
            try:
                text = as_text(part)
            except (TypeError, UnicodeDecodeError):
                return part
            if text is not None and text.strip():
                parts.append(text)
        return TEXT_PART_SEPARATOR.join(parts) if parts else None


# What shows nothing: whitespace, and characters Unicode gives no glyph: format characters (category Cf:
# zero-width space, non-joiner and joiner, word joiner, byte-order mark, soft hyphen, direction marks),
# controls (Cc), and the few default-ignorable code points filed under other categories (Hangul fillers,
# the combining grapheme joiner, variation selectors, Mongolian and Khmer invisible marks).
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc", "Zs", "Zl", "Zp"})
_INVISIBLE_OTHERS = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)


def is_blank(text: str) -> bool:
    """True when ``text`` shows nothing: empty, whitespace, or invisible characters only."""
    return all(
        ch.isspace() or ch in _INVISIBLE_OTHERS or unicodedata.category(ch) in _INVISIBLE_CATEGORIES for ch in text
    )


def as_text(value: Any) -> str | None:
    """A database value as text: strings as they are, bytes (a BLOB or bytea column) decoded as UTF-8,
    None kept. Raises UnicodeDecodeError for bytes that are not UTF-8 and TypeError for anything else
    (a number or a date is not a text to embed, and its Python representation must not become one)."""
    if value is None:
        return None
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8")
    raise TypeError(f"{type(value).__name__} is not text")


class IdOutOfRangeError(ValueError):
    """An id that is an integer, but not one a 64-bit integer holds."""

    def __init__(self, value: int) -> None:
        super().__init__(f"{value} is outside int64")
        self.value = value


def integer_id(raw_id: Any) -> tuple[int, bool]:
    """The integer a raw id stands for, and whether it was given as a string. Raises ValueError (or
    TypeError, OverflowError) when it stands for no integer, IdOutOfRangeError (a ValueError) when it
    stands for one outside int64."""
    if isinstance(raw_id, (bool, np.bool_)):
        raise TypeError("a boolean is not an id")
    if isinstance(raw_id, str):
        if not _CANONICAL_INTEGER.fullmatch(raw_id):
            raise ValueError(f"{raw_id!r} is not a canonical integer")
        text_id, from_text = int(raw_id), True
    elif isinstance(raw_id, numbers.Number):
        text_id, from_text = int(raw_id), False
        # A float or Decimal (e.g. a PostgreSQL NUMERIC id) must not be silently truncated.
        if raw_id != text_id:
            raise ValueError(f"{raw_id!r} is not integral")
    else:
        # bytes too: int(b' 7 ') would read them as text.
        raise TypeError(f"{type(raw_id).__name__} is not an id")
    if not _INT64_MIN <= text_id <= _INT64_MAX:
        raise IdOutOfRangeError(text_id)
    return text_id, from_text


@dataclasses.dataclass(frozen=True)
class Corpus:
    """(id, text) rows sorted by id, with a hash of the content."""

    ids: np.ndarray
    texts: list[str]
    # What the export did that the user should know of though nothing failed (ids read from text).
    notes: tuple[str, ...] = dataclasses.field(default=(), compare=False)

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
        out_of_range: list[int] = []
        ids_from_text: list[str] = []
        not_text: list[str] = []
        not_utf8: list[str] = []
        blank: list[Any] = []
        invisible: list[Any] = []
        texts: list[str] = []
        for raw_id, raw_text in rows:
            try:
                text_id, from_text = integer_id(raw_id)
            except IdOutOfRangeError as exc:
                out_of_range.append(exc.value)
                continue
            except (TypeError, ValueError, OverflowError):
                bad_ids.append(raw_id)
                continue
            if from_text:
                ids_from_text.append(raw_id)
            try:
                text = as_text(raw_text)
            except UnicodeDecodeError as exc:
                not_utf8.append(f"{text_id} (byte {exc.start} is 0x{exc.object[exc.start]:02x})")
                continue
            except TypeError:
                not_text.append(f"{text_id} ({type(raw_text).__name__})")
                continue
            if text is None or is_blank(text):
                blank.append(text_id)
                if text and text.strip():
                    invisible.append(text_id)
            ids.append(text_id)
            texts.append("" if text is None else text)
        if bad_ids:
            raise CorpusError(f"{where}: ids must be integers; got {listing(repr(i) for i in bad_ids)}")
        if out_of_range:
            raise CorpusError(
                f"{where}: {len(out_of_range)} id(s) are outside the 64-bit integer range ({_INT64_MIN} to {_INT64_MAX}): "
                f"{listing(out_of_range)}"
            )
        if not_text:
            raise CorpusError(
                f"{where}: {len(not_text)} text(s) are not text, ids: {listing(not_text)}; "
                "expected strings (or bytes holding UTF-8 text)"
            )
        if not_utf8:
            raise CorpusError(
                f"{where}: {len(not_utf8)} text(s) are bytes that are not UTF-8, ids: {listing(not_utf8)}; "
                "store the texts as UTF-8"
            )
        if blank:
            raise CorpusError(
                f"{where}: {len(blank)} text(s) are empty or whitespace, ids: {listing(sorted(blank))}"
                + (
                    f"; {'ids' if len(invisible) > 1 else 'id'} {listing(sorted(invisible))} "
                    f"{'hold' if len(invisible) > 1 else 'holds'} only invisible characters (zero-width spaces and "
                    "joiners, soft hyphens, byte-order marks and other format characters), which count as whitespace"
                    if invisible
                    else ""
                )
            )
        id_array = np.asarray(ids, dtype=np.int64)
        unique, counts = np.unique(id_array, return_counts=True)
        duplicated = unique[counts > 1]
        if len(duplicated):
            raise CorpusError(f"{where}: {len(duplicated)} id(s) occur more than once: {listing(duplicated.tolist())}")
        if len(texts) > 1 and all(text == texts[0] for text in texts):
            shown = texts[0] if len(texts[0]) <= 60 else texts[0][:60] + "…"
            raise CorpusError(
                f"{where}: all {len(texts)} texts are identical ({shown!r}); clustering needs texts that differ"
            )
        order = np.argsort(id_array, kind="stable")
        notes = ()
        if ids_from_text:
            notes = (
                f"{where}: {len(ids_from_text)} id(s) are stored as text (e.g. {ids_from_text[0]!r}) and were read as the "
                "integers they spell",
            )
        return cls(id_array[order], [texts[i] for i in order], notes)


def _refusal_message(where: str, exc: sa.exc.DBAPIError, source: SqlSource) -> str:
    return (
        f"{where}: the query tried to write to the source database, which refused it because the export is "
        f"read-only ({_driver_message(str(exc.orig), source.url)}); nothing was written"
        + (
            f": {QUERY_SETTING} must be a query that only reads (a SELECT returning id and text)"
            if source.query
            else ""
        )
    )


def load_corpus(source: SqlSource) -> Corpus:
    """Export (id, text) rows from the database, streamed in chunks, in a read-only transaction that
    is rolled back at the end: the export never writes to the source database."""
    where = f"documents export from {mask_url(source.url)}"
    if not source.window.is_open:
        where += f" in the window {source.window.describe()}"
    source.statement()  # the configuration's own errors first, whatever the URL
    shown = mask_url(source.url)
    # The parser's and the driver's own messages would quote the URL's pieces, the password's among them.
    encoding_hint = "percent-encoded (%40 for '@', %3A for ':', %2F for '/')"
    if shown == UNPARSABLE:
        raise DatabaseUnavailableError(
            "invalid database URL (it cannot be parsed): write it as dialect+driver://user:password@host:port/database, "
            f"with any '@', ':' or '/' in the user name or password {encoding_hint}"
        )
    if unencoded_at_in_password(source.url):
        raise DatabaseUnavailableError(
            f"invalid database URL {shown}: its password holds an '@' that is not percent-encoded, so the rest of "
            f"the password would be taken for the host name; write special characters {encoding_hint}"
        )
    try:
        engine = sa.create_engine(source.url)
    except (sa.exc.ArgumentError, ImportError, ValueError) as exc:
        raise DatabaseUnavailableError(
            f"invalid database URL {shown}: {_driver_message(str(exc), source.url)}"
        ) from None
    rows: list[tuple[Any, Any]] = []
    try:
        dialect = engine.dialect.name
        if dialect not in READ_ONLY_DIALECTS:
            raise CorpusError(
                f"{where}: the database dialect '{dialect}' is not supported: the export runs in a read-only transaction, "
                "which it can open on sqlite, postgresql and mysql/mariadb only"
            )
        # A custom query read as this database reads it, before connecting.
        statement = source.statement(dialect)
        try:
            connection = engine.connect()
        except sa.exc.DBAPIError as exc:
            raise DatabaseUnavailableError(
                f"cannot reach the database at {mask_url(source.url)}: {_driver_message(str(exc.orig), source.url)}"
            ) from None
        with connection:
            try:
                try:
                    read_only = begin_read_only(connection, dialect)
                except sa.exc.DBAPIError as exc:
                    raise CorpusError(
                        f"{where}: the export could not be made read-only ({_driver_message(str(exc.orig), source.url)}); "
                        "nothing was read"
                    ) from None
                if not read_only:
                    raise CorpusError(
                        f"{where}: the database did not confirm the export's read-only transaction; nothing was read"
                    )
                try:
                    # yield_per: a server-side cursor read FETCH_CHUNK_ROWS rows at a time.
                    result = connection.execution_options(yield_per=FETCH_CHUNK_ROWS).execute(statement)
                except sa.exc.DBAPIError as exc:
                    if write_refused(exc):
                        raise CorpusError(_refusal_message(where, exc, source)) from None
                    raise CorpusError(
                        f"{where}: the query failed ({_driver_message(str(exc.orig), source.url)}); "
                        f"check table '{source.table}' and columns '{source.id_column}', '{source.text_column}'"
                        + (f", '{source.date_column}'" if source.date_column else "")
                        if not source.query
                        else f"{where}: the query failed ({_driver_message(str(exc.orig), source.url)})"
                    ) from None
                if len(result.keys()) < 2:
                    raise CorpusError(
                        f"{where}: the query must return an id and a text column, got {list(result.keys())}"
                    )
                try:
                    while chunk := result.fetchmany(FETCH_CHUNK_ROWS):
                        rows.extend((row[0], source.text_of(row)) for row in chunk)
                except sa.exc.DBAPIError as exc:
                    if write_refused(exc):  # e.g. a function the query calls, run as rows are fetched
                        raise CorpusError(_refusal_message(where, exc, source)) from None
                    raise CorpusError(
                        f"{where}: reading rows failed ({_driver_message(str(exc.orig), source.url)})"
                    ) from None
            finally:
                # Never a commit: whatever happened, the transaction ends in a rollback.
                with contextlib.suppress(sa.exc.DBAPIError):
                    connection.rollback()
    finally:
        engine.dispose()
    return Corpus.from_rows(rows, where)

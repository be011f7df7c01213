"""load_corpus against real databases: SQLite files in tmp_path and the local PostgreSQL server."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import sqlite3
import uuid
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from psycopg2.extras import execute_values
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

import topic_pipeline.inputs.corpus as corpus_module
import topic_pipeline.inputs.read_only_sql as read_only_sql
from conftest import postgres_test_database
from topic_pipeline.defs.resources.database import DocumentsDatabase
from topic_pipeline.errors import CorpusError, DatabaseUnavailableError
from topic_pipeline.inputs.corpus import Corpus, DateWindow, SqlSource, load_corpus

ARTICLES_SCHEMA = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "articles.sql"

PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def make_db(tmp_path: Path, rows, table: str = "documents", columns: str = "id INTEGER, text TEXT") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "source.db"
    with sqlite3.connect(path) as connection:
        connection.execute(f"CREATE TABLE {table} ({columns})")
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            connection.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
    connection.close()
    return path


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def load_error(source: SqlSource, error: type[Exception] = CorpusError) -> str:
    with pytest.raises(error) as info:
        load_corpus(source)
    return str(info.value)


# --- SQLite: happy paths --------------------------------------------------------------------------


def test_rows_are_sorted_by_id(tmp_path: Path) -> None:
    rows = [(30, "gamma"), (10, "alpha"), (20, "beta"), (-5, "minus")]
    corpus = load_corpus(SqlSource(sqlite_url(make_db(tmp_path, rows))))
    assert corpus.ids.tolist() == [-5, 10, 20, 30]
    assert corpus.ids.dtype == np.int64
    assert corpus.texts == ["minus", "alpha", "beta", "gamma"]
    assert len(corpus) == 4
    frame = corpus.to_frame()
    assert frame["id"].tolist() == [-5, 10, 20, 30]
    again = Corpus.from_frame(frame)
    assert again.ids.tolist() == corpus.ids.tolist() and again.texts == corpus.texts
    assert again.content_hash == corpus.content_hash


def test_content_hash_is_stable_and_tracks_text(tmp_path: Path) -> None:
    rows = [(1, "one"), (2, "two"), (3, "three")]
    a = load_corpus(SqlSource(sqlite_url(make_db(tmp_path / "a", rows))))
    b = load_corpus(SqlSource(sqlite_url(make_db(tmp_path / "b", list(reversed(rows))))))
    assert a.content_hash == b.content_hash
    changed = load_corpus(SqlSource(sqlite_url(make_db(tmp_path / "c", [(1, "one"), (2, "two!"), (3, "three")]))))
    assert changed.content_hash != a.content_hash
    renumbered = load_corpus(SqlSource(sqlite_url(make_db(tmp_path / "d", [(1, "one"), (2, "two"), (4, "three")]))))
    assert renumbered.content_hash != a.content_hash
    # Moving text across the id/text boundary must change the hash too.
    assert Corpus(np.array([1, 2]), ["ab", "c"]).content_hash != Corpus(np.array([1, 2]), ["a", "bc"]).content_hash


def test_custom_query_with_bound_parameter(tmp_path: Path) -> None:
    path = make_db(
        tmp_path,
        [(1, "hello", "en"), (2, "bonjour", "fr"), (3, "goodbye", "en"), (4, "x'); DROP TABLE documents; --", "fr")],
        columns="id INTEGER, text TEXT, lang TEXT",
    )
    source = SqlSource(
        sqlite_url(path),
        table=None,
        query="SELECT id, text FROM documents WHERE lang = :lang ORDER BY id DESC",
        query_params={"lang": "en"},
    )
    corpus = load_corpus(source)
    assert corpus.ids.tolist() == [1, 3]
    assert corpus.texts == ["hello", "goodbye"]
    # A parameter value is bound, never spliced into the SQL.
    hostile = SqlSource(
        sqlite_url(path),
        table=None,
        query="SELECT id, text FROM documents WHERE text = :t",
        query_params={"t": "x'); DROP TABLE documents; --"},
    )
    assert load_corpus(hostile).ids.tolist() == [4]
    assert load_corpus(source).ids.tolist() == [1, 3]


def test_custom_table_and_columns(tmp_path: Path) -> None:
    path = make_db(
        tmp_path,
        [(2, "second", "ignored"), (1, "first", "ignored")],
        table="Articles",
        columns="article_id INTEGER, body TEXT, extra TEXT",
    )
    corpus = load_corpus(SqlSource(sqlite_url(path), table="Articles", id_column="article_id", text_column="body"))
    assert corpus.ids.tolist() == [1, 2]
    assert corpus.texts == ["first", "second"]
    # schema.table form (SQLite's main schema).
    qualified = load_corpus(
        SqlSource(sqlite_url(path), table="main.Articles", id_column="article_id", text_column="body")
    )
    assert qualified.texts == ["first", "second"]


def test_chunked_fetch_on_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [(i, f"text {i}") for i in range(2500, 0, -1)]
    path = make_db(tmp_path, rows)
    calls = _spy_fetchmany(monkeypatch)
    monkeypatch.setattr(corpus_module, "FETCH_CHUNK_ROWS", 1000)
    corpus = load_corpus(SqlSource(sqlite_url(path)))
    assert corpus.ids.tolist() == list(range(1, 2501))
    assert calls == [(1000, 1000), (1000, 1000), (1000, 500), (1000, 0)]


def _spy_fetchmany(monkeypatch: pytest.MonkeyPatch, cursor_names: list | None = None) -> list[tuple[int, int]]:
    """Record (requested size, rows returned) for every fetchmany on a cursor result, and in
    ``cursor_names`` the DBAPI cursor's name (psycopg2 names its server-side cursors)."""
    calls: list[tuple[int, int]] = []
    original = sa.engine.CursorResult.fetchmany

    def spy(self, size=None):
        if cursor_names is not None and self.cursor is not None:
            cursor_names.append(getattr(self.cursor, "name", None))
        chunk = original(self, size)
        calls.append((size, len(chunk)))
        return chunk

    monkeypatch.setattr(sa.engine.CursorResult, "fetchmany", spy)
    return calls


# --- SQLite: errors -------------------------------------------------------------------------------


def test_duplicate_ids_are_listed(tmp_path: Path) -> None:
    path = make_db(tmp_path, [(1, "a"), (2, "b"), (2, "b again"), (9, "c"), (9, "c again"), (9, "c thrice")])
    message = load_error(SqlSource(sqlite_url(path)))
    assert "2 id(s) occur more than once: 2, 9" in message
    assert str(path) in message


def test_empty_result(tmp_path: Path) -> None:
    path = make_db(tmp_path, [])
    message = load_error(SqlSource(sqlite_url(path)))
    assert "returned no rows" in message
    assert str(path) in message


def test_query_filtering_everything_out(tmp_path: Path) -> None:
    path = make_db(tmp_path, [(1, "a")])
    source = SqlSource(
        sqlite_url(path), table=None, query="SELECT id, text FROM documents WHERE id > :n", query_params={"n": 5}
    )
    assert "returned no rows" in load_error(source)


def test_empty_whitespace_and_null_texts_are_listed(tmp_path: Path) -> None:
    path = make_db(tmp_path, [(1, "fine"), (7, ""), (3, "   \n\t"), (5, None), (2, "also fine")])
    message = load_error(SqlSource(sqlite_url(path)))
    assert "3 text(s) are empty or whitespace, ids: 3, 5, 7" in message


def test_null_text_alone(tmp_path: Path) -> None:
    path = make_db(tmp_path, [(1, "fine"), (4, None)])
    assert "ids: 4" in load_error(SqlSource(sqlite_url(path)))


@pytest.mark.parametrize(
    ("bad_id", "shown"),
    [("abc", "'abc'"), (1.5, "1.5"), (None, "None"), (9e999, "inf"), (b"\x00", "b'\\x00'")],
)
def test_non_integer_ids(tmp_path: Path, bad_id, shown: str) -> None:
    path = make_db(tmp_path, [(1, "a"), (bad_id, "b")], columns="id, text TEXT")
    message = load_error(SqlSource(sqlite_url(path)))
    assert "ids must be integers" in message
    assert shown in message


def test_integral_float_ids_are_accepted(tmp_path: Path) -> None:
    path = make_db(tmp_path, [(2.0, "b"), (1, "a")], columns="id REAL, text TEXT")
    assert load_corpus(SqlSource(sqlite_url(path))).ids.tolist() == [1, 2]


def test_from_rows_rejects_fractional_decimal_and_out_of_range_ids() -> None:
    # A PostgreSQL NUMERIC id arrives as Decimal; truncating 1.5 to 1 would silently merge documents.
    with pytest.raises(CorpusError, match=r"Decimal\('1.5'\)"):
        Corpus.from_rows([(Decimal("1.5"), "x"), (2, "y")])
    assert Corpus.from_rows([(Decimal("3"), "x"), (2, "y")]).ids.tolist() == [2, 3]
    with pytest.raises(CorpusError, match=str(2**63)):
        Corpus.from_rows([(2**63, "x")])
    assert Corpus.from_rows([(2**63 - 1, "x")]).ids.tolist() == [2**63 - 1]


def test_missing_table(tmp_path: Path) -> None:
    path = make_db(tmp_path, [(1, "a")])
    message = load_error(SqlSource(sqlite_url(path), table="articles"))
    assert "no such table: articles" in message
    assert "check table 'articles'" in message


@pytest.mark.parametrize("column", ["body", "Body", "select"])
def test_missing_column(tmp_path: Path, column: str) -> None:
    path = make_db(tmp_path, [(1, "a")])
    message = load_error(SqlSource(sqlite_url(path), text_column=column))
    assert "no such column" in message
    assert f"'{column}'" in message


def test_query_returning_one_column(tmp_path: Path) -> None:
    path = make_db(tmp_path, [(1, "a")])
    message = load_error(SqlSource(sqlite_url(path), table=None, query="SELECT id FROM documents"))
    assert "must return an id and a text column" in message
    assert "['id']" in message


def test_broken_custom_query(tmp_path: Path) -> None:
    path = make_db(tmp_path, [(1, "a")])
    message = load_error(SqlSource(sqlite_url(path), table=None, query="SELEC id, text FROM documents"))
    assert "the query failed" in message
    assert "syntax error" in message


def test_neither_table_nor_query() -> None:
    with pytest.raises(CorpusError, match="either a table or a query"):
        load_corpus(SqlSource("sqlite://", table=None))


@pytest.mark.parametrize(
    ("field", "value", "what"),
    [
        ("table", "docs; DROP TABLE x", "table"),
        ("table", "a.b.c", "table"),
        ("table", "1docs", "table"),
        ("table", 'docs"', "table"),
        ("id_column", "id, (SELECT 1)", "id column"),
        ("text_column", "text --", "text column"),
        ("text_column", "", "text column"),
    ],
)
def test_invalid_identifier_is_rejected_before_any_sql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str, value: str, what: str
) -> None:
    path = make_db(tmp_path, [(1, "a")])
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE x (v INTEGER)")
    connection.close()

    def no_engine(*args, **kwargs):
        raise AssertionError("an engine was created for an invalid identifier")

    monkeypatch.setattr(corpus_module.sa, "create_engine", no_engine)
    with pytest.raises(CorpusError) as info:
        load_corpus(SqlSource(sqlite_url(path), **{field: value}))
    assert f"{what} '{value}' is not a valid SQL identifier" in str(info.value)
    with sqlite3.connect(path) as connection:
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    connection.close()
    assert tables == {"documents", "x"}


# --- date windows ---------------------------------------------------------------------------------

UTC = dt.UTC


def test_window_from_settings() -> None:
    assert DateWindow.from_settings().is_open
    fixed = DateWindow.from_settings("2024-05-01", "2024-05-15T06:00:00+02:00")
    assert fixed.start == dt.datetime(2024, 5, 1, tzinfo=UTC)  # no offset: UTC
    assert fixed.end == dt.datetime(2024, 5, 15, 4, tzinfo=UTC)
    assert DateWindow.from_settings(start="2024-05-01").bounds() == {
        "window_start": dt.datetime(2024, 5, 1, tzinfo=UTC)
    }
    # The last N days before the run's time, or before window_end when that is set.
    relative = DateWindow.from_settings(days=14, reference="2024-06-03T06:00:00+00:00")
    assert (relative.start, relative.end) == (
        dt.datetime(2024, 5, 20, 6, tzinfo=UTC),
        dt.datetime(2024, 6, 3, 6, tzinfo=UTC),
    )
    anchored = DateWindow.from_settings(end="2024-06-01", days=1, reference="2030-01-01")
    assert anchored.start == dt.datetime(2024, 5, 31, tzinfo=UTC)
    before = dt.datetime.now(UTC)
    assert before <= DateWindow.from_settings(days=2).end <= dt.datetime.now(UTC)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"start": "2024-13-01"}, "window_start '2024-13-01' is not an ISO 8601 date"),
        ({"end": "last monday"}, "window_end 'last monday' is not an ISO 8601 date"),
        ({"start": "2024-05-02", "end": "2024-05-01"}, "is not before window_end"),
        ({"days": -3}, "window_days must be 0"),
        ({"start": "2024-05-01", "days": 7}, "window_start or window_days, not both"),
    ],
)
def test_window_settings_errors(settings: dict, message: str) -> None:
    with pytest.raises(CorpusError, match=message):
        DateWindow.from_settings(**settings)


def test_window_needs_a_date_column_or_query_parameters(tmp_path: Path) -> None:
    path = make_db(tmp_path, [(1, "a")])
    window = DateWindow.from_settings("2024-01-01", "2024-02-01")
    assert "no date column" in load_error(SqlSource(sqlite_url(path), window=window))
    only_start = SqlSource(
        sqlite_url(path), table=None, query="SELECT id, text FROM documents WHERE ts >= :window_start", window=window
    )
    message = load_error(only_start)
    assert "does not use :window_end" in message and "[2024-01-01T00:00:00+00:00, 2024-02-01T00:00:00+00:00)" in message
    with pytest.raises(CorpusError, match="date column 'published at' is not a valid SQL identifier"):
        SqlSource(sqlite_url(path), date_column="published at", window=window).statement()


# --- unreachable databases and URL hygiene --------------------------------------------------------


def test_unreachable_postgres_hides_password() -> None:
    url = "postgresql+psycopg2://alice:s3cretPW@127.0.0.1:1/nope"
    message = load_error(SqlSource(url), DatabaseUnavailableError)
    assert "s3cretPW" not in message
    assert "127.0.0.1" in message
    assert "alice:***@127.0.0.1:1/nope" in message
    assert "cannot reach the database" in message


def test_unopenable_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/no/such/dir/x.db"
    message = load_error(SqlSource(url), DatabaseUnavailableError)
    assert "unable to open database file" in message
    assert str(tmp_path) in message


@pytest.mark.parametrize(
    "url", ["nosuchdialect://alice:hunter22@db/x", "postgresql+nosuchdriver://alice:hunter22@db/x"]
)
def test_invalid_url(url: str) -> None:
    message = load_error(SqlSource(url), DatabaseUnavailableError)
    assert "invalid database URL" in message
    assert "hunter22" not in message


# --- PostgreSQL -----------------------------------------------------------------------------------


@pytest.fixture
def pg_table():
    """A uniquely named table in the local PostgreSQL 'test' database, dropped afterwards."""
    connection = postgres_test_database()
    name = f"tp_corpus_{uuid.uuid4().hex[:12]}"
    try:
        yield connection, name
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP TABLE IF EXISTS "{name}"')
        connection.close()


def test_postgres_load_in_chunks(pg_table, monkeypatch: pytest.MonkeyPatch) -> None:
    connection, name = pg_table
    ids = np.random.default_rng(7).permutation(np.arange(1, 2501)).tolist()
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE TABLE "{name}" (doc_id BIGINT PRIMARY KEY, content TEXT NOT NULL)')
        execute_values(cursor, f'INSERT INTO "{name}" VALUES %s', [(i, f"document number {i}") for i in ids])
    calls = _spy_fetchmany(monkeypatch)
    monkeypatch.setattr(corpus_module, "FETCH_CHUNK_ROWS", 1000)

    corpus = load_corpus(SqlSource(PG_URL, table=name, id_column="doc_id", text_column="content"))

    assert corpus.ids.tolist() == list(range(1, 2501))
    assert corpus.texts[0] == "document number 1" and corpus.texts[-1] == "document number 2500"
    assert calls == [(1000, 1000), (1000, 1000), (1000, 500), (1000, 0)]
    # Same content through a custom query with a bound parameter: same hash.
    via_query = load_corpus(
        SqlSource(
            PG_URL,
            table=None,
            query=f'SELECT doc_id, content FROM "{name}" WHERE doc_id <= :n',
            query_params={"n": 2500},
        )
    )
    assert via_query.content_hash == corpus.content_hash


def test_postgres_errors(pg_table) -> None:
    connection, name = pg_table
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE TABLE "{name}" (id NUMERIC, text TEXT)')
        cursor.execute(f'INSERT INTO "{name}" VALUES (1, %s), (1.5, %s), (3, NULL)', ("a", "b"))
    # The fractional NUMERIC id is reported, not truncated into a duplicate of id 1.
    message = load_error(SqlSource(PG_URL, table=name))
    assert "ids must be integers" in message and "1.5" in message

    with connection.cursor() as cursor:
        cursor.execute(f'DELETE FROM "{name}" WHERE id = 1.5')
    assert "ids: 3" in load_error(SqlSource(PG_URL, table=name))

    missing = load_error(SqlSource(PG_URL, table=f"{name}_absent"))
    assert "does not exist" in missing and f"{name}_absent" in missing
    assert "does not exist" in load_error(SqlSource(PG_URL, table=name, text_column="body"))


@pytest.fixture
def pg_articles(pg_table):
    """The deployment's articles table (deploy/postgres/articles.sql) in a fresh schema of the 'test'
    database, filled with 2,500 articles published one an hour from 2024-01-01 00:00 UTC."""
    connection, schema = pg_table
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA "{schema}"')
        cursor.execute(f'SET search_path TO "{schema}"')
        cursor.execute(ARTICLES_SCHEMA.read_text())
        cursor.execute("SET search_path TO DEFAULT")
        ids = np.random.default_rng(3).permutation(np.arange(1, 2501)).tolist()
        execute_values(
            cursor,
            f'INSERT INTO "{schema}".articles VALUES %s',
            [
                (
                    i,
                    f"Title {i}",
                    None if i % 10 == 0 else f"Body of article {i}.",
                    "wire" if i % 2 else "blog",
                    ARTICLES_EPOCH + dt.timedelta(hours=i),
                )
                for i in ids
            ],
        )
    yield connection, schema
    with connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


ARTICLES_EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _published_between(start: dt.datetime, end: dt.datetime) -> list[int]:
    return [i for i in range(1, 2501) if start <= ARTICLES_EPOCH + dt.timedelta(hours=i) < end]


def test_postgres_articles_window_streams_in_chunks(pg_articles, monkeypatch: pytest.MonkeyPatch) -> None:
    connection, schema = pg_articles
    cursor_names: list = []
    calls = _spy_fetchmany(monkeypatch, cursor_names)
    monkeypatch.setattr(corpus_module, "FETCH_CHUNK_ROWS", 300)
    database = DocumentsDatabase(
        url=PG_URL,
        table=f"{schema}.articles",
        text_column="title,body",
        date_column="published_at",
        window_start="2024-01-15",
        window_end="2024-02-15T01:00:00+01:00",  # = 2024-02-15 00:00 UTC
    )

    corpus = load_corpus(database.source(None))

    expected = _published_between(dt.datetime(2024, 1, 15, tzinfo=UTC), dt.datetime(2024, 2, 15, tzinfo=UTC))
    assert len(expected) == 31 * 24
    assert corpus.ids.tolist() == expected
    assert corpus.texts[0] == f"Title {expected[0]}\n\nBody of article {expected[0]}."
    assert corpus.texts[expected.index(340)] == "Title 340"  # a NULL body leaves the title alone
    # 744 rows read 300 at a time through a server-side (named) cursor, never the whole table at once.
    assert calls == [(300, 300), (300, 300), (300, 144), (300, 0)]
    assert cursor_names and all(cursor_names)


def test_postgres_articles_query_with_relative_window(pg_articles) -> None:
    connection, schema = pg_articles
    query = (
        f"SELECT id, title || ': ' || coalesce(body, '') FROM \"{schema}\".articles "
        "WHERE source = :source AND published_at >= :window_start AND published_at < :window_end"
    )
    # The biweekly schedule tags its run with the tick's time; the window is the 7 days before it.
    database = DocumentsDatabase(url=PG_URL, table="", query=query, window_days=7)
    source = dataclasses.replace(
        database.source(None, window_reference="2024-03-01T06:00:00+00:00"), query_params={"source": "wire"}
    )

    corpus = load_corpus(source)

    expected = [
        i
        for i in _published_between(dt.datetime(2024, 2, 23, 6, tzinfo=UTC), dt.datetime(2024, 3, 1, 6, tzinfo=UTC))
        if i % 2
    ]
    assert corpus.ids.tolist() == expected and len(expected) == 7 * 12
    assert corpus.texts[0] == f"Title {expected[0]}: Body of article {expected[0]}."
    # A window that selects nothing says which window it was.
    empty = DocumentsDatabase(
        url=PG_URL,
        table=f"{schema}.articles",
        date_column="published_at",
        text_column="title",
        window_start="2030-01-01",
    )
    message = load_error(empty.source(None))
    assert "returned no rows" in message and "window [2030-01-01T00:00:00+00:00, open)" in message
    assert "does not exist" in load_error(dataclasses.replace(empty.source(None), date_column="published"))


# --- value types: texts that are not strings, ids that are not integers ---------------------------


def test_utf8_bytes_are_decoded_and_other_values_refused_with_their_ids(tmp_path: Path) -> None:
    as_text = make_db(tmp_path / "text", [(1, "héllo wörld"), (2, "plain")])
    as_blob = make_db(tmp_path / "blob", [(1, "héllo wörld".encode()), (2, b"plain")], columns="id INTEGER, text BLOB")
    decoded = load_corpus(SqlSource(sqlite_url(as_blob)))
    assert decoded.texts == ["héllo wörld", "plain"]
    assert decoded.content_hash == load_corpus(SqlSource(sqlite_url(as_text))).content_hash
    via_query = load_corpus(SqlSource(sqlite_url(as_blob), table=None, query="SELECT id, text FROM documents"))
    assert via_query.texts == decoded.texts

    broken = make_db(
        tmp_path / "broken", [(1, b"fine"), (3, b"\xff\xfe not utf-8"), (4, "ok")], columns="id INTEGER, text BLOB"
    )
    message = load_error(SqlSource(sqlite_url(broken)))
    assert "1 text(s) are bytes that are not UTF-8, ids: 3 (byte 0 is 0xff); store the texts as UTF-8" in message
    assert str(broken) in message

    # No column affinity: SQLite keeps what was stored, a REAL and an INTEGER among the texts.
    numbers = make_db(tmp_path / "numbers", [(1, "fine"), (5, 2.5), (6, 42)], columns="id INTEGER, text")
    message = load_error(SqlSource(sqlite_url(numbers)))
    assert "2 text(s) are not text, ids: 5 (float), 6 (int); expected strings (or bytes holding UTF-8 text)" in message


def test_several_text_columns_decode_bytes_and_refuse_other_values(tmp_path: Path) -> None:
    path = make_db(
        tmp_path,
        [(1, "Title one", "Bödy".encode()), (2, "Title two", None), (3, "Title three", 7), (4, b"\x80", "body")],
        columns="id INTEGER, title TEXT, body",
    )
    source = SqlSource(sqlite_url(path), text_column="title,body")
    message = load_error(source)
    assert "1 text(s) are not text, ids: 3 (int)" in message
    with sqlite3.connect(path) as connection:
        connection.execute("DELETE FROM documents WHERE id = 3")
    connection.close()
    assert "bytes that are not UTF-8, ids: 4 (byte 0 is 0x80)" in load_error(source)
    with sqlite3.connect(path) as connection:
        connection.execute("DELETE FROM documents WHERE id = 4")
    connection.close()
    assert load_corpus(source).texts == ["Title one\n\nBödy", "Title two"]


def test_from_rows_names_the_type_of_each_value_that_is_not_text() -> None:
    with pytest.raises(CorpusError) as info:
        Corpus.from_rows([(1, dt.date(2024, 5, 1)), (2, Decimal("3.5")), (3, "fine"), (4, bytearray(b"ok")), (5, True)])
    assert "3 text(s) are not text, ids: 1 (date), 2 (Decimal), 5 (bool)" in str(info.value)
    assert Corpus.from_rows([(1, memoryview(b"mv")), (2, bytearray(b"ba")), (3, np.str_("np"))]).texts == [
        "mv",
        "ba",
        "np",
    ]


def test_text_ids_are_taken_only_when_they_are_canonical_integers(tmp_path: Path) -> None:
    path = make_db(
        tmp_path,
        [("7", "a"), (" 7 ", "b"), ("1_000", "c"), ("007", "d"), ("+8", "e"), ("-0", "f"), ("９", "g"), ("-12", "h")],
        columns="id TEXT, text TEXT",
    )
    message = load_error(SqlSource(sqlite_url(path)))
    assert "ids must be integers; got ' 7 ', '1_000', '007', '+8', '-0', '９'" in message
    with sqlite3.connect(path) as connection:
        connection.execute("DELETE FROM documents WHERE id NOT IN ('7', '-12', '0')")
        connection.execute("INSERT INTO documents VALUES ('0', 'zero')")
    connection.close()
    corpus = load_corpus(SqlSource(sqlite_url(path)))
    assert corpus.ids.tolist() == [-12, 0, 7]
    (note,) = corpus.notes
    assert "3 id(s) are stored as text (e.g. '7') and were read as the integers they spell" in note
    assert str(path) in note
    # Integer ids need no note.
    assert load_corpus(SqlSource(sqlite_url(make_db(tmp_path / "int", [(7, "a")])))).notes == ()


def test_from_rows_id_types() -> None:
    assert Corpus.from_rows([(np.int32(5), "a"), (np.float64(6.0), "b"), (np.uint8(7), "c")]).ids.tolist() == [5, 6, 7]
    for flag in (True, np.bool_(False)):
        with pytest.raises(CorpusError, match=f"ids must be integers; got {flag!r}"):
            Corpus.from_rows([(flag, "a")])
    with pytest.raises(CorpusError, match=r"ids must be integers; got b'7'"):
        Corpus.from_rows([(b"7", "a")])
    with pytest.raises(CorpusError, match=r"ids must be integers; got datetime.date\(2024, 5, 1\)"):
        Corpus.from_rows([(dt.date(2024, 5, 1), "a")])


def test_documents_asset_logs_and_records_ids_read_from_text(tmp_path: Path) -> None:
    import logging

    import dagster as dg

    from topic_pipeline.defs.assets.inputs import documents
    from topic_pipeline.defs.resources.io_manager import ParquetJsonIOManager
    from topic_pipeline.defs.resources.settings import PipelineSettings

    path = make_db(tmp_path, [("2", "two"), ("10", "ten")], columns="id TEXT, text TEXT")
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [documents],
        instance=instance,
        resources={
            "database": DocumentsDatabase(url=sqlite_url(path)),
            "settings": PipelineSettings(data_dir=str(tmp_path / "data")),
            "io_manager": ParquetJsonIOManager(data_dir=str(tmp_path / "data")),
        },
    )
    (materialization,) = result.asset_materializations_for_node("documents")
    note = materialization.metadata["notes"].value
    assert "2 id(s) are stored as text (e.g. '2') and were read as the integers they spell" in note
    warnings = [entry.user_message for entry in instance.all_logs(result.run_id) if entry.level == logging.WARNING]
    assert note in warnings


def test_postgres_bytea_arrives_as_memoryview_and_is_decoded(pg_table) -> None:
    connection, name = pg_table
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE TABLE "{name}" (id BIGINT, body BYTEA)')
        cursor.execute(f'INSERT INTO "{name}" VALUES (2, %s), (1, %s)', ("zwei Bücher".encode(), b"one"))
    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect() as probe:
            raw = probe.execute(sa.text(f'SELECT body FROM "{name}" WHERE id = 1')).scalar_one()
    finally:
        engine.dispose()
    assert isinstance(raw, memoryview)

    corpus = load_corpus(SqlSource(PG_URL, table=name, text_column="body"))
    assert corpus.texts == ["one", "zwei Bücher"]
    with connection.cursor() as cursor:
        cursor.execute(f'INSERT INTO "{name}" VALUES (3, %s)', (b"caf\xe9",))
    assert "bytes that are not UTF-8, ids: 3 (byte 3 is 0xe9)" in load_error(
        SqlSource(PG_URL, table=name, text_column="body")
    )


# --- the source database is never written ---------------------------------------------------------
# A custom query must be one statement and a query, refused before anything connects; and the export runs
# in a read-only transaction ended by a rollback, so that a write slipping past that check is refused by
# the database itself. Each attempt is checked against the tables and rows before and after.

SETTING = "TOPIC_PIPELINE_DOCUMENTS_QUERY"
EXPECTED = "expected exactly one query (a SELECT returning id and text)"
READ_ONLY_REFUSAL = "the query tried to write to the source database, which refused it because the export is read-only"

# (query, the message it is refused with); "documents" holds the texts, "keep" is a second table.
WRITING_QUERIES = [
    pytest.param(
        "SELECT id, text FROM documents; DELETE FROM documents; COMMIT",
        f"{SETTING} holds 3 SQL statements; {EXPECTED}",
        id="select-delete-commit",
    ),
    pytest.param(
        "SELECT id, text FROM documents; DROP TABLE keep; COMMIT",
        f"{SETTING} holds 3 SQL statements; {EXPECTED}",
        id="select-drop-commit",
    ),
    pytest.param(
        "SELECT id, text FROM documents;\nCOMMIT;\nDELETE FROM documents;",
        f"{SETTING} holds 3 SQL statements; {EXPECTED}",
        id="select-commit-delete",
    ),
    pytest.param(
        "DELETE FROM documents",
        f"{SETTING} is a DELETE statement, which would write to the source database; {EXPECTED}",
        id="delete",
    ),
    pytest.param(
        "UPDATE documents SET text = 'gone'",
        f"{SETTING} is an UPDATE statement, which would write to the source database; {EXPECTED}",
        id="update",
    ),
    pytest.param(
        "INSERT INTO documents VALUES (99, 'planted') RETURNING id, text",
        f"{SETTING} is an INSERT statement, which would write to the source database; {EXPECTED}",
        id="insert",
    ),
    pytest.param(
        "DROP TABLE keep;",
        f"{SETTING} is a DROP statement, which would write to the source database; {EXPECTED}",
        id="drop",
    ),
    pytest.param(
        "  /* a comment */ (DELETE FROM documents)",
        f"{SETTING} is a DELETE statement, which would write to the source database; {EXPECTED}",
        id="delete-in-parens",
    ),
    pytest.param(
        "WITH old AS (SELECT id FROM documents) DELETE FROM documents WHERE id IN (SELECT id FROM old)",
        f"{SETTING} is a DELETE statement (after a WITH clause), which would write to the source database; {EXPECTED}",
        id="with-then-delete",
    ),
    pytest.param(
        "SELECT id, text INTO copied FROM documents",
        f"{SETTING} is a SELECT ... INTO statement, which would write to the source database (a new table or a file); "
        f"{EXPECTED}",
        id="select-into",
    ),
    pytest.param(
        "COMMIT",
        f"{SETTING} is a COMMIT statement, which would change the export's read-only transaction or the "
        f"connection's settings; {EXPECTED}",
        id="commit",
    ),
    # A backslash does not escape the quote in PostgreSQL's or SQLite's strings: this is two statements.
    pytest.param(
        "SELECT id, text FROM documents WHERE text <> '\\'; DELETE FROM documents; --'",
        f"{SETTING} holds 2 SQL statements; {EXPECTED}",
        id="backslash-is-no-escape",
    ),
]
PG_WRITING_QUERIES = [
    pytest.param(
        "WITH gone AS (DELETE FROM documents RETURNING id, text) SELECT * FROM gone",
        f"{SETTING} holds a DELETE statement in parentheses (a data-modifying WITH), which would write to the "
        f"source database; {EXPECTED}",
        id="cte-delete",
    ),
    pytest.param(
        "SET default_transaction_read_only = off",
        f"{SETTING} is a SET statement, which would change the "
        f"export's read-only transaction or the connection's settings; {EXPECTED}",
        id="set",
    ),
    pytest.param(
        "COPY documents FROM PROGRAM 'true'",
        f"{SETTING} is a COPY statement, which would write to the source database; {EXPECTED}",
        id="copy",
    ),
    pytest.param(
        "DO $$ BEGIN DELETE FROM documents; END $$",
        f"{SETTING} is a DO statement, which would write to the source database; {EXPECTED}",
        id="do",
    ),
]
SQLITE_WRITING_QUERIES = [
    pytest.param(
        "ATTACH DATABASE '{dir}/attached.db' AS other",
        f"{SETTING} is an ATTACH statement, which would write to the source database; {EXPECTED}",
        id="attach",
    ),
    pytest.param(
        "PRAGMA query_only = OFF",
        f"{SETTING} is a PRAGMA statement, which would change the export's read-only "
        f"transaction or the connection's settings; {EXPECTED}",
        id="pragma",
    ),
    pytest.param(
        "PRAGMA user_version = 7",
        f"{SETTING} is a PRAGMA statement, which would change the export's read-only "
        f"transaction or the connection's settings; {EXPECTED}",
        id="pragma-user-version",
    ),
    pytest.param(
        "VACUUM INTO '{dir}/copy.db'",
        f"{SETTING} is a VACUUM statement, which would write to the source database; {EXPECTED}",
        id="vacuum-into",
    ),
]

SOURCE_ROWS = [(1, "first; text"), (2, "second text"), (3, "third text")]


@pytest.fixture
def sqlite_source(tmp_path: Path) -> Path:
    """A SQLite file of three texts in ``documents`` and a second table ``keep``."""
    path = make_db(tmp_path, SOURCE_ROWS)
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE keep (v INTEGER)")
        connection.execute("INSERT INTO keep VALUES (1)")
    connection.close()
    return path


def _sqlite_state(path: Path) -> tuple:
    """The tables, the rows of each, the files of the folder and the database file's bytes."""
    connection = sqlite3.connect(path)
    try:
        tables = [
            name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        ]
        rows = {table: connection.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall() for table in tables}
        user_version = connection.execute("PRAGMA user_version").fetchone()
    finally:
        connection.close()
    return (
        tables,
        rows,
        user_version,
        sorted(p.name for p in path.parent.iterdir()),
        hashlib.sha256(path.read_bytes()).hexdigest(),
    )


@pytest.fixture
def pg_source(pg_table):
    """A schema of the local PostgreSQL 'test' database holding ``documents`` (three texts) and ``keep``,
    a function that deletes every text, and a URL whose search path is that schema; dropped afterwards."""
    connection, schema = pg_table
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA "{schema}"')
        cursor.execute(f'CREATE TABLE "{schema}".documents (id BIGINT PRIMARY KEY, text TEXT NOT NULL)')
        execute_values(cursor, f'INSERT INTO "{schema}".documents VALUES %s', SOURCE_ROWS)
        cursor.execute(f'CREATE TABLE "{schema}".keep (v INTEGER)')
        cursor.execute(f'INSERT INTO "{schema}".keep VALUES (1)')
        cursor.execute(
            f'CREATE FUNCTION "{schema}".purge() RETURNS boolean LANGUAGE plpgsql AS '
            f'$body$ BEGIN DELETE FROM "{schema}".documents; RETURN true; END $body$'
        )
    try:
        yield connection, schema, f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _pg_state(connection, schema: str) -> tuple:
    """The schema's tables and the rows of each."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1", (schema,))
        tables = [name for (name,) in cursor.fetchall()]
        rows = {}
        for table in tables:
            cursor.execute(f'SELECT * FROM "{schema}"."{table}" ORDER BY 1')
            rows[table] = cursor.fetchall()
    return tables, rows


def _no_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("connected to the database for a query that should have been refused before")

    monkeypatch.setattr(sa.engine.Engine, "connect", refuse)


def _without_statement_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let every query through the statement check, to see what the read-only transaction alone does."""
    monkeypatch.setattr(corpus_module, "checked_query", lambda sql, dialect=None: sql)


@pytest.mark.parametrize(("query", "message"), WRITING_QUERIES + SQLITE_WRITING_QUERIES)
def test_sqlite_writing_queries_are_refused_before_connecting(
    sqlite_source: Path, monkeypatch, query: str, message: str
) -> None:
    query = query.format(dir=sqlite_source.parent)
    before = _sqlite_state(sqlite_source)
    _no_connection(monkeypatch)
    assert load_error(SqlSource(sqlite_url(sqlite_source), table=None, query=query)) == message
    assert _sqlite_state(sqlite_source) == before


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM documents",
        "UPDATE documents SET text = 'gone'",
        "INSERT INTO documents VALUES (99, 'planted') RETURNING id, text",
        "DELETE FROM documents RETURNING id, text",
        "DROP TABLE keep",
        "ATTACH DATABASE '{dir}/attached.db' AS other",
        "PRAGMA query_only = OFF",
        "VACUUM INTO '{dir}/copy.db'",
    ],
)
def test_sqlite_read_only_connection_refuses_writes_past_the_check(
    sqlite_source: Path, monkeypatch, query: str
) -> None:
    query = query.format(dir=sqlite_source.parent)
    before = _sqlite_state(sqlite_source)
    _without_statement_check(monkeypatch)
    message = load_error(SqlSource(sqlite_url(sqlite_source), table=None, query=query))
    assert READ_ONLY_REFUSAL in message and "nothing was written" in message and SETTING in message
    assert _sqlite_state(sqlite_source) == before


@pytest.mark.parametrize(("query", "message"), WRITING_QUERIES + PG_WRITING_QUERIES)
def test_postgres_writing_queries_are_refused_before_connecting(
    pg_source, monkeypatch, query: str, message: str
) -> None:
    connection, schema, url = pg_source
    before = _pg_state(connection, schema)
    _no_connection(monkeypatch)
    assert load_error(SqlSource(url, table=None, query=query)) == message
    assert _pg_state(connection, schema) == before
    assert before[0] == ["documents", "keep"] and len(before[1]["documents"]) == 3


@pytest.mark.parametrize(
    ("query", "refusal"),
    [
        # What reached the server before the check: each of these removed rows or a table, or exited 0.
        (
            "SELECT id, text FROM documents; DELETE FROM documents; COMMIT",
            "cannot execute DELETE in a read-only transaction",
        ),
        (
            "SELECT id, text FROM documents; DROP TABLE keep; COMMIT",
            "cannot execute DROP TABLE in a read-only transaction",
        ),
        (
            "SELECT id, text FROM documents; COMMIT; DELETE FROM documents",
            "cannot execute DELETE in a read-only transaction",
        ),
        (
            "WITH gone AS (DELETE FROM documents RETURNING id, text) SELECT * FROM gone",
            "data-modifying statements in WITH",
        ),
        ("SELECT id, text FROM documents FOR UPDATE", "cannot execute SELECT FOR UPDATE in a read-only transaction"),
    ],
)
def test_postgres_read_only_transaction_refuses_writes_past_the_check(
    pg_source, monkeypatch, query: str, refusal: str
) -> None:
    connection, schema, url = pg_source
    before = _pg_state(connection, schema)
    _without_statement_check(monkeypatch)
    message = load_error(SqlSource(url, table=None, query=query))
    assert READ_ONLY_REFUSAL in message and refusal in message and "nothing was written" in message
    assert _pg_state(connection, schema) == before


def test_postgres_select_calling_a_function_that_writes_is_refused(pg_source) -> None:
    """A plain SELECT passes the statement check; the function it calls deletes, and the read-only
    transaction refuses that as the rows are fetched."""
    connection, schema, url = pg_source
    before = _pg_state(connection, schema)
    message = load_error(SqlSource(url, table=None, query="SELECT id, text FROM documents WHERE purge()"))
    assert (
        f"documents export from {url}: {READ_ONLY_REFUSAL} (cannot execute DELETE in a read-only transaction); "
        f"nothing was written: {SETTING} must be a query that only reads (a SELECT returning id and text)" == message
    )
    assert _pg_state(connection, schema) == before


@pytest.fixture
def transaction_log():
    """Every statement the engines run, and each commit and rollback, in order."""
    log: list[str] = []

    def statement(conn, cursor, sql, parameters, context, executemany):
        log.append(sql)

    def commit(conn):
        log.append("<commit>")

    def rollback(conn):
        log.append("<rollback>")

    listeners = [("before_cursor_execute", statement), ("commit", commit), ("rollback", rollback)]
    for name, listener in listeners:
        sa.event.listen(sa.engine.Engine, name, listener)
    try:
        yield log
    finally:
        for name, listener in listeners:
            sa.event.remove(sa.engine.Engine, name, listener)


def _export_in_read_only_transaction(log: list[str], read_only: str) -> None:
    """``log`` makes the transaction read-only before the export's SELECT, and ends it with a rollback,
    never a commit."""
    assert "<commit>" not in log and not any(sql.strip().upper().startswith("COMMIT") for sql in log)
    select = next(i for i, sql in enumerate(log) if "SELECT" in sql and "documents" in sql)
    assert read_only in log[:select]
    assert "<rollback>" in log[select:]


def test_sqlite_exports_read_only_and_rolls_back(sqlite_source: Path, transaction_log: list[str]) -> None:
    before = _sqlite_state(sqlite_source)
    table = load_corpus(SqlSource(sqlite_url(sqlite_source)))
    assert table.texts == [text for _, text in SOURCE_ROWS]
    _export_in_read_only_transaction(transaction_log, "PRAGMA query_only = ON")
    transaction_log.clear()
    # A semicolon inside a string literal, a quoted identifier and a comment, and one trailing semicolon.
    query = "SELECT id, text AS \"a;b\" /* ; */ FROM documents WHERE text <> 'x;y' -- ; \n;  -- done"
    assert load_corpus(SqlSource(sqlite_url(sqlite_source), table=None, query=query)).content_hash == table.content_hash
    _export_in_read_only_transaction(transaction_log, "PRAGMA query_only = ON")
    assert _sqlite_state(sqlite_source) == before


def test_postgres_exports_read_only_and_rolls_back(pg_source, transaction_log: list[str], monkeypatch) -> None:
    connection, schema, url = pg_source
    before = _pg_state(connection, schema)
    cursor_names: list = []
    _spy_fetchmany(monkeypatch, cursor_names)
    table = load_corpus(SqlSource(url))
    assert table.texts == [text for _, text in SOURCE_ROWS]
    _export_in_read_only_transaction(transaction_log, "SET TRANSACTION READ ONLY")
    transaction_log.clear()
    # Semicolons inside a string, a quoted identifier, comments and dollar quotes; one trailing semicolon.
    query = (
        'SELECT id, text AS "a;b" /* ; /* nested ; */ ; */ FROM documents '
        "WHERE text <> 'x;y' AND text <> $$;$$ AND text <> $q$ it's; $q$ AND text <> E'\\';' -- ;\n;"
    )
    assert load_corpus(SqlSource(url, table=None, query=query)).content_hash == table.content_hash
    _export_in_read_only_transaction(transaction_log, "SET TRANSACTION READ ONLY")
    assert cursor_names and all(cursor_names)  # still streamed through a server-side cursor
    assert _pg_state(connection, schema) == before


@pytest.mark.parametrize(
    ("sql", "dialects", "expected"),
    [
        (
            "SELECT id, text FROM documents WHERE text LIKE '%;%';",
            None,
            "SELECT id, text FROM documents WHERE text LIKE '%;%'",
        ),
        ("SELECT id, text FROM documents -- one; comment\n ; ", None, "SELECT id, text FROM documents -- one; comment"),
        ("  ;; SELECT 1;;  ", None, "SELECT 1"),
        ('SELECT "a;b", `c;d` FROM t', ("sqlite", "mysql"), 'SELECT "a;b", `c;d` FROM t'),
        ("SELECT [a;b] FROM t", ("sqlite",), "SELECT [a;b] FROM t"),
        ("SELECT $$;$$, $tag$ ' ; $tag$", ("postgresql",), "SELECT $$;$$, $tag$ ' ; $tag$"),
        ("SELECT E'\\'; DELETE FROM t; --'", ("postgresql",), "SELECT E'\\'; DELETE FROM t; --'"),
        ("SELECT 1 /* /* */ ; DELETE FROM t; */", ("postgresql",), "SELECT 1 /* /* */ ; DELETE FROM t; */"),
        ("SELECT 1 # ; DELETE FROM t\n", ("mysql", "mariadb"), "SELECT 1 # ; DELETE FROM t"),
        ("WITH updated AS (SELECT 1 AS id, 'x' AS text) SELECT * FROM updated", None, None),
        ("(SELECT 1, 'a') UNION (SELECT 2, 'b')", None, None),
        ("VALUES (1, 'a'), (2, 'b')", None, None),
        ("SELECT id, text FROM t WHERE note <> 'DELETE FROM t; COMMIT'", None, None),
        ("SELEC id, text FROM t", None, None),  # not a statement at all: the database reports the syntax error
    ],
)
def test_one_query_passes_the_statement_check(sql: str, dialects, expected) -> None:
    for dialect in dialects or ("postgresql", "sqlite", "mysql", "mariadb", None):
        assert read_only_sql.checked_query(sql, dialect) == (expected or sql), dialect


@pytest.mark.parametrize(
    ("sql", "dialect", "message"),
    [
        ("SELECT 1 /* /* */ ; DELETE FROM t; */", "sqlite", "holds 3 SQL statements"),  # SQLite's comments do not nest
        ("SELECT $$;$$", "sqlite", "holds 2 SQL statements"),
        ("SELECT '\\'; DELETE FROM t; --'", "postgresql", "holds 2 SQL statements"),
        ("SELECT '\\'; DELETE FROM t; --'", "mysql", "holds 3 SQL statements"),  # under NO_BACKSLASH_ESCAPES
        ("SELECT 'a\\'; DELETE FROM t; -- '", "mysql", "holds 2 SQL statements"),
        ("SELECT 1--1; DELETE FROM t", "mysql", "holds 2 SQL statements"),  # no space: not a comment in MySQL
        ("SELECT 1 /*! ; DELETE FROM t */", "mysql", "holds 2 SQL statements"),  # MySQL runs /*! ... */
        ("SELECT 1 -- x\r'\n; DELETE FROM t; --'", "sqlite", "holds 2 SQL statements"),  # only \n ends it
        (" ; -- nothing\n", None, "holds no SQL statement (only whitespace, comments or semicolons)"),
        ("EXPLAIN ANALYZE DELETE FROM t", None, "is an EXPLAIN statement, which is not a query"),
        ("WITH x AS (SELECT 1)", None, "is a WITH clause without the query it leads to"),
        (
            "WITH x AS MATERIALIZED (UPDATE t SET a = 1 RETURNING *) SELECT * FROM x",
            "postgresql",
            "holds an UPDATE statement in parentheses (a data-modifying WITH)",
        ),
        ("REPLACE INTO t VALUES (1, 'a')", "mysql", "is a REPLACE statement, which would write"),
        ("SELECT id, text FROM t INTO OUTFILE '/tmp/x'", "mysql", "is a SELECT ... INTO statement"),
        ("CALL purge()", None, "is a CALL statement, which would write"),
        ("GRANT ALL ON t TO public", None, "is a GRANT statement, which would write"),
        ("BEGIN; SELECT 1", None, "holds 2 SQL statements"),
    ],
)
def test_the_statement_check_refuses(sql: str, dialect, message: str) -> None:
    with pytest.raises(CorpusError) as info:
        read_only_sql.checked_query(sql, dialect)
    assert str(info.value).startswith(f"{SETTING} ") and message in str(info.value)
    assert str(info.value).endswith(EXPECTED) and "\n" not in str(info.value)


def test_the_settings_check_refuses_only_what_every_database_would_refuse() -> None:
    """Before the database is known (the settings' own check), a query is refused only when every
    dialect reads it as more than one statement or as a write; the export checks it again as its
    database reads it."""
    postgres_only = "SELECT id, $$;$$ FROM documents"
    assert SqlSource("sqlite://", table=None, query=postgres_only).statement() is not None
    with pytest.raises(CorpusError, match="holds 2 SQL statements"):
        SqlSource("sqlite://", table=None, query=postgres_only).statement("sqlite")
    with pytest.raises(CorpusError, match="holds 3 SQL statements"):
        SqlSource(
            "sqlite://", table=None, query="SELECT id, text FROM documents; DELETE FROM documents; COMMIT"
        ).statement()


class _UnsupportedDialect(SQLiteDialect_pysqlite):
    """SQLite's driver under another dialect's name, standing for a database the export cannot make read-only."""

    name = "tp_unsupported"
    supports_statement_cache = True


def test_an_unsupported_dialect_is_refused_before_connecting(sqlite_source: Path, monkeypatch) -> None:
    sa.dialects.registry.register("tp_unsupported", __name__, "_UnsupportedDialect")
    _no_connection(monkeypatch)
    message = load_error(SqlSource(f"tp_unsupported:///{sqlite_source}"))
    assert message == (
        f"documents export from tp_unsupported:///{sqlite_source}: the database dialect 'tp_unsupported' is "
        "not supported: the export runs in a read-only transaction, which it can open on sqlite, postgresql and "
        "mysql/mariadb only"
    )


def test_mysql_and_mariadb_exports_start_read_only() -> None:
    """No MySQL server here: the statements the export sends, and how it reads the server's refusal."""

    class Recorder:
        def __init__(self) -> None:
            self.sql: list[str] = []

        def exec_driver_sql(self, sql: str) -> None:
            self.sql.append(sql)

    for dialect in ("mysql", "mariadb"):
        recorder = Recorder()
        assert read_only_sql.begin_read_only(recorder, dialect)
        assert recorder.sql == ["SET SESSION TRANSACTION READ ONLY", "START TRANSACTION READ ONLY"]
    refused = Exception(1792, "Cannot execute statement in a READ ONLY transaction.")
    assert read_only_sql.write_refused(sa.exc.OperationalError("DELETE FROM t", {}, refused))
    assert not read_only_sql.write_refused(sa.exc.OperationalError("SELEC", {}, Exception(1064, "syntax error")))


# --- ids out of range, invisible texts, identical texts ------------------------------------------


def test_ids_outside_int64_are_reported_as_out_of_range(tmp_path: Path) -> None:
    path = make_db(
        tmp_path, [(1, "a"), ("9223372036854775808", "b"), ("-9223372036854775809", "c")], columns="id, text TEXT"
    )
    message = load_error(SqlSource(sqlite_url(path)))
    assert message == (
        f"documents export from sqlite:///{path}: 2 id(s) are outside the 64-bit integer range "
        "(-9223372036854775808 to 9223372036854775807): 9223372036854775808, -9223372036854775809"
    )
    with pytest.raises(CorpusError, match=r"1 id\(s\) are outside the 64-bit integer range .*: 100000000000000000000$"):
        Corpus.from_rows([(Decimal("1e20"), "x"), (2, "y")])
    # An id that is no integer at all keeps its message, and comes first.
    with pytest.raises(CorpusError, match=r"ids must be integers; got 'x'$"):
        Corpus.from_rows([("x", "a"), (2**63, "b")])


def test_texts_of_invisible_characters_only_count_as_blank(tmp_path: Path) -> None:
    rows = [
        (1, "fine"),
        (2, "\u200b"),
        (3, " \u200c\u200d\t"),
        (4, "\u2060\ufeff"),
        (5, "\u00ad"),
        (6, "  "),
        (7, "\u200bword\u200b"),
        (8, "\u3164\ufe0f\u180e"),
    ]
    message = load_error(SqlSource(sqlite_url(make_db(tmp_path, rows))))
    assert message.endswith(
        ": 6 text(s) are empty or whitespace, ids: 2, 3, 4, 5, 6, 8; ids 2, 3, 4, 5, 8 hold only invisible characters "
        "(zero-width spaces and joiners, soft hyphens, byte-order marks and other format characters), which count as whitespace"
    )
    assert "; id 3 holds only invisible characters (" in load_error(
        SqlSource(sqlite_url(make_db(tmp_path / "one", [(1, "a"), (3, "\ufeff")])))
    )
    assert (
        corpus_module.is_blank("") and corpus_module.is_blank("\u202f\u2028") and not corpus_module.is_blank("\u200ba")
    )


def test_identical_texts_are_refused(tmp_path: Path) -> None:
    path = make_db(tmp_path, [(i, "the same text") for i in range(200, 0, -1)])
    message = load_error(SqlSource(sqlite_url(path)))
    assert message == (
        f"documents export from sqlite:///{path}: all 200 texts are identical ('the same text'); clustering needs texts that differ"
    )
    assert "identical ('" + "x" * 60 + "…')" in str(
        pytest.raises(CorpusError, Corpus.from_rows, [(1, "x" * 99), (2, "x" * 99)]).value
    )
    # One text, or texts that differ in a single character, are a corpus.
    assert Corpus.from_rows([(1, "only")]).texts == ["only"]
    assert Corpus.from_rows([(1, "same"), (2, "same"), (3, "Same")]).texts == ["same", "same", "Same"]

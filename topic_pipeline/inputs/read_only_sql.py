"""The source database is only ever read: a custom documents query is checked to be exactly one query
(``checked_query``) before anything connects, and every export runs in a transaction the database itself
keeps read-only (``begin_read_only``), whose refusals ``write_refused`` recognises."""

from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Any

import sqlalchemy as sa

from topic_pipeline.errors import CorpusError

# --- a custom documents query: exactly one statement, and that one a query ----------------------------
#
# Read by the small tokenizer below rather than by sqlparse (installed here through mlflow): sqlparse
# reads every dialect one way (a backslash escapes the quote in every string, block comments do not
# nest, MySQL's executable comments are comments), so it finds one statement in
# `SELECT '\'; DELETE FROM documents; --'`, where PostgreSQL, whose string ends at the second quote, runs
# a DELETE (as it does after `/* /* */ ' */ ;`, and MySQL after `/*! ; */`: sqlparse 0.6 also finds one
# statement there). What hides a semicolon differs between the databases and, for one database, with server
# settings (PostgreSQL's standard_conforming_strings, MySQL's NO_BACKSLASH_ESCAPES and ANSI_QUOTES), so
# the query is read with its dialect's lexical rules under every such setting, and passes only if every
# reading finds exactly one query. The read-only transaction ``load_corpus`` opens stands behind this.

QUERY_SETTING = "TOPIC_PIPELINE_DOCUMENTS_QUERY"
_EXPECTED_QUERY = "expected exactly one query (a SELECT returning id and text)"
# The dialects whose export can be made read-only; ``load_corpus`` refuses the others.
READ_ONLY_DIALECTS = ("sqlite", "postgresql", "mysql", "mariadb")
_SQL_SPACE = " \t\n\r\f\v"
_QUERY_WORDS = frozenset({"SELECT", "VALUES", "TABLE"})
_WRITE_WORDS = frozenset(
    {
        "INSERT",
        "UPDATE",
        "DELETE",
        "MERGE",
        "REPLACE",
        "UPSERT",
        "TRUNCATE",
        "CREATE",
        "DROP",
        "ALTER",
        "RENAME",
        "COMMENT",
        "GRANT",
        "REVOKE",
        "REASSIGN",
        "SECURITY",
        "COPY",
        "LOAD",
        "IMPORT",
        "CALL",
        "DO",
        "EXEC",
        "EXECUTE",
        "ATTACH",
        "DETACH",
        "VACUUM",
        "REINDEX",
        "CLUSTER",
        "REFRESH",
        "ANALYZE",
        "ANALYSE",
        "OPTIMIZE",
        "REPAIR",
        "PURGE",
        "INSTALL",
        "UNINSTALL",
        "HANDLER",
        "NOTIFY",
        "BINLOG",
        "CHANGE",
        "CLONE",
    }
)
_CONTROL_WORDS = frozenset(
    {
        "BEGIN",
        "START",
        "COMMIT",
        "END",
        "ROLLBACK",
        "ABORT",
        "SAVEPOINT",
        "RELEASE",
        "XA",
        "SET",
        "RESET",
        "PRAGMA",
        "DISCARD",
        "USE",
        "PREPARE",
        "DEALLOCATE",
        "DECLARE",
        "FETCH",
        "MOVE",
        "CLOSE",
        "LISTEN",
        "UNLISTEN",
        "LOCK",
        "UNLOCK",
    }
)
_OTHER_STATEMENT_WORDS = frozenset(
    {
        "EXPLAIN",
        "SHOW",
        "DESCRIBE",
        "DESC",
        "HELP",
        "CHECK",
        "CHECKSUM",
        "GET",
        "SIGNAL",
        "RESIGNAL",
        "CHECKPOINT",
        "FLUSH",
        "CACHE",
        "KILL",
        "SHUTDOWN",
        "RESTART",
        "STOP",
    }
)
# The statement a WITH clause leads to, and the data-modifying statements PostgreSQL allows inside one.
_WITH_MAIN_WORDS = _QUERY_WORDS | {"INSERT", "UPDATE", "DELETE", "MERGE", "REPLACE"}
_NESTED_WRITE_WORDS = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE"})


@dataclasses.dataclass(frozen=True)
class _SqlLexer:
    """Where a token starts and what hides a semicolon, in one dialect under one server setting."""

    dialect: str
    backslash_strings: bool = False  # a backslash escapes the next character in '...' (and MySQL's "...")
    double_quoted_strings: bool = False  # MySQL without ANSI_QUOTES: "..." is a string
    nested_comments: bool = False  # /* /* */ */ is one comment
    comment_ends_at_cr: bool = False  # a line comment ends at a carriage return as well as at a newline
    special_comments_are_code: bool = False  # MySQL runs /*! ... */ and MariaDB /*M! ... */ (and reads /*+ hints */)


def _sql_lexers(dialect: str | None) -> list[_SqlLexer]:
    """Every reading of ``dialect`` (of every supported dialect when None), the server's default first."""
    if dialect == "postgresql":
        # standard_conforming_strings on (the default since 9.1), then off. Line comments end at \r or \n.
        return [
            _SqlLexer("postgresql", backslash_strings=b, nested_comments=True, comment_ends_at_cr=True)
            for b in (False, True)
        ]
    if dialect == "sqlite":
        return [_SqlLexer("sqlite")]
    if dialect in ("mysql", "mariadb"):
        # Backslash escapes (unless NO_BACKSLASH_ESCAPES), "..." strings (unless ANSI_QUOTES); how line and
        # nested comments end, and whether special comments run, are read both ways where unsure.
        return [
            _SqlLexer(
                "mysql",
                backslash_strings=b,
                double_quoted_strings=d,
                nested_comments=n,
                comment_ends_at_cr=r,
                special_comments_are_code=s,
            )
            for b, d, s, n, r in itertools.product((True, False), repeat=5)
        ]
    return [lexer for name in ("postgresql", "sqlite", "mysql") for lexer in _sql_lexers(name)]


def _ascii_word_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch in "_$")


def _word_char(ch: str) -> bool:
    """A character that continues an unquoted identifier (and starts none but $): every dialect takes
    any non-ASCII character as a letter."""
    return _ascii_word_char(ch) or not ch.isascii()


def _quoted_end(sql: str, start: int, quote: str, backslash: bool) -> int:
    """The end of the quoted text opened at ``start`` (a doubled quote stands for itself); the end of
    ``sql`` when it is not closed, which the server refuses as a syntax error."""
    i = start + 1
    while i < len(sql):
        if backslash and sql[i] == "\\":
            i += 2
        elif sql[i] == quote:
            if sql.startswith(quote, i + 1):
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return len(sql)


def _block_comment_end(sql: str, start: int, nested: bool) -> int:
    i, depth = start + 2, 1
    while i < len(sql):
        if nested and sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if not depth:
                return i
        else:
            i += 1
    return len(sql)


_PG_DOLLAR_QUOTE = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")


def _sql_tokens(sql: str, lexer: _SqlLexer) -> list[tuple[str, str, int, int]]:
    """(kind, text, start, end) for each token of ``sql`` read by ``lexer``, comments left out; kind is
    "word" (upper-cased), "quoted" (a string, quoted identifier or dollar quote), or "punct"."""
    tokens: list[tuple[str, str, int, int]] = []
    pg, sqlite, mysql = (lexer.dialect == name for name in ("postgresql", "sqlite", "mysql"))
    line_ends = "\r\n" if lexer.comment_ends_at_cr else "\n"
    in_special_comment = False
    i, n = 0, len(sql)
    while i < n:
        ch, after = sql[i], sql[i + 1 : i + 2]
        start = i
        if ch in _SQL_SPACE:
            i += 1
        elif (
            ch == "-" and after == "-" and (not mysql or i + 2 >= n or sql[i + 2] in _SQL_SPACE or ord(sql[i + 2]) < 32)
        ) or (ch == "#" and mysql):
            # MySQL takes -- as a comment only before a space or a control character: 1--1 is 1 - (-1).
            while i < n and sql[i] not in line_ends:
                i += 1
        elif ch == "/" and after == "*":
            special = re.match(r"/\*(?:M?!\d*|\+)", sql[i:]) if mysql and lexer.special_comments_are_code else None
            if special:
                # MySQL and MariaDB run what /*! ... */ and /*M! ... */ hold: read as code up to the */.
                i += special.end()
                in_special_comment = True
            else:
                i = _block_comment_end(sql, i, lexer.nested_comments)
        elif ch == "*" and after == "/" and in_special_comment:
            in_special_comment = False
            i += 2
        elif ch == "'":
            i = _quoted_end(sql, i, "'", lexer.backslash_strings)
            tokens.append(("quoted", sql[start:i], start, i))
        elif ch == '"':
            i = _quoted_end(sql, i, '"', lexer.backslash_strings and lexer.double_quoted_strings)
            tokens.append(("quoted", sql[start:i], start, i))
        elif ch == "`" and not pg:
            i = _quoted_end(sql, i, "`", False)
            tokens.append(("quoted", sql[start:i], start, i))
        elif ch == "[" and sqlite:
            close = sql.find("]", i + 1)
            i = n if close < 0 else close + 1
            tokens.append(("quoted", sql[start:i], start, i))
        elif ch == "$" and pg and (dollar := _PG_DOLLAR_QUOTE.match(sql, i)):
            close = sql.find(dollar.group(), dollar.end())
            i = n if close < 0 else close + len(dollar.group())
            tokens.append(("quoted", sql[start:i], start, i))
        elif ch in "$@:#" and sqlite:
            # A variable: $name, @name, :name, #name, with Tcl's ::name and (...) parts, as sqlite3GetToken reads it.
            i, letters = i + 1, 0
            while i < n:
                if _word_char(sql[i]):
                    i, letters = i + 1, letters + 1
                elif sql[i] == "(" and letters:
                    i += 1
                    while i < n and sql[i] not in _SQL_SPACE and sql[i] != ")":
                        i += 1
                    i += 1 if i < n and sql[i] == ")" else 0
                    break
                elif sql.startswith("::", i):
                    i += 2
                else:
                    break
            tokens.append(("punct", sql[start:i], start, i))
        elif pg and ch.isascii() and ch.isdigit():
            # A PostgreSQL number ends where letters begin (1e'..' is 1 and then the E-string e'..').
            while i < n and sql[i].isascii() and (sql[i].isdigit() or sql[i] == "."):
                i += 1
            tokens.append(("word", sql[start:i], start, i))
        elif _word_char(ch) and not (pg and ch == "$"):
            while i < n and _word_char(sql[i]):
                i += 1
            word = sql[start:i]
            if pg and word in ("e", "E") and sql.startswith("'", i):
                i = _quoted_end(sql, i, "'", True)  # E'...' takes backslash escapes whatever the settings
                tokens.append(("quoted", sql[start:i], start, i))
            else:
                tokens.append(("word", word.upper(), start, i))
        else:
            i += 1
            if pg and ch == "$":  # a parameter, $1
                while i < n and sql[i].isascii() and sql[i].isdigit():
                    i += 1
            tokens.append(("punct", sql[start:i], start, i))
    return tokens


@dataclasses.dataclass(frozen=True)
class _QueryReading:
    """One reading of the documents query: the statements it holds and, for one statement, what it is."""

    statements: int
    refusal: str | None  # why the query is refused; None when it is one query
    text: str  # the one statement, without the semicolon after it


def _article(word: str) -> str:
    return "an" if word[:1] in "AEIOU" else "a"


def _statement_refusal(tokens: list[tuple[str, str, int, int]]) -> str | None:
    """Why the one statement ``tokens`` is not a query that only reads; None when it is one (or when it
    is no statement any dialect knows, which the database refuses as a syntax error)."""
    leading = 0
    while leading < len(tokens) and tokens[leading][:2] == ("punct", "("):
        leading += 1
    if leading == len(tokens) or tokens[leading][0] != "word":
        return None
    first = tokens[leading][1]
    if first in _WRITE_WORDS:
        return f"{QUERY_SETTING} is {_article(first)} {first} statement, which would write to the source database; {_EXPECTED_QUERY}"
    if first in _CONTROL_WORDS:
        return (
            f"{QUERY_SETTING} is {_article(first)} {first} statement, which would change the export's read-only "
            f"transaction or the connection's settings; {_EXPECTED_QUERY}"
        )
    if first in _OTHER_STATEMENT_WORDS:
        return f"{QUERY_SETTING} is {_article(first)} {first} statement, which is not a query; {_EXPECTED_QUERY}"
    if first not in _QUERY_WORDS and first != "WITH":
        return None
    # The statement's own clauses are those at the depth of its first word: a WITH leads to its main
    # statement there, and an INTO there (SELECT ... INTO) creates a table or writes a file.
    depth, main = 0, first if first != "WITH" else None
    for position, (kind, text, _, _) in enumerate(tokens):
        if kind == "punct" and text in "()":
            depth += 1 if text == "(" else -1
        elif kind == "word" and depth == leading and position > leading:
            if main is None and text in _WITH_MAIN_WORDS:
                main = text
                if main not in _QUERY_WORDS:
                    return (
                        f"{QUERY_SETTING} is {_article(main)} {main} statement (after a WITH clause), which would write "
                        f"to the source database; {_EXPECTED_QUERY}"
                    )
            elif text == "INTO":
                return (
                    f"{QUERY_SETTING} is a {main or first} ... INTO statement, which would write to the source database "
                    f"(a new table or a file); {_EXPECTED_QUERY}"
                )
        if kind == "word" and text in _NESTED_WRITE_WORDS and position and tokens[position - 1][:2] == ("punct", "("):
            return (
                f"{QUERY_SETTING} holds {_article(text)} {text} statement in parentheses (a data-modifying WITH), which would "
                f"write to the source database; {_EXPECTED_QUERY}"
            )
    if main is None:
        return f"{QUERY_SETTING} is a WITH clause without the query it leads to; {_EXPECTED_QUERY}"
    return None


def _read_query(sql: str, lexer: _SqlLexer) -> _QueryReading:
    tokens = _sql_tokens(sql, lexer)
    statements: list[list[tuple[str, str, int, int]]] = [[]]
    for token in tokens:
        if token[:2] == ("punct", ";"):
            statements.append([])
        else:
            statements[-1].append(token)
    found = [statement for statement in statements if statement]
    if len(found) != 1:
        what = (
            "no SQL statement (only whitespace, comments or semicolons)"
            if not found
            else f"{len(found)} SQL statements"
        )
        return _QueryReading(len(found), f"{QUERY_SETTING} holds {what}; {_EXPECTED_QUERY}", sql)
    (statement,) = found
    # The statement runs without the semicolon after it (and whatever comment follows).
    begin = max((t[3] for t in tokens if t[:2] == ("punct", ";") and t[3] <= statement[0][2]), default=0)
    end = min((t[2] for t in tokens if t[:2] == ("punct", ";") and t[2] >= statement[-1][3]), default=len(sql))
    return _QueryReading(1, _statement_refusal(statement), sql[begin:end].strip())


def checked_query(sql: str, dialect: str | None = None) -> str:
    """``sql`` as one query that only reads, without a trailing semicolon; a ``CorpusError`` otherwise.

    ``dialect`` (SQLAlchemy's name: postgresql, sqlite, mysql, mariadb) reads ``sql`` as that database
    does, under every setting that changes how it splits statements, and refuses it if any reading does.
    Without one (checking settings before the database is known) it is refused only when every dialect
    refuses it; ``load_corpus`` checks again with the database's own dialect before connecting.
    """
    readings = [_read_query(sql, lexer) for lexer in _sql_lexers(dialect)]
    refused = [reading for reading in readings if reading.refusal]
    if refused and (dialect is not None or len(refused) == len(readings)):
        raise CorpusError(refused[0].refusal)
    return next(reading.text for reading in readings if not reading.refusal)


def begin_read_only(connection: sa.Connection, dialect: str) -> bool:
    """Make the transaction ``connection`` starts read-only, before it runs anything else; whether the
    database confirms it."""
    if dialect == "postgresql":
        # This transaction, and (should a statement end it) any later one on this connection. Both are
        # undone by the rollback that ends the export.
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        connection.exec_driver_sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        return connection.exec_driver_sql("SHOW transaction_read_only").scalar() == "on"
    if dialect == "sqlite":
        # For the connection, every attached database included; a SQLite without the pragma (before
        # 3.8.0) would ignore it silently, hence the check. The authorizer then lets statements only read:
        # no PRAGMA can lift query_only, and no ATTACH create a file.
        connection.exec_driver_sql("PRAGMA query_only = ON")
        confirmed = connection.exec_driver_sql("PRAGMA query_only").scalar() == 1
        set_authorizer = getattr(connection.connection.driver_connection, "set_authorizer", None)
        if set_authorizer is not None:
            set_authorizer(_sqlite_reads_only)
        return confirmed
    # mysql, mariadb: the session's later transactions, and this one.
    connection.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
    connection.exec_driver_sql("START TRANSACTION READ ONLY")
    return True


# SQLITE_READ, SQLITE_SELECT, SQLITE_TRANSACTION (the driver's own rollback), SQLITE_FUNCTION, SQLITE_RECURSIVE.
_SQLITE_READ_ACTIONS = frozenset({20, 21, 22, 31, 33})


def _sqlite_reads_only(action: int, *_: Any) -> int:
    return 0 if action in _SQLITE_READ_ACTIONS else 1  # SQLITE_OK, SQLITE_DENY


def write_refused(exc: sa.exc.DBAPIError) -> bool:
    """Whether the database refused a statement because the export's transaction is read-only."""
    orig = exc.orig
    sqlstate = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)  # psycopg2, psycopg 3
    if sqlstate == "25006":  # read_only_sql_transaction
        return True
    if sqlstate == "0A000" and "data-modifying" in str(orig):  # PostgreSQL's cursor refuses a data-modifying WITH
        return True
    if str(getattr(orig, "sqlite_errorname", "")).startswith(("SQLITE_READONLY", "SQLITE_AUTH")):
        return True  # query_only, or the authorizer of _begin_read_only
    if "readonly database" in str(orig):
        return True
    args = getattr(orig, "args", ())
    return bool(args) and args[0] == 1792  # MySQL, MariaDB: ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION

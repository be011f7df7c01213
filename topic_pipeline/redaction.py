"""Credentials kept out of every message, log line and stored record.

A URL (a database's, a tracking server's) is shown only as SQLAlchemy renders it after parsing, with
its password hidden and every query parameter whose name says it holds a secret hidden too; a URL that
cannot be parsed is not shown at all. A message that quotes a driver or server error is redacted with
the same parse: each secret the URL holds is replaced wherever it appears in the message.
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus

import sqlalchemy as sa

HIDDEN = "***"
UNPARSABLE = "<unparsable URL>"
# Query parameters that carry credentials (password=, sslpassword=, access_token=, api_key=, ...), and
# those that carry a whole driver connection string (odbc_connect=...;PWD=...).
_SECRET_PARAMETER = re.compile(r"pass|pwd|token|secret|key|credential|auth|signature|odbc_connect|dsn", re.IGNORECASE)
# A value that embeds a credential whatever its parameter's name.
_SECRET_VALUE = re.compile(r"(pwd|password|token|secret)\s*=", re.IGNORECASE)


_CREDENTIAL_PAIR = re.compile(r"(pwd|password|token|secret)\s*=\s*([^;&]+)", re.IGNORECASE)


def _is_secret(name: str, value: object) -> bool:
    return bool(_SECRET_PARAMETER.search(name)) or any(
        _SECRET_VALUE.search(item) for item in ([value] if isinstance(value, str) else list(value))
    )


def _parse(url: str) -> sa.engine.URL | None:
    try:
        return sa.engine.make_url(url)
    except Exception:  # whatever the reason, an unparsed URL is never shown
        return None


def url_secrets(url: str) -> list[str]:
    """Every part of ``url`` that must not be shown, longest first (so a longer secret is replaced before a
    shorter one inside it)."""
    parsed = _parse(url)
    if parsed is None:
        return [url] if url else []
    secrets = [url]
    if parsed.password:
        secrets.append(str(parsed.password))
    # A password holding an unencoded '@' ends at its first '@': the rest lands in the host.
    if parsed.host and "@" in parsed.host:
        secrets.append(parsed.host.rsplit("@", 1)[0])
    for name, value in parsed.query.items():
        if _is_secret(name, value):
            values = [value] if isinstance(value, str) else list(value)
            secrets.extend(values)
            # A connection string's own credentials (PWD=...;), which a driver message may quote alone.
            secrets.extend(match.group(2).strip() for item in values for match in _CREDENTIAL_PAIR.finditer(item))
    # As decoded by the parse, and as they may be written in the URL itself.
    variants = {form for secret in secrets for form in (secret, quote(secret, safe=""), quote_plus(secret))}
    return sorted((secret for secret in variants if secret), key=len, reverse=True)


def mask_url(url: str) -> str:
    """``url`` as it may appear anywhere: password and secret query parameters hidden."""
    parsed = _parse(url)
    if parsed is None:
        return UNPARSABLE
    if parsed.host and "@" in parsed.host:
        parsed = parsed.set(host=parsed.host.rsplit("@", 1)[1])
    query = {name: (HIDDEN if _is_secret(name, value) else value) for name, value in parsed.query.items()}
    shown = parsed.set(query=query).render_as_string(hide_password=True)
    # render_as_string percent-encodes the placeholder in the query; show it as in the password.
    return shown.replace("%2A%2A%2A", HIDDEN)


def redact(message: str, url: str) -> str:
    """``message`` with every secret of ``url`` hidden."""
    for secret in url_secrets(url):
        message = message.replace(secret, HIDDEN)
    return message


def unencoded_at_in_password(url: str) -> bool:
    """True when the password holds an '@' that is not percent-encoded (the host then holds its tail)."""
    parsed = _parse(url)
    return parsed is not None and bool(parsed.host) and "@" in parsed.host

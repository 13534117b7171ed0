"""What every service checks about its backends (PostgreSQL, RabbitMQ) before it relies on them.

An address that can never work is refused at start, with a message that does not repeat it (a DSN
or an AMQP URL may carry a password): retried forever, it would look like an outage. A backend
that is there but cannot answer *now* is :class:`DatabaseUnavailableError`, which each service
turns into its own retry (HTTP 503 for the bridge and the API, a dropped channel for the consumer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the exporter checks AMQP URLs here and never talks to PostgreSQL: psycopg (and
    import psycopg  # its bundled libpq, ~11 MB of RSS) and pika (~2.5 MB) load on first use

#: The one message for a DSN libpq cannot parse; callers prefix the field (``dsn``, ``--dsn``).
BAD_DSN = "not a libpq connection string or postgresql:// URL"


class DatabaseUnavailableError(Exception):
    """The database cannot answer now (down, restarting, pool exhausted); the caller should retry."""


def dsn_problem(dsn: str) -> str | None:
    """``None`` when libpq can parse ``dsn``, else :data:`BAD_DSN` (never the text itself)."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(dsn)
    except ProgrammingError:
        return BAD_DSN
    return None


def usable_amqp_url(url: str) -> bool:
    """Whether pika can connect with ``url``; checked at start, as pika fails on it only at connect.
    Callers must not print the URL: it carries the broker password."""
    if not url.startswith(("amqp://", "amqps://")):
        return False
    import pika

    try:
        pika.URLParameters(url)
    except (ValueError, IndexError):
        return False
    return True


def first(cursor: psycopg.Cursor[Any]) -> Any:
    """The first column of the one row a query (``SELECT count(*)``, ``... RETURNING id``) returns."""
    row = cursor.fetchone()
    if row is None:
        raise LookupError("the query returned no row")
    return row[0]

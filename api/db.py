"""Database access for the API: one psycopg connection pool per app, read-only queries as dicts.

Every query goes through `Database.fetch_all` / `fetch_one` with parameters passed separately, so no
request value is ever spliced into SQL text. A database that is down or overloaded surfaces as
`DatabaseUnavailableError`, which the error handlers turn into a 503 JSON answer, never a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from optilab.api.config import ApiConfig
from optilab.toolkit.backends import DatabaseUnavailableError

log = logging.getLogger(__name__)

Params = Sequence[Any] | Mapping[str, Any]
Query = str | sql.SQL | sql.Composed  # what execute() takes; SQL.format and .join return Composed


# Read-only UTC sessions. JIT off: the API runs many short queries, and the aggregate views' cost
# estimates (they include a rarely-taken branch over raw rows) made JIT compile for a second per
# query. work_mem: department summaries sort some 50,000 rows, which spilled to disk at 4 MB.
# No parallel workers: starting them costs more than these queries (department summary 21 -> 15 ms),
# and the API's concurrency comes from simultaneous requests, not from splitting one query.
SESSION_OPTIONS = (
    "-c default_transaction_read_only=on -c TimeZone=UTC -c jit=off -c work_mem=16MB"
    " -c max_parallel_workers_per_gather=0"
)


class Database:
    """A connection pool opened lazily: the API starts (and answers /health) while PostgreSQL is down."""

    def __init__(self, config: ApiConfig) -> None:
        options = f"-c statement_timeout={config.statement_timeout_ms} {SESSION_OPTIONS}"
        self.pool: ConnectionPool[psycopg.Connection[DictRow]] = ConnectionPool(
            config.dsn,
            connection_class=psycopg.Connection[DictRow],
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "options": options,
                "connect_timeout": 5,
                "application_name": "optilab-api",
                # Never prepared server-side, so every query gets a custom plan for its values:
                # psycopg prepares a statement on its fifth run on a connection, and PostgreSQL
                # then moved the 30-day machines report to a generic plan (every daily partition
                # planned, pruned at run time): 55 ms in SQL against 33 ms custom-planned (bench,
                # 10.8 M rows, two dirty hours). Planning these queries costs ~1 ms.
                "prepare_threshold": None,
            },
            min_size=config.pool_min_size,
            max_size=config.pool_max_size,
            timeout=config.pool_timeout_s,
            # A connection broken by a database restart is detected before use, not by the client.
            check=ConnectionPool.check_connection,
            open=False,
            name="optilab-api",
        )
        self.pool.open(wait=False)

    def close(self) -> None:
        self.pool.close()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """A pooled connection; connection-level failures become `DatabaseUnavailableError`."""
        try:
            with self.pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise DatabaseUnavailableError("no database connection available") from exc
        except psycopg.OperationalError as exc:
            log.warning("database unavailable: %s", type(exc).__name__)
            raise DatabaseUnavailableError("database unavailable") from exc

    def fetch_all(self, query: Query, params: Params | None = None) -> list[dict[str, Any]]:
        with self.connection() as conn:
            return conn.execute(query, params).fetchall()

    def fetch_one(self, query: Query, params: Params | None = None) -> dict[str, Any] | None:
        with self.connection() as conn:
            return conn.execute(query, params).fetchone()

    def page(self, count: Query, rows: Query, values: dict[str, Any], limit: int, offset: int) -> dict[str, Any]:
        """A list answer: one page of ``rows`` (which takes %(limit)s and %(offset)s) and the total
        that ``count`` (a query returning one column ``n``) finds, both with the same filter values."""
        with self.connection() as conn:
            counted = conn.execute(count, values).fetchone()
            assert counted is not None  # a count query always returns one row
            total = counted["n"]
            items = conn.execute(rows, {**values, "limit": limit, "offset": offset}).fetchall()
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    def stats(self) -> dict[str, int]:
        """Pool gauges for the API's own /metrics (size, idle, waiting clients)."""
        return self.pool.get_stats()

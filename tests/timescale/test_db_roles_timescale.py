"""The least-privilege roles in TimescaleDB mode, on the PGlite+TimescaleDB oracle.

What the oracle can and cannot show: it has real roles, grants, default privileges and
TimescaleDB's chunk and continuous-aggregate machinery, but pglite-socket multiplexes every client
onto one backend session, so nobody can log in *as* a role there. The tests therefore switch
identity with ``SET ROLE`` inside that session — privilege checks are the same — and the
per-role session setting (the reader's ``default_transaction_read_only``, applied at login) is
checked as stored, not as a live session; tests/timescale/test_db_roles.py shows it live on plain PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from optilab.timescale.roles import Roles, check_roles
from tests.fixtures.pglite.launch import migrated_pglite

pytestmark = pytest.mark.slow

ROLES = Roles("tsdb_owner", "tsdb_writer", "tsdb_reader")  # the oracle is private to this module


@pytest.fixture(scope="module")
def timescaledb_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with migrated_pglite(tmp_path_factory.mktemp("pglite") / "pglite.log", roles=ROLES) as dsn:
        yield dsn


def as_role(conn: psycopg.Connection, role: str, statement: str, params: tuple = ()) -> list[tuple]:
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    try:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []
    finally:
        conn.execute("RESET ROLE")


def test_the_owner_owns_hypertables_aggregates_and_jobs(timescaledb_dsn: str) -> None:
    with psycopg.connect(timescaledb_dsn, autocommit=True) as conn:
        assert check_roles(conn, ROLES) == []
        assert conn.execute(
            "SELECT DISTINCT owner FROM timescaledb_information.jobs WHERE job_id >= 1000"
        ).fetchall() == [(ROLES.owner,)]
        assert conn.execute("SELECT DISTINCT owner FROM timescaledb_information.hypertables").fetchall() == [
            (ROLES.owner,)
        ]


def test_the_writer_inserts_into_new_chunks_the_reader_reads_them_and_neither_may_do_more(timescaledb_dsn: str) -> None:
    far = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)  # a chunk that does not exist yet
    with psycopg.connect(timescaledb_dsn, autocommit=True) as conn:
        system = as_role(conn, ROLES.writer, "INSERT INTO systems (instance) VALUES ('127.0.1.77:22') RETURNING id")
        as_role(conn, ROLES.writer, "INSERT INTO usage_metrics VALUES (%s, %s, 50, 40, 30, 1)", (system[0][0], far))
        chunks = conn.execute(
            "SELECT format('%%I.%%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks "
            "WHERE hypertable_name = 'usage_metrics' AND range_start <= %s AND range_end > %s",
            (far, far),
        ).fetchall()
        assert len(chunks) == 1
        assert conn.execute(
            "SELECT has_table_privilege(%s, %s, 'SELECT'), has_table_privilege(%s, %s, 'INSERT')",
            (ROLES.reader, chunks[0][0], ROLES.reader, chunks[0][0]),
        ).fetchone() == (True, False)
        assert as_role(conn, ROLES.reader, "SELECT cpu_usage FROM usage_metrics WHERE timestamp = %s", (far,)) == [
            (50.0,)
        ]
        assert as_role(
            conn, ROLES.reader, "SELECT max_cpu FROM usage_hourly WHERE system_id = %s", (system[0][0],)
        ) == [(50.0,)]  # the real-time aggregate answers the reader
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            as_role(conn, ROLES.reader, "INSERT INTO systems (instance) VALUES ('127.0.1.78:22')")
        for ddl in (
            "CREATE TABLE stolen (x int)",
            "DROP TABLE samples",
            "ALTER TABLE systems ADD COLUMN x int",
            "SELECT drop_chunks('usage_metrics', older_than => now())",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                as_role(conn, ROLES.writer, ddl)
        assert conn.execute(
            "SELECT setconfig FROM pg_db_role_setting WHERE setrole = %s::regrole", (ROLES.reader,)
        ).fetchone() == (["default_transaction_read_only=on"],)

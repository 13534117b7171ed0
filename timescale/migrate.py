"""Apply OptiLab's schema: ``optilab-migrate --dsn DSN``.

Migrations are the ordered files ``timescale/migrations/NNNN_name[.MODE].sql``. A file without a
mode applies in both storage modes; ``NNNN_name.timescaledb.sql`` and ``NNNN_name.postgresql.sql``
are the two variants of one step, and only the one of the database's mode runs. Each step runs in
its own transaction and is recorded in ``schema_migrations``, so a rerun applies only what is new.

The storage mode is decided once, on the first run, and then read back from ``storage_mode()``:
TimescaleDB when ``CREATE EXTENSION timescaledb`` works *and* the build carries the TSL licence
(compression, retention policies and continuous aggregates are not in the Apache-only build);
plain PostgreSQL otherwise. A database never switches mode behind its data's back.

Two runners at once (e.g. several services migrating at start) are serialised by a session-level
advisory lock: the second waits, then finds nothing left to do.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg.conninfo import conninfo_to_dict

log = logging.getLogger("optilab.migrate")

MODES = ("timescaledb", "postgresql")
# Any constant shared by every runner; "optilab" in ASCII.
ADVISORY_LOCK_KEY = 0x6F7074696C6162
_FILE_RE = re.compile(r"^(?P<version>\d{4}_[a-z0-9_]+)(?:\.(?P<mode>timescaledb|postgresql))?\.sql$")


@dataclass(frozen=True)
class Migration:
    version: str
    mode: str | None  # None: applies in both modes
    sql: str


def load_migrations(mode: str) -> list[Migration]:
    """The migrations that apply in ``mode``, in order; raises on a misnamed or missing file."""
    if mode not in MODES:
        raise ValueError(f"unknown storage mode {mode!r}, expected one of {MODES}")
    found: dict[str, Migration] = {}
    versions: set[str] = set()
    for entry in resources.files("timescale").joinpath("migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_RE.match(entry.name)
        if match is None:
            raise ValueError(f"migration file name {entry.name!r} is not "
                             "NNNN_name[.timescaledb|.postgresql].sql")
        versions.add(match["version"])
        if match["mode"] in (None, mode):
            found[match["version"]] = Migration(match["version"], match["mode"], entry.read_text())
    missing = versions - found.keys()
    if missing:
        raise ValueError(f"migrations {sorted(missing)} have no variant for mode {mode!r}")
    return [found[version] for version in sorted(found)]


def detect_mode(conn: psycopg.Connection) -> str:
    """Try to enable TimescaleDB (inside a savepoint) and keep it only if its TSL features exist."""
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            license_ = conn.execute("SHOW timescaledb.license").fetchone()[0]
            if license_ != "timescale":
                log.warning("TimescaleDB is the %r build without compression and continuous aggregates; "
                            "using plain PostgreSQL", license_)
                raise _NotLicensedError
    except _NotLicensedError:
        return "postgresql"
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0]
        log.info("TimescaleDB is not available (%s); using plain PostgreSQL", reason)
        return "postgresql"
    return "timescaledb"


class _NotLicensedError(Exception):
    """Leaves the savepoint of detect_mode() with a rollback."""


def _existing_mode(conn: psycopg.Connection) -> str | None:
    row = conn.execute("SELECT to_regprocedure('storage_mode()') IS NOT NULL").fetchone()
    if not row[0]:
        return None
    return conn.execute("SELECT storage_mode()").fetchone()[0]


def migrate(dsn: str, prefer: str = "auto") -> str:
    """Bring the database at ``dsn`` up to date and return its storage mode.

    ``prefer="postgresql"`` keeps a new database on plain PostgreSQL even where TimescaleDB exists
    (tests and benchmarks compare the modes); ``"timescaledb"`` fails instead of falling back.
    """
    # a silent host fails, not hangs; no server-side prepared statements: a run gains nothing from them,
    # and a pooled proxy (PGlite's socket in the tests) would hand their names on to the next client
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10, prepare_threshold=None) as conn:
        conn.execute("SET client_min_messages = warning")
        conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        try:
            return _migrate_locked(conn, prefer)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))


def _migrate_locked(conn: psycopg.Connection, prefer: str) -> str:
    conn.execute("""
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version    text PRIMARY KEY,
            mode       text,
            applied_at timestamptz NOT NULL DEFAULT now()
        )""")
    mode = _existing_mode(conn)
    if mode is None:
        mode = "postgresql" if prefer == "postgresql" else detect_mode(conn)
        if prefer == "timescaledb" and mode != "timescaledb":
            raise RuntimeError("TimescaleDB (with its TSL licence) was required but is not available")
    log.info("storage mode: %s", mode)
    applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    for migration in load_migrations(mode):
        if migration.version in applied:
            continue
        log.info("applying %s%s", migration.version, f" ({migration.mode})" if migration.mode else "")
        with conn.transaction():
            conn.execute(migration.sql)
            conn.execute("INSERT INTO schema_migrations (version, mode) VALUES (%s, %s)",
                         (migration.version, migration.mode))
    return mode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="optilab-migrate", description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True, help="libpq connection string or URL of the database")
    parser.add_argument("--mode", choices=("auto", *MODES), default="auto",
                        help="storage mode for a new database (default: TimescaleDB when available)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        conninfo_to_dict(args.dsn)
    except psycopg.ProgrammingError:  # its message would repeat the DSN, which may hold a password
        parser.error("--dsn: not a libpq connection string or postgresql:// URL")
    try:
        mode = migrate(args.dsn, prefer=args.mode)
    except (psycopg.Error, RuntimeError, ValueError) as exc:
        log.error("migration failed: %s", str(exc).strip())
        return 1
    print(mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())

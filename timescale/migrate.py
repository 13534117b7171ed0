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

``--roles`` (with an admin DSN: a superuser or a role with CREATEROLE that may SET ROLE to the
owner) also creates the least-privilege owner/writer/reader roles and their grants, and runs the
migrations as the owner; ``--check-roles`` only reports what differs (timescale/roles.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from optilab.timescale.roles import PASSWORD_VARIABLES, Roles, check_roles, ensure_roles, grant_roles
from optilab.toolkit import flags
from optilab.toolkit.backends import dsn_problem, first

log = logging.getLogger(__name__)

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
    for entry in resources.files("optilab.timescale").joinpath("migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_RE.match(entry.name)
        if match is None:
            raise ValueError(f"migration file name {entry.name!r} is not NNNN_name[.timescaledb|.postgresql].sql")
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
            license_ = first(conn.execute("SHOW timescaledb.license"))
            if license_ != "timescale":
                log.warning(
                    "TimescaleDB is the %r build without compression and continuous aggregates; using plain PostgreSQL",
                    license_,
                )
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
    if not first(conn.execute("SELECT to_regprocedure('storage_mode()') IS NOT NULL")):
        return None
    return first(conn.execute("SELECT storage_mode()"))


def migrate(
    dsn: str, prefer: str = "auto", roles: Roles | None = None, passwords: Mapping[str, str] | None = None
) -> str:
    """Bring the database at ``dsn`` up to date and return its storage mode.

    ``prefer="postgresql"`` keeps a new database on plain PostgreSQL even where TimescaleDB exists
    (tests and benchmarks compare the modes); ``"timescaledb"`` fails instead of falling back.
    With ``roles``, the three roles are created or updated first (``passwords`` by kind), the
    migrations run as the owner, and the grants follow (timescale/roles.py).
    """
    # connect_timeout: a silent host fails, not hangs. No server-side prepared statements: a one-off
    # run gains nothing from them, and one left behind would collide with a later client's on a
    # pooler or on PGlite's single shared session (psycopg names them _pg3_0, _pg3_1, ... per connection).
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10, prepare_threshold=None) as conn:
        conn.execute("SET client_min_messages = warning")
        conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        try:
            if roles is None:
                return _migrate_locked(conn, prefer)
            ensure_roles(conn, roles, passwords or {})
            mode = _migrate_locked(conn, prefer, owner=roles.owner)
            grant_roles(conn, roles, mode)
            log.info("roles: owner %s, writer %s, reader %s", roles.owner, roles.writer, roles.reader)
            return mode
        finally:
            conn.execute("RESET ROLE")
            conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))


def _migrate_locked(conn: psycopg.Connection, prefer: str, owner: str | None = None) -> str:
    """Apply what is pending; as ``owner`` (SET ROLE) when given, except the CREATE EXTENSION of
    the mode detection, which needs the admin's rights."""
    as_owner = sql.SQL("SET ROLE {}").format(sql.Identifier(owner)) if owner else sql.SQL("RESET ROLE")
    conn.execute(as_owner)
    conn.execute("""
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version    text PRIMARY KEY,
            mode       text,
            applied_at timestamptz NOT NULL DEFAULT now()
        )""")
    mode = _existing_mode(conn)
    if mode is None:
        conn.execute("RESET ROLE")
        mode = "postgresql" if prefer == "postgresql" else detect_mode(conn)
        conn.execute(as_owner)
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
            conn.execute(
                "INSERT INTO schema_migrations (version, mode) VALUES (%s, %s)", (migration.version, migration.mode)
            )
    return mode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="optilab-migrate", description="Apply or update OptiLab's schema in a PostgreSQL database."
    )
    parser.add_argument("--dsn", required=True, help="libpq connection string or URL of the database")
    parser.add_argument(
        "--mode",
        choices=("auto", *MODES),
        default="auto",
        help="storage mode for a new database (default: TimescaleDB when available)",
    )
    parser.add_argument(
        "--roles",
        action="store_true",
        help="also create/update the owner, writer and reader roles and run the migrations as "
        "the owner (passwords from " + ", ".join(PASSWORD_VARIABLES.values()) + ")",
    )
    parser.add_argument(
        "--check-roles",
        action="store_true",
        help="only check the roles and their grants on this database; exit 1 on a problem",
    )
    defaults = Roles()
    for kind, name in defaults.items():
        parser.add_argument(f"--{kind}-role", default=name, help=f"{kind} role name (default {name})")
    flags.add_log_flags(parser)
    flags.add_version(parser)
    args = parser.parse_args(argv)
    flags.setup_logging(args)
    problem = dsn_problem(args.dsn)  # never the DSN itself, which may hold a password
    if problem:
        parser.error(f"--dsn: {problem}")
    try:
        roles = Roles(args.owner_role, args.writer_role, args.reader_role)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        if args.check_roles:
            return _report(args.dsn, roles)
        passwords = {kind: os.environ[var] for kind, var in PASSWORD_VARIABLES.items() if os.environ.get(var)}
        mode = migrate(args.dsn, prefer=args.mode, roles=roles if args.roles else None, passwords=passwords)
    except (psycopg.Error, RuntimeError, ValueError) as exc:
        log.error("migration failed: %s", str(exc).strip())
        return 1
    print(mode)
    return 0


def _report(dsn: str, roles: Roles) -> int:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        problems = check_roles(conn, roles)
    for problem in problems:
        print(f"optilab-migrate: {problem}", file=sys.stderr)
    if not problems:
        print(f"roles OK: owner {roles.owner}, writer {roles.writer}, reader {roles.reader}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

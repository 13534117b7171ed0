"""Least-privilege database roles: ``optilab-migrate --roles`` creates them, ``--check-roles`` checks them.

Three roles (names configurable, defaults below), each service connecting with the least one:

* **owner** (``optilab_owner``): owns every OptiLab object and runs the migrations; nothing else
  connects as it. ``--roles`` makes the migrations run as the owner (``SET ROLE``) even when the
  admin DSN is a superuser, and adopts objects an earlier run created as another role.
* **writer** (``optilab_writer``): the bridge and the event consumer. SELECT, INSERT, UPDATE on every
  table, USAGE on sequences, EXECUTE on the plain-mode upkeep functions (SECURITY DEFINER,
  migration 0095); it owns nothing and may not create in the schema, so no DDL.
* **reader** (``optilab_reader``): the API and Grafana. SELECT only, and its sessions are read-only
  (``default_transaction_read_only``), so even a grant given by mistake cannot be used to write.

Objects created later — a migration's new table, a plain-mode daily partition (created by the
owner's SECURITY DEFINER function), a TimescaleDB chunk (inherits its hypertable's grants) — are
covered by the owner's default privileges (``ALTER DEFAULT PRIVILEGES FOR ROLE owner``).

Passwords come from the environment (``OPTILAB_OWNER_PASSWORD``, ``OPTILAB_WRITER_PASSWORD``,
``OPTILAB_READER_PASSWORD``), never from the command line, and are hashed (SCRAM-SHA-256) by libpq
on this side: the server, its statement log and this program's log only ever see the hash.
Every identifier goes through ``psycopg.sql.Identifier``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import psycopg
from psycopg import sql

from optilab.toolkit.backends import first

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
PASSWORD_VARIABLES = {
    "owner": "OPTILAB_OWNER_PASSWORD",
    "writer": "OPTILAB_WRITER_PASSWORD",
    "reader": "OPTILAB_READER_PASSWORD",
}
#: plain-mode functions the writer's upkeep calls (timescale/maintenance.py); SECURITY DEFINER
UPKEEP_FUNCTIONS = (
    "optilab_ensure_partitions(date, date)",
    "optilab_drop_partitions(timestamptz)",
    "optilab_refresh_rollups()",
)
WRITER_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE")


@dataclass(frozen=True)
class Roles:
    owner: str = "optilab_owner"
    writer: str = "optilab_writer"
    reader: str = "optilab_reader"

    def __post_init__(self) -> None:
        for kind, name in self.items():
            if not _NAME.match(name):
                raise ValueError(f"--{kind}-role: {name!r} is not a role name (lower-case letters, digits, _)")
        if len({self.owner, self.writer, self.reader}) != 3:
            raise ValueError("--owner-role, --writer-role and --reader-role must be three different roles")

    def items(self) -> list[tuple[str, str]]:
        return [("owner", self.owner), ("writer", self.writer), ("reader", self.reader)]


def _id(name: str) -> sql.Identifier:
    return sql.Identifier(name)


def ensure_roles(conn: psycopg.Connection, roles: Roles, passwords: Mapping[str, str]) -> None:
    """Create (or bring back in line) the three roles and their database- and schema-level rights.

    ``passwords`` maps "owner"/"writer"/"reader" to a password (absent: the role's password is left
    as it is — e.g. for certificate or peer authentication)."""
    database = conn.info.dbname  # as connected to (PGlite's current_database() names another one)
    for kind, name in roles.items():
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS").format(
                _id(name)
            )
        )
        if passwords.get(kind):
            hashed = conn.pgconn.encrypt_password(passwords[kind].encode(), name.encode(), b"scram-sha-256")
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(_id(name), sql.Literal(hashed.decode())))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(_id(database), _id(name)))
    conn.execute(
        sql.SQL("ALTER ROLE {} IN DATABASE {} SET default_transaction_read_only = on").format(
            _id(roles.reader), _id(database)
        )
    )
    conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")  # PostgreSQL < 15 still grants it
    conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(_id(roles.owner)))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}, {}").format(_id(roles.writer), _id(roles.reader)))
    adopt(conn, roles.owner)


def adopt(conn: psycopg.Connection, owner: str) -> int:
    """Make ``owner`` the owner of every OptiLab object in schema public that another role created
    (a database migrated before the roles existed); returns how many changed hands. Extension
    members and sequences owned by a column (they follow their table) are left alone."""
    relations = conn.execute(
        """
        SELECT c.relkind, c.relname FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
          AND c.relowner <> %s::regrole
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                          AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i'))))
        ORDER BY c.relkind = 'p' DESC, c.relname""",
        (owner,),
    ).fetchall()
    keyword = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
    for kind, name in relations:
        conn.execute(sql.SQL("ALTER " + keyword[kind] + " {} OWNER TO {}").format(_id(name), _id(owner)))
    functions = conn.execute(
        """
        SELECT p.oid::regprocedure::text FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace AND p.proowner <> %s::regrole
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                          AND d.deptype = 'e')""",
        (owner,),
    ).fetchall()
    for (signature,) in functions:  # regprocedure text is already quoted where it needs to be
        conn.execute(sql.SQL("ALTER FUNCTION " + signature + " OWNER TO {}").format(_id(owner)))
    return len(relations) + len(functions)


def grant_roles(conn: psycopg.Connection, roles: Roles, mode: str) -> None:
    """Grants on what exists now, and the owner's default privileges for what migrations, partition
    upkeep and TimescaleDB create later."""
    owner, writer, reader = _id(roles.owner), _id(roles.writer), _id(roles.reader)
    writes = sql.SQL(", ").join(sql.SQL(p) for p in WRITER_TABLE_PRIVILEGES)
    for statement in (
        "GRANT {writes} ON ALL TABLES IN SCHEMA public TO {writer}",
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {writer}",
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader}",
        "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT {writes} ON TABLES TO {writer}",
        "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {writer}",
        "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT SELECT ON TABLES TO {reader}",
    ):
        conn.execute(sql.SQL(statement).format(owner=owner, writer=writer, reader=reader, writes=writes))
    if mode == "postgresql":
        for function in UPKEEP_FUNCTIONS:
            conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION " + function + " TO {}").format(writer))


def check_roles(conn: psycopg.Connection, roles: Roles) -> list[str]:
    """What is wrong with the roles on this database (empty: all as ``--roles`` leaves them)."""
    problems: list[str] = []
    for kind, name in roles.items():
        row = conn.execute(
            "SELECT rolcanlogin, rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls "
            "FROM pg_roles WHERE rolname = %s",
            (name,),
        ).fetchone()
        if row is None:
            problems.append(f"{kind} role {name} does not exist (run optilab-migrate --roles)")
        elif not row[0] or row[1]:
            problems.append(f"{kind} role {name} must be LOGIN without SUPERUSER/CREATEROLE/CREATEDB/BYPASSRLS")
    if problems:
        return problems
    read_only = conn.execute(
        "SELECT 1 FROM pg_db_role_setting s WHERE s.setrole = %s::regrole AND s.setdatabase IN (0, "
        "(SELECT oid FROM pg_database WHERE datname = %s)) "
        "AND 'default_transaction_read_only=on' = ANY (s.setconfig)",
        (roles.reader, conn.info.dbname),
    ).fetchone()
    if read_only is None:
        problems.append(f"reader role {roles.reader}: sessions are not read-only (default_transaction_read_only)")
    for name in (roles.writer, roles.reader):
        if first(conn.execute("SELECT has_schema_privilege(%s, 'public', 'CREATE')", (name,))):
            problems.append(f"{name} may CREATE in schema public (DDL)")
    relations = conn.execute(
        """
        SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner),
               has_table_privilege(%(w)s, c.oid, 'SELECT') AND has_table_privilege(%(w)s, c.oid, 'INSERT')
                   AND has_table_privilege(%(w)s, c.oid, 'UPDATE'),
               has_table_privilege(%(r)s, c.oid, 'SELECT'),
               has_table_privilege(%(r)s, c.oid, 'INSERT') OR has_table_privilege(%(r)s, c.oid, 'UPDATE')
                   OR has_table_privilege(%(r)s, c.oid, 'DELETE') OR has_table_privilege(%(r)s, c.oid, 'TRUNCATE')
        FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                          AND d.deptype = 'e')
        ORDER BY c.relname""",
        {"w": roles.writer, "r": roles.reader},
    ).fetchall()
    for name, kind, owner, writes, reads, reader_writes in relations:
        if owner != roles.owner:
            problems.append(f"{name} is owned by {owner}, not {roles.owner}")
        if kind in ("r", "p") and not writes:
            problems.append(f"{roles.writer} cannot SELECT/INSERT/UPDATE {name}")
        if not reads:
            problems.append(f"{roles.reader} cannot SELECT {name}")
        if reader_writes:
            problems.append(f"{roles.reader} may write to {name}")
    defaults = first(
        conn.execute(
            "SELECT count(*) FROM pg_default_acl WHERE defaclrole = %s::regrole AND defaclobjtype IN ('r', 'S')",
            (roles.owner,),
        )
    )
    if defaults < 2:
        problems.append(f"{roles.owner} has no default privileges for new tables and sequences")
    return problems

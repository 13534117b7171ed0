"""Least-privilege database roles (``optilab-migrate --roles``) on the machine's real PostgreSQL.

Roles are cluster-wide, so every test creates its own three names and drops them afterwards. The
services run as their roles: the bridge (in-process app, with its maintenance thread) and the
event consumer (a real process fed through RabbitMQ) as the writer, the API and every SQL target
of the Grafana dashboards as the reader.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from optilab.api.app import close_app
from optilab.remote_write_bridge.app import create_app
from optilab.remote_write_bridge.config import validate
from optilab.timescale.roles import Roles, check_roles
from tests.fixtures.postgres import create_database, drop_database
from tests.fixtures.rabbitmq import AmqpNames
from tests.support.api_lab import AUTH, make_app
from tests.support.consumer import ConsumerFactory, event, finish, publish
from tests.support.grafana import DASHBOARD_FILES, expand_sql_macros, load, substitute, targets
from tests.support.paths import REPO
from tests.support.remote_write import HEADERS, HOST, encode

PASSWORD = "s3cret-" + uuid.uuid4().hex  # must never appear in any output


class Database:
    def __init__(self, admin: str, roles: Roles) -> None:
        self.admin, self.roles = admin, roles

    def dsn(self, role: str) -> str:
        return psycopg.conninfo.make_conninfo(self.admin, user=role)

    @property
    def writer(self) -> str:
        return self.dsn(self.roles.writer)

    @property
    def reader(self) -> str:
        return self.dsn(self.roles.reader)

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def execute(self, sql: str) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(sql)


def migrate_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "optilab.timescale.migrate", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
        env=env,
    )


def role_args(roles: Roles) -> list[str]:
    return ["--owner-role", roles.owner, "--writer-role", roles.writer, "--reader-role", roles.reader]


@pytest.fixture
def roles(pg_server_dsn: str) -> Iterator[Roles]:
    suffix = uuid.uuid4().hex[:8]
    roles = Roles(f"t{suffix}_owner", f"t{suffix}_writer", f"t{suffix}_reader")
    yield roles
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        for _, name in roles.items():
            conn.execute(psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(psycopg.sql.Identifier(name)))


@pytest.fixture
def database(pg_server_dsn: str, roles: Roles) -> Iterator[Database]:
    """A new database set up by ``optilab-migrate --roles`` (plain mode), with passwords from the env."""
    admin = create_database(pg_server_dsn)
    env = {"PATH": "/usr/bin:/bin", "OPTILAB_WRITER_PASSWORD": PASSWORD, "OPTILAB_READER_PASSWORD": PASSWORD}
    try:
        done = migrate_cli("--dsn", admin, "--mode", "postgresql", "--roles", *role_args(roles), env=env)
        assert (done.returncode, done.stdout) == (0, "postgresql\n"), done.stderr
        assert PASSWORD not in done.stdout + done.stderr
        yield Database(admin, roles)
    finally:
        drop_database(admin, pg_server_dsn)


def test_the_roles_are_created_with_hashed_passwords_and_check_clean(database: Database) -> None:
    roles = database.roles
    stored = dict(
        database.rows(
            "SELECT rolname, rolpassword FROM pg_authid WHERE rolname IN (%s, %s, %s)",
            (roles.owner, roles.writer, roles.reader),
        )
    )
    assert stored[roles.owner] is None  # no OPTILAB_OWNER_PASSWORD given: left without one
    assert stored[roles.writer].startswith("SCRAM-SHA-256$") and PASSWORD not in stored[roles.writer]
    owners = {
        owner
        for (owner,) in database.rows(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        )
    }
    assert owners == {roles.owner}  # the migrations ran as the owner
    check = migrate_cli("--dsn", database.admin, "--check-roles", *role_args(roles))
    assert check.returncode == 0, check.stderr
    rerun = migrate_cli("--dsn", database.admin, "--roles", *role_args(roles))  # idempotent
    assert rerun.returncode == 0, rerun.stderr


def test_the_bridge_and_the_consumer_store_as_the_writer(
    database: Database, amqp_url: str, amqp_names: AmqpNames, start_consumer: ConsumerFactory
) -> None:
    app = create_app(validate({"remote_write": {"maintenance_interval_s": 0.2}}, database.writer))
    client = app.test_client()
    t = int(time.time() * 1000) - 30_000
    try:
        body = encode(
            [
                ({"__name__": "system_cpu_usage", **HOST}, [(12.0, t)]),
                ({"__name__": "system_ram_usage", **HOST}, [(34.0, t)]),
                ({"__name__": "system_status", **HOST}, [(1, t)]),
                ({"__name__": "node_load1", **HOST}, [(0.5, t)]),
            ]
        )
        response = client.post("/api/v1/write", data=body, headers=HEADERS)
        assert response.status_code == 204, response.data
        deadline = time.monotonic() + 20  # the maintenance thread, as the writer, creates partitions ahead
        while time.monotonic() < deadline and not database.rows(
            "SELECT 1 FROM pg_class WHERE relname = %s",
            (f"usage_metrics_p{(datetime.now(UTC) + timedelta(days=2)).strftime('%Y%m%d')}",),
        ):
            time.sleep(0.2)
    finally:
        app.extensions["optilab_bridge"].stop()
    assert database.rows(
        "SELECT u.cpu_usage, u.ram_usage, s.status FROM usage_metrics u JOIN systems s "
        "ON s.id = u.system_id WHERE s.instance = %s",
        (HOST["instance"],),
    ) == [(12.0, 34.0, "online")]
    consumer = start_consumer(database.writer, amqp_url, amqp_names, workers=1)
    publish(
        amqp_url,
        amqp_names,
        [
            event(
                "health",
                instance=HOST["instance"],
                hostname="pc-05",
                ip=HOST["ip"],
                department="physics",
                **{"from": "healthy"},
                to="degraded",
                reason="timeout",
                at=datetime.now(UTC).isoformat(),
            )
        ],
    )
    finish(consumer, amqp_url, amqp_names, database.admin)
    assert database.rows("SELECT health_state FROM systems WHERE instance = %s", (HOST["instance"],)) == [("degraded",)]
    # partitions made later by the writer's upkeep belong to the owner and carry everyone's grants
    with psycopg.connect(database.admin, autocommit=True) as conn:
        assert check_roles(conn, database.roles) == []
    assert database.rows("SELECT count(*) > 3 FROM pg_inherits WHERE inhparent = 'usage_metrics'::regclass") == [
        (True,)
    ]


def test_the_api_and_every_sql_dashboard_query_answer_as_the_reader(database: Database) -> None:
    from optilab.api.seed import seed_lab

    seeded = seed_lab(database.writer, systems=4, days=1)  # written through the writer, upkeep included
    app = make_app(database.reader)
    try:
        client = app.test_client()
        system = seeded.system_ids[0]
        department = database.rows("SELECT department FROM systems WHERE id = %s", (system,))[0][0]
        for path in (
            "/systems",
            f"/systems/{system}",
            f"/systems/{system}/metrics",
            "/departments",
            "/alerts",
            "/health",
            "/reports/utilisation",
            "/reports/machines",  # the rollups of 0093-0098
            f"/departments/{department}/history",
            f"/departments/{department}/heatmap",
        ):
            response = client.get(path, headers=AUTH)
            assert response.status_code == 200, (path, response.data)
    finally:
        close_app(app)
    departments = [d for (d,) in database.rows("SELECT DISTINCT department FROM systems ORDER BY 1")]
    instance = database.rows("SELECT instance FROM systems ORDER BY id LIMIT 1")[0][0]
    values = {"department": departments, "instance": [instance]}
    end, start = datetime.now(UTC) + timedelta(minutes=1), datetime.now(UTC) - timedelta(days=7)
    checked, problems = 0, []
    with psycopg.connect(database.reader, autocommit=True) as conn:
        for path in DASHBOARD_FILES:
            dashboard = load(path)
            chosen = {
                v["name"]: (values[v["name"]] if v["multi"] else values[v["name"]][:1], bool(v["multi"]))
                for v in dashboard["templating"]["list"]
                if v["type"] != "datasource"
            }
            for panel, target in targets(dashboard):
                if target["datasource"]["type"] != "postgres":
                    continue
                sql = expand_sql_macros(substitute(target["rawSql"], chosen, "sql"), start, end)
                try:
                    conn.execute(sql).fetchall()
                    checked += 1
                except psycopg.Error as exc:
                    problems.append(f"{path.name} / {panel['title']}: {exc}")
    assert not problems, "\n".join(problems)
    assert checked >= 10


def test_the_reader_cannot_write_and_the_writer_cannot_change_the_schema(database: Database) -> None:
    with psycopg.connect(database.reader, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM systems").fetchone() == (0,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):  # read-only sessions first...
            conn.execute("INSERT INTO systems (instance) VALUES ('127.0.1.9:22')")
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # ...and no INSERT grant behind them
            conn.execute("INSERT INTO systems (instance) VALUES ('127.0.1.9:22')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # the SECURITY DEFINER upkeep is not its
            conn.execute("SELECT optilab_ensure_partitions(current_date, current_date + 40)")
    with psycopg.connect(database.writer, autocommit=True) as conn:
        conn.execute("INSERT INTO systems (instance) VALUES ('127.0.1.9:22')")
        conn.execute("UPDATE systems SET hostname = 'pc-09' WHERE instance = '127.0.1.9:22'")
        for ddl in (
            "CREATE TABLE stolen (x int)",
            "ALTER TABLE systems ADD COLUMN x int",
            "DROP TABLE samples",
            "TRUNCATE alerts",
            "CREATE INDEX ON systems (hostname)",
            "DELETE FROM systems",
            "ALTER FUNCTION storage_mode() OWNER TO CURRENT_USER",
            "CREATE VIEW peek AS SELECT 1",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(ddl)
    assert database.rows("SELECT hostname FROM systems") == [("pc-09",)]


def test_check_roles_names_what_is_wrong(database: Database) -> None:
    dbname = database.rows("SELECT current_database()")[0][0]
    database.execute(f'GRANT INSERT ON systems TO "{database.roles.reader}"')  # a mistaken grant
    database.execute(f'ALTER ROLE "{database.roles.reader}" IN DATABASE "{dbname}" RESET default_transaction_read_only')
    done = migrate_cli("--dsn", database.admin, "--check-roles", *role_args(database.roles))
    assert done.returncode == 1
    assert f"{database.roles.reader} may write to systems" in done.stderr
    assert "sessions are not read-only" in done.stderr
    fixed = migrate_cli("--dsn", database.admin, "--roles", *role_args(database.roles))
    assert fixed.returncode == 0, fixed.stderr  # --roles restores the read-only sessions
    again = migrate_cli("--dsn", database.admin, "--check-roles", *role_args(database.roles))
    assert re.findall(r"may write to \w+", again.stderr) == ["may write to systems"]  # grants are only added


def test_a_database_migrated_before_the_roles_existed_is_adopted(pg_server_dsn: str, roles: Roles) -> None:
    from optilab.timescale.migrate import migrate

    admin = create_database(pg_server_dsn)
    try:
        migrate(admin, prefer="postgresql")  # as the admin: every object owned by it
        owners = "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SELECT optilab_ensure_partitions(current_date, current_date + 1)")
            assert conn.execute(owners).fetchall() == [("postgres",)]
        done = migrate_cli("--dsn", admin, "--roles", *role_args(roles))
        assert done.returncode == 0, done.stderr
        with psycopg.connect(admin, autocommit=True) as conn:
            assert check_roles(conn, roles) == []
            assert conn.execute(owners).fetchall() == [(roles.owner,)]  # partitions included
        with psycopg.connect(psycopg.conninfo.make_conninfo(admin, user=roles.writer), autocommit=True) as conn:
            assert conn.execute("SELECT optilab_ensure_partitions(current_date, current_date + 3)").fetchone() == (
                4,
            )  # 2 new days x 2 tables, by the adopted SECURITY DEFINER function
    finally:
        drop_database(admin, pg_server_dsn)


def test_role_names_are_validated() -> None:
    done = migrate_cli("--dsn", "host=127.0.0.1 dbname=x", "--roles", "--writer-role", "Robert'); DROP")
    assert done.returncode == 2 and "--writer-role" in done.stderr
    with pytest.raises(ValueError, match="three different roles"):
        Roles("a", "a", "b")

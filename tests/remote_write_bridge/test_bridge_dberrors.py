"""Every PostgreSQL error class is transient (503, retried) or permanent (the data is at fault), and
the errors the real server raises for the faults seen in the field land on the right side."""

from __future__ import annotations

import secrets
import threading
import time

import psycopg
import pytest
from psycopg import errors

from optilab.remote_write_bridge.dberrors import PERMANENT_CLASSES, TRANSIENT_CLASSES, classify
from tests.fixtures.procs import free_port

# The specification, class by class (PostgreSQL's errcodes.txt). True = transient.
EXPECTED = {
    "03": True,
    "08": True,
    "0B": True,
    "0F": True,
    "0L": True,
    "0P": True,
    "0Z": True,
    "24": True,
    "25": True,
    "26": True,
    "28": True,
    "2B": True,
    "2D": True,
    "34": True,
    "3B": True,
    "3D": True,
    "3F": True,
    "40": True,
    "42": True,
    "53": True,
    "55": True,
    "57": True,
    "58": True,
    "72": True,
    "F0": True,
    "HV": True,
    "XX": True,
    "09": False,
    "0A": False,
    "10": False,
    "20": False,
    "21": False,
    "22": False,
    "23": False,
    "27": False,
    "2F": False,
    "38": False,
    "39": False,
    "44": False,
    "54": False,
    "P0": False,
}
# Classes that are not errors (success, warning, no data) need no verdict.
NOT_ERRORS = {"00", "01", "02"}


def _all_codes() -> list[str]:
    return sorted(code for code in errors._sqlcodes if len(code) == 5 and code.isalnum() and code.isupper())


def test_the_tables_cover_every_error_class_once() -> None:
    classes = {code[:2] for code in _all_codes()} - NOT_ERRORS
    assert classes <= EXPECTED.keys(), f"undecided classes: {sorted(classes - EXPECTED.keys())}"
    assert not TRANSIENT_CLASSES.keys() & PERMANENT_CLASSES.keys()
    assert {c for c, t in EXPECTED.items() if t} == TRANSIENT_CLASSES.keys()
    assert {c for c, t in EXPECTED.items() if not t} == PERMANENT_CLASSES.keys()


@pytest.mark.parametrize("error_class", sorted({code[:2] for code in _all_codes()} - NOT_ERRORS))
def test_each_class_gets_its_verdict(error_class: str) -> None:
    for code in (c for c in _all_codes() if c.startswith(error_class)):
        exc = errors.lookup(code)("message")
        verdict = classify(exc)
        assert verdict.transient is EXPECTED[error_class], code
        assert verdict.reason.startswith(code)


def test_client_side_errors_without_sqlstate() -> None:
    from psycopg_pool import PoolTimeout

    assert classify(PoolTimeout("couldn't get a connection after 1.00 sec")).transient
    assert classify(psycopg.OperationalError("connection failed")).transient
    assert classify(psycopg.InterfaceError("the connection is closed")).transient
    assert not classify(psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")).transient
    unknown = errors.DatabaseError("an extension's own code")
    assert classify(unknown).transient


def _raised(dsn: str, statement: str, params: tuple = (), setup: str = "") -> psycopg.Error:
    with psycopg.connect(dsn, autocommit=True) as conn:
        if setup:
            conn.execute(setup)
        with pytest.raises(psycopg.Error) as info:
            conn.execute(statement, params)
        return info.value


def test_errors_of_the_real_server(migrated_dsn: str) -> None:
    big = secrets.token_urlsafe(3000)  # incompressible: the B-tree key cannot shrink under 2704 bytes
    permanent = {
        "54000": _raised(
            migrated_dsn, "INSERT INTO series (metric, labels) VALUES ('m', %s::jsonb)", (f'{{"big": "{big}"}}',)
        ),
        "22003": _raised(migrated_dsn, "SELECT avg(x) FROM (VALUES (1e308::float8), (1e308::float8)) v(x)"),
        "22P05": _raised(migrated_dsn, "SELECT %s::jsonb", ('{"a": "\\u0000"}',)),
        "22001": _raised(migrated_dsn, "INSERT INTO systems (instance, ip_address) VALUES ('x', %s)", ("1" * 46,)),
        "23502": _raised(migrated_dsn, "INSERT INTO systems (instance) VALUES (NULL)"),
        "client": _raised(migrated_dsn, "SELECT %s::text", ("a\x00b",)),
    }
    transient = {
        "42P01": _raised(migrated_dsn, "SELECT * FROM no_such_table"),
        "57014": _raised(migrated_dsn, "SELECT pg_sleep(2)", setup="SET statement_timeout = '50ms'"),
    }
    for expected, exc in permanent.items():
        verdict = classify(exc)
        assert (verdict.transient, verdict.reason.split()[0]) == (False, expected), verdict
    for expected, exc in transient.items():
        verdict = classify(exc)
        assert (verdict.transient, verdict.reason.split()[0]) == (True, expected), verdict


def test_lock_timeout_deadlock_termination_and_refused_connection_are_transient(migrated_dsn: str) -> None:
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO systems (instance) VALUES ('a'), ('b')")
    # 55P03: a writer bounded by lock_timeout behind a table lock
    with psycopg.connect(migrated_dsn) as holder:
        holder.execute("LOCK TABLE systems IN ACCESS EXCLUSIVE MODE")
        exc = _raised(migrated_dsn, "UPDATE systems SET hostname = 'x'", setup="SET lock_timeout = '100ms'")
        holder.rollback()
    assert classify(exc).transient and classify(exc).reason.startswith("55P03")
    # 40P01: two transactions locking two rows in opposite orders
    failures: list[psycopg.Error] = []
    barrier = threading.Barrier(2, timeout=10)

    def lock(first: str, second: str) -> None:
        with psycopg.connect(migrated_dsn) as conn:
            try:
                conn.execute("UPDATE systems SET hostname = 'x' WHERE instance = %s", (first,))
                barrier.wait()
                conn.execute("UPDATE systems SET hostname = 'y' WHERE instance = %s", (second,))
            except psycopg.Error as exc:
                failures.append(exc)

    threads = [threading.Thread(target=lock, args=pair) for pair in (("a", "b"), ("b", "a"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert [classify(exc).reason[:5] for exc in failures] == ["40P01"]
    assert classify(failures[0]).transient
    # 57P01: the session is terminated by an administrator
    with (
        psycopg.connect(migrated_dsn, autocommit=True) as victim,
        psycopg.connect(migrated_dsn, autocommit=True) as admin,
    ):
        pid = victim.info.backend_pid
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(0.2)
        with pytest.raises(psycopg.Error) as info:
            victim.execute("SELECT 1")
    assert classify(info.value).transient
    # 08 / no SQLSTATE: nothing listens
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(f"host=127.0.0.1 port={free_port()} user=postgres connect_timeout=2")
    assert classify(refused.value).transient

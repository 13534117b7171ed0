"""Small bodies cannot take gigabytes (issue #11 item 4): the snappy preamble is checked against a
decompressed limit before decompressing (413), and a byte budget shared by all requests bounds what
the bridge holds at once (503 when it stays spent). Peak RSS is measured in bench/fault_load.py."""

from __future__ import annotations

import random
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cramjam
import psycopg
import pytest

from optilab.remote_write_bridge.budget import ByteBudget, OverBudgetError
from optilab.remote_write_bridge.pgarrays import (
    STRIDED_FROM,
    Float8Array,
    Float8Values,
    Int4Array,
    Int8Array,
    Int8Values,
    register,
)
from tests.support.remote_write import HOST, encode, metric_value, now_ms, post, write_request


def test_the_declared_size_is_refused_before_decompressing(migrated_dsn, bridge_factory) -> None:
    bridge = bridge_factory(migrated_dsn, {"remote_write": {"max_decompressed_bytes": 1 << 20}})
    inflating = bytes(cramjam.snappy.compress_raw(b"\x00" * (2 << 20)))  # ~100 KB declaring 2 MiB
    assert len(inflating) < 200_000
    code, text = post(bridge.write_url, inflating)
    assert (code, "decompresses to 2097152 bytes" in text) == (413, True), text
    # a preamble that lies (declares less than the block holds) is corrupt, not a way around the limit
    raw = write_request([({"__name__": "node_load1", "instance": "h:22"}, [(1.0, now_ms())])])
    honest = bytes(cramjam.snappy.compress_raw(raw))
    lying = bytes([len(raw) - 5]) + honest[1:]
    assert honest[0] == len(raw) < 0x80
    code, text = post(bridge.write_url, lying)
    assert code == 400 and "snappy" in text
    assert post(bridge.write_url, honest)[0] == 204


def test_byte_budget_waits_then_refuses() -> None:
    budget = ByteBudget(100, wait_s=0.3)
    with budget.reserve(60):
        with pytest.raises(OverBudgetError):
            with budget.reserve(60):
                pass
        with budget.reserve(40):  # fits beside the first
            assert budget.in_use == 100
    assert budget.in_use == 0
    # a waiter gets in as soon as the holder leaves, within its wait
    holder_done = threading.Event()

    def hold() -> None:
        with budget.reserve(100):
            time.sleep(0.1)
        holder_done.set()

    thread = threading.Thread(target=hold)
    thread.start()
    time.sleep(0.02)
    with budget.reserve(100):
        assert holder_done.is_set()
    thread.join(5)
    with budget.reserve(10**9):  # larger than the total: capped, still runs alone
        assert budget.in_use == 100


def test_a_spent_budget_sheds_with_503_and_loses_nothing(migrated_dsn, bridge_factory) -> None:
    """Two large requests while a table lock stalls the first: the second waits ``inflight_wait_s``,
    then gets 503 (Prometheus retries it); once the lock is gone both are stored."""
    bridge = bridge_factory(
        migrated_dsn,
        {"remote_write": {"max_decompressed_bytes": 600_000, "max_inflight_bytes": 1_000_000, "inflight_wait_s": 0.5}},
    )
    t = now_ms() - 60_000

    def body(first: int) -> bytes:
        series = [
            ({"__name__": "node_load1", **HOST, "n": str(i)}, [(float(i), t + k) for k in range(50)])
            for i in range(first, first + 500)
        ]
        raw = write_request(series)
        assert 500_000 < len(raw) < 600_000
        return bytes(cramjam.snappy.compress_raw(raw))

    assert post(bridge.write_url, body(0))[0] == 204  # series and partitions exist now
    with psycopg.connect(migrated_dsn) as locker:
        locker.execute("LOCK TABLE samples IN EXCLUSIVE MODE")
        with ThreadPoolExecutor(2) as pool:
            stalled = pool.submit(post, bridge.write_url, body(0))
            time.sleep(1.0)
            shed = post(bridge.write_url, body(0))
            locker.rollback()
            assert stalled.result(timeout=30)[0] == 204
    assert shed[0] == 503 and "overloaded" in shed[1]
    assert metric_value(bridge.metrics(), "optilab_bridge_requests_shed_total") == 1
    assert post(bridge.write_url, body(0))[0] == 204  # the retry
    with psycopg.connect(migrated_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM samples").fetchone() == (500 * 50,)


@pytest.mark.parametrize("count", [0, 3, STRIDED_FROM - 1, STRIDED_FROM, 50_000])
def test_binary_arrays_round_trip_through_postgresql(migrated_dsn, count: int) -> None:
    rng = random.Random(count)
    ints = [rng.randint(-(2**63), 2**63 - 1) for _ in range(count)]
    small = [rng.randint(-(2**31), 2**31 - 1) for _ in range(count)]
    floats = [struct.unpack("<d", struct.pack("<Q", rng.getrandbits(62)))[0] for _ in range(count)]
    with psycopg.connect(migrated_dsn) as conn:
        register(conn)
        for wrapped, sql_type, expected in (
            (Int8Array(ints), "int8", ints),
            (Int8Values(ints), "int8", ints),
            (Int4Array(small), "int4", small),
            (Float8Array(floats), "float8", floats),
            (Float8Values(floats), "float8", floats),
        ):
            got = conn.execute(
                f"SELECT coalesce(array_agg(x ORDER BY o), '{{}}') FROM "  # noqa: S608 - fixed names
                f"unnest(%b::{sql_type}[]) WITH ORDINALITY AS u(x, o)",
                (wrapped,),
            ).fetchone()[0]
            assert got == expected, (type(wrapped).__name__, count)
        with_nulls = Float8Array([None, 1.5, None] * (count // 3))
        got = conn.execute(
            "SELECT coalesce(array_agg(x ORDER BY o), '{}') FROM unnest(%b::float8[]) WITH ORDINALITY AS u(x, o)",
            (with_nulls,),
        ).fetchone()[0]
        assert got == list(with_nulls)


def test_large_request_is_stored_whole(migrated_dsn, bridge_factory) -> None:
    """The compact sample columns and the strided packing carry a 60,000-sample request exactly."""
    bridge = bridge_factory(migrated_dsn)
    t = now_ms() - 600_000
    series = [
        ({"__name__": "node_load1", **HOST, "n": str(i)}, [(i + k / 7, t + k * 1000) for k in range(300)])
        for i in range(200)
    ]
    assert post(bridge.write_url, encode(series))[0] == 204
    with psycopg.connect(migrated_dsn) as conn:
        count, total = conn.execute("SELECT count(*), sum(value) FROM samples").fetchone()
    assert count == 60_000
    assert total == pytest.approx(sum(i + k / 7 for i in range(200) for k in range(300)))

"""The design document's "TimescaleDB compression saves 90 % storage", measured on a real TimescaleDB.

    .venv/bin/python -m bench.timescale_compression [--systems 100] [--days 7] [--repeats 5] [--decimals N]

There is no native TimescaleDB on this machine, so this runs the PGlite+TimescaleDB oracle of the
tests (TimescaleDB 2.23-dev on PostgreSQL 17.5 compiled to WASM, tests/fixtures/pglite/), migrates it
with OptiLab's TimescaleDB schema (1-day chunks, ``segmentby system_id``, ``orderby timestamp DESC``),
writes a lab's minute-by-minute ``usage_metrics`` through the bridge's own upsert (unnest arrays;
COPY does not work through pglite-socket), then compresses every chunk and compares
``hypertable_detailed_size`` before and after. It also times a 7-day aggregate per system on the raw
and on the compressed chunks.

The storage figures are TimescaleDB's own on-disk format and carry over to a native server; the times
are PGlite's (WASM, one backend, slower than native PostgreSQL) and only compare raw with compressed.

Values look like what the exporter sends: percentages computed as ratios of integer counters (CPU
jiffies, kB of memory, 1K blocks of disk) at full double precision, following a lab's day (sessions of
one to three hours in the daytime, quieter weekends, idle nights with a nightly job), login counts from
0 to 2 that last a session. Fixed random seed, so runs store the same rows.
"""

from __future__ import annotations

import argparse
import math
import random
import signal
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import psycopg
import psycopg.sql

from bench.common import ms, report
from optilab.remote_write_bridge.pgarrays import Float8Array, Int4Array, Int8Array, register
from optilab.remote_write_bridge.store import USAGE_UPSERT
from optilab.timescale.migrate import migrate
from tests.fixtures.pglite.launch import install_pglite, running_pglite

WASM_NOTE = (
    "times are PGlite's (PostgreSQL + TimescaleDB compiled to WASM, one backend): slower than a native "
    "server; they compare raw with compressed only. The sizes are TimescaleDB's own format."
)

CPU_JIFFIES = 8 * 100 * 60  # 8 CPUs at USER_HZ 100 over one minute
MEM_TOTAL_KB = 16_331_532  # a 16 GiB lab PC as /proc/meminfo shows it
DISK_BLOCKS = 488_281_250  # a 500 GB root filesystem in 1K blocks (used + available)

#: timescale/migrations/0002_timeseries.timescaledb.sql: add_retention_policy / add_compression_policy
RETENTION_DAYS, COMPRESS_AFTER_DAYS = 30, 7

AGGREGATE = """
SELECT system_id, count(*), avg(cpu_usage), max(cpu_usage), avg(ram_usage), max(disk_usage),
       avg(logged_in_users), avg((logged_in_users > 0)::int)
FROM usage_metrics WHERE timestamp >= %(start)s AND timestamp < %(end)s {where}
GROUP BY system_id ORDER BY system_id
"""


@dataclass
class Machine:
    """One lab PC's state between minutes: session, memory and disk use drift rather than jump."""

    rng: random.Random
    users: int = 0
    session_left: int = 0
    app_kb: float = 0.0
    used_blocks: int = 0


def busy_share(minute_of_day: int, weekend: bool) -> float:
    """Chance per minute that a free machine gets a login: a daytime hump, weekends at a third."""
    hour = minute_of_day / 60
    daytime = max(0.0, math.sin(math.pi * (hour - 8) / 11)) if 8 <= hour <= 19 else 0.0
    return (0.004 + 0.03 * daytime) * (0.35 if weekend else 1.0)


def sample(machine: Machine, at: datetime) -> tuple[float, float, float, int]:
    """(cpu %, ram %, disk %, logged-in users) of one machine for the minute ``at``."""
    rng = machine.rng
    minute = at.hour * 60 + at.minute
    if machine.session_left > 0:
        machine.session_left -= 1
        if machine.session_left == 0:
            machine.users = 0
    elif rng.random() < busy_share(minute, at.weekday() >= 5):
        machine.users = 2 if rng.random() < 0.1 else 1  # now and then a second (ssh) session
        machine.session_left = rng.randint(45, 180)
    nightly_job = at.hour == 3 and at.minute < 20
    if machine.users:
        cpu_share = min(0.98, rng.betavariate(2, 5) + (0.3 if rng.random() < 0.05 else 0.0))
        machine.app_kb = min(9e6, machine.app_kb + rng.gauss(20_000, 60_000))
        machine.used_blocks += rng.randint(0, 4_000)
    else:
        cpu_share = 0.004 + rng.expovariate(1 / 0.01) + (0.25 if nightly_job else 0.0)
        machine.app_kb = max(0.0, machine.app_kb * 0.9 - 10_000)
        if nightly_job and at.minute == 0:
            machine.used_blocks -= rng.randint(0, 200_000)  # tmp clean-up
        elif rng.random() < 0.2:
            machine.used_blocks += rng.randint(1, 64)  # logs
    busy = round(min(0.999, cpu_share) * CPU_JIFFIES)
    used_kb = 1_400_000 + machine.app_kb + rng.randint(-8_000, 8_000)
    cpu = 100 * busy / CPU_JIFFIES
    ram = 100 * round(used_kb) / MEM_TOTAL_KB
    disk = 100 * machine.used_blocks / DISK_BLOCKS
    return cpu, ram, disk, machine.users


def lab_rows(
    system_ids: list[int], start: datetime, minutes: int, batch_minutes: int, decimals: int | None = None
) -> Iterator[tuple[list[int], list[int], list[float], list[float], list[float], list[float]]]:
    """Column arrays of ``batch_minutes`` minutes × all systems at a time, in arrival (time) order.

    ``decimals`` rounds the percentages (the exporter sends full precision; this shows what that costs).
    """
    rng = random.Random(20261128)
    machines = [
        Machine(random.Random(rng.random()), used_blocks=int(DISK_BLOCKS * rng.uniform(0.15, 0.6))) for _ in system_ids
    ]
    start_ms = int(start.timestamp() * 1000)
    for first in range(0, minutes, batch_minutes):
        cols: tuple[list, ...] = ([], [], [], [], [], [])
        for minute in range(first, min(first + batch_minutes, minutes)):
            at = start + timedelta(minutes=minute)
            for system_id, machine in zip(system_ids, machines, strict=True):
                cpu, ram, disk, users = sample(machine, at)
                if decimals is not None:
                    cpu, ram, disk = round(cpu, decimals), round(ram, decimals), round(disk, decimals)
                for col, value in zip(
                    cols, (system_id, start_ms + minute * 60_000, cpu, ram, disk, users), strict=True
                ):
                    col.append(value)
        yield cols


def load(conn: psycopg.Connection, systems: int, start: datetime, days: int, decimals: int | None) -> tuple[int, float]:
    """Systems and their usage rows; (rows, seconds spent in the database)."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO systems (instance, hostname, ip_address, department) VALUES (%s, %s, %s, %s) RETURNING id",
            [
                (
                    f"127.0.{1 + n // 250}.{1 + n % 250}:22",
                    f"lab-{n:03d}",
                    f"127.0.{1 + n // 250}.{1 + n % 250}",
                    ("physics", "chemistry", "biology")[n % 3],
                )
                for n in range(systems)
            ],
            returning=True,
        )
        ids = []
        while True:
            ids.append(cur.fetchone()[0])
            if not cur.nextset():
                break
    rows, spent = 0, 0.0
    batch_minutes = max(1, 6000 // systems)  # ~6,000 rows (~250 KB of arrays) per statement
    for s, t, c, r, d, n in lab_rows(ids, start, days * 1440, batch_minutes, decimals):
        began = time.perf_counter()
        conn.execute(
            USAGE_UPSERT,
            {
                "s": Int4Array(s),
                "t": Int8Array(t),
                "c": Float8Array(c),
                "r": Float8Array(r),
                "d": Float8Array(d),
                "n": Float8Array(n),
            },
        )
        spent += time.perf_counter() - began
        rows += len(s)
    return rows, spent


def sizes(conn: psycopg.Connection) -> dict[str, int]:
    table, index, toast, total = conn.execute(
        "SELECT table_bytes, index_bytes, toast_bytes, total_bytes FROM hypertable_detailed_size('usage_metrics')"
    ).fetchone()
    return {"table_bytes": table, "index_bytes": index, "toast_bytes": toast, "total_bytes": total}


COLUMNS = ("timestamp", "cpu_usage", "ram_usage", "disk_usage", "logged_in_users")


def column_bytes(conn: psycopg.Connection) -> dict[str, int]:
    """Stored bytes of each column's compressed batches (``pg_column_size``), summed over all chunks."""
    totals = dict.fromkeys(COLUMNS, 0)
    for (name,) in conn.execute(
        "SELECT format('%I.%I', cc.schema_name, cc.table_name) FROM _timescaledb_catalog.chunk c "
        "JOIN _timescaledb_catalog.chunk cc ON cc.id = c.compressed_chunk_id "
        "JOIN _timescaledb_catalog.hypertable h ON h.id = c.hypertable_id "
        "WHERE h.table_name = 'usage_metrics'"
    ).fetchall():
        sums = conn.execute(
            psycopg.sql.SQL("SELECT {} FROM {}").format(
                psycopg.sql.SQL(", ").join(
                    psycopg.sql.SQL("coalesce(sum(pg_column_size({})), 0)").format(psycopg.sql.Identifier(column))
                    for column in COLUMNS
                ),
                psycopg.sql.SQL(name),
            )
        ).fetchone()
        for column, size in zip(COLUMNS, sums, strict=True):
            totals[column] += int(size)
    return totals


def timed(conn: psycopg.Connection, sql: str, params: dict, repeats: int) -> tuple[float, list[tuple]]:
    """Median seconds of ``repeats`` runs (after one warm-up) and the answer."""
    answer = conn.execute(sql, params).fetchall()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        conn.execute(sql, params).fetchall()
        times.append(time.perf_counter() - began)
    return statistics.median(times), answer


def same_answers(a: list[tuple], b: list[tuple]) -> bool:
    """Equal up to float summation order (compressed chunks are scanned in another order)."""
    return len(a) == len(b) and all(
        len(x) == len(y)
        and all(math.isclose(float(u), float(v), rel_tol=1e-9, abs_tol=1e-9) for u, v in zip(x, y, strict=True))
        for x, y in zip(a, b, strict=True)
    )


def measure(dsn: str, systems: int, days: int, repeats: int, decimals: int | None = None) -> dict:
    assert migrate(dsn) == "timescaledb", "the PGlite oracle did not take the TimescaleDB mode"
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    window = {"start": start, "end": end}
    with psycopg.connect(dsn, autocommit=True) as conn:
        register(conn)
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()[0]
        began = time.perf_counter()
        rows, in_db = load(conn, systems, start, days, decimals)
        load_s = time.perf_counter() - began
        conn.execute("VACUUM ANALYZE usage_metrics")
        one = {**window, "system": conn.execute("SELECT min(id) FROM systems").fetchone()[0]}
        lab_sql, one_sql = AGGREGATE.format(where=""), AGGREGATE.format(where="AND system_id = %(system)s")
        raw_lab, raw_lab_answer = timed(conn, lab_sql, window, repeats)
        raw_one, raw_one_answer = timed(conn, one_sql, one, repeats)
        before = sizes(conn)
        chunks = [c for (c,) in conn.execute("SELECT show_chunks('usage_metrics')").fetchall()]
        began = time.perf_counter()
        for chunk in chunks:
            conn.execute("SELECT compress_chunk(%s::regclass)", (chunk,))
        compress_s = time.perf_counter() - began
        conn.execute("ANALYZE usage_metrics")
        after = sizes(conn)
        columns = column_bytes(conn)
        stats = conn.execute(
            "SELECT count(*) FILTER (WHERE compression_status = 'Compressed'), count(*), "
            "sum(before_compression_total_bytes), sum(after_compression_total_bytes), "
            "sum(before_compression_table_bytes), sum(after_compression_table_bytes) "
            "FROM chunk_compression_stats('usage_metrics')"
        ).fetchone()
        comp_lab, comp_lab_answer = timed(conn, lab_sql, window, repeats)
        comp_one, comp_one_answer = timed(conn, one_sql, one, repeats)
        stored = conn.execute("SELECT count(*) FROM usage_metrics").fetchone()[0]
    assert stored == rows, f"{stored} rows after compression, {rows} written"
    assert stats[0] == stats[1] == len(chunks), f"compressed chunks: {stats[:2]} of {len(chunks)}"
    return {
        "systems": systems,
        "days": days,
        "decimals": decimals,
        "rows": rows,
        "chunks": len(chunks),
        "timescaledb": version,
        "load_s": load_s,
        "load_in_db_s": in_db,
        "compress_s": compress_s,
        "before": before,
        "after": after,
        "compressed_column_bytes": columns,
        "chunk_stats": dict(
            zip(
                ("before_total_bytes", "after_total_bytes", "before_table_bytes", "after_table_bytes"),
                map(int, stats[2:]),
                strict=True,
            )
        ),
        "query_s": {
            "lab_raw": raw_lab,
            "lab_compressed": comp_lab,
            "one_system_raw": raw_one,
            "one_system_compressed": comp_one,
        },
        "same_answers": same_answers(raw_lab_answer, comp_lab_answer) and same_answers(raw_one_answer, comp_one_answer),
    }


def steady_state_saving(result: dict) -> float:
    """What the 30-day window saves when only chunks older than 7 days are compressed (0002 policies)."""
    raw, compressed = result["before"]["total_bytes"], result["after"]["total_bytes"]
    mixed = COMPRESS_AFTER_DAYS * raw + (RETENTION_DAYS - COMPRESS_AFTER_DAYS) * compressed
    return 1 - mixed / (RETENTION_DAYS * raw)


def precision(decimals: int | None) -> str:
    return "full-precision values" if decimals is None else f"values rounded to {decimals} decimals"


def versus(raw: float, compressed: float) -> str:
    return f"raw {ms(raw)}, compressed {ms(compressed)} (compressed/raw {compressed / raw:.2f})"


def summarise(result: dict) -> list[tuple[str, str]]:
    rows, before, after = result["rows"], result["before"], result["after"]
    saving = 1 - after["total_bytes"] / before["total_bytes"]
    heap_saving = 1 - (after["table_bytes"] + after["toast_bytes"]) / before["table_bytes"]
    q = result["query_s"]
    return [
        (
            "data",
            f"{result['systems']} systems × {result['days']} days × 1 min = {rows:,} usage_metrics rows, "
            f"{result['chunks']} chunks, {precision(result['decimals'])}, "
            f"TimescaleDB {result['timescaledb']} (PGlite/WASM)",
        ),
        ("load (bridge upsert, unnest)", f"{result['load_s']:.1f} s ({rows / result['load_s']:,.0f} rows/s in PGlite)"),
        (
            "before: total (heap + PK index)",
            f"{before['total_bytes'] / 2**20:.1f} MiB = "
            f"{before['total_bytes'] / rows:.1f} bytes/row "
            f"(heap {before['table_bytes'] / rows:.1f}, index "
            f"{before['index_bytes'] / rows:.1f})",
        ),
        (
            "after compress_chunk on all",
            f"{after['total_bytes'] / 2**20:.2f} MiB = "
            f"{after['total_bytes'] / rows:.1f} bytes/row (heap+toast "
            f"{(after['table_bytes'] + after['toast_bytes']) / rows:.1f}, "
            f"index {after['index_bytes'] / rows:.1f})",
        ),
        (
            "compressed bytes/row by column",
            ", ".join(f"{column} {size / rows:.2f}" for column, size in result["compressed_column_bytes"].items()),
        ),
        ("saving, total", f"{100 * saving:.1f} % ({before['total_bytes'] / after['total_bytes']:.1f}x smaller)"),
        ("saving, heap only (raw heap vs compressed heap+toast)", f"{100 * heap_saving:.1f} %"),
        (
            "steady state of the schema's policies",
            f"{100 * steady_state_saving(result):.1f} % saved over "
            f"{RETENTION_DAYS} days ({COMPRESS_AFTER_DAYS} raw + "
            f"{RETENTION_DAYS - COMPRESS_AFTER_DAYS} compressed)",
        ),
        ("compress all chunks", f"{result['compress_s']:.1f} s"),
        (f"{result['days']}-day aggregate per system, all systems", versus(q["lab_raw"], q["lab_compressed"])),
        (f"{result['days']}-day aggregate, one system", versus(q["one_system_raw"], q["one_system_compressed"])),
        ("same answers raw vs compressed", str(result["same_answers"])),
        ("note", WASM_NOTE),
    ]


class _RunTimeoutError(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _RunTimeoutError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--systems", type=int, default=100)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5, help="query runs per median")
    parser.add_argument(
        "--decimals", type=int, help="round the percentages (default: full precision, as the exporter sends them)"
    )
    parser.add_argument("--timeout", type=int, default=840, help="seconds for the whole run")
    args = parser.parse_args()
    reason = install_pglite()
    if reason:
        print(f"skipped: {reason}")
        return 2
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(args.timeout)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="optilab-tsbench-") as tmp,
            running_pglite(Path(tmp) / "pglite.log") as (dsn, _),
        ):
            result = measure(dsn, args.systems, args.days, args.repeats, args.decimals)
    except _RunTimeoutError:
        print(f"timed out after {args.timeout} s; try fewer --systems or --days")
        return 1
    finally:
        signal.alarm(0)
    report(
        "timescale_compression",
        "TimescaleDB compression of usage_metrics (PGlite oracle)",
        summarise(result),
        {"result": result},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

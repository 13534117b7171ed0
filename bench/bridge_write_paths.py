"""Which insert path the bridge uses: ``INSERT … SELECT FROM unnest(arrays) ON CONFLICT`` against
``COPY`` into a temporary staging table followed by ``INSERT … SELECT … ON CONFLICT``.

    .venv/bin/python -m bench.bridge_write_paths [--batches 200]

Each path writes the same 2000-row batches (one remote-write request's worth of samples) into
its own fresh ``samples`` table of a migrated throw-away database, one transaction per batch, and
the median time per batch is printed with the ratio. Loopback PostgreSQL only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import psycopg.sql

from bench.common import report
from optilab.remote_write_bridge.pgarrays import Float8Array, Int8Array, register
from optilab.remote_write_bridge.store import SAMPLES_INSERT
from optilab.timescale.migrate import migrate

SERVER_DSN = os.environ.get("OPTILAB_BENCH_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
ROWS = 2000

COPY_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS stage (series_id int8, timestamp timestamptz, value float8) ON COMMIT DELETE ROWS"
)
COPY_MERGE = "INSERT INTO samples SELECT * FROM stage ORDER BY 1, 2 ON CONFLICT (series_id, timestamp) DO NOTHING"


def batches(count: int) -> list[tuple[list[int], list[int], list[float]]]:
    start = int((datetime.now(UTC) - timedelta(hours=6)).timestamp() * 1000)
    out = []
    for index in range(count):
        ms = start + index * 15_000
        out.append((list(range(ROWS)), [ms] * ROWS, [float(i % 97) for i in range(ROWS)]))
    return out


def unnest_path(conn: psycopg.Connection, batch: tuple[list[int], list[int], list[float]]) -> None:
    ids, stamps, values = batch
    with conn.transaction():
        conn.execute(
            SAMPLES_INSERT, {"i": Int8Array(ids), "t": Int8Array(stamps), "v": Float8Array(values)}, prepare=True
        )


def copy_path(conn: psycopg.Connection, batch: tuple[list[int], list[int], list[float]]) -> None:
    ids, stamps, values = batch
    with conn.transaction():
        conn.execute(COPY_STAGE)
        with conn.cursor().copy("COPY stage FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "timestamptz", "float8"])
            for series_id, ms, value in zip(ids, stamps, values, strict=True):
                copy.write_row((series_id, datetime.fromtimestamp(ms / 1000, UTC), value))
        conn.execute(COPY_MERGE, prepare=True)


Batch = tuple[list[int], list[int], list[float]]


def measure(dsn: str, path: Callable[[psycopg.Connection, Batch], None], data: list[Batch]) -> list[float]:
    timings = []
    with psycopg.connect(dsn) as conn:
        conn.execute("TRUNCATE samples")
        conn.commit()
        for batch in data:
            started = time.perf_counter()
            path(conn, batch)
            timings.append(time.perf_counter() - started)
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()
    register()
    name = f"optilab_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SERVER_DSN, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    dsn = psycopg.conninfo.make_conninfo(SERVER_DSN, dbname=name)
    try:
        migrate(dsn)
        today = datetime.now(UTC).date()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT optilab_ensure_partitions(%s, %s)", (today - timedelta(days=1), today))
        data = batches(args.batches)
        # alternate the paths for three rounds so drift in the shared machine's load hits both
        timings: dict[str, list[float]] = {"unnest": [], "copy+insert": []}
        for _round in range(3):
            timings["unnest"] += measure(dsn, unnest_path, data)
            timings["copy+insert"] += measure(dsn, copy_path, data)
        medians = {label: statistics.median(values) for label, values in timings.items()}
        report(
            "bridge_write_paths",
            f"bridge insert path, {ROWS}-row transactions × {args.batches} × 3 rounds",
            [
                *[
                    (label, f"median {median * 1000:.1f} ms = {ROWS / median:,.0f} rows/s")
                    for label, median in medians.items()
                ],
                ("copy+insert / unnest time", f"{medians['copy+insert'] / medians['unnest']:.2f}"),
            ],
            {"medians_s": medians},
        )
    finally:
        with psycopg.connect(SERVER_DSN, autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(name))
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

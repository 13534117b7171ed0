"""API latency on a month of lab history: 250 systems x 30 days x 1-minute rows (about 10.8 M).

    .venv/bin/python bench/api_bench.py [--systems 250] [--days 30] [--requests 400] [--keep]
    .venv/bin/python bench/api_bench.py --reuse DSN      # skip loading, measure an existing bench DB

What it does, in one run on this machine:
1. creates its own database, migrates it, loads the rows with ``generate_series`` inside PostgreSQL
   (api/seed.py), refreshes the aggregates the way the storage mode does, VACUUM ANALYZE, then marks
   the newest two hours dirty as the bridge's writes would (plain mode);
2. starts ``optilab-api`` (waitress) on a free loopback port and sends bounded sequential requests
   over one keep-alive HTTP connection: ``/systems/<id>/metrics`` over 1 h, 1 day and 30 days, the
   30-day series forced to raw rows, and ``/departments`` (24 h and 30 days); prints p50 and p99;
   then the lab reports of issue 15 over 30 days (``/systems?state=free``, a department's history and
   heatmap, ``/reports/utilisation``, ``/reports/machines``) and the board's snapshot;
3. times the same 30-day series in SQL from ``usage_hourly`` and from raw rows (the design document
   claims aggregates are 75x faster) and a whole-lab 30-day summary from ``usage_daily`` vs raw;
4. drops the database unless ``--keep``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from optilab.api import series
from optilab.api.db import SESSION_OPTIONS
from optilab.api.seed import add_seats, add_systems, add_usage, refresh_aggregates
from optilab.timescale.migrate import migrate
from tests.fixtures.procs import Service, free_port, http_ok

SERVER_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
KEY = "bench-key-" + uuid.uuid4().hex
TARGET_P99_MS = 50.0
TIME_LIMIT_S = 120.0  # per scenario, whatever --requests says


def create_bench_db(server_dsn: str) -> str:
    name = f"optilab_bench_api_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    return psycopg.conninfo.make_conninfo(server_dsn, dbname=name)


def drop_bench_db(server_dsn: str, dsn: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))


def load(dsn: str, systems: int, days: int, step_minutes: int = 1) -> None:
    """Migrate and fill the database, printing how long each stage took."""
    started = time.perf_counter()
    mode = migrate(dsn)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - timedelta(days=days)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        ids = add_systems(conn, systems, now=now)
        t0 = time.perf_counter()
        step = timedelta(minutes=step_minutes)
        rows = add_usage(conn, ids, start, now + step, step)
        seat_rows = add_seats(conn, ids, start, now + step, now)
        t1 = time.perf_counter()
        refresh_aggregates(conn, start, now + timedelta(hours=1))
        t2 = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        t3 = time.perf_counter()
        if mode == "postgresql":
            # Between maintenance passes the bridge leaves the newest hours marked dirty and
            # usage_hourly answers them from raw rows: measure in that state, not a fully refreshed one.
            conn.execute(
                """INSERT INTO usage_rollup_dirty SELECT generate_series(
                date_bin('1 hour', %s::timestamptz - interval '1 hour', TIMESTAMPTZ '2000-01-01'), %s, '1 hour')""",
                (now, now),
            )
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
    print(
        f"storage mode {mode}; {systems} systems x {days} days every {step_minutes} min: {rows:,} usage rows, "
        f"{seat_rows:,} seat samples"
    )
    print(
        f"  load {t1 - t0:.1f} s ({(rows + seat_rows) / (t1 - t0):,.0f} rows/s), refresh aggregates {t2 - t1:.1f} s, "
        f"vacuum analyze {t3 - t2:.1f} s, total {t3 - started:.1f} s, database size {size}"
    )


def describe(dsn: str) -> str:
    """Rows and dirty hours of the database measured, so a figure can be tied to its dataset."""
    with psycopg.connect(dsn) as conn:
        usage = conn.execute("SELECT count(*) FROM usage_metrics").fetchone()[0]
        seats = conn.execute("SELECT count(*) FROM samples").fetchone()[0]
        mode = conn.execute("SELECT storage_mode()").fetchone()[0]
        dirty = (
            conn.execute("SELECT count(DISTINCT bucket) FROM usage_rollup_dirty").fetchone()[0]
            if mode == "postgresql"
            else 0
        )
    return f"{usage:,} usage rows, {seats:,} samples, {dirty} dirty hours ({mode})"


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[98]


class Client:
    """One keep-alive HTTP connection to the API; returns (status, parsed body, seconds)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(self, path: str) -> tuple[int, dict, float]:
        started = time.perf_counter()
        self.conn.request("GET", path, headers={"X-API-Key": KEY})
        response = self.conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        return response.status, json.loads(body), elapsed


def run_scenario(client: Client, name: str, make_path: Callable[[], str], requests: int) -> dict:
    """Warm up, then ``requests`` sequential requests (stopping early at TIME_LIMIT_S)."""
    for _ in range(10):
        status, body, _ = client.get(make_path())
        assert status == 200, (status, body)
    latencies, sources, points = [], set(), []
    deadline = time.monotonic() + TIME_LIMIT_S
    while len(latencies) < requests and time.monotonic() < deadline:
        status, body, elapsed = client.get(make_path())
        assert status == 200, (status, body)
        latencies.append(elapsed)
        sources.add(body.get("source"))
        points.append(len(body.get("points", body.get("items", body.get("departments", body.get("cells", []))))))
    p50, p99 = percentiles(latencies)
    return {
        "name": name,
        "n": len(latencies),
        "p50_ms": p50 * 1000,
        "p99_ms": p99 * 1000,
        "source": ",".join(sorted(s for s in sources if s)),
        "points": statistics.median(points),
    }


def http_benchmarks(dsn: str, requests: int, log_dir: Path, only: str | None = None) -> list[dict]:
    with psycopg.connect(dsn) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM systems ORDER BY id")]
        departments = [row[0] for row in conn.execute("SELECT DISTINCT department FROM systems ORDER BY 1")]
    port = free_port()
    service = Service(
        [
            str(Path(sys.executable).parent / "optilab-api"),
            "--listen",
            f"127.0.0.1:{port}",
            "--dsn",
            dsn,
            "--threads",
            "4",
            "--rate-limit",
            "1000000/minute",
            "--log-level",
            "WARNING",
        ],
        log_dir / "api_bench_server.log",
        env={"OPTILAB_API_KEYS": KEY},
    )
    try:
        service.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/health"), timeout=30)
        client = Client(port)
        rng = random.Random(42)

        def metrics(query: str) -> Callable[[], str]:
            return lambda: f"/systems/{rng.choice(ids)}/metrics?{query}"

        scenarios = [
            ("metrics 1h", metrics("start=-1h")),
            ("metrics 1d", metrics("start=-24h")),
            ("metrics 30d", metrics("start=-30d")),
            ("metrics 30d source=raw", metrics("start=-30d&source=raw")),
            ("departments 24h", lambda: "/departments"),
            ("departments 30d", lambda: "/departments?start=-30d"),
            ("systems page", lambda: "/systems?limit=100"),
            ("systems state=free", lambda: "/systems?state=free&limit=100"),
            ("history 30d", lambda: f"/departments/{rng.choice(departments)}/history?start=-30d"),
            ("history 24h", lambda: f"/departments/{rng.choice(departments)}/history?start=-24h"),
            ("heatmap 30d", lambda: f"/departments/{rng.choice(departments)}/heatmap?start=-30d"),
            ("utilisation 30d", lambda: "/reports/utilisation?start=-30d"),
            ("machines 30d", lambda: "/reports/machines?start=-30d"),
            ("board data", lambda: "/board/data"),
        ]
        return [
            run_scenario(client, name, make_path, requests)
            for name, make_path in scenarios
            if only is None or any(part in name for part in only.split(","))
        ]
    finally:
        service.stop()


def time_sql(
    conn: psycopg.Connection, query: psycopg.sql.Composable, make_params: Callable[[], dict], repeat: int
) -> float:
    """Median seconds of ``query`` (after two warm-up runs), each run with fresh parameters."""
    for _ in range(2):
        conn.execute(query, make_params()).fetchall()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        conn.execute(query, make_params()).fetchall()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def sql_speedups(dsn: str, repeat: int) -> None:
    """Aggregate vs raw for the same answers: one system's 30-day series, and the whole lab's month."""
    from optilab.api.departments import _range_query

    now = datetime.now(UTC)
    start = now - timedelta(days=30)
    with psycopg.connect(dsn, autocommit=True, options=SESSION_OPTIONS) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM systems ORDER BY id")]
        rng = random.Random(7)
        plan_hourly = series.Plan("hourly", 3 * 3600)
        plan_raw = series.Plan("raw", 3 * 3600)

        def one(plan: series.Plan) -> Callable[[], dict]:
            return lambda: series.series_params(rng.choice(ids), start, now, plan)

        hourly = time_sql(conn, series.series_query("hourly"), one(plan_hourly), repeat)
        raw = time_sql(conn, series.series_query("raw"), one(plan_raw), repeat)
        print(
            f"30-day series of one system (3 h buckets): usage_hourly {hourly * 1000:.2f} ms, raw rows "
            f"{raw * 1000:.2f} ms -> {raw / hourly:.0f}x"
        )
        lab = {
            "department": None,
            "start": start,
            "end": now,
            "origin": series.ORIGIN,
            "resolution": timedelta(days=1),
            "now": now,
            "fresh_since": now,
        }
        daily = time_sql(conn, _range_query("daily", None), lambda: lab, max(3, repeat // 10))
        raw_lab = time_sql(conn, _range_query("raw", None), lambda: lab, 3)
        print(
            f"30-day summary of all departments: usage_daily {daily * 1000:.1f} ms, raw rows "
            f"{raw_lab * 1000:.0f} ms -> {raw_lab / daily:.0f}x"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-dsn", default=SERVER_DSN, help="maintenance DSN used to create/drop the DB")
    parser.add_argument("--systems", type=int, default=250)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=400, help="measured requests per scenario")
    parser.add_argument(
        "--step-minutes",
        type=int,
        default=1,
        help="minutes between generated rows (5 loads 5x faster; the aggregates keep their size)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database (prints its DSN)")
    parser.add_argument("--reuse", metavar="DSN", help="measure an existing, loaded bench database")
    parser.add_argument("--only", help="comma-separated substrings of scenario names to run (HTTP part only)")
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp"), help="where the API server logs")
    args = parser.parse_args(argv)

    dsn = args.reuse or create_bench_db(args.server_dsn)
    try:
        if not args.reuse:
            load(dsn, args.systems, args.days, args.step_minutes)
        print(f"database: {describe(dsn)}")
        load_before = os.getloadavg()
        results = http_benchmarks(dsn, args.requests, args.log_dir, args.only)
        print(
            f"\nHTTP through optilab-api (waitress, 4 threads), sequential keep-alive requests; "
            f"target p99 < {TARGET_P99_MS:.0f} ms; load average (1/5/15 min) before "
            f"{'/'.join(f'{v:.1f}' for v in load_before)}, after {'/'.join(f'{v:.1f}' for v in os.getloadavg())}"
        )
        print(f"{'scenario':26} {'n':>5} {'p50 ms':>8} {'p99 ms':>8}  {'source':8} {'points':>6}  target")
        for r in results:
            verdict = "ok" if r["p99_ms"] < TARGET_P99_MS else "MISSED"
            if r["name"].endswith("source=raw"):
                verdict = "(comparison)"
            print(
                f"{r['name']:26} {r['n']:5d} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}  {r['source']:8} "
                f"{r['points']:6.0f}  {verdict}"
            )
        by_name = {r["name"]: r for r in results}
        if args.only:
            return 0
        print(
            f"30-day series through HTTP, raw vs aggregate (p50): "
            f"{by_name['metrics 30d source=raw']['p50_ms'] / by_name['metrics 30d']['p50_ms']:.1f}x\n"
        )
        sql_speedups(dsn, repeat=max(20, args.requests // 4))
    finally:
        if args.keep or args.reuse:
            print(f"kept bench database: {dsn}")
        else:
            drop_bench_db(args.server_dsn, dsn)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

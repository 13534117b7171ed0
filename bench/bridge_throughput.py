"""Remote-write bridge throughput into the machine's PostgreSQL (loopback only).

    .venv/bin/python -m bench.bridge_throughput [--seconds 20] [--senders 8] [--hosts 500] [--prom-hosts 3000]

Part 1, synthetic: ``--senders`` concurrent keep-alive HTTP senders post pre-encoded remote-write
bodies of 2000 samples (what Prometheus sends by default: max_samples_per_send 2000, one sample
per series) for a lab of ``--hosts`` machines, each scrape carrying the four pivoted usage series,
system_status and nine allow-listed series — every sample is stored, the worst case for the bridge.
Part 2, real Prometheus: it scrapes a target exposing the same families (``--prom-hosts`` × 14 series)
every second and remote-writes to the bridge; the rate it sustains and its pending queue are read
from its own metrics.

Prints samples/s (received and stored), rows/s, p50/p99 request latency, and database size per
million stored samples. The bridge runs as a subprocess (``optilab-bridge``) against a fresh
database that is dropped at the end.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import cramjam
import psycopg
import psycopg.sql

from bench.bridge_prometheus import run_prometheus
from bench.common import report
from bench.lab_series import host_series
from optilab.demo.supervisor import free_port
from optilab.remote_write_bridge.protocol import WriteRequest
from optilab.timescale.migrate import migrate

SERVER_DSN = os.environ.get("OPTILAB_BENCH_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
BATCH = 2000


def build_bodies(hosts: int, total_samples: int, start_ms: int) -> list[bytes]:
    """Scrape rounds 15 s apart, cut into 2000-sample requests; values vary a little per round."""
    lab = [s for host in range(hosts) for s in host_series(host)]
    bodies, request, count, round_ = [], WriteRequest(), 0, 0
    while count < total_samples:
        ts = start_ms + round_ * 15_000
        for index, (labels, base) in enumerate(lab):
            series = request.timeseries.add()
            for name, value in labels:
                series.labels.add(name=name, value=value)
            series.samples.add(value=base + (index + round_) % 7, timestamp=ts)
            count += 1
            if len(request.timeseries) == BATCH:
                bodies.append(bytes(cramjam.snappy.compress_raw(request.SerializeToString())))
                request = WriteRequest()
        round_ += 1
    return bodies


def send_all(port: int, bodies: list[bytes], senders: int) -> tuple[float, list[float], dict[int, int]]:
    """Post every body once, ``senders`` at a time; retries 503 like Prometheus would (bounded)."""
    latencies: list[float] = []
    codes: dict[int, int] = {}
    lock = threading.Lock()
    chunks = [bodies[i::senders] for i in range(senders)]

    def sender(mine: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for body in mine:
            for _attempt in range(20):
                started = time.perf_counter()
                conn.request("POST", "/api/v1/write", body=body, headers=HEADERS)
                response = conn.getresponse()
                response.read()
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    codes[response.status] = codes.get(response.status, 0) + 1
                if response.status != 503:
                    break
                time.sleep(0.05)
        conn.close()

    threads = [threading.Thread(target=sender, args=(chunk,)) for chunk in chunks]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies, codes


def table_counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {
            table: conn.execute(
                psycopg.sql.SQL("SELECT count(*) FROM {}").format(psycopg.sql.Identifier(table))
            ).fetchone()[0]
            for table in ("usage_metrics", "samples", "series")
        }


def db_size(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_bridge(dsn: str, port: int, threads: int, log_path: Path) -> subprocess.Popen:
    bridge = shutil.which("optilab-bridge") or str(Path(sys.executable).with_name("optilab-bridge"))
    process = subprocess.Popen(
        [bridge, "--listen", f"127.0.0.1:{port}", "--dsn", dsn, "--threads", str(threads)],
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise SystemExit(f"bridge did not start:\n{log_path.read_text()[-2000:]}")


def synthetic(args: argparse.Namespace, dsn: str, port: int) -> None:
    total = int(args.rate_hint * args.seconds)
    start_ms = int(time.time() * 1000) - 3 * 3600 * 1000
    t0 = time.perf_counter()
    bodies = build_bodies(args.hosts, total, start_ms)
    print(
        f"built {len(bodies)} bodies of {BATCH} samples in {time.perf_counter() - t0:.1f}s "
        f"(mean {statistics.mean(map(len, bodies)) / 1024:.1f} KiB compressed)"
    )
    size_before = db_size(dsn)
    elapsed, latencies, codes = send_all(port, bodies, args.senders)
    counts = table_counts(dsn)
    samples = len(bodies) * BATCH
    rows = counts["usage_metrics"] + counts["samples"]
    size_after = db_size(dsn)
    report(
        "bridge_throughput",
        f"remote-write bridge, synthetic: {samples:,} samples, {args.senders} senders, "
        f"{args.threads} bridge threads, {args.hosts} hosts × 14 series, every sample stored",
        [
            ("samples/s", f"{samples / elapsed:,.0f}"),
            ("rows/s (usage_metrics + samples)", f"{rows / elapsed:,.0f}"),
            (
                "request latency p50 / p99",
                f"{percentile(latencies, 0.5) * 1000:.0f} ms / "
                f"{percentile(latencies, 0.99) * 1000:.0f} ms per 2000 samples",
            ),
            (
                "DB size per million samples",
                f"{(size_after - size_before) / samples * 1e6 / 2**20:.1f} MiB "
                f"({(size_after - size_before) / rows:.0f} bytes/row incl. index)",
            ),
            ("responses", str(codes)),
        ],
        {"samples_per_s": samples / elapsed, "rows_per_s": rows / elapsed, "p99_s": percentile(latencies, 0.99)},
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="target length of the synthetic run")
    parser.add_argument("--rate-hint", type=float, default=100_000, help="samples/s to prepare bodies for")
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--threads", type=int, default=8, help="bridge waitress threads")
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--skip-prometheus", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument(
        "--prom-hosts",
        type=int,
        default=3000,
        help="lab size of the real-Prometheus part (14 series per host, scraped every second)",
    )
    args = parser.parse_args()
    name = f"optilab_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SERVER_DSN, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    dsn = psycopg.conninfo.make_conninfo(SERVER_DSN, dbname=name)
    workdir = Path(tempfile.mkdtemp(prefix="optilab-bench-"))
    bridge = None
    try:
        print(f"storage mode: {migrate(dsn)}")
        port = free_port()
        bridge = start_bridge(dsn, port, args.threads, workdir / "bridge.log")
        if not args.skip_synthetic:
            synthetic(args, dsn, port)
        if not args.skip_prometheus:
            run_prometheus(dsn, port, workdir, hosts=args.prom_hosts)
    finally:
        if bridge is not None:
            bridge.terminate()
            bridge.wait(10)
        with psycopg.connect(SERVER_DSN, autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(name))
            )
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

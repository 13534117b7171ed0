"""Fault-and-load benchmark (issue #11): the hostile shapes, in one run, against the real parts.

    .venv/bin/python -m bench.fault_load [--quick]

Bridge shapes (a fresh database on the machine's PostgreSQL, ``optilab-bridge`` and the RabbitMQ
consumer as subprocesses, the machine's broker with unique names; loopback only):

- oversized labels: requests of good series plus a 3 KB incompressible label value, a 100 KB
  ``instance`` and a 3,000-label series — with the default label limits, and with them lifted so
  PostgreSQL itself refuses the series (the bridge isolates them);
- inflating bodies: bodies declaring 60 MiB decompressed (as in the issue), then eight large
  sample-dense bodies (400,000 samples, ~7.6 MiB decompressed each) at once — together over the
  in-flight budget — senders retrying 503 like Prometheus;
- locked tables: ``usage_metrics`` and ``alerts`` locked (ACCESS EXCLUSIVE) while a sender posts
  Prometheus-sized requests and alerts arrive through the webhook (retried on 5xx like Alertmanager).

Prints 5xx answers, peak RSS of bridge (and exporter), samples and alerts lost or duplicated (the
database compared with what was sent), and the exporter shapes of ``bench/fault_exporter.py`` when
that module is present. The machine is shared: figures are from one run and move with its load.
Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cramjam
import psycopg
import yaml
from psycopg import sql

from bench.common import peak_rss_mb, report, stop_process
from optilab.demo.supervisor import free_port
from optilab.timescale.migrate import migrate

SERVER_DSN = os.environ.get("OPTILAB_BENCH_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
AMQP_URL = os.environ.get("OPTILAB_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2F")
HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
BIN = Path(sys.executable).parent
NO_LIMITS = {
    "max_labels": 100_000,
    "max_label_name_bytes": 1_000_000,
    "max_label_value_bytes": 4_000_000,
    "max_series_bytes": 8_000_000,
}


# --- remote-write bodies, encoded directly (fast enough for millions of samples) -----------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + _varint(len(payload)) + payload


def series_bytes(labels: dict[str, str], samples: bytes) -> bytes:
    encoded = b"".join(
        _field(0x0A, _field(0x0A, k.encode()) + _field(0x12, v.encode())) for k, v in sorted(labels.items())
    )
    return _field(0x0A, encoded + samples)


def samples_bytes(points: list[tuple[float, int]]) -> bytes:
    return b"".join(_field(0x12, b"\x09" + struct.pack("<d", v) + b"\x10" + _varint(ms)) for v, ms in points)


def snappy(raw: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(raw))


def good_body(request: int, hosts: int, ms: int) -> bytes:
    """One Prometheus-sized request: per host 4 usage columns, status and node_load1 at ``ms``."""
    parts = []
    for h in range(hosts):
        ip = f"127.0.{1 + h // 250}.{1 + h % 250}"
        host = {"instance": f"{ip}:22", "hostname": f"pc-{h}", "ip": ip, "department": "lab"}
        for name, value in (
            ("system_cpu_usage", 10 + request % 50),
            ("system_ram_usage", 40),
            ("system_disk_usage", 60),
            ("optilab_logged_in_users", request % 3),
            ("system_status", 1),
            ("node_load1", 0.5),
        ):
            parts.append(series_bytes({"__name__": name, **host}, samples_bytes([(float(value), ms)])))
    return b"".join(parts)


def hostile_series(ms: int) -> bytes:
    one = samples_bytes([(1.0, ms)])
    return b"".join(
        (
            series_bytes(
                {"__name__": "node_load5", "instance": "127.0.9.1:22", "big": secrets.token_urlsafe(2300)}, one
            ),
            series_bytes({"__name__": "system_cpu_usage", "instance": secrets.token_urlsafe(75_000)}, one),
            series_bytes(
                {"__name__": "node_load15", "instance": "127.0.9.1:22", **{f"l{i:04}": "v" for i in range(3000)}}, one
            ),
        )
    )


# --- processes and HTTP -------------------------------------------------------------------------


class Service:
    def __init__(self, argv: list[str], log: Path, env: dict[str, str], ready: Any) -> None:
        self.log = log
        self.process = subprocess.Popen(
            argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{argv[0]} exited:\n{log.read_text()[-2000:]}")
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"{argv[0]} did not start:\n{log.read_text()[-2000:]}")

    def reset_peak(self) -> None:
        """Start a new VmHWM period (Linux: writing 5 to clear_refs resets the peak RSS)."""
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def peak_mb(self) -> float:
        return peak_rss_mb(self.process.pid)

    def stop(self) -> None:
        stop_process(self.process, 15)


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
) -> tuple[int, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.perf_counter()
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        conn.close()


class Sender:
    """Posts like Prometheus: a 5xx is retried with backoff (bounded), a 4xx dropped; counts both."""

    def __init__(self, port: int, path: str = "/api/v1/write", headers: dict[str, str] = HEADERS) -> None:
        self.port, self.path, self.headers = port, path, headers
        self.codes: dict[int, int] = {}
        self.latencies: list[float] = []
        self.given_up = 0
        self._lock = threading.Lock()

    def send(self, body: bytes, attempts: int = 60) -> int:
        delay = 0.1
        for _ in range(attempts):
            code, elapsed = request(self.port, "POST", self.path, body, self.headers)
            with self._lock:
                self.codes[code] = self.codes.get(code, 0) + 1
                self.latencies.append(elapsed)
            if code < 500:
                return code
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        self.given_up += 1
        return code

    @property
    def five_xx(self) -> int:
        return sum(n for code, n in self.codes.items() if code >= 500)


def rows(dsn: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


# --- the shapes ---------------------------------------------------------------------------------


def oversized_labels(port: int, dsn: str, requests: int, hosts: int, ms0: int, tag: str) -> dict[str, Any]:
    sender = Sender(port)
    for i in range(requests):
        ms = ms0 + i * 1000
        sender.send(snappy(good_body(i, hosts, ms) + hostile_series(ms)))
    stored = rows(
        dsn,
        "SELECT count(*) FROM samples x JOIN series s ON s.id = x.series_id "
        "WHERE s.metric = 'node_load1' AND x.timestamp >= TIMESTAMPTZ 'epoch' + %s * "
        "INTERVAL '1 millisecond' AND x.timestamp < TIMESTAMPTZ 'epoch' + %s * "
        "INTERVAL '1 millisecond'",
        (ms0, ms0 + requests * 1000),
    )[0][0]
    sent = requests * hosts
    return {
        "shape": f"oversized labels ({tag})",
        "requests": requests,
        "5xx": sender.five_xx,
        "codes": sender.codes,
        "good_samples_sent": sent,
        "samples_lost": max(sent - stored, 0),
        "samples_duplicated": max(stored - sent, 0),
    }


def inflating_bodies(bridge: Service, port: int, dsn: str, quick: bool, ms0: int) -> dict[str, Any]:
    # (a) the shape: a small body declaring 60 MiB: refused from the preamble
    bomb = snappy(series_bytes({"__name__": "node_load1", "x": "0" * (60 << 20)}, b""))
    bridge.reset_peak()
    with ThreadPoolExecutor(3) as pool:
        bomb_codes = list(pool.map(lambda _: request(port, "POST", "/api/v1/write", bomb, HEADERS)[0], range(3)))
    bomb_peak = bridge.peak_mb()
    # (b) near-limit sample-dense bodies (distinct series per body), several at once
    bodies, series, points = (4, 1000, 700) if quick else (8, 4000, 100)
    samples = samples_bytes([(0.25, ms0 + k * 1000) for k in range(points)])
    raws = [
        b"".join(
            series_bytes({"__name__": "node_load1", "instance": f"127.0.3.{b}:22", "n": str(s)}, samples)
            for s in range(series)
        )
        for b in range(bodies)
    ]
    size = len(raws[0])
    encoded = [snappy(raw) for raw in raws]
    del raws
    # one alone first: the per-request memory multiple
    bridge.reset_peak()
    base = bridge.peak_mb()
    alone = Sender(port)
    alone.send(encoded[0])
    single = bridge.peak_mb() - base
    bridge.reset_peak()
    sender = Sender(port)
    started = time.perf_counter()
    with ThreadPoolExecutor(len(encoded)) as pool:
        list(pool.map(sender.send, encoded))
    (stored,) = rows(
        dsn,
        "SELECT count(*) FROM samples x JOIN series s ON s.id = x.series_id "
        "WHERE s.labels->>'instance' LIKE '127.0.3.%%'",
    )[0]
    sent = bodies * series * points
    return {
        "shape": "inflating bodies",
        "bomb_bodies": len(bomb_codes),
        "bomb_compressed_bytes": len(bomb),
        "bomb_codes": bomb_codes,
        "bomb_peak_rss_mb": round(bomb_peak, 1),
        "bodies": bodies,
        "decompressed_mib_each": round(size / 2**20, 1),
        "compressed_mib_each": round(len(encoded[0]) / 2**20, 2),
        "single_request_rss_delta_mb": round(single, 1),
        "single_request_multiple": round(single * 2**20 / size, 1),
        "5xx": sender.five_xx + alone.five_xx,
        "shed_503": sender.codes.get(503, 0),
        "codes": sender.codes,
        "wall_s": round(time.perf_counter() - started, 1),
        "bridge_peak_rss_mb": round(bridge.peak_mb(), 1),
        "samples_sent": sent,
        "samples_lost": max(sent - stored, 0),
        "samples_duplicated": max(stored - sent, 0),
    }


def alert_payload(i: int) -> bytes:
    alert = {
        "status": "firing",
        "labels": {
            "alertname": "OptiLabHostDown",
            "instance": f"127.0.4.{i % 250}:22",
            "severity": "critical",
            "department": "lab",
            "job": "node",
        },
        "annotations": {"summary": "down"},
        "startsAt": "2026-11-28T01:00:00.123456Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": f"bench{i:06d}",
    }
    return json.dumps(
        {
            "version": "4",
            "status": "firing",
            "receiver": "optilab",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "",
            "groupKey": str(i),
            "truncatedAlerts": 0,
            "alerts": [alert],
        }
    ).encode()


def locked_tables(
    bridge: Service, port: int, dsn: str, lock_s: float, hosts: int, ms0: int, alerts: int
) -> dict[str, Any]:
    samples, hooks = Sender(port), Sender(port, "/api/v1/alerts", {"Content-Type": "application/json"})
    health: dict[int, int] = {}
    requests_sent = 0
    stop = threading.Event()

    def prometheus() -> None:
        nonlocal requests_sent
        deadline = time.monotonic() + lock_s + 30
        while not stop.is_set() and time.monotonic() < deadline and requests_sent < 10_000:
            samples.send(snappy(good_body(requests_sent, hosts, ms0 + requests_sent * 1000)))
            requests_sent += 1
            time.sleep(0.2)

    def alertmanager() -> None:
        for i in range(alerts):
            hooks.send(alert_payload(i))
            time.sleep(lock_s * 2 / alerts)

    bridge.reset_peak()
    threads = [threading.Thread(target=prometheus), threading.Thread(target=alertmanager)]
    with psycopg.connect(dsn) as locker:
        locker.execute("LOCK TABLE usage_metrics, alerts IN ACCESS EXCLUSIVE MODE")
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + lock_s
        while time.monotonic() < deadline:
            code, _ = request(port, "GET", "/health", timeout=10)
            health[code] = health.get(code, 0) + 1
            time.sleep(1.0)
        locker.rollback()
    time.sleep(3)
    stop.set()
    for thread in threads:
        thread.join(120)
    sent = requests_sent * hosts
    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline
        and rows(dsn, "SELECT count(*) FROM alerts WHERE fingerprint LIKE 'bench%%'")[0][0] < alerts
    ):
        time.sleep(0.5)  # the consumer catches up with the requeued events
    (stored,) = rows(
        dsn,
        "SELECT count(*) FROM usage_metrics WHERE timestamp >= TIMESTAMPTZ 'epoch' + %s * INTERVAL '1 millisecond'",
        (ms0,),
    )[0]
    total, distinct = rows(
        dsn, "SELECT count(*), count(DISTINCT (fingerprint, starts_at)) FROM alerts WHERE fingerprint LIKE 'bench%%'"
    )[0]
    return {
        "shape": f"tables locked {lock_s:g} s",
        "requests": requests_sent,
        "5xx": samples.five_xx,
        "codes": samples.codes,
        "max_request_s": round(max(samples.latencies), 2),
        "webhook_5xx": hooks.five_xx,
        "health_codes": health,
        "bridge_peak_rss_mb": round(bridge.peak_mb(), 1),
        "samples_sent": sent,
        "samples_lost": max(sent - stored, 0),
        "samples_duplicated": max(stored - sent, 0),
        "alerts_sent": alerts,
        "alerts_lost": max(alerts - distinct, 0),
        "alerts_duplicated": total - distinct,
    }


def exporter_shapes(quick: bool) -> dict[str, Any] | None:
    try:
        from bench.fault_exporter import run_exporter_shapes  # written by the exporter side of issue #11
    except ImportError as exc:
        print(f"exporter shapes not available (bench/fault_exporter.py: {exc}); bridge shapes only")
        return None
    return run_exporter_shapes(quick)


# --- the run ------------------------------------------------------------------------------------


def start_bridge(dsn: str, workdir: Path, name: str, remote_write: dict[str, Any], prefix: str) -> tuple[Service, int]:
    port = free_port()
    config = workdir / f"{name}.yml"
    config.write_text(yaml.safe_dump({"remote_write": {"maintenance_interval_s": 0, **remote_write}}))
    service = Service(
        [str(BIN / "optilab-bridge"), "--listen", f"127.0.0.1:{port}", "--dsn", dsn, "--config", str(config)],
        workdir / f"{name}.log",
        {"OPTILAB_AMQP_URL": AMQP_URL, "OPTILAB_AMQP_PREFIX": prefix},
        lambda: request(port, "GET", "/health", timeout=1)[0] == 200,
    )
    return service, port


def remove_topology(prefix: str) -> None:
    """Delete the run's exchanges and queues from the shared broker."""
    from optilab.remote_write_bridge.amqp import Topology
    from tests.fixtures.rabbitmq import delete_topology

    delete_topology(AMQP_URL, Topology.from_prefix(prefix))


def run(quick: bool) -> dict[str, Any]:
    name = f"optilab_fault_{uuid.uuid4().hex[:8]}"
    prefix = f"optilab-fault-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SERVER_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = psycopg.conninfo.make_conninfo(SERVER_DSN, dbname=name)
    workdir = Path(tempfile.mkdtemp(prefix="optilab-fault-"))
    services: list[Service] = []
    try:
        migrate(dsn)
        bridge, port = start_bridge(dsn, workdir, "bridge", {}, prefix)
        services.append(bridge)
        lifted, lifted_port = start_bridge(dsn, workdir, "bridge-lifted", NO_LIMITS, prefix)
        services.append(lifted)
        services.append(
            Service(
                [
                    str(BIN / "optilab-bridge"),
                    "consume",
                    "--dsn",
                    dsn,
                    "--amqp",
                    AMQP_URL,
                    "--prefix",
                    prefix,
                    "--workers",
                    "2",
                ],
                workdir / "consumer.log",
                {},
                lambda: "consuming" in (workdir / "consumer.log").read_text(),
            )
        )
        now = int(time.time() * 1000)
        shapes = [
            oversized_labels(port, dsn, 10 if quick else 40, 50, now - 3_600_000, "default limits"),
            oversized_labels(lifted_port, dsn, 5 if quick else 20, 50, now - 3_000_000, "limits lifted"),
            inflating_bodies(bridge, port, dsn, quick, now - 2_400_000),
            locked_tables(bridge, port, dsn, 8 if quick else 40, 50, now - 1_200_000, 20 if quick else 60),
        ]
        exporter = exporter_shapes(quick)
        peak = max(bridge.peak_mb(), *(shape.get("bridge_peak_rss_mb", 0) for shape in shapes))
    finally:
        for service in reversed(services):
            service.stop()
        with psycopg.connect(SERVER_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        shutil.rmtree(workdir, ignore_errors=True)
        remove_topology(prefix)
    return {"shapes": shapes, "exporter": exporter, "bridge_peak_rss_mb": round(peak, 1)}


def summary_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    rows_: list[tuple[str, str]] = []
    for shape in result["shapes"]:
        figures = {k: v for k, v in shape.items() if k != "shape"}
        rows_.append((shape["shape"], ", ".join(f"{k}={v}" for k, v in figures.items())))
    exporter = result["exporter"]
    rows_.append(
        (
            "exporter shapes",
            "not available (bench/fault_exporter.py missing)"
            if exporter is None
            else ", ".join(f"{k}={v}" for k, v in exporter.items()),
        )
    )
    shapes = result["shapes"]
    rows_ += [
        (
            "TOTAL 5xx answers (remote write)",
            str(sum(s["5xx"] for s in shapes))
            + " (503s are back-pressure or a locked table, all retried; none from a bad series)",
        ),
        ("TOTAL 5xx from bad series", str(sum(s["5xx"] for s in shapes if s["shape"].startswith("oversized")))),
        ("hosts wrongly degraded", "n/a" if exporter is None else str(exporter.get("hosts_wrongly_degraded"))),
        ("peak RSS bridge", f"{result['bridge_peak_rss_mb']} MB"),
        ("peak RSS exporter", "n/a" if exporter is None else f"{exporter.get('exporter_peak_rss_mb')} MB"),
        (
            "samples lost / duplicated",
            f"{sum(s.get('samples_lost', 0) for s in shapes)} / {sum(s.get('samples_duplicated', 0) for s in shapes)}",
        ),
        (
            "alerts lost / duplicated",
            f"{sum(s.get('alerts_lost', 0) for s in shapes)} / {sum(s.get('alerts_duplicated', 0) for s in shapes)}",
        ),
    ]
    return rows_


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller shapes, shorter locks (a smoke run)")
    args = parser.parse_args()
    started = time.monotonic()
    result = run(args.quick)
    result["wall_s"] = round(time.monotonic() - started, 1)
    report("fault_load", f"fault and load ({'quick' if args.quick else 'full'})", summary_rows(result), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

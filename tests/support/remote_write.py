"""Helpers shared by the bridge tests (no tests here): encode remote-write bodies, run the bridge as
a subprocess through its console script, serve a scrape target for a real Prometheus.
"""

from __future__ import annotations

import http.server
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cramjam
import pytest
import yaml

from optilab.remote_write_bridge.protocol import WriteRequest
from tests.fixtures.procs import Service, free_port, port_open

HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
HOST = {"instance": "127.0.1.5:22", "hostname": "pc-05", "ip": "127.0.1.5", "department": "physics"}

Series = tuple[dict[str, str], list[tuple[float, int]]]


def now_ms() -> int:
    """Now in milliseconds since the epoch, as remote-write samples carry it."""
    return int(time.time() * 1000)


def write_request(series: list[Series], sort_labels: bool = True) -> bytes:
    """Serialized (uncompressed) WriteRequest; ``sort_labels=False`` keeps the given label order."""
    request = WriteRequest()
    for labels, samples in series:
        ts = request.timeseries.add()
        items = sorted(labels.items()) if sort_labels else list(labels.items())
        for name, value in items:
            ts.labels.add(name=name, value=value)
        for value, ms in samples:
            ts.samples.add(value=value, timestamp=ms)
    return request.SerializeToString()


def encode(series: list[Series], sort_labels: bool = True) -> bytes:
    return bytes(cramjam.snappy.compress_raw(write_request(series, sort_labels)))


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(  # noqa: S310 - loopback bridge
        url, data=body, method="POST", headers=HEADERS if headers is None else headers
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 - loopback bridge
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback bridge
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric_value(metrics_text: str, name: str, labels: str = "") -> float:
    """Value of one sample in a text exposition (0 when absent)."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in metrics_text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class Bridge:
    def __init__(self, service: Service, port: int) -> None:
        self.service, self.port = service, port
        self.url = f"http://127.0.0.1:{port}"
        self.write_url = f"{self.url}/api/v1/write"

    def metrics(self) -> str:
        return get(f"{self.url}/metrics")[1]


@pytest.fixture
def bridge_factory(tmp_path: Path) -> Iterator[Callable[..., Bridge]]:
    """``bridge_factory(dsn, config=None)`` → ``optilab-bridge`` running on a free loopback port."""
    started: list[Bridge] = []

    def factory(dsn: str, config: dict[str, Any] | None = None) -> Bridge:
        port = free_port()
        argv = [
            str(Path(sys.executable).with_name("optilab-bridge")),
            "--listen",
            f"127.0.0.1:{port}",
            "--dsn",
            dsn,
            "--threads",
            "4",
        ]
        if config is not None:
            config_path = tmp_path / f"bridge{len(started)}.yml"
            config_path.write_text(yaml.safe_dump(config))
            argv += ["--config", str(config_path)]
        service = Service(argv, tmp_path / f"bridge{len(started)}.log")
        bridge = Bridge(service, port)
        started.append(bridge)
        service.wait_ready(lambda: port_open("127.0.0.1", port))
        return bridge

    yield factory
    for bridge in started:
        bridge.service.stop()


class ScrapeTarget:
    """A tiny exposition endpoint: lab gauges of a few hosts (labels as the exporter's fan-out sets
    them), some allow-listed series and one that is not; values change on every scrape."""

    def __init__(self, hosts: int = 3) -> None:
        self.hosts = hosts
        self.scrapes = 0
        self.removed: set[str] = set()
        self.extra: list[str] = []  # exposition lines served after the hosts' (e.g. a hostile series)
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = target.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def render(self) -> str:
        self.scrapes += 1
        n = self.scrapes
        lines = []
        for host in range(self.hosts):
            ip = f"127.0.1.{10 + host}"
            labels = f'instance="{ip}:22",hostname="pc-{host}",ip="{ip}",department="{("physics", "maths")[host % 2]}"'
            values = {
                "system_cpu_usage": (n * 7 + host) % 100 + 0.5,
                "system_ram_usage": 40 + (n + host) % 10,
                "system_disk_usage": 60 + host,
                "system_status": 1 if host != 2 else 0,
                "optilab_logged_in_users": (n + host) % 3,
                "node_load1": round(0.25 * ((n + host) % 8), 2),
                "not_allowed_metric": n,
            }
            for name, value in values.items():
                if name not in self.removed:
                    lines.append(f"{name}{{{labels}}} {value}")
        return "\n".join(lines + self.extra) + "\n"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scrape_target() -> Iterator[ScrapeTarget]:
    target = ScrapeTarget()
    yield target
    target.close()


def prometheus_config(target: str, write_url: str) -> dict[str, Any]:
    """Scrape every second, push to the bridge within a second, retry fast."""
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "node", "honor_labels": True, "static_configs": [{"targets": [target]}]}],
        "remote_write": [
            {
                "url": write_url,
                "queue_config": {"batch_send_deadline": "500ms", "min_backoff": "100ms", "max_backoff": "1s"},
            }
        ],
    }

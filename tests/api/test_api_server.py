"""The API as it runs: ``optilab-api`` under waitress over real HTTP, and a database outage.

The outage uses a private PostgreSQL (tests/fixtures/postgres.py) that the test stops and starts;
the machine's own server is never touched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from optilab.api.app import close_app
from optilab.api.seed import seed_lab
from tests.fixtures.postgres import create_database
from tests.fixtures.procs import Service, free_port, http_ok, wait_for
from tests.support.api_lab import AUTH, KEY, make_app

API = str(Path(sys.executable).parent / "optilab-api")


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback test URL
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_cli_serves_over_http_and_stops_on_sigterm(migrated_dsn: str, tmp_path: Path) -> None:
    seed_lab(migrated_dsn, systems=3, days=0.05)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    service = Service(
        [API, "--listen", f"127.0.0.1:{port}", "--dsn", migrated_dsn, "--threads", "2"],
        tmp_path / "api.log",
        env={"OPTILAB_API_KEYS": KEY},
    )
    try:
        service.wait_ready(lambda: http_ok(f"{base}/health"))
        status, body = fetch(f"{base}/systems", AUTH)
        assert status == 200 and body["total"] == 3
        status, body = fetch(f"{base}/departments", {"Authorization": f"Bearer {KEY}"})
        assert status == 200 and sum(d["machines"] for d in body["items"]) == 3
        status, body = fetch(f"{base}/systems")
        assert status == 401 and body["error"] == "Unauthorized"
        service.signal(signal.SIGTERM)
        assert service.process.wait(10) == 0
    finally:
        service.stop()
    log = service.log_path.read_text()
    assert f"listening on http://127.0.0.1:{port}" in log
    assert KEY not in log


def test_cli_refuses_to_start_without_keys(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTILAB_API_")}
    result = subprocess.run(
        [API, "--listen", "127.0.0.1:0", "--dsn", "dbname=unused"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "api_keys: no API key configured" in result.stderr


def test_database_outage_is_503_and_recovers(private_postgres) -> None:
    dsn = create_database(private_postgres.dsn)
    from optilab.timescale.migrate import migrate

    migrate(dsn)
    seed_lab(dsn, systems=2, days=0.05)
    app = make_app(dsn, pool_timeout_s=1.0)
    try:
        client = app.test_client()
        assert client.get("/systems", headers=AUTH).status_code == 200
        private_postgres.stop()
        response = client.get("/systems", headers=AUTH)
        assert response.status_code == 503
        assert response.get_json()["error"] == "Service Unavailable"
        assert int(response.headers["Retry-After"]) > 0
        health = client.get("/health")
        assert health.status_code == 503 and health.get_json()["database"] == "unreachable"
        private_postgres.start()
        wait_for(
            lambda: client.get("/systems", headers=AUTH).status_code == 200,
            timeout=30,
            interval=0.5,
            what="API to recover after the database restart",
        )
        assert client.get("/health").get_json()["status"] == "ok"
    finally:
        close_app(app)  # the private cluster, database included, is removed by its fixture

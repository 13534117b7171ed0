"""Every service as it runs: the shared flags and endpoints of toolkit/ on the real console scripts.

Bridge and API start under waitress against a real PostgreSQL: landing pages, ``/-/healthy``,
``/-/ready``, ``optilab_build_info`` and ``process_*`` (promtool-clean), basic auth from
``--web.config.file``, the refusal of TLS there, the broker warning; and for every console script
a bad flag value is a one-line usage error, never a traceback.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path

import bcrypt
import pytest
import yaml

from tests.fixtures.procs import Service, free_port, wait_for
from tests.support.api_lab import KEY
from tests.support.exporter_proc import promtool_problems

BIN = Path(sys.executable).parent
HASH = bcrypt.hashpw(b"pw-for-tests", bcrypt.gensalt(rounds=4)).decode()
AUTH = {"Authorization": "Basic " + base64.b64encode(b"prometheus:pw-for-tests").decode()}


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, Message]:
    """Status, body and the (case-insensitive) headers: waitress writes ``Www-Authenticate``."""
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback test URL
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers


def env_without(*prefixes: str, **extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith(prefixes)}, **extra}


def closed_port() -> int:
    return free_port()  # nothing listens there once the probe socket is closed


def test_the_api_behind_basic_auth_with_landing_and_lifecycle(migrated_dsn: str, tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": HASH}}))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    service = Service(
        [
            str(BIN / "optilab-api"),
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--dsn",
            migrated_dsn,
            "--threads",
            "2",
            "--web.config.file",
            str(web),
            "--log.format",
            "json",
        ],
        tmp_path / "api.log",
        env=env_without("OPTILAB_API_", OPTILAB_API_KEYS=KEY),
    )
    try:
        service.wait_ready(lambda: get(f"{base}/-/healthy", AUTH)[0] == 200)
        status, _, headers = get(f"{base}/-/healthy")
        assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="OptiLab API"'
        assert get(f"{base}/-/ready", AUTH)[:2] == (200, "OptiLab API is Ready.\n")
        status, body, _ = get(f"{base}/", AUTH)
        landing = json.loads(body)
        assert status == 200 and landing["service"] == "OptiLab API" and "/systems" in landing["endpoints"]
        assert get(f"{base}/systems", AUTH)[0] == 401  # basic auth passed, the API key is still needed
        assert get(f"{base}/systems", {**AUTH, "X-API-Key": KEY})[0] == 200
        status, metrics, _ = get(f"{base}/metrics", AUTH)
        assert 'optilab_build_info{component="api"' in metrics and "process_cpu_seconds_total" in metrics
        assert promtool_problems(metrics) == []
    finally:
        service.stop()
    log = service.log_path.read_text()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(r["msg"].startswith(f"listening on http://127.0.0.1:{port}") for r in records)
    assert KEY not in log and "pw-for-tests" not in log


def test_the_bridge_landing_lifecycle_metrics_and_broker_warning(migrated_dsn: str, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = env_without("OPTILAB_", OPTILAB_AMQP_URL=f"amqp://guest:guest@127.0.0.1:{closed_port()}/%2F")
    service = Service(
        [
            str(BIN / "optilab-bridge"),
            "--listen",
            f"127.0.0.1:{port}",
            "--dsn",
            migrated_dsn,
            "--threads",
            "2",
            "--log.level",
            "INFO",
        ],
        tmp_path / "bridge.log",
        env=env,
    )
    try:
        service.wait_ready(lambda: get(f"{base}/-/healthy")[0] == 200)
        status, page, headers = get(f"{base}/")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert "/api/v1/write" in page and "/api/v1/alerts" in page
        assert get(f"{base}/-/ready")[:2] == (200, "OptiLab bridge is Ready.\n")
        status, text, headers = get(f"{base}/nope")
        assert status == 404 and headers["Content-Type"].startswith("text/plain") and "/api/v1/write" in text
        status, metrics, _ = get(f"{base}/metrics")
        assert 'optilab_build_info{component="bridge"' in metrics and "process_resident_memory_bytes" in metrics
        assert promtool_problems(metrics) == []
        wait_for(lambda: "RabbitMQ is not reachable" in service.log(), timeout=10, what="the broker warning")
        assert "OPTILAB_ALERTS_DELIVERY=direct" in service.log()
        assert "Traceback" not in service.log() and "guest:guest" not in service.log()
    finally:
        service.stop()


def test_the_bridge_in_direct_mode_does_not_warn_about_the_broker(migrated_dsn: str, tmp_path: Path) -> None:
    port = free_port()
    env = env_without(
        "OPTILAB_", OPTILAB_ALERTS_DELIVERY="direct", OPTILAB_AMQP_URL=f"amqp://127.0.0.1:{closed_port()}/%2F"
    )
    service = Service(
        [str(BIN / "optilab-bridge"), "--listen", f"127.0.0.1:{port}", "--dsn", migrated_dsn],
        tmp_path / "bridge.log",
        env=env,
    )
    try:
        service.wait_ready(lambda: get(f"http://127.0.0.1:{port}/-/ready")[0] == 200)
        assert "RabbitMQ" not in service.log()
    finally:
        service.stop()


@pytest.mark.parametrize("script", ["optilab-bridge", "optilab-api"])
def test_tls_on_a_waitress_service_is_refused_with_the_reason(script: str, tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    (tmp_path / "c.pem").write_text("x")
    web.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": "c.pem", "key_file": "c.pem"}}))
    result = subprocess.run(
        [str(BIN / script), "--dsn", "dbname=x", "--web.config.file", str(web)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "tls_server_config: this service runs under waitress, which does not speak TLS" in result.stderr
    assert "reverse proxy" in result.stderr and "Traceback" not in result.stderr


BAD_FLAGS = [
    (["optilab-exporter", "--log.level", "bogus"], "'bogus' is not one of debug, info, warn, error"),
    (["optilab-exporter", "--config", "x.yml", "--web.listen-address", "9842"], "is not HOST:PORT"),
    (["optilab-bridge", "--log-level", "bogus"], "'bogus' is not one of"),
    (["optilab-bridge", "--dsn", "x", "--listen", ":9843"], "has no host"),
    (["optilab-bridge", "consume", "--log.level", "loud"], "'loud' is not one of"),
    (["optilab-api", "--log-level", "bogus"], "'bogus' is not one of"),
    (["optilab-api", "--log.format", "xml"], "invalid choice: 'xml'"),
    (["optilab-migrate", "--log.level", "bogus"], "'bogus' is not one of"),
    (["optilab-labsim", "--log-level", "bogus"], "'bogus' is not one of"),
    (["optilab-demo", "--hosts", "2"], "--hosts must be 3..254"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_FLAGS, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_a_bad_flag_value_is_a_one_line_usage_error(argv: list[str], message: str) -> None:
    result = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_web_config_names_the_field_before_anything_starts(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({"basic_auth_users": {"alice": "plaintext"}, "tls_server_conf": {}}))
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"departments": {"d": {"hosts": ["127.0.0.1"]}}}))
    result = subprocess.run(
        [str(BIN / "optilab-exporter"), "--config", str(inventory), "--web.config.file", str(web)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"{web}: basic_auth_users.alice: not a bcrypt hash" in result.stderr
    assert f"{web}: tls_server_conf: unknown field" in result.stderr
    assert "plaintext" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["optilab-exporter"],
        ["optilab-exporter", "scan"],
        ["optilab-bridge"],
        ["optilab-bridge", "consume"],
        ["optilab-api"],
        ["optilab-migrate"],
        ["optilab-labsim"],
        ["optilab-demo"],
    ],
    ids=" ".join,
)
def test_help_is_plain_text_and_lists_subcommands(argv: list[str]) -> None:
    result = subprocess.run([str(BIN / argv[0]), *argv[1:], "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "``" not in text and ":func:" not in text and ":class:" not in text, text
    assert "--version" in text or argv[-1] == "scan"
    if argv == ["optilab-bridge"]:
        assert "optilab-bridge consume" in text
    if argv == ["optilab-exporter"]:
        assert "optilab-exporter scan" in text and "write-configs" in text

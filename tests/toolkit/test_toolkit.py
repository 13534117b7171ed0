"""The shared Prometheus conventions (toolkit/): flags, web config, logs, lifecycle endpoints.

The pure parts run in-process; the convention that matters most runs for real: a real Prometheus
scrapes a real exporter (probing a real sshd) through ``--web.config.file`` with TLS and bcrypt
basic auth, using a self-signed certificate for 127.0.0.1 made here with ``cryptography``.
"""

from __future__ import annotations

import base64
import concurrent.futures
import datetime
import ipaddress
import json
import logging
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import bcrypt
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from werkzeug.test import Client

from optilab.toolkit import logs, webconfig
from optilab.toolkit.flags import parse_listen
from optilab.toolkit.webconfig import BasicAuth, WebConfigError, load_web_config
from optilab.toolkit.wsgi import ToolkitMiddleware
from tests.fixtures.procs import Service, free_port, wait_for
from tests.fixtures.prometheus import Peer, query
from tests.fixtures.sshd import Sshd
from tests.support.exporter_proc import inventory
from tests.support.paths import REPO

HASH = bcrypt.hashpw(b"s3cret-pass", bcrypt.gensalt(rounds=4)).decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def write(path: Path, doc: object) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def exporter_service(tmp_path: Path, config: Path, web: Path, *flags: str) -> tuple[Service, int]:
    """The exporter as a child process on a free loopback port behind ``--web.config.file`` ``web``."""
    port = free_port()
    command = [sys.executable, "-m", "optilab.exporter", "--config", str(config)]
    command += ["--web.listen-address", f"127.0.0.1:{port}", "--web.config.file", str(web), *flags]
    return Service(command, tmp_path / "exporter.log", cwd=REPO), port


def unreachable_inventory(tmp_path: Path) -> Path:
    """An inventory whose one host nobody answers on (these tests only talk to the exporter itself)."""
    return write(
        tmp_path / "inventory.yml",
        {"ssh": {"user": "u", "key_file": str(tmp_path / "none")}, "departments": {"d": {"hosts": ["127.0.0.1:1"]}}},
    )


# -- listen address, log level and format ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9842", ("127.0.0.1", 9842)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[::1]:9843", ("::1", 9843)),
        ("localhost:9844", ("localhost", 9844)),
    ],
)
def test_one_listen_address_reading_for_every_service(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("127.0.0.1", "is not HOST:PORT"),
        (":9842", "has no host"),
        ("::1:9842", "in brackets"),
        ("[nope]:1", "not an IPv6 address"),
        ("127.0.0.1:70000", "port from 0 to 65535"),
    ],
)
def test_bad_listen_addresses_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_listen(text)


def test_log_levels_in_any_case_and_one_line_records() -> None:
    assert logs.parse_level("DEBUG") == logs.parse_level("debug") == logging.DEBUG
    assert logs.parse_level("Warn") == logs.parse_level("warning") == logging.WARNING
    with pytest.raises(ValueError, match="'bogus' is not one of debug, info, warn, error"):
        logs.parse_level("bogus")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("optilab.x", logging.WARNING, __file__, 1, 'say "%s"', ("hi there",), sys.exc_info())
    line = logs.LogfmtFormatter().format(record)
    assert line.startswith("ts=") and ' level=warn logger=optilab.x msg="say \\"hi there\\"" exc="Traceback' in line
    assert "\n" not in line
    doc = json.loads(logs.JsonFormatter().format(record))
    assert doc["level"] == "warn" and doc["msg"] == 'say "hi there"' and "RuntimeError: boom" in doc["exc"]


# -- web config ------------------------------------------------------------------------------------


def test_the_web_config_reads_tls_and_users(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    path = write(
        tmp_path / "web.yml",
        {
            "tls_server_config": {"cert_file": "server.crt", "key_file": str(key)},
            "basic_auth_users": {"prometheus": HASH},
            "http_server_config": {"headers": {"X-Frame-Options": "deny"}},
        },
    )
    config = load_web_config(path)
    assert config.tls is not None and config.tls.cert_file == cert and config.scheme == "https"
    assert config.tls.client_auth_type == "NoClientCert"
    assert dict(config.headers) == {"X-Frame-Options": "deny"}
    assert webconfig.ssl_context(config.tls).verify_mode == ssl.CERT_NONE
    assert HASH not in repr(config)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"basic_auth_users": {"alice": "plain-password"}}, "basic_auth_users.alice: not a bcrypt hash"),
        ({"basic_auth_user": {"alice": HASH}}, "basic_auth_user: unknown field (allowed: basic_auth_users,"),
        (
            {"tls_server_config": {"cert_file": "missing.crt", "key_file": "missing.key"}},
            "tls_server_config.cert_file: ",
        ),
        ({"tls_server_config": {"cert_file": "server.crt"}}, "tls_server_config.key_file: required"),
        (
            {"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", "cipher_suites": []}},
            "tls_server_config.cipher_suites: not supported by OptiLab",
        ),
        (
            {
                "tls_server_config": {
                    "cert_file": "server.crt",
                    "key_file": "server.key",
                    "client_auth_type": "RequireAndVerifyClientCert",
                }
            },
            "tls_server_config.client_ca_file: required with client_auth_type RequireAndVerifyClientCert",
        ),
        (
            {"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", "min_version": "TLS10"}},
            "tls_server_config.min_version: 'TLS10' is not one of TLS12, TLS13",
        ),
        ({"rate_limit": {"interval": "1s"}}, "rate_limit: not supported by OptiLab"),
        (["not", "a", "mapping"], "must be a mapping"),
    ],
)
def test_bad_web_configs_name_the_field(tmp_path: Path, doc: object, message: str) -> None:
    self_signed(tmp_path)
    with pytest.raises(WebConfigError, match="^" + str(tmp_path / "web.yml").replace(".", r"\.")) as caught:
        load_web_config(write(tmp_path / "web.yml", doc))
    assert message in str(caught.value)
    assert "plain-password" not in str(caught.value)


def test_a_certificate_that_does_not_match_its_key_fails_at_start(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cert, _ = self_signed(tmp_path / "a")
    _, other_key = self_signed(tmp_path / "b")
    config = load_web_config(
        write(tmp_path / "web.yml", {"tls_server_config": {"cert_file": str(cert), "key_file": str(other_key)}})
    )
    with pytest.raises(WebConfigError, match=re.escape("tls_server_config.cert_file/key_file: cannot load")):
        webconfig.ssl_context(config.tls)  # type: ignore[arg-type]


def test_basic_auth_pays_bcrypt_once_per_good_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = webconfig.bcrypt.checkpw
    monkeypatch.setattr(webconfig.bcrypt, "checkpw", lambda pw, hashed: calls.append(pw) or real(pw, hashed))
    auth = BasicAuth({"prometheus": HASH.encode()})
    for _ in range(5):
        assert auth.check(basic("prometheus", "s3cret-pass")) == "prometheus"
    assert len(calls) == 1
    for _ in range(2):  # failures are never cached: guessing keeps paying bcrypt
        assert auth.check(basic("prometheus", "wrong")) is None
        assert auth.check(basic("mallory", "s3cret-pass")) is None
    assert len(calls) == 5
    assert auth.check("Basic !!!") is None and auth.check("Bearer x") is None and auth.check(None) is None


def test_bcrypt_can_run_off_the_event_loop() -> None:
    """The exporter hands bcrypt to gevent's threadpool (``offload``); the result is the same."""
    ran: list[str] = []

    def offload(func: Callable, args: tuple) -> bool:
        ran.append(func.__name__)
        return func(*args)

    auth = BasicAuth({"prometheus": HASH.encode()}, offload=offload)
    assert auth.check(basic("prometheus", "s3cret-pass")) == "prometheus"
    assert auth.check(basic("prometheus", "wrong")) is None
    assert ran == ["checkpw", "checkpw"]


# -- lifecycle endpoints ---------------------------------------------------------------------------


def test_lifecycle_endpoints_and_auth_in_front_of_any_app() -> None:
    def app(environ: dict, start_response: Callable) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"app\n"]

    state = {"ready": False, "reload": (False, "bad inventory")}
    config = webconfig.WebConfig("web.yml", None, {"u": HASH.encode()}, (("X-Test", "1"),))
    client = Client(
        ToolkitMiddleware(app, config, "Svc", ready=lambda: (state["ready"], "db down"), reload=lambda: state["reload"])
    )
    denied = client.get("/-/healthy")
    assert denied.status_code == 401 and denied.headers["WWW-Authenticate"] == 'Basic realm="Svc"'
    auth = {"Authorization": basic("u", "s3cret-pass")}
    healthy = client.get("/-/healthy", headers=auth)
    assert healthy.status_code == 200 and healthy.text == "Svc is Healthy.\n" and healthy.headers["X-Test"] == "1"
    assert client.get("/-/ready", headers=auth).status_code == 503
    state["ready"] = True
    assert client.get("/-/ready", headers=auth).text == "Svc is Ready.\n"
    assert client.get("/-/reload", headers=auth).status_code == 405
    failed = client.post("/-/reload", headers=auth)
    assert failed.status_code == 500 and "bad inventory" in failed.text
    state["reload"] = (True, "")
    assert client.post("/-/reload", headers=auth).status_code == 200
    assert client.get("/anything", headers=auth).text == "app\n"


def test_a_changed_web_config_applies_to_the_next_request_and_a_broken_one_is_kept_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def app(environ: dict, start_response: Callable) -> list[bytes]:
        start_response("200 OK", [])
        return [b"app\n"]

    path = write(tmp_path / "web.yml", {"basic_auth_users": {"old": HASH}})
    client = Client(ToolkitMiddleware(app, load_web_config(path), "Svc", recheck_s=0))
    assert client.get("/", headers={"Authorization": basic("old", "s3cret-pass")}).status_code == 200
    write(path, {"basic_auth_users": {"new": HASH}})
    os.utime(path, ns=(1, 1))  # a different mtime, whatever the clock's resolution
    assert client.get("/", headers={"Authorization": basic("old", "s3cret-pass")}).status_code == 401
    assert client.get("/", headers={"Authorization": basic("new", "s3cret-pass")}).status_code == 200
    write(path, {"basic_auth_users": {"new": "plain"}})
    os.utime(path, ns=(2, 2))
    with caplog.at_level(logging.ERROR, logger="optilab.toolkit.wsgi"):
        assert client.get("/", headers={"Authorization": basic("new", "s3cret-pass")}).status_code == 200
    assert "web config not reloaded; keeping the running one" in caplog.text
    assert "basic_auth_users.new: not a bcrypt hash" in caplog.text


# -- the real thing --------------------------------------------------------------------------------


def https_get(url: str, cafile: Path, headers: dict[str, str] | None = None) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=str(cafile))
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_real_prometheus_scrapes_the_exporter_over_tls_with_basic_auth(
    sshd: Sshd, prometheus_factory: Callable[..., Peer], tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    web = write(
        tmp_path / "web.yml",
        {"tls_server_config": {"cert_file": str(cert), "key_file": str(key)}, "basic_auth_users": {"prometheus": HASH}},
    )
    config = write(tmp_path / "inventory.yml", inventory(sshd))
    service, port = exporter_service(tmp_path, config, web, "--log.level", "DEBUG", "--log.format", "json")
    url = f"https://127.0.0.1:{port}"
    try:
        auth = {"Authorization": basic("prometheus", "s3cret-pass")}
        service.wait_ready(lambda: https_get(f"{url}/-/ready", cert, auth)[0] == 200)
        assert https_get(f"{url}/metrics", cert)[0] == 401
        assert https_get(f"{url}/metrics", cert, {"Authorization": basic("prometheus", "nope")})[0] == 401
        status, body = https_get(f"{url}/metrics", cert, auth)
        assert status == 200 and 'optilab_build_info{component="exporter"' in body
        assert "process_resident_memory_bytes" in body
        target = f"127.0.0.1:{sshd.port}"
        job = {
            "scheme": "https",
            "tls_config": {"ca_file": str(cert)},
            "basic_auth": {"username": "prometheus", "password": "s3cret-pass"},
            "scrape_interval": "1s",
            "scrape_timeout": "1s",
        }
        prometheus = prometheus_factory(
            {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "node",
                        "metrics_path": "/probe",
                        "params": {"target": [target]},
                        "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                        **job,
                    },
                    {"job_name": "optilab-exporter", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}], **job},
                ],
            }
        )

        def scraped() -> bool:
            found = {r["metric"]["job"]: r["value"][1] for r in query(prometheus.url, "up")}
            probe = query(prometheus.url, 'optilab_probe_success{job="node"}')
            return found == {"node": "1", "optilab-exporter": "1"} and [r["value"][1] for r in probe] == ["1"]

        wait_for(scraped, timeout=30, interval=0.5, what="Prometheus scraping through TLS and basic auth")
        assert query(prometheus.url, 'optilab_build_info{job="optilab-exporter"}')
        reload_status, _ = https_get(f"{url}/-/reload", cert, auth)
        assert reload_status == 405  # GET; POST below
        request = urllib.request.Request(f"{url}/-/reload", method="POST", headers=auth)  # noqa: S310
        with urllib.request.urlopen(  # noqa: S310 - loopback
            request,
            timeout=10,
            context=ssl.create_default_context(cafile=str(cert)),
        ) as response:
            assert response.status == 200
        records = [json.loads(line) for line in service.log().splitlines() if line.startswith("{")]
        assert any(r["msg"].startswith("listening on https://127.0.0.1") for r in records)
        assert any(r["msg"].startswith("config reloaded") for r in records)
        assert "s3cret-pass" not in service.log()
    finally:
        service.stop()


def test_a_password_being_checked_does_not_stall_the_exporters_other_requests(tmp_path: Path) -> None:
    """bcrypt runs in gevent's threadpool: while wrong passwords are verified (never cached), a
    scrape with remembered credentials answers in a fraction of one bcrypt round."""
    slow_hash = bcrypt.hashpw(b"s3cret-pass", bcrypt.gensalt(rounds=12))
    started = time.perf_counter()
    bcrypt.checkpw(b"x", slow_hash)
    one_round = time.perf_counter() - started
    web = write(tmp_path / "web.yml", {"basic_auth_users": {"prometheus": slow_hash.decode()}})
    service, port = exporter_service(tmp_path, unreachable_inventory(tmp_path), web)
    url = f"http://127.0.0.1:{port}"

    def fetch(password: str) -> int:
        headers = {"Authorization": basic("prometheus", password)}
        request = urllib.request.Request(f"{url}/-/healthy", headers=headers)  # noqa: S310 - loopback
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        service.wait_ready(lambda: fetch("s3cret-pass") == 200, timeout=30)  # now remembered
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            wrong = [pool.submit(fetch, "wrong") for _ in range(3)]
            time.sleep(min(0.05, one_round / 4))  # the wrong ones are being verified now
            started = time.perf_counter()
            assert fetch("s3cret-pass") == 200
            good = time.perf_counter() - started
            assert [f.result() for f in wrong] == [401, 401, 401]
        assert good < one_round / 2, f"a remembered scrape took {good:.3f}s while bcrypt ran ({one_round:.3f}s)"
    finally:
        service.stop()


def test_client_certificates_are_required_when_a_client_ca_is_given(tmp_path: Path) -> None:
    """client_ca_file without client_auth_type means RequireAndVerifyClientCert, as in exporter-toolkit."""
    cert, key = self_signed(tmp_path)  # a CA certificate: it serves and signs the client's too
    web = write(
        tmp_path / "web.yml",
        {"tls_server_config": {"cert_file": str(cert), "key_file": str(key), "client_ca_file": str(cert)}},
    )
    assert load_web_config(web).tls.client_auth_type == "RequireAndVerifyClientCert"  # type: ignore[union-attr]
    service, port = exporter_service(tmp_path, unreachable_inventory(tmp_path), web)

    def fetch(with_cert: bool) -> int:
        context = ssl.create_default_context(cafile=str(cert))
        if with_cert:
            context.load_cert_chain(cert, key)
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/-/healthy", timeout=10, context=context) as response:
            return response.status

    try:
        service.wait_ready(lambda: fetch(True) == 200, timeout=30)
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            fetch(False)
    finally:
        service.stop()

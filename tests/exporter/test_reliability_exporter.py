"""Issue 11's exporter items against the real exporter (a child process) and labsim's real SSH hosts.

* overload is shed openly (503, counted) and never blamed on the hosts; concurrent probes of one
  host share one collection and count once; slow readers hold no collection resources (item 2);
* a deadline firing inside paramiko's buffer locks costs one call, not the request (item 3);
* a reload with a key file that cannot log in is refused, and an SSH change ends auth backoff (6);
* an answer is complete within the scrape timeout header (item 8's exporter part).

Health intervals are long (1 h) so that any wrongly degraded host stays visible until the end.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from optilab.labsim.lab import Lab
from tests.fixtures.procs import Service, free_port, http_ok, wait_for
from tests.support.paths import REPO

HOSTS = 30
HEALTH = {
    "degraded_after": 1,
    "offline_after": 2,
    "dead_after": 3,
    "degraded_interval": "1h",
    "offline_interval": "1h",
    "dead_interval": "1h",
    "jitter": 0,
}


class Exporter:
    def __init__(self, url: str, config_path: Path, service: Service) -> None:
        self.url, self.config_path, self.service = url, config_path, service

    def get(self, path: str, header: float | None = None, timeout: float = 20.0) -> tuple[int, str]:
        headers = {"X-Prometheus-Scrape-Timeout-Seconds": str(header)} if header else {}
        request = urllib.request.Request(self.url + path, headers=headers)  # noqa: S310 - loopback
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        _, text = self.get("/metrics")
        return sum(
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == name and labels.items() <= s.labels.items()
        )

    def write_config(self, raw: dict[str, Any], stamp: int) -> None:
        self.config_path.write_text(yaml.safe_dump(raw))
        os.utime(self.config_path, ns=(stamp, stamp))  # a new mtime even within one clock tick


def probe_answers(text: str) -> dict[str, tuple[float, str | None]]:
    """instance (or "" for a single target) -> (success, reason)."""
    out: dict[str, tuple[float, str | None]] = {}
    reasons: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "optilab_probe_success":
                out[s.labels.get("instance", "")] = (s.value, None)
            elif s.name == "optilab_probe_error_info":
                reasons[s.labels.get("instance", "")] = s.labels["reason"]
    return {k: (v, reasons.get(k)) for k, (v, _) in out.items()}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.start(tmp_path_factory.mktemp("rel") / "lab", hosts=HOSTS, departments=3, port=free_port()) as lab:
        yield lab


@pytest.fixture
def lab_clean(lab: Lab) -> Iterator[Lab]:
    lab.set_fault("all", "none")
    yield lab
    lab.set_fault("all", "none")


def base_config(lab: Lab, **sections: Any) -> dict[str, Any]:
    raw = yaml.safe_load(lab.inventory.read_text())
    raw["ssh"].update(connect_timeout="2s", command_timeout="10s")
    raw.update(health=HEALTH, probe={"timeout": "3s"}, **sections)
    return raw


@pytest.fixture
def start_exporter(tmp_path: Path) -> Iterator[Callable[..., Exporter]]:
    services: list[Service] = []

    def start(raw: dict[str, Any], *flags: str) -> Exporter:
        workdir = tmp_path / f"exporter{len(services)}"
        workdir.mkdir()
        config = workdir / "inventory.yaml"
        config.write_text(yaml.safe_dump(raw))
        url = f"http://127.0.0.1:{free_port()}"
        service = Service(
            [sys.executable, "-m", "optilab.exporter", "--config", str(config), "--listen", url[7:], *flags],
            workdir / "exporter.log",
            cwd=REPO,
        )
        services.append(service)
        service.wait_ready(lambda: http_ok(url + "/metrics"))
        return Exporter(url, config, service)

    yield start
    for service in services:
        service.stop()


def host_states(exporter: Exporter) -> dict[str, float]:
    return {
        state: exporter.metric("optilab_exporter_hosts", state=state)
        for state in ("healthy", "degraded", "offline", "dead")
    }


# -- item 2: overload is shed openly and never blamed on the hosts ---------------------------------


def test_concurrent_whole_lab_fan_outs_shed_openly_and_degrade_no_host(
    lab_clean: Lab, start_exporter: Callable[..., Exporter]
) -> None:
    lab_clean.set_fault(lab_clean.hosts[0]["ip"], "slow", delay=1.0)  # every fan-out takes ~1 s
    exporter = start_exporter(base_config(lab_clean), "--web.max-requests", "3")
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: exporter.get("/probe?all=1", header=5), range(12)))
    statuses = [status for status, _ in answers]
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 1, statuses
    for status, text in answers:
        if status == 200:
            assert [v for v, _ in probe_answers(text).values()] == [1.0] * HOSTS
        else:
            assert "--web.max-requests" in text
    assert exporter.metric("optilab_exporter_requests_shed_total") == statuses.count(503)
    assert host_states(exporter) == {"healthy": HOSTS, "degraded": 0, "offline": 0, "dead": 0}


def test_overlapping_fan_outs_share_each_hosts_collection(
    lab_clean: Lab, start_exporter: Callable[..., Exporter]
) -> None:
    slow = lab_clean.hosts[1]["ip"]
    lab_clean.set_fault(slow, "slow", delay=1.0)
    exporter = start_exporter(base_config(lab_clean), "--web.max-requests", "0")
    execs = next(h["execs"] for h in lab_clean.status() if h["ip"] == slow)
    paths = [
        "/probe?all=1",
        "/probe?department=" + lab_clean.hosts[1]["department"],
        f"/probe?target={slow}:{lab_clean.port}",
    ]
    with ThreadPoolExecutor(9) as pool:
        answers = list(pool.map(lambda i: exporter.get(paths[i % 3], header=5), range(9)))
    assert [status for status, _ in answers] == [200] * 9
    assert all(v == 1.0 for _, text in answers for v, _ in probe_answers(text).values())
    slow_execs = next(h["execs"] for h in lab_clean.status() if h["ip"] == slow) - execs
    assert 1 <= slow_execs < 9  # shared: nine requests asked for the slow host at once
    assert exporter.metric("optilab_exporter_probes_shared_total") >= 1
    assert host_states(exporter)["healthy"] == HOSTS


def test_concurrent_probes_of_a_hanging_host_count_as_one_failure(
    lab_clean: Lab, start_exporter: Callable[..., Exporter]
) -> None:
    hung = lab_clean.hosts[2]["ip"]
    lab_clean.set_fault(hung, "hang")
    exporter = start_exporter(base_config(lab_clean))
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: exporter.get(f"/probe?target={hung}:{lab_clean.port}", header=2), range(6)))
    assert [probe_answers(text)[""] for _, text in answers] == [(0.0, "timeout")] * 6
    # six failures would make it dead (dead_after 3); shared, they are one
    assert exporter.metric("optilab_exporter_health_transitions_total", to="degraded") == 1
    assert host_states(exporter) == {"healthy": HOSTS - 1, "degraded": 1, "offline": 0, "dead": 0}
    assert exporter.metric("optilab_exporter_ssh_dials_total") == 1


def slow_reader(url: str, seconds: float) -> int:
    """GET the whole lab and read it 2 KB at a time for ``seconds`` (bounded), then hang up."""
    host, port = url[7:].rsplit(":", 1)
    received = 0
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(
            b"GET /probe?all=1 HTTP/1.1\r\nHost: x\r\nX-Prometheus-Scrape-Timeout-Seconds: 5\r\n"
            b"Connection: close\r\n\r\n"
        )
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            chunk = sock.recv(2048)
            if not chunk:
                break
            received += len(chunk)
            time.sleep(0.1)
    return received


def test_slow_readers_hold_no_collection_resources_and_degrade_no_host(
    lab_clean: Lab, start_exporter: Callable[..., Exporter]
) -> None:
    exporter = start_exporter(base_config(lab_clean))
    assert exporter.get("/probe?all=1", header=5)[0] == 200  # warm: every host has its pooled connection
    with ThreadPoolExecutor(8) as pool:
        readers = [pool.submit(slow_reader, exporter.url, 6.0) for _ in range(8)]
        # the answers are rendered and the writes crawl: no request holds a place any more
        answered = lambda: exporter.metric("optilab_exporter_http_requests_total", path="/probe", code="200")  # noqa: E731
        wait_for(
            lambda: answered() == 1 + 8 and exporter.metric("optilab_exporter_requests_in_flight") == 0,
            timeout=4,
            what="the slow readers' answers to be under way with no place held",
        )
        singles = [exporter.get(f"/probe?target={h['ip']}:{lab_clean.port}", header=2) for h in lab_clean.hosts[3:13]]
        assert all(probe_answers(text)[""] == (1.0, None) for _, text in singles)
        assert any(not reader.done() for reader in readers)  # still reading while probes went on
        received = [reader.result(timeout=30) for reader in readers]
    assert all(size > 0 for size in received)
    assert exporter.metric("optilab_exporter_requests_shed_total") == 0
    assert host_states(exporter)["healthy"] == HOSTS


# -- item 8: the whole answer inside the scrape timeout --------------------------------------------


def test_a_probe_of_a_slow_host_answers_inside_the_scrape_timeout_under_load(
    lab_clean: Lab, start_exporter: Callable[..., Exporter]
) -> None:
    slow = lab_clean.hosts[4]["ip"]
    lab_clean.set_fault(slow, "slow", delay=5.0)
    exporter = start_exporter(base_config(lab_clean), "--web.max-requests", "0")
    with ThreadPoolExecutor(4) as pool:  # concurrent fan-outs keep the exporter busy meanwhile
        departments = sorted({h["department"] for h in lab_clean.hosts})
        load = [pool.submit(exporter.get, f"/probe?department={d}", 5) for d in departments]
        started = time.monotonic()
        status, text = exporter.get(f"/probe?target={slow}:{lab_clean.port}", header=1.2)
        elapsed = time.monotonic() - started
        for job in load:
            job.result(timeout=30)
    assert status == 200 and probe_answers(text)[""][0] == 0.0
    assert probe_answers(text)[""][1] in ("timeout", "overload")
    assert elapsed < 1.2, f"answered after {elapsed:.2f} s against a 1.2 s scrape timeout"


# -- item 6: reloads that would break auth --------------------------------------------------------


def test_a_reload_with_a_missing_key_file_is_refused_and_probes_go_on(
    lab_clean: Lab, start_exporter: Callable[..., Exporter], tmp_path: Path
) -> None:
    raw = base_config(lab_clean)
    exporter = start_exporter(raw)
    target = f"/probe?target={lab_clean.hosts[5]['ip']}:{lab_clean.port}"
    assert probe_answers(exporter.get(target)[1])[""] == (1.0, None)
    missing = tmp_path / "no_such_key"
    exporter.write_config({**raw, "ssh": {**raw["ssh"], "key_file": str(missing)}}, stamp=1)
    assert probe_answers(exporter.get(target)[1])[""] == (1.0, None)  # the running config stayed
    assert exporter.metric("optilab_exporter_config_last_reload_successful") == 0
    assert exporter.metric("optilab_exporter_config_reloads_total", result="failure") == 1
    lines = [line for line in exporter.service.log().splitlines() if "reload failed" in line]
    assert len(lines) == 1 and f"ssh.key_file: {missing} is not readable" in lines[0]
    exporter.write_config(raw, stamp=2)
    exporter.get(target)
    assert exporter.metric("optilab_exporter_config_last_reload_successful") == 1
    assert host_states(exporter)["healthy"] == HOSTS


def wrong_key(path: Path) -> Path:
    path.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, capture_output=True)
    return path


@pytest.mark.parametrize("fix", ["config", "key_in_place"])
def test_fixing_the_ssh_settings_ends_the_auth_backoff(
    lab_clean: Lab, start_exporter: Callable[..., Exporter], tmp_path: Path, fix: str
) -> None:
    key = wrong_key(tmp_path / "id_wrong")  # a real key the lab does not accept
    raw = base_config(lab_clean)
    good_key = raw["ssh"]["key_file"]
    exporter = start_exporter({**raw, "ssh": {**raw["ssh"], "key_file": str(key)}})
    target = f"/probe?target={lab_clean.hosts[6]['ip']}:{lab_clean.port}"
    assert probe_answers(exporter.get(target)[1])[""] == (0.0, "auth")
    assert probe_answers(exporter.get(target)[1])[""] == (0.0, "backoff")  # waits out 1 h
    if fix == "config":
        exporter.write_config(raw, stamp=3)
    else:  # the same path, now holding the right key
        key.write_bytes(Path(good_key).read_bytes())
        os.utime(key, ns=(4, 4))
    assert probe_answers(exporter.get(target)[1])[""] == (1.0, None)
    assert exporter.metric("optilab_exporter_config_last_reload_successful") == 1
    assert host_states(exporter)["healthy"] == HOSTS


# -- item 3: a deadline inside paramiko's buffer lock ---------------------------------------------

LOCK_RACE = r"""
from gevent import monkey; monkey.patch_all()
import json, sys, time
from pathlib import Path
import gevent, paramiko
from optilab.exporter.config import PoolSettings, SshSettings
from optilab.exporter.targets import Target
from optilab.exporter.ssherror import SshError
from optilab.exporter.sshpool import SshPool

args = json.loads(sys.argv[1])
ssh = SshSettings(user="optilab", key_file=Path(args["key_file"]), known_hosts=Path(args["known_hosts"]),
                  connect_timeout=5, command_timeout=0.3)
pool, target = SshPool(ssh, PoolSettings()), Target(args["ip"], args["port"])
opened = paramiko.Transport.open_session

def open_session(transport, *a, **kw):
    # the transport greenlet feeding this channel holds its buffer lock just as the probe's deadline
    # fires (what a loaded loop does): the deadline's Timeout meets paramiko inside BufferedPipe.read
    channel = opened(transport, *a, **kw)
    def hold(lock=channel.in_buffer._lock):
        gevent.sleep(0.1)
        lock.acquire()
        gevent.sleep(DEADLINE[0] - time.monotonic())  # let go just as the deadline fires
        try:
            lock.release()
        except RuntimeError:
            pass
    gevent.spawn(hold)
    return channel

DEADLINE = [0.0]

def run(seconds):
    DEADLINE[0] = time.monotonic() + seconds
    try:
        return pool.run(target, "uname -n", DEADLINE[0])
    except SshError as exc:
        return "error:" + exc.reason
    except Exception as exc:
        return "escaped:" + repr(exc)

run(5.0)  # a pooled connection first
paramiko.Transport.open_session = open_session
out = {"raced": [run(0.5) for _ in range(3)]}
paramiko.Transport.open_session = opened
print("FIXED", flush=True)
sys.stdin.readline()
out["after"] = run(5.0)
out["closed"] = dict(pool.stats.closed)
print(json.dumps(out), flush=True)
"""


def test_a_deadline_inside_paramikos_buffer_lock_fails_that_call_only(lab_clean: Lab) -> None:
    host = lab_clean.hosts[7]["ip"]
    lab_clean.set_fault(host, "slow", delay=3.0)  # the read waits in BufferedPipe.read when the lock race hits
    args = {
        "ip": host,
        "port": lab_clean.port,
        "key_file": str(lab_clean.key_file),
        "known_hosts": str(lab_clean.known_hosts),
    }
    with subprocess.Popen(
        [sys.executable, "-c", LOCK_RACE, json.dumps(args)],
        cwd=REPO,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    ) as driver:
        assert driver.stdout is not None and driver.stdin is not None
        assert driver.stdout.readline().strip() == "FIXED"
        lab_clean.set_fault(host, "none")
        driver.stdin.write("\n")
        driver.stdin.flush()
        out = json.loads(driver.stdout.readline())
        driver.wait(30)
    # before the fix: "escaped:RuntimeError('Semaphore released too many times')" reached the fan-out
    assert out["raced"] == ["error:timeout"] * 3
    assert out["after"] != "" and not out["after"].startswith(("error", "escaped"))
    assert out["closed"].get("retired", 0) >= 3  # a connection whose locks were hit is never reused

"""The real exporter process (``python -m optilab.exporter``) probing a real sshd on this very machine.

The exporter runs as a subprocess because it must be gevent-patched from its first import; the test
talks HTTP to it and reads its /metrics, and counts handshakes in sshd's own log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.procs import wait_for
from tests.fixtures.sshd import Sshd
from tests.support.exporter_proc import Exporter, inventory, promtool_problems
from tests.support.paths import REPO


def meminfo_total_bytes() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return float(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def test_values_agree_with_this_machines_proc(sshd: Sshd, exporter_factory: Callable[..., Exporter]) -> None:
    exporter = exporter_factory(inventory(sshd))
    path = f"/probe?target=127.0.0.1:{sshd.port}"
    assert exporter.samples(path, "node_memory_MemTotal_bytes") == [({}, meminfo_total_bytes())]
    [(uname, _)] = exporter.samples(path, "node_uname_info")
    assert uname["nodename"] == os.uname().nodename and uname["release"] == os.uname().release
    cpus = {labels["cpu"] for labels, _ in exporter.samples(path, "node_cpu_seconds_total")}
    assert len(cpus) == os.cpu_count()
    assert exporter.samples(path, "optilab_probe_success") == [({}, 1.0)]


def test_collect_filter_serves_the_chosen_collectors_of_the_real_host(
    sshd: Sshd, exporter_factory: Callable[..., Exporter]
) -> None:
    """``collect[]`` as a Prometheus job's ``params`` sends it: only those collectors' families (and
    the probe's own), from the real host, beside an unfiltered job on the same pooled connection."""
    exporter = exporter_factory(inventory(sshd))
    target = f"/probe?target=127.0.0.1:{sshd.port}"
    status, text = exporter.get(target + "&collect[]=meminfo&collect[]=loadavg")
    assert status == 200, text
    names = {family.name for family in text_string_to_metric_families(text) if family.samples}
    assert {"node_memory_MemTotal_bytes", "node_load1", "node_scrape_collector_success"} <= names
    foreign = sorted(n for n in names if n.startswith("node_") and not n.startswith(("node_memory_", "node_load")))
    assert foreign == ["node_scrape_collector_duration_seconds", "node_scrape_collector_success"]
    assert exporter.samples(target + "&collect[]=meminfo", "node_memory_MemTotal_bytes") == [
        ({}, meminfo_total_bytes())
    ]
    assert exporter.samples(target, "node_uname_info") != []  # the unfiltered job still gets everything
    status, text = exporter.get(target + "&collect[]=interrupts")
    assert status == 400 and "not enabled" in text
    assert exporter.metric("optilab_exporter_ssh_dials_total", result="success") == 1


def test_one_handshake_serves_many_scrapes(sshd: Sshd, exporter_factory: Callable[..., Exporter]) -> None:
    exporter = exporter_factory(inventory(sshd))
    path = f"/probe?target=127.0.0.1:{sshd.port}"
    first = exporter.samples(path, "system_cpu_usage")
    assert first == []  # CPU percent needs a previous scrape of this host
    for _ in range(9):
        assert exporter.samples(path, "optilab_probe_success") == [({}, 1.0)]
    [(_, cpu)] = exporter.samples(path, "system_cpu_usage")
    assert 0.0 <= cpu <= 100.0
    assert exporter.metric("optilab_exporter_ssh_dials_total", result="success") == 1
    assert exporter.metric("optilab_exporter_ssh_execs_total") == 12  # 11 probes + 1 slow-tier refresh
    assert exporter.metric("optilab_exporter_ssh_pooled_connections") == 1
    assert sshd.accepted_logins() == 1


def test_reconnects_after_sshd_restart_and_refuses_a_changed_host_key(
    sshd: Sshd, exporter_factory: Callable[..., Exporter]
) -> None:
    exporter = exporter_factory(inventory(sshd, health={"degraded_interval": "0s"}))
    path = f"/probe?target=127.0.0.1:{sshd.port}"
    known_hosts = sshd.known_hosts.read_text()
    assert exporter.samples(path, "optilab_probe_success") == [({}, 1.0)]
    sshd.restart()
    assert exporter.samples(path, "optilab_probe_success") == [({}, 1.0)]
    assert exporter.metric("optilab_exporter_ssh_dials_total", result="success") == 2
    sshd.restart(new_host_key=True)
    assert exporter.samples(path, "optilab_probe_error_info") == [({"reason": "hostkey"}, 1.0)]
    assert exporter.samples(path, "system_status") == [
        ({"hostname": os.uname().nodename, "ip": "127.0.0.1", "department": "physics"}, 0.0)
    ]
    assert exporter.metric("optilab_exporter_ssh_dials_total", result="hostkey") == 2
    assert sshd.known_hosts.read_text() == known_hosts
    assert sshd.accepted_logins() == 2  # the impostor never saw a login


def test_unknown_targets_get_400_and_are_never_dialled(sshd: Sshd, exporter_factory: Callable[..., Exporter]) -> None:
    exporter = exporter_factory(inventory(sshd))
    status, body = exporter.get("/probe?target=127.0.0.2:22")
    assert status == 400 and "not in the inventory" in body
    assert exporter.get("/probe?target=127.0.0.1:1;id")[0] == 400
    assert exporter.metric("optilab_exporter_ssh_dials_total") == 0


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections (kernel backlog) and never says a word: a hung host."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def test_a_hanging_host_answers_in_time_then_backs_off(
    sshd: Sshd, silent_port: int, exporter_factory: Callable[..., Exporter]
) -> None:
    config = inventory(sshd)
    config["departments"]["physics"]["hosts"].append(f"127.0.0.1:{silent_port}")
    config["ssh"]["connect_timeout"] = "30s"  # the scrape timeout, not the connect timeout, must cut it
    exporter = exporter_factory(config)
    path = f"/probe?target=127.0.0.1:{silent_port}"
    timeout = {"X_Prometheus_Scrape_Timeout_Seconds": "1.5"}
    status, text = exporter.get(path, headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"}, timeout=10)
    assert status == 200
    families = {s.name: s for f in text_string_to_metric_families(text) for s in f.samples}
    assert families["optilab_probe_error_info"].labels == {"reason": "timeout"}
    # cut by the scrape's deadline (1.5 s header - 0.5 s offset), not by the 30 s connect timeout
    assert families["optilab_probe_duration_seconds"].value < 30
    assert exporter.samples(path, "optilab_probe_error_info", **timeout) == [({"reason": "backoff"}, 1.0)]
    # the whole-lab fan-out is not held up by the hung host either
    fan_out = exporter.samples("/probe?all=1", "optilab_probe_success", **timeout)
    assert sorted(value for _, value in fan_out) == [0.0, 1.0]


def test_config_reload_on_change_keeps_the_old_config_when_the_new_one_is_bad(
    sshd: Sshd, exporter_factory: Callable[..., Exporter]
) -> None:
    config = inventory(sshd)
    exporter = exporter_factory(config)
    config["departments"]["chemistry"] = {"hosts": [{"target": "127.0.2.9", "hostname": "chem-09"}]}
    exporter.config_path.write_text(yaml.safe_dump(config))
    os.utime(exporter.config_path, ns=(1, 1))  # a different mtime even within one clock tick
    status, body = exporter.get("/sd")
    assert status == 200 and '"chem-09"' in body
    exporter.config_path.write_text("departments:\n  chemistry: {subnets: ['127.0.2.300/24']}\n")
    os.utime(exporter.config_path, ns=(2, 2))
    status, body = exporter.get("/sd")
    assert status == 200 and '"chem-09"' in body  # the running config stayed
    assert exporter.metric("optilab_exporter_config_reloads_total", result="failure") == 1
    wait_for(
        lambda: "departments.chemistry.subnets[0]: '127.0.2.300/24' is not a CIDR network" in exporter.service.log(),
        timeout=5,
        what="the reload error in the log",
    )


def test_a_passphrase_from_the_environment_works_and_never_reaches_the_log(
    sshd: Sshd, exporter_factory: Callable[..., Exporter], tmp_path: Path
) -> None:
    secret = "correct-horse-battery-7731"
    key = tmp_path / "locked_key"
    key.write_bytes(sshd.key_file.read_bytes())
    key.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-P", "", "-N", secret, "-f", str(key)], check=True, capture_output=True)
    config = inventory(sshd)
    config["ssh"].update({"key_file": str(key), "passphrase_env": "LAB_KEY_PASSPHRASE"})
    exporter = exporter_factory(config, env={"LAB_KEY_PASSPHRASE": secret})
    path = f"/probe?target=127.0.0.1:{sshd.port}"
    assert exporter.samples(path, "optilab_probe_success") == [({}, 1.0)]
    exporter.service.signal(signal.SIGHUP)  # a reload re-reads the passphrase and logs a summary
    wait_for(
        lambda: exporter.metric("optilab_exporter_config_reloads_total", result="success") == 1,
        timeout=5,
        what="the SIGHUP reload",
    )
    assert exporter.samples(path, "optilab_probe_success") == [({}, 1.0)]
    assert secret not in exporter.service.log()


def test_exposition_passes_promtool(sshd: Sshd, exporter_factory: Callable[..., Exporter]) -> None:
    exporter = exporter_factory(inventory(sshd))
    for path in (f"/probe?target=127.0.0.1:{sshd.port}", "/probe?all=1", "/probe?department=physics", "/metrics"):
        status, text = exporter.get(path)
        assert status == 200
        assert promtool_problems(text) == [], path


def test_scan_is_a_subcommand() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "optilab.exporter", "scan", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 0 and "CIDR" in result.stdout


def test_check_validates_and_warns_about_what_the_file_cannot_show(tmp_path: Path) -> None:
    config = tmp_path / "inventory.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "ssh": {
                    "user": "optilab",
                    "key_file": str(tmp_path / "missing_key"),
                    "known_hosts": str(tmp_path / "missing_known_hosts"),
                },
                "departments": {"physics": {"subnets": ["127.0.1.0/29"]}},
            }
        )
    )
    ok = subprocess.run(
        [sys.executable, "-m", "optilab.exporter", "--config", str(config), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert ok.returncode == 0 and "OK, 6 targets" in ok.stdout
    assert "ssh.key_file" in ok.stderr and "ssh.known_hosts" in ok.stderr
    config.write_text("ssh: {user: optilab, key_file: k}\ndepartments: {physics: {subnets: [nonsense]}}\n")
    bad = subprocess.run(
        [sys.executable, "-m", "optilab.exporter", "--config", str(config), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert bad.returncode == 2
    assert f"{config}: departments.physics.subnets[0]: 'nonsense' is not a CIDR network" in bad.stderr

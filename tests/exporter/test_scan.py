"""``optilab-exporter scan``: bounded networks, a merge that loses nothing, and a real scan of a
simulated lab on loopback (127.0.1.0/24 with a few hosts on a free port)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pika
import pytest
import yaml

from optilab.exporter.config import SshSettings, load_config, parse_config
from optilab.exporter.scan import Found, check_network, explain, identify, merge_inventory
from optilab.exporter.targets import Target
from optilab.labsim.lab import Lab
from tests.fixtures.procs import free_port
from tests.fixtures.rabbitmq import AmqpNames, drain

SCAN = [sys.executable, "-m", "optilab.exporter", "scan"]  # the exporter's own dispatch of the subcommand


def run_scan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SCAN, *args], capture_output=True, text=True, timeout=60, check=False)


def test_network_size_is_bounded() -> None:
    assert len(check_network("127.0.1.0/24", allow_large=False)) == 254
    assert check_network("127.0.1.7/32", allow_large=False) == ["127.0.1.7"]
    with pytest.raises(ValueError, match="need --allow-large"):
        check_network("127.0.0.0/15", allow_large=False)
    assert len(check_network("127.0.0.0/15", allow_large=True)) == 2**17 - 2
    with pytest.raises(ValueError, match="is not a network"):
        check_network("127.0.1.300/24", allow_large=False)


def test_identify_reads_hostname_and_os() -> None:
    release = 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\n'
    target = Target("127.0.1.7", 22)
    assert identify("pc-7\n" + release, target) == Found(
        target, "pc-7", "Alpine Linux 3.20.3", os_type="Alpine Linux", os_version="3.20.3"
    )
    with pytest.raises(ValueError):
        identify("\nID=debian\n", target)


def test_merge_updates_known_hosts_and_keeps_everything_else() -> None:
    raw = {
        "ssh": {"user": "optilab", "port": 22, "key_file": "/k", "known_hosts": "/kh"},
        "probe": {"timeout": "4s"},
        "departments": {
            "physics": {"hosts": ["127.0.1.1", {"target": "127.0.1.2:2200", "hostname": "old"}]},
            "chemistry": {"subnets": ["127.0.1.16/28"]},
        },
    }
    found = [
        Found(Target("127.0.1.1", 22), "pc-01", "Debian"),  # known bare string -> gains a hostname
        Found(Target("127.0.1.2", 2200), "pc-02", "Debian"),  # known with a port -> renamed
        Found(Target("127.0.1.20", 22), "pc-20", "Rocky"),  # inside chemistry's subnet
        Found(Target("127.0.1.40", 22), "pc-40", "Alpine"),  # new -> --department
        Found(Target("127.0.1.41", 2222), "pc-41", "Ubuntu"),  # new on another port
        Found(Target("127.0.1.50", 22), error="hostkey"),  # not verified -> not added
    ]
    merged, added, updated = merge_inventory(raw, found, "discovered", 22)
    assert (added, updated) == (3, 2)
    assert merged["probe"] == {"timeout": "4s"}
    assert merged["departments"]["physics"]["hosts"] == [
        {"target": "127.0.1.1", "hostname": "pc-01", "os": "Debian"},
        {"target": "127.0.1.2:2200", "hostname": "pc-02", "os": "Debian"},
    ]
    assert merged["departments"]["chemistry"] == {
        "subnets": ["127.0.1.16/28"],
        "hosts": [{"target": "127.0.1.20", "hostname": "pc-20", "os": "Rocky"}],
    }
    assert merged["departments"]["discovered"]["hosts"] == [
        {"target": "127.0.1.40", "hostname": "pc-40", "os": "Alpine"},
        {"target": "127.0.1.41:2222", "hostname": "pc-41", "os": "Ubuntu"},
    ]
    config = parse_config(merged, "merged.yaml")
    assert config.inventory.hosts["127.0.1.20:22"].department == "chemistry"
    assert config.inventory.hosts["127.0.1.20:22"].os == "Rocky"
    assert "127.0.1.50:22" not in config.inventory.hosts
    assert merge_inventory(merged, found, "discovered", 22)[1:] == (0, 0)  # idempotent


def test_merge_updates_a_changed_os_and_keeps_one_the_scan_did_not_learn() -> None:
    raw = {
        "departments": {
            "physics": {
                "hosts": [
                    {"target": "127.0.1.1", "hostname": "pc-01", "os": "Debian GNU/Linux 11 (bullseye)"},
                    {"target": "127.0.1.2", "hostname": "pc-02", "os": "Alpine Linux v3.20"},
                ]
            }
        }
    }
    found = [
        Found(Target("127.0.1.1", 22), "pc-01", "Debian GNU/Linux 12 (bookworm)"),  # upgraded
        Found(Target("127.0.1.2", 22), "pc-02", None),
    ]  # os-release told nothing: keep what we had
    merged, added, updated = merge_inventory(raw, found, "physics", 22)
    assert (added, updated) == (0, 1)
    assert merged["departments"]["physics"]["hosts"] == [
        {"target": "127.0.1.1", "hostname": "pc-01", "os": "Debian GNU/Linux 12 (bookworm)"},
        {"target": "127.0.1.2", "hostname": "pc-02", "os": "Alpine Linux v3.20"},
    ]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    lab = Lab.start(tmp_path_factory.mktemp("scanlab"), hosts=5, departments=1, port=free_port())
    yield lab
    lab.stop()


def test_scan_of_a_simulated_lab_writes_a_valid_inventory(lab: Lab, tmp_path: Path) -> None:
    out = tmp_path / "inventory.yaml"
    lab.set_fault(lab.hosts[4]["ip"], "hostkey")  # its key no longer matches known_hosts
    try:
        result = run_scan(
            "127.0.1.0/24",
            "--port",
            str(lab.port),
            "--config",
            str(lab.inventory),
            "--out",
            str(out),
            "--department",
            "found",
        )
    finally:
        lab.set_fault(lab.hosts[4]["ip"], "none")
    assert result.returncode == 0, result.stderr
    assert "5 SSH ports open, 4 logged in; 4 added" in result.stderr
    assert f"{lab.hosts[4]['ip']}:{lab.port}  not added: hostkey" in result.stderr
    lab_ssh = load_config(lab.inventory).ssh
    assert (
        f"logging in as {lab_ssh.user} with key {lab_ssh.key_file}; host keys checked against {lab_ssh.known_hosts}"
    ) in result.stderr  # which files decided
    refused = next(line for line in result.stderr.splitlines() if "not added: hostkey" in line)
    assert str(lab_ssh.known_hosts) in refused, refused  # why, naming the file that refused it
    written = yaml.safe_load(out.read_text())["ssh"]
    assert Path(written["key_file"]).is_absolute() and Path(written["known_hosts"]).is_absolute()
    config = load_config(out)
    assert {str(t): e.hostname for t, e in config.inventory.hosts.items()} == {
        f"{h['ip']}:{lab.port}": h["hostname"] for h in lab.hosts[:4]
    }
    assert {e.department for e in config.inventory.hosts.values()} == {"found"}
    os_names = {f"{h['ip']}:{h['port']}": h["os"] for h in lab.status()}  # the simulated os-release
    assert {str(t): e.os for t, e in config.inventory.hosts.items()} == {
        target: os_names[target] for target in map(str, config.inventory.hosts)
    }
    assert all(os_names.values())
    before = yaml.safe_load(out.read_text())
    again = run_scan("127.0.1.0/29", "--port", str(lab.port), "--out", str(out), "--quiet")
    assert "0 added, 0 updated" in again.stderr, again.stderr
    assert yaml.safe_load(out.read_text()) == before


def test_scan_publishes_a_discovery_event_per_host_when_the_inventory_has_rabbitmq(
    lab: Lab, tmp_path: Path, amqp_url: str, amqp_names: AmqpNames
) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:  # what the consumer declares: the exchange, and a queue bound to every routing key
        channel = connection.channel()
        channel.exchange_declare(amqp_names.exchange, exchange_type="topic", durable=True)
        channel.queue_declare(amqp_names.queue, durable=True)
        channel.queue_bind(amqp_names.queue, amqp_names.exchange, routing_key="#")
    finally:
        connection.close()
    config = yaml.safe_load(lab.inventory.read_text())
    config["rabbitmq"] = {"url": amqp_url, "exchange": amqp_names.exchange}
    inventory = tmp_path / "with-rabbitmq.yaml"
    inventory.write_text(yaml.safe_dump(config))
    result = run_scan(
        "127.0.1.0/29", "--port", str(lab.port), "--config", str(inventory), "--department", "found", "--quiet"
    )
    assert result.returncode == 0, result.stderr
    # the host whose key an earlier test rotated stays refused in this module's lab: not logged in, no event
    logged_in = [h for h in lab.hosts if f"{h['ip']}:{lab.port}  {h['hostname']}  " in result.stderr]
    assert len(logged_in) >= len(lab.hosts) - 1, result.stderr
    messages = drain(amqp_url, amqp_names.queue)
    assert [key for key, _, _ in messages] == ["discovery"] * len(logged_in), result.stderr
    assert f"discovery events: {len(logged_in)} published, 0 dropped" in result.stderr
    events = sorted((json.loads(body) for _, _, body in messages), key=lambda e: e["instance"])
    status = {h["ip"]: h for h in lab.status()}
    for event, host in zip(events, sorted(logged_in, key=lambda h: f"{h['ip']}:{lab.port}"), strict=True):
        assert event["type"] == "discovery" and event["version"] == 1
        assert (event["instance"], event["hostname"], event["ip"]) == (
            f"{host['ip']}:{lab.port}",
            host["hostname"],
            host["ip"],
        )
        assert event["department"] == "found"  # where the merge put it (--config only lends the login)
        assert event["os_type"] and event["os_version"]
        assert event["os_type"] in status[host["ip"]]["os"]


def test_scan_refuses_a_large_network_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "inventory.yaml"
    result = run_scan("127.0.0.0/8", "--out", str(out), "--quiet")
    assert result.returncode == 2
    assert "need --allow-large" in result.stderr
    assert not out.exists()


def test_a_refused_login_names_the_user_and_key_it_tried() -> None:
    ssh = SshSettings(user="optilab", key_file=Path("/etc/optilab/id_ed25519"), known_hosts=Path("/var/kh"))
    assert (
        explain("auth", "AuthenticationException()", ssh)
        == "auth (login as optilab with key /etc/optilab/id_ed25519 refused)"
    )
    assert explain("hostkey", "", ssh) == "hostkey (checked against /var/kh)"
    assert explain("refused", "", ssh) == "refused"

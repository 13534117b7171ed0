"""Lab machines behind a bastion: a real sshd as jump host in front of real sshd "lab machines".

The bastion listens on 127.0.0.1 with ``AllowTcpForwarding yes`` and ``LogLevel DEBUG1`` (its log
shows every ``direct-tcpip`` channel it forwards); the lab machines listen on other loopback
addresses (127.0.2.x, 127.0.3.x). Bastion and lab machines have separate user keys and separate
known_hosts files, as the inventory's ``ssh`` and ``ssh.jump`` sections name them. Like
tests/exporter/test_sshpool.py, the exporter side runs in a fresh gevent-patched interpreter (a driver that
builds the exporter's own ``Runtime`` from the inventory file) and reports JSON; the test asserts on
that and on the sshd logs.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.procs import free_port
from tests.fixtures.sshd import Sshd
from tests.support.driver import run_driver
from tests.support.paths import REPO

BASTION_OPTIONS = ["LogLevel DEBUG1", "AllowTcpForwarding yes"]

DRIVER = r"""
from gevent import monkey; monkey.patch_all()
import json, sys, time
import gevent
from optilab.exporter.runtime import Runtime
from optilab.exporter.config import load_config
from tests.support.driver import shell_exchange

args = json.loads(sys.argv[1])
runtime = Runtime(args["config"], load_config(args["config"]))
entries = sorted(runtime.config.inventory.hosts.values(), key=lambda e: str(e.target))

def probe(entry, timeout=args.get("timeout", 8.0)):
    started = time.monotonic()
    result = runtime.prober.probe(entry, time.monotonic() + timeout)
    return {"target": str(entry.target), "success": result.success, "reason": result.reason,
            "state": result.state, "elapsed": time.monotonic() - started,
            "hostname": result.labels.hostname}

def jump_metrics():
    out = {}
    for family in runtime.self_metrics():
        if family.name.startswith("optilab_exporter_jump"):
            for sample in family.samples:
                if sample.value:
                    out.setdefault(sample.name, []).append([sample.labels, sample.value])
    return out

def pause(word):  # let the test (our parent) change the world, wait for its answer
    print(word, flush=True)
    sys.stdin.readline()

out = {"rounds": []}
for step in args["steps"]:
    if step == "probe":
        out["rounds"].append([probe(entry) for entry in entries])
    elif step == "fanout":
        jobs = [gevent.spawn(probe, entry) for entry in entries]
        gevent.joinall(jobs)
        out["rounds"].append([job.value for job in jobs])
    elif step == "sleep":
        time.sleep(args.get("sleep", 0.5))
    elif step == "open_bastion":  # connect the bastion without pooling any lab machine's connection
        runtime.pool.jumps.open_channel(runtime.config.ssh.jump, entries[0].target, 3.0).close()
    elif step == "shell":  # a long-lived /bin/sh over exec on each pooled (forwarded) connection
        replies = []
        for entry in entries:
            transport = runtime.pool._connections[entry.target].transport
            replies.append(shell_exchange(transport, b"uname -n\n", b"echo second; exit\n"))
        out["shell"] = replies
    else:
        pause(step)
out["jump"] = jump_metrics()
from prometheus_client import CollectorRegistry, generate_latest
registry = CollectorRegistry()
registry.register(type("Jumps", (), {"collect": lambda self: runtime.pool.jumps.families()})())
out["exposition"] = generate_latest(registry).decode()
out["health"] = {key: runtime.health.get(key).state for key in runtime.config.inventory.hosts}
out["dials"] = dict(runtime.pool.stats.dials)
runtime.close()
print("RESULT " + json.dumps(out), flush=True)
"""


def drive(
    config: Path, steps: list[str], on_pause: Callable[[str], None] | None = None, **extra: Any
) -> dict[str, Any]:
    """Run the driver; each step it does not know is handed to ``on_pause`` (stop a bastion, ...)."""
    args = {"config": str(config), "steps": steps, **extra}

    def answer(line: str) -> bool:
        assert on_pause is not None, line
        on_pause(line)
        return True

    return run_driver(["-c", DRIVER, json.dumps(args)], answer, cwd=REPO)


class Lab:
    """A bastion and lab machines behind it, and an inventory that reaches them through it."""

    def __init__(
        self,
        factory: Callable[..., Sshd],
        tmp_path: Path,
        addresses: list[str],
        bastion_options: list[str] | None = None,
    ) -> None:
        self.tmp_path = tmp_path
        self.bastion = factory(options=BASTION_OPTIONS if bastion_options is None else bastion_options)
        port = free_port(addresses[0])  # every lab machine on one port, as in a real lab (and for scan)
        self.machines = [factory(host=address, port=port) for address in addresses]
        first = self.machines[0]
        for other in self.machines[1:]:  # one monitoring key logs in to every lab machine
            other.authorized_keys.write_text(Path(f"{first.key_file}.pub").read_text())
        self.known_hosts = tmp_path / "lab_known_hosts"
        self.trust_machines()
        self.bastion.trust()

    def trust_machines(self) -> None:
        self.known_hosts.write_text("".join(m.trust().read_text() for m in self.machines))

    @property
    def port(self) -> int:
        return self.machines[0].port

    def inventory(self, jump: dict[str, Any] | None = None, **ssh: Any) -> Path:
        raw = {
            "ssh": {
                "user": "optilab",
                "port": self.port,
                "key_file": str(self.machines[0].key_file),
                "known_hosts": str(self.known_hosts),
                "connect_timeout": "3s",
                "jump": {
                    "host": self.bastion.target,
                    "key_file": str(self.bastion.key_file),
                    "known_hosts": str(self.bastion.known_hosts),
                    **(jump or {}),
                },
                **ssh,
            },
            "departments": {"physics": {"hosts": [m.host for m in self.machines]}},
        }
        path = self.tmp_path / "inventory.yml"
        path.write_text(yaml.safe_dump(raw))
        return path

    def forwarded(self) -> set[str]:
        """Targets the bastion opened direct-tcpip channels to, read from its own log."""
        text = self.bastion.log_path.read_text()
        return {
            f"{host}:{port}"
            for host, port in re.findall(
                r"server_request_direct_tcpip: originator \S+ port \d+, target (\S+) port (\d+)", text
            )
        }


ADDRESSES = ["127.0.2.1", "127.0.2.2", "127.0.3.1"]


@pytest.fixture
def lab(sshd_factory: Callable[..., Sshd], tmp_path: Path) -> Lab:
    return Lab(sshd_factory, tmp_path, ADDRESSES)


def test_probes_and_fanouts_go_through_one_bastion_connection(lab: Lab) -> None:
    result = drive(lab.inventory(), ["probe", "fanout", "fanout"])
    for round_ in result["rounds"]:
        assert [(r["target"], r["success"], r["reason"]) for r in round_] == [
            (f"{a}:{lab.port}", True, None) for a in ADDRESSES
        ]
    assert lab.forwarded() == {f"{a}:{lab.port}" for a in ADDRESSES}  # the bastion carried every hop
    assert lab.bastion.accepted_logins() == 1  # one pooled bastion connection for all of them
    assert [m.accepted_logins() for m in lab.machines] == [1, 1, 1]  # and one (reused) per lab machine
    for machine in lab.machines:  # the lab machines saw the bastion, never the collector directly
        assert "Connection from 127.0.0.1" in machine.log_path.read_text()
    jump = f"127.0.0.1:{lab.bastion.port}"
    assert result["jump"]["optilab_exporter_jump_health_state"] == [[{"jump": jump, "state": "healthy"}, 1.0]]
    assert result["jump"]["optilab_exporter_jump_connected"] == [[{"jump": jump}, 1.0]]
    check = subprocess.run(
        ["promtool", "check", "metrics"],
        input=result["exposition"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert f'optilab_exporter_jump_channels_total{{jump="{jump}"}} 3.0' in result["exposition"]  # one per machine


def test_a_long_lived_shell_works_through_the_bastion(lab: Lab) -> None:
    result = drive(lab.inventory(), ["probe", "shell"])
    nodename = result["rounds"][0][0]["hostname"]  # what uname -n said in the probe
    assert result["shell"] == [f"{nodename}\nsecond\n"] * 3
    assert lab.bastion.accepted_logins() == 1


def test_concurrent_dials_through_the_bastion_respect_a_dial_cap_of_one(lab: Lab) -> None:
    config = lab.inventory()
    raw = yaml.safe_load(config.read_text())
    raw["pool"] = {"max_concurrent_dials": 1}  # the bastion's handshake shares the slot: no deadlock
    config.write_text(yaml.safe_dump(raw))
    result = drive(config, ["fanout"])
    assert [r["success"] for r in result["rounds"][0]] == [True, True, True]
    assert lab.bastion.accepted_logins() == 1


def test_a_stopped_bastion_gives_the_jump_reason_and_leaves_the_hosts_alone(lab: Lab) -> None:
    def world(step: str) -> None:
        if step == "stop":
            lab.bastion.stop()
        elif step == "start":
            lab.bastion.start()

    steps = ["probe", "stop"] + ["fanout", "sleep"] * 8 + ["probe", "start", "sleep", "probe"]
    result = drive(lab.inventory({"retry_interval": "200ms"}), steps, world, sleep=0.3)
    rounds = result["rounds"]
    assert all(r["success"] for r in rounds[0])
    for round_ in rounds[1:-1]:  # bastion down: its own reason, and nobody moves towards dead
        assert [(r["success"], r["reason"], r["state"]) for r in round_] == [(False, "jump_unreachable", "healthy")] * 3
    assert all(r["success"] for r in rounds[-1])  # back as soon as the bastion is
    assert set(result["health"].values()) == {"healthy"}
    assert result["dials"].get("jump_unreachable", 0) >= 9


def test_the_bastion_health_state_is_exported(lab: Lab) -> None:
    def world(step: str) -> None:
        lab.bastion.stop()

    config = lab.inventory({"retry_interval": "0s"})
    raw = yaml.safe_load(config.read_text())
    raw["health"] = {"degraded_after": 2, "offline_after": 8, "dead_after": 20}  # the inventory's thresholds
    config.write_text(yaml.safe_dump(raw))
    result = drive(config, ["stop"] + ["probe"] * 3, world)
    assert result["jump"]["optilab_exporter_jump_health_state"] == [
        [{"jump": f"127.0.0.1:{lab.bastion.port}", "state": "offline"}, 1.0]
    ]  # 9 failed bastion dials
    assert set(result["health"].values()) == {"healthy"}


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (sshd's per-connection monitor and session processes)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found, frontier = [pid], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def test_a_bastion_that_freezes_is_told_from_a_silent_lab_machine(lab: Lab) -> None:
    assert lab.bastion.service is not None
    frozen = []

    def world(step: str) -> None:
        signal = {"freeze": "SIGSTOP", "thaw": "SIGCONT"}[step]
        pids = frozen or _tree(lab.bastion.service.process.pid)  # type: ignore[union-attr]
        frozen[:] = pids
        subprocess.run(["kill", f"-{signal}", *map(str, pids)], check=True)

    try:
        result = drive(
            lab.inventory({"retry_interval": "200ms"}),
            ["open_bastion", "freeze", "probe", "fanout", "thaw", "sleep", "probe"],
            world,
            timeout=8.0,
        )
    finally:
        if frozen:
            subprocess.run(["kill", "-SIGCONT", *map(str, frozen)], check=False)
    for round_ in result["rounds"][:2]:
        assert [(r["success"], r["reason"], r["state"]) for r in round_] == [(False, "jump_timeout", "healthy")] * 3
        assert all(r["elapsed"] < 4.0 for r in round_)  # connect_timeout 3 s, well before the 8 s deadline
    assert all(r["success"] for r in result["rounds"][2])


def test_a_bastion_that_refuses_forwarding_is_reported_as_such(
    sshd_factory: Callable[..., Sshd], tmp_path: Path
) -> None:
    lab = Lab(sshd_factory, tmp_path, ADDRESSES, bastion_options=["AllowTcpForwarding no"])
    result = drive(lab.inventory(), ["fanout", "fanout"])  # concurrent refusals: each gets its own reason
    assert [r["reason"] for round_ in result["rounds"] for r in round_] == ["jump_refused"] * 6
    assert set(result["health"].values()) == {"healthy"}
    assert lab.bastion.accepted_logins() == 1


def test_a_changed_lab_machine_host_key_is_refused_through_the_bastion(lab: Lab) -> None:
    lab.machines[1].restart(new_host_key=True)  # known_hosts still has the old key
    result = drive(lab.inventory(), ["probe"])
    assert [r["reason"] for r in result["rounds"][0]] == [None, "hostkey", None]
    assert lab.machines[1].accepted_logins() == 0


def test_a_changed_bastion_host_key_is_refused(lab: Lab) -> None:
    lab.bastion.restart(new_host_key=True)
    result = drive(lab.inventory(), ["probe"])
    assert [r["reason"] for r in result["rounds"][0]] == ["jump_hostkey"] * 3
    assert lab.bastion.accepted_logins() == 0
    assert lab.forwarded() == set()
    assert set(result["health"].values()) == {"healthy"}


def test_a_lab_machine_down_behind_a_working_bastion_is_the_host_s_own_failure(lab: Lab) -> None:
    lab.machines[2].stop()
    result = drive(lab.inventory(), ["probe"])
    assert [(r["reason"], r["state"]) for r in result["rounds"][0]] == [
        (None, "healthy"),
        (None, "healthy"),
        ("refused", "degraded"),
    ]
    assert result["jump"]["optilab_exporter_jump_health_state"][0][0]["state"] == "healthy"


def test_deadlines_hold_on_both_hops(sshd_factory: Callable[..., Sshd], tmp_path: Path) -> None:
    lab = Lab(sshd_factory, tmp_path, ADDRESSES[:1])
    silent_lab = socket.create_server(("127.0.2.9", 0))  # accepts through the bastion, never speaks
    silent_bastion = socket.create_server(("127.0.0.1", 0))
    lab_port, bastion_port = silent_lab.getsockname()[1], silent_bastion.getsockname()[1]
    with silent_lab, silent_bastion:
        config = lab.inventory()
        raw = yaml.safe_load(config.read_text())
        raw["departments"]["physics"]["hosts"].append(f"127.0.2.9:{lab_port}")
        raw["departments"]["chemistry"] = {
            "hosts": ["127.0.2.10"],  # behind a bastion that hangs
            "jump": {"host": f"127.0.0.1:{bastion_port}"},
        }
        config.write_text(yaml.safe_dump(raw))
        result = drive(config, ["fanout"], timeout=2.0)
    by_target = {r["target"]: r for r in result["rounds"][0]}
    assert by_target[f"{ADDRESSES[0]}:{lab.port}"]["success"] is True
    hung_lab = by_target[f"127.0.2.9:{lab_port}"]
    assert (hung_lab["reason"], hung_lab["state"]) == ("timeout", "degraded")
    hung_bastion = by_target[f"127.0.2.10:{lab.port}"]
    assert (hung_bastion["reason"], hung_bastion["state"]) == ("jump_timeout", "healthy")
    assert all(r["elapsed"] < 2.5 for r in result["rounds"][0])


def test_scan_runs_through_the_bastion(lab: Lab) -> None:
    config = lab.inventory()
    out = lab.tmp_path / "scanned.yml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "optilab.exporter",
            "scan",
            "127.0.2.0/29",
            "--config",
            str(config),
            "--out",
            str(out),
            "--port",
            str(lab.port),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    hosts = yaml.safe_load(out.read_text())["departments"]["discovered"]["hosts"]
    assert [h["target"] for h in hosts] == ADDRESSES[:2]  # 127.0.3.1 is outside the /29
    assert all(h["hostname"] for h in hosts)
    forwarded = lab.forwarded()
    assert {f"{a}:{lab.port}" for a in ADDRESSES[:2]} <= forwarded
    assert f"127.0.2.5:{lab.port}" in forwarded  # even the closed ports were probed through the bastion


def test_scan_through_a_stopped_bastion_says_so_once_and_writes_nothing(lab: Lab) -> None:
    lab.bastion.stop()
    out = lab.tmp_path / "scanned.yml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "optilab.exporter",
            "scan",
            "127.0.2.0/29",
            "--config",
            str(lab.inventory()),
            "--out",
            str(out),
            "--port",
            str(lab.port),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 1
    assert f"bastion 127.0.0.1:{lab.bastion.port} failed (jump_unreachable); nothing scanned" in done.stderr
    assert not out.exists()

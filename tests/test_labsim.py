"""The lab simulator: what it prints parses with the exporter's own parsers, its state lives, its
faults switch while it runs, and it speaks real SSH (checked with a plain paramiko client)."""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import paramiko
import pytest
import yaml

from exporter.command import BATCH_SCRIPT, SECTIONS, split_sections
from exporter.config import load_config
from exporter.parsers import parse_snapshot
from labsim.faults import Mode, garbage, parse_fault
from labsim.lab import Lab, LabError
from labsim.model import OPENING_HOURS, HostState, make_profiles
from labsim.shell import render_batch, respond
from tests.fixtures.procs import free_port

MONDAY_NOON = 1795953600.0  # 2026-11-30 12:00 UTC, a Monday: the lab is busy
MONDAY_3AM = MONDAY_NOON - 9 * 3600


def snapshot_of(state: HostState, now: float):
    sections, complete = split_sections(render_batch(state, now))
    assert complete
    return parse_snapshot(sections, complete)


@pytest.mark.parametrize("index", range(8))
def test_every_rendered_section_parses_and_matches_the_profile(index: int) -> None:
    profile = make_profiles(8, 2)[index]
    state = HostState.boot(profile, MONDAY_NOON)
    snapshot, errors = snapshot_of(state, MONDAY_NOON)
    assert errors == {}
    assert snapshot.uname.nodename == profile.hostname
    assert snapshot.osrelease["ID"] == profile.distro[0]
    assert snapshot.meminfo.bytes["MemTotal"] == profile.mem_kib * 1024
    assert len(snapshot.stat.cpus) == profile.cpus
    assert snapshot.time == int(MONDAY_NOON)
    mountpoints = {fs.mountpoint for fs in snapshot.filesystems}
    assert {disk.mountpoint for disk in profile.disks} <= mountpoints
    assert profile.nic in snapshot.netdev


def test_single_section_commands_answer_like_the_batch() -> None:
    state = HostState.boot(make_profiles(3, 1)[2], MONDAY_NOON)
    batch, _ = split_sections(render_batch(state, MONDAY_NOON))
    for name, command in SECTIONS:
        reply = respond(command.replace("$T ", ""), state, MONDAY_NOON)
        assert reply.status == 0, command
        assert reply.stdout.decode() == batch[name], name
    assert respond("uname -n", state, MONDAY_NOON).stdout.decode() == state.profile.hostname + "\n"
    assert respond(BATCH_SCRIPT, state, MONDAY_NOON).stdout.decode() == render_batch(state, MONDAY_NOON)


def test_unknown_command_is_exit_127_with_a_message() -> None:
    state = HostState.boot(make_profiles(1, 1)[0], MONDAY_NOON)
    reply = respond("rm -rf /", state, MONDAY_NOON)
    assert (reply.status, reply.stdout) == (127, b"")
    assert b"rm: not found" in reply.stderr


def test_counters_grow_users_follow_the_day_and_disks_fill() -> None:
    profiles = make_profiles(30, 3)
    states = [HostState.boot(p, MONDAY_3AM) for p in profiles]
    night_users = sum(len(s.sessions) for s in states)
    before = [snapshot_of(s, MONDAY_3AM)[0] for s in states]
    for state in states:
        state.advance(MONDAY_NOON)
    after = [snapshot_of(s, MONDAY_NOON)[0] for s in states]
    day_users = sum(len(s.sessions) for s in states)
    assert day_users > night_users
    assert all(a.stat.boot_time == b.stat.boot_time for a, b in zip(after, before, strict=True))
    pairs = list(zip(after, before, strict=True))
    assert all(a.uptime - b.uptime == pytest.approx(9 * 3600, abs=1) for a, b in pairs)
    filler = next(s for s in states if s.profile.disk_fill_per_day > 0.01)
    still = next(s for s in states if s.profile.disk_fill_per_day < 0.01)
    start_filler = HostState.boot(filler.profile, MONDAY_3AM).root_used_fraction
    start_still = HostState.boot(still.profile, MONDAY_3AM).root_used_fraction
    assert filler.root_used_fraction - start_filler > 5 * (still.root_used_fraction - start_still) > 0


def test_reboot_resets_uptime_and_counters_but_keeps_the_disk() -> None:
    state = HostState.boot(make_profiles(1, 1)[0], MONDAY_NOON)
    disk, ctxt = state.root_used_fraction, state.ctxt
    state.reboot(MONDAY_NOON + 60)
    state.advance(MONDAY_NOON + 120)
    assert state.uptime(MONDAY_NOON + 120) == pytest.approx(60)
    assert 0 < state.ctxt < ctxt
    assert state.root_used_fraction == pytest.approx(disk, rel=1e-3)


def test_garbage_fails_every_parser_but_looks_complete() -> None:
    sections, complete = split_sections(garbage([name for name, _ in SECTIONS], seed=1).decode())
    assert complete
    _, errors = parse_snapshot(sections, complete)
    assert set(errors) == {name for name, _ in SECTIONS}


def test_fault_names_are_checked() -> None:
    assert parse_fault("slow:1.5").delay == 1.5
    assert parse_fault("HANG").mode is Mode.HANG
    with pytest.raises(ValueError, match="unknown fault mode 'melt'"):
        parse_fault("melt")


# -- over real SSH, against a lab child process ------------------------------------------------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    lab = Lab.start(tmp_path_factory.mktemp("lab"), hosts=4, departments=2, port=free_port(), timeout=60)
    yield lab
    lab.stop()


def connect(lab: Lab, ip: str, timeout: float = 5.0) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(lab.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(ip, lab.port, "optilab", key_filename=str(lab.key_file), look_for_keys=False,
                   allow_agent=False, timeout=timeout, banner_timeout=timeout, auth_timeout=timeout)
    return client


def run(client: paramiko.SSHClient, command: str, timeout: float = 5.0) -> tuple[str, int]:
    _, stdout, _ = client.exec_command(command, timeout=timeout)
    return stdout.read().decode(), stdout.channel.recv_exit_status()


def test_inventory_is_a_valid_exporter_config(lab: Lab) -> None:
    config = load_config(lab.inventory)
    assert sorted(config.inventory.hosts) == sorted(lab.targets())
    assert config.ssh.host_key_policy == "strict"
    assert config.inventory.departments == ["chemistry", "physics"]


def test_batch_over_ssh_parses_and_exec_count_shows(lab: Lab) -> None:
    ip = lab.hosts[0]["ip"]
    with connect(lab, ip) as client:
        output, status = run(client, BATCH_SCRIPT)
        _, missing = run(client, "ls")
    snapshot, errors = parse_snapshot(*split_sections(output))
    assert (status, errors, missing) == (0, {}, 127)
    assert snapshot.uname.nodename == lab.hosts[0]["hostname"]
    assert next(h for h in lab.status() if h["ip"] == ip)["execs"] >= 2


def test_each_fault_fails_the_way_a_real_host_would(lab: Lab) -> None:
    ip = lab.hosts[1]["ip"]
    lab.set_fault(ip, "refuse")
    with pytest.raises(paramiko.ssh_exception.NoValidConnectionsError):
        connect(lab, ip)
    lab.set_fault(ip, "auth")
    with pytest.raises(paramiko.AuthenticationException):
        connect(lab, ip)
    lab.set_fault(ip, "hang")
    with pytest.raises((paramiko.SSHException, socket.timeout, EOFError)):
        connect(lab, ip, timeout=0.5)
    lab.set_fault(ip, "garbage")
    with connect(lab, ip) as client:
        output, status = run(client, BATCH_SCRIPT)
    assert status == 0 and len(parse_snapshot(*split_sections(output))[1]) == len(SECTIONS)
    lab.set_fault(ip, "drop")
    with connect(lab, ip) as client:
        output, status = run(client, BATCH_SCRIPT)
    assert split_sections(output)[1] is False and status == -1
    lab.set_fault(ip, "slow", delay=3)
    with connect(lab, ip) as client, pytest.raises(socket.timeout):
        run(client, BATCH_SCRIPT, timeout=0.3)
    lab.set_fault(ip, "none")
    with connect(lab, ip) as client:
        assert run(client, BATCH_SCRIPT)[1] == 0


def test_reboot_and_host_key_change(lab: Lab) -> None:
    ip = lab.hosts[2]["ip"]
    before = next(h for h in lab.status() if h["ip"] == ip)["uptime"]
    with connect(lab, ip) as client:
        lab.set_fault(ip, "reboot")
        with pytest.raises((paramiko.SSHException, EOFError, OSError)):
            run(client, BATCH_SCRIPT)  # the reboot killed the session
    assert next(h for h in lab.status() if h["ip"] == ip)["uptime"] < min(before, 60)
    lab.set_fault(ip, "hostkey")
    with pytest.raises(paramiko.BadHostKeyException):
        connect(lab, ip)


def test_control_api_rejects_bad_requests(lab: Lab) -> None:
    with pytest.raises(LabError, match="unknown fault mode"):
        lab.set_fault(lab.hosts[0]["ip"], "melt")
    with pytest.raises(LabError, match="404"):
        lab.set_fault("127.0.1.250", "hang")
    request = urllib.request.Request(lab.control_url + "/fault", data=b"[1]", method="POST")  # noqa: S310
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310 - loopback
    assert caught.value.code == 400
    assert json.loads(caught.value.read())["error"]


def test_cli_prints_the_inventory_stops_by_itself_and_keeps_its_host_keys(tmp_path) -> None:
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "labsim", "--state-dir", str(tmp_path), *args],
                              capture_output=True, text=True, timeout=60, check=False)

    port = str(free_port())
    first = run("--hosts", "3", "--departments", "1", "--port", port, "--duration", "0.5")
    assert first.returncode == 0, first.stderr
    inventory = yaml.safe_load(first.stdout)
    assert inventory["departments"] == {"physics": {"hosts": ["127.0.1.1", "127.0.1.2", "127.0.1.3"],
                                                    "opening_hours": OPENING_HOURS}}
    assert inventory["ssh"]["port"] == int(port)
    keys = (tmp_path / "known_hosts").read_text()
    assert run("--hosts", "3", "--departments", "1", "--port", port, "--duration", "0.5").returncode == 0
    assert (tmp_path / "known_hosts").read_text() == keys  # a restarted lab is the same lab
    bad = run("--hosts", "300")
    assert bad.returncode == 2 and "hosts must be 1..254" in bad.stderr


def test_sim_clock_runs_at_its_speed_from_its_start() -> None:
    from labsim.model import SimClock

    real = [1000.0]
    clock = SimClock(start=MONDAY_3AM, speed=60, real=lambda: real[0])
    assert clock() == MONDAY_3AM
    real[0] += 10
    assert clock() == MONDAY_3AM + 600


@pytest.mark.skipif(not Path("/usr/sbin/sshd").exists(), reason="needs openssh-server")
def test_real_mode_serves_this_machines_own_answers(tmp_path: Path) -> None:
    with Lab.start(tmp_path / "real", hosts=2, departments=1, port=free_port(), real=True) as lab:
        assert lab.control_url is None
        with connect(lab, lab.hosts[1]["ip"]) as client:
            output, status = run(client, BATCH_SCRIPT)
    snapshot, errors = parse_snapshot(*split_sections(output))
    assert status == 0
    assert errors == {}
    assert snapshot.uname.nodename == socket.gethostname()
    local_total = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    assert snapshot.meminfo.bytes["MemTotal"] == int(local_total.split()[1]) * 1024


def test_fanout_benchmark_runs_against_a_small_lab(tmp_path: Path) -> None:
    """bench/ drives the lab and the exporter together; a smoke run keeps it working as both change."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "bench.fanout", "--hosts", "3", "--rounds", "1", "--cold", "1"],
                            capture_output=True, text=True, timeout=120, check=False,
                            env={**os.environ, "OPTILAB_BENCH_RESULTS": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((tmp_path / "fanout.json").read_text())
    rows = dict(saved["rows"])
    assert rows["hosts answering: cold / warm"] == "3 / 3"
    assert saved["exporter"]["warm_ok"] == [3]

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

from optilab.exporter.collectors import make_plan
from optilab.exporter.command import BATCH_SCRIPT, DEFAULT_COMMANDS, DEFAULT_PATHS, split_sources
from optilab.exporter.config import load_config
from optilab.labsim.faults import Mode, garbage, parse_fault
from optilab.labsim.lab import Lab, LabError
from optilab.labsim.model import OPENING_HOURS, HostState, make_profiles
from optilab.labsim.shell import render_batch, respond
from tests.fixtures.procs import free_port
from tests.support.captures import collect_all, sample_values

MONDAY_NOON = 1795953600.0  # 2026-11-30 12:00 UTC, a Monday: the lab is busy
MONDAY_3AM = MONDAY_NOON - 9 * 3600


def collected(state: HostState, now: float):
    families, errors, complete = collect_all(render_batch(state, now))
    assert complete
    return families, errors


def value(families, name: str, **labels: str) -> float:
    return next(v for key, v in sample_values(families[name]).items() if labels.items() <= dict(key).items())


@pytest.mark.parametrize("index", range(8))
def test_every_rendered_source_parses_and_matches_the_profile(index: int) -> None:
    profile = make_profiles(8, 2)[index]
    state = HostState.boot(profile, MONDAY_NOON)
    families, errors = collected(state, MONDAY_NOON)
    assert errors == {}
    assert value(families, "node_uname_info", nodename=profile.hostname) == 1
    assert value(families, "node_os_info", id=profile.distro[0]) == 1
    assert value(families, "node_memory_MemTotal_bytes") == profile.mem_kib * 1024
    assert {dict(k)["cpu"] for k in sample_values(families["node_cpu_seconds_total"])} == {
        str(i) for i in range(profile.cpus)
    }
    assert value(families, "node_time_seconds") == MONDAY_NOON
    mountpoints = {dict(k)["mountpoint"] for k in sample_values(families["node_filesystem_size_bytes"])}
    assert {disk.mountpoint for disk in profile.disks} <= mountpoints
    assert value(families, "node_network_receive_bytes_total", device=profile.nic) > 0
    assert value(families, "node_network_receive_nohandler_total", device=profile.nic) == 0  # from sysfs


def test_single_file_commands_answer_like_the_script() -> None:
    state = HostState.boot(make_profiles(3, 1)[2], MONDAY_NOON)
    sources, _ = split_sources(render_batch(state, MONDAY_NOON), DEFAULT_COMMANDS)
    for path in ("/proc/stat", "/proc/meminfo", "/proc/net/dev", "/proc/1/mounts", "/etc/os-release"):
        reply = respond(f"cat {path}", state, MONDAY_NOON)
        assert reply.status == 0, path
        assert reply.stdout.decode() == sources[path], path
    assert respond("uname -n", state, MONDAY_NOON).stdout.decode() == state.profile.hostname + "\n"
    assert respond(BATCH_SCRIPT, state, MONDAY_NOON).stdout.decode() == render_batch(state, MONDAY_NOON)


def test_any_plans_script_is_answered_with_just_its_sources() -> None:
    state = HostState.boot(make_profiles(3, 1)[0], MONDAY_NOON)
    plan = make_plan(["loadavg", "time"])
    sources, complete = plan.split(respond(plan.script, state, MONDAY_NOON).stdout.decode())
    assert complete
    assert set(sources) == {
        "/proc/loadavg",
        "/sys/devices/system/clocksource/clocksource0/available_clocksource",
        "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        "cmd:date",
    }


def test_the_collectors_off_by_default_are_answered_from_the_model_too() -> None:
    state = HostState.boot(make_profiles(3, 1)[1], MONDAY_NOON)
    plan = make_plan(["interrupts", "processes", "tcpstat", "loadavg"])
    sources, complete = plan.split(respond(plan.script, state, MONDAY_NOON).stdout.decode())
    assert complete
    families = {f.name: f for c, options in plan.collectors for f in c.collect(sources, options)}
    running, threads = sources["/proc/loadavg"].split()[3].split("/")
    assert sample_values(families["node_processes_threads"]) == {(): float(threads)}  # as loadavg counts them
    assert sample_values(families["node_processes_threads_state"])[(("thread_state", "R"),)] == float(running)
    assert sample_values(families["node_tcp_connection_states"])[(("state", "listen"),)] == 2.0  # sshd, v4 and v6


def test_unknown_command_is_exit_127_with_a_message() -> None:
    state = HostState.boot(make_profiles(1, 1)[0], MONDAY_NOON)
    reply = respond("rm -rf /", state, MONDAY_NOON)
    assert (reply.status, reply.stdout) == (127, b"")
    assert b"rm: not found" in reply.stderr


def test_counters_grow_users_follow_the_day_and_disks_fill() -> None:
    profiles = make_profiles(30, 3)
    states = [HostState.boot(p, MONDAY_3AM) for p in profiles]
    night_users = sum(len(s.sessions) for s in states)
    before = [collected(s, MONDAY_3AM)[0] for s in states]
    for state in states:
        state.advance(MONDAY_NOON)
    after = [collected(s, MONDAY_NOON)[0] for s in states]
    day_users = sum(len(s.sessions) for s in states)
    assert day_users > night_users
    pairs = list(zip(after, before, strict=True))
    assert all(value(a, "node_boot_time_seconds") == value(b, "node_boot_time_seconds") for a, b in pairs)
    assert all(
        value(a, "node_time_seconds") - value(b, "node_time_seconds") == pytest.approx(9 * 3600, abs=1)
        for a, b in pairs
    )
    assert all(value(a, "node_context_switches_total") > value(b, "node_context_switches_total") for a, b in pairs)
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
    families, errors, complete = collect_all(garbage(DEFAULT_PATHS, DEFAULT_COMMANDS, seed=1).decode())
    assert complete
    assert set(errors) == set(make_plan().names)
    assert not any(name.startswith("node_") for name in families)


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
    client.connect(
        ip,
        lab.port,
        "optilab",
        key_filename=str(lab.key_file),
        look_for_keys=False,
        allow_agent=False,
        timeout=timeout,
        banner_timeout=timeout,
        auth_timeout=timeout,
    )
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
    families, errors, complete = collect_all(output)
    assert (status, errors, missing, complete) == (0, {}, 127, True)
    assert value(families, "node_uname_info", nodename=lab.hosts[0]["hostname"]) == 1
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
    assert status == 0 and set(collect_all(output)[1]) == set(make_plan().names)
    lab.set_fault(ip, "drop")
    with connect(lab, ip) as client:
        output, status = run(client, BATCH_SCRIPT)
    assert collect_all(output)[2] is False and status == -1
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
        return subprocess.run(
            [sys.executable, "-m", "optilab.labsim", "--state-dir", str(tmp_path), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    port = str(free_port())
    first = run("--hosts", "3", "--departments", "1", "--port", port, "--duration", "0.5")
    assert first.returncode == 0, first.stderr
    inventory = yaml.safe_load(first.stdout)
    assert inventory["departments"] == {
        "physics": {"hosts": ["127.0.1.1", "127.0.1.2", "127.0.1.3"], "opening_hours": OPENING_HOURS}
    }
    assert inventory["ssh"]["port"] == int(port)
    keys = (tmp_path / "known_hosts").read_text()
    assert run("--hosts", "3", "--departments", "1", "--port", port, "--duration", "0.5").returncode == 0
    assert (tmp_path / "known_hosts").read_text() == keys  # a restarted lab is the same lab
    bad = run("--hosts", "300")
    assert bad.returncode == 2 and "hosts must be 1..254" in bad.stderr


def test_sim_clock_runs_at_its_speed_from_its_start() -> None:
    from optilab.labsim.model import SimClock

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
    families, errors, _ = collect_all(output)
    assert status == 0
    assert errors == {}
    assert value(families, "node_uname_info", nodename=socket.gethostname()) == 1
    local_total = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    assert value(families, "node_memory_MemTotal_bytes") == int(local_total.split()[1]) * 1024


def test_fanout_benchmark_runs_against_a_small_lab(tmp_path: Path) -> None:
    """bench/ drives the lab and the exporter together; a smoke run keeps it working as both change."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "bench.fanout", "--hosts", "3", "--rounds", "1", "--cold", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "OPTILAB_BENCH_RESULTS": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads((tmp_path / "fanout.json").read_text())
    rows = dict(saved["rows"])
    assert rows["hosts answering: cold / warm"] == "3 / 3 (cold: 0 shed as overload)"
    assert saved["exporter"]["warm_ok"] == [3]


def test_the_simulated_long_lived_shell_reads_the_exporters_protocol_in_any_chunking() -> None:
    from optilab.exporter.logincheck import LOGIN_CHECK_COMMAND
    from optilab.exporter.shellsession import CALLS, Definitions, setup_line, split_answer
    from optilab.labsim.shell import ShellInput

    state = HostState.boot(make_profiles(1, 1)[0], MONDAY_NOON)
    nonce = "0123456789abcdef" * 2
    slow = make_plan().slow
    assert slow is not None
    held = Definitions()  # the collection script and the slow tier's, each in a slot of its own
    scripts = [BATCH_SCRIPT, BATCH_SCRIPT, slow.script, BATCH_SCRIPT, slow.script]
    stream = setup_line(nonce) + "".join(held.request(script) for script in scripts)
    shell, steps = ShellInput(), []
    for at in range(0, len(stream), 7):  # a pipe delivers whatever it likes per read
        steps += shell.feed(stream[at : at + 7])
    assert steps == [("ready", f"{nonce} ready\n")] + [("call", script) for script in scripts]
    data, status = split_answer(shell.frame(respond(BATCH_SCRIPT, state, MONDAY_NOON)), nonce)
    assert status == 0 and split_sources(data.decode(), DEFAULT_COMMANDS)[1]  # a complete batch inside the framing
    assert respond(LOGIN_CHECK_COMMAND, state, MONDAY_NOON).stdout == b"optilab-login-ok\n"
    with pytest.raises(ValueError):
        ShellInput().feed(setup_line(nonce) + "rm -rf /\n" + CALLS[0])  # only the protocol is understood


def test_labsim_reads_back_every_path_and_command_of_the_default_script():
    """The simulator parses the script it is sent: glob groups and directory loops included."""
    from optilab.exporter.command import BATCH_SCRIPT, DEFAULT_COMMANDS, DEFAULT_PATHS
    from optilab.labsim.render import script_request

    request = script_request(BATCH_SCRIPT)
    assert request is not None
    assert sorted(request[0]) == sorted(DEFAULT_PATHS) and tuple(request[1]) == DEFAULT_COMMANDS
    assert request[2] == "statfs"  # stat -f is head's stdin


def test_history_probes_only_the_collectors_behind_the_stored_series():
    """The history replay runs a plan of the stored series' collectors only; through a day's morning,
    with logins, it stores the very series that the whole default plan gives."""
    import dataclasses

    from optilab.labsim.history import STORED, Replayer

    start = 1_795_600_800.0  # Wednesday 2026-11-25 10:00 UTC: the rooms are open and busy

    def day(replayer: Replayer) -> list[list[tuple[tuple[tuple[str, str], ...], float]]]:
        states = [HostState.boot(profile, start - 3600) for profile in make_profiles(6, 3)]
        seen = []
        for step in range(8):  # 10:00 to 11:10, ten minutes apart
            now = start + 600 * step
            for state in states:
                state.advance(now)
                seen.append(
                    sorted((tuple(sorted(labels.items())), value) for labels, value in replayer.series(state, now))
                )
        return seen

    whole = Replayer()
    whole.prober.plans = lambda entry: dataclasses.replace(make_plan(), slow=None)
    expected, got = day(whole), day(Replayer())
    assert got == expected
    assert {dict(labels)["__name__"] for probe in got for labels, _ in probe} == set(STORED)
    occupied = {dict(labels)["state"] for probe in got for labels, value in probe if "state" in dict(labels) and value}
    assert {"free", "in_use"} <= occupied  # seats were taken: the seat sources were read, not just present

"""Seat state: the seats section parsed from captures, one state per machine, inventory settings, metrics.

Captures (tests/data/batch/<distro>.txt, section ``seats``):
- debian: this machine has no systemd (``loginctl`` says "System has not been booted with systemd")
  and an empty utmp, so the section falls back to ``who -u``; its two sessions are edited in, in
  GNU ``who -u``'s layout (idle column ``00:07`` and ``.``);
- rocky: RHEL-style logind (systemd 252 ``show-session`` properties): GDM's greeter, a locked
  wayland session idle since 20 minutes, a remote SSH terminal, and the probe's own session (``self``);
- alpine: busybox ``who`` (no ``-u``, a header, nobody logged in).
"""

from __future__ import annotations

import os
import subprocess
from datetime import date

import pytest
from prometheus_client.parser import text_string_to_metric_families

from optilab.exporter.collectors import seats
from optilab.exporter.config import ConfigError, parse_config
from optilab.exporter.family import render
from optilab.exporter.metrics import HostLabels, seat_families
from optilab.exporter.parsers_seat import (
    SEATS_COMMAND,
    SESSION_DIR,
    STATES,
    UTMP,
    WHO_COMMAND,
    SeatReading,
    SeatSession,
    parse_seats,
    parse_who_u,
    seat_state,
)
from optilab.labsim.model import HostState, make_profiles
from optilab.labsim.render import render_sources
from tests.support import paths
from tests.support.captures import batch_sections, seat_sources

DATA = paths.DATA / "batch"
NOW = 1795828975


def seats_of(distro: str) -> SeatReading:
    reading = seats.reading(seat_sources(batch_sections(distro)["seats"]))
    assert reading is not None
    return reading


def labsim_reading(state: HostState, now: float) -> SeatReading:
    """What the probe reads from labsim's answer to the seats collector's sources."""
    from optilab.exporter.command import split_sources

    names = [name for name, _ in seats.COLLECTOR.commands]
    sources, complete = split_sources(render_sources(list(seats.COLLECTOR.paths), names, state, now), names)
    assert complete
    reading = seats.reading(sources)
    assert reading is not None
    return reading


def test_rocky_logind_counts_the_locked_seat_and_the_remote_terminal_but_not_greeter_or_probe():
    reading = seats_of("rocky")
    assert reading.source == "loginctl"
    # a remote session's hints are never asked for (they cannot change the seat's state): idle unknown
    assert reading.sessions == (SeatSession("local", True, 1200.0), SeatSession("remote", False, None))
    assert seat_state(reading, reachable=True) == "locked"


def test_debian_who_u_fallback_reads_the_idle_column():
    reading = seats_of("debian")
    assert reading.source == "who"
    assert reading.sessions == (SeatSession("local", False, 420.0), SeatSession("remote", False, 0.0))
    assert seat_state(reading, reachable=True, idle_after_s=300) == "idle"
    assert seat_state(reading, reachable=True, idle_after_s=600) == "in_use"


def test_busybox_who_without_sessions_is_free():
    reading = seats_of("alpine")
    assert (reading.source, reading.sessions) == ("who", ())
    assert seat_state(reading, reachable=True) == "free"
    busybox = (
        "USER       TTY      IDLE      TIME            HOST\n"
        "lab        tty1     00:12     Nov 28 01:02:03  \n"
        "ops        pts/0    .         Nov 28 01:05:00  127.0.0.1\n"
    )
    assert parse_who_u(busybox) == (SeatSession("local", False, 720.0), SeatSession("remote", False, 0.0))


def test_rocky_who_lines_are_local_even_with_a_tty_name_as_host():
    """``(tty2)`` and ``(login screen)`` in the host column are not remote machines."""
    who = batch_sections("rocky")["seats"].split("@who\n", 1)[1]
    assert [s.kind for s in parse_who_u(who)] == ["local", "local", "remote"]


@pytest.mark.parametrize(
    ("sessions", "state"),
    [
        ((), "free"),
        ((SeatSession("remote"),), "free"),
        ((SeatSession("local", False, 10.0),), "in_use"),
        ((SeatSession("local", False, None),), "in_use"),
        ((SeatSession("local", False, 400.0),), "idle"),
        ((SeatSession("local", True, 0.0),), "locked"),
        ((SeatSession("local", True, 0.0), SeatSession("local", False, 900.0)), "idle"),
        ((SeatSession("local", True, 0.0), SeatSession("local", False, 5.0)), "in_use"),
    ],
)
def test_one_state_per_machine(sessions, state):
    assert seat_state(SeatReading("loginctl", sessions), reachable=True, idle_after_s=300) == state


def test_maintenance_wins_over_offline_and_offline_over_sessions():
    reading = SeatReading("who", (SeatSession("local", False, 0.0),))
    assert seat_state(reading, reachable=False, maintenance=True) == "maintenance"
    assert seat_state(reading, reachable=False) == "offline"
    assert seat_state(None, reachable=True) is None


def test_garbage_is_a_value_error():
    with pytest.raises(ValueError):
        parse_seats("this is not the seats section\n")
    assert seats.reading({"cmd:seats": "garbage\n"}) is None


def test_a_local_session_whose_hints_are_missing_is_counted_in_use():
    """logind's file says a person sits there; show-session did not answer (logind restarting)."""
    sources = seat_sources(batch_sections("rocky")["seats"])
    sources["cmd:seats"] = "self 41\n"
    reading = seats.reading(sources)
    assert reading is not None and reading.sessions == (
        SeatSession("local", False, None),
        SeatSession("remote", False, None),
    )
    assert seat_state(reading, reachable=True) == "in_use"


def _run_seats_command(tmp_path, files: dict[str, str], own: str) -> str:
    """The real SEATS_COMMAND under sh, over session files in ``tmp_path`` (a FIFO among them) and a
    stand-in ``loginctl`` that prints its arguments: which sessions the shell asks logind about."""
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    for name, text in files.items():
        (sessions / name).write_text(text)
    os.mkfifo(sessions / "3.ref")  # a session's FIFO: head or read would block on it
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "loginctl").write_text('#!/bin/sh\nfor a; do echo "arg $a"; done\n')
    (bin_dir / "loginctl").chmod(0o755)
    command = SEATS_COMMAND.replace(SESSION_DIR, f"{sessions}/")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "XDG_SESSION_ID": own}
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env, timeout=10, check=True).stdout


def test_seats_command_asks_logind_only_about_local_user_sessions_not_its_own(tmp_path):
    files = {
        "3": "# This is private data. Do not parse.\nSTATE=active\nREMOTE=0\nTYPE=x11\nCLASS=user\nSEAT=seat0\n",
        "c1": "STATE=online\nREMOTE=0\nTYPE=wayland\nCLASS=greeter\nSEAT=seat0\n",
        "17": "STATE=active\nREMOTE=1\nTYPE=tty\nCLASS=user\nTTY=pts/0\n",
        "20": "STATE=closing\nREMOTE=0\nTYPE=tty\nCLASS=user\nTTY=tty3\n",
        "41": "STATE=active\nREMOTE=0\nTYPE=tty\nCLASS=user\n",
        "52": "CLASS=user\nTYPE=tty\nTTY=tty4\nREMOTE=0\nSTATE=online\n",  # another key order
        "60": "STATE=active\nCLASS=user\nTYPE=tty\n",
    }  # no REMOTE: not asked about
    out = _run_seats_command(tmp_path, files, "41")
    assert out.splitlines() == [
        "self 41",
        "@loginctl",
        "arg show-session",
        "arg -p",
        "arg Id",
        "arg -p",
        "arg LockedHint",
        "arg -p",
        "arg IdleHint",
        "arg -p",
        "arg IdleSinceHint",
        "arg --",
        "arg 3",
        "arg 52",
    ]


def test_seats_command_runs_no_process_without_a_local_session(tmp_path):
    files = {
        "17": "STATE=active\nREMOTE=1\nTYPE=tty\nCLASS=user\nTTY=pts/0\n",
        "41": "STATE=active\nREMOTE=1\nTYPE=tty\nCLASS=user\n",
    }
    assert _run_seats_command(tmp_path, files, "41") == "self 41\n"


def test_metrics_have_one_current_state_and_no_user_names():
    labels = HostLabels("pc-07", "127.0.1.7", "physics")
    reading = seats_of("rocky")
    text = render(seat_families("locked", reading, labels), {"instance": "127.0.1.7:22"}).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    states = {s.labels["state"]: s.value for s in families["optilab_seat_state"].samples}
    assert states == {state: float(state == "locked") for state in STATES}
    kinds = {s.labels["kind"]: s.value for s in families["optilab_sessions"].samples}
    assert kinds == {"local": 1.0, "remote": 1.0}
    assert "alice" not in text and "bob" not in text
    assert {"hostname", "ip", "department", "instance"} <= set(families["optilab_seat_state"].samples[0].labels)


def _inventory(department: dict) -> dict:
    return {"ssh": {"user": "u", "key_file": "/k"}, "departments": {"physics": department}}


def test_inventory_maintenance_idle_minutes_and_opening_hours():
    config = parse_config(
        _inventory(
            {
                "hosts": [{"target": "127.0.1.1", "maintenance": True}, "127.0.1.2"],
                "idle_minutes": 10,
                "opening_hours": {
                    "timezone": "Europe/Berlin",
                    "mon-fri": "08:00-20:00",
                    "sat": ["10:00-12:00", "13:00-16:00"],
                    "closed": [date(2026, 12, 24), "2026-12-25"],
                },
            }
        ),
        "inv.yml",
    )
    hosts = config.inventory.hosts
    assert hosts["127.0.1.1:22"].maintenance and not hosts["127.0.1.2:22"].maintenance
    assert hosts["127.0.1.2:22"].idle_minutes == 10.0
    hours = config.inventory.settings["physics"].opening_hours
    assert hours.timezone == "Europe/Berlin"
    assert hours.weekly[0] == ((480, 1200),) and hours.weekly[5] == ((600, 720), (780, 960))
    assert hours.weekly[6] == ()
    assert hours.closed == {date(2026, 12, 24), date(2026, 12, 25)}


@pytest.mark.parametrize(
    ("department", "message"),
    [
        (
            {"hosts": [{"target": "127.0.1.1", "maintenance": "yes"}]},
            "inv.yml: departments.physics.hosts[0].maintenance: 'yes' is not true or false",
        ),
        (
            {"hosts": ["127.0.1.1"], "idle_minutes": 0},
            "inv.yml: departments.physics.idle_minutes: 0 is not a number of minutes from 0.5 to 1440",
        ),
        (
            {"hosts": ["127.0.1.1"], "opening_hours": {"timezone": "Mars/Olympus"}},
            "inv.yml: departments.physics.opening_hours.timezone: 'Mars/Olympus' is not an IANA time zone",
        ),
        (
            {"hosts": ["127.0.1.1"], "opening_hours": {"timezone": "UTC", "mon": "20:00-08:00"}},
            "inv.yml: departments.physics.opening_hours.mon: '20:00-08:00' is not a span like 08:00-20:00",
        ),
        (
            {"hosts": ["127.0.1.1"], "opening_hours": {"timezone": "UTC", "monday": "08:00-10:00"}},
            "inv.yml: departments.physics.opening_hours.monday: unknown field",
        ),
        (
            {"hosts": ["127.0.1.1"], "opening_hours": {"timezone": "UTC", "closed": ["24.12.2026"]}},
            "inv.yml: departments.physics.opening_hours.closed[0]: '24.12.2026' is not a date",
        ),
    ],
)
def test_inventory_mistakes_name_the_field(department, message):
    with pytest.raises(ConfigError) as info:
        parse_config(_inventory(department), "inv.yml")
    assert any(line.startswith(message) for line in info.value.errors), info.value.errors


MONDAY = 1796985000  # Monday 2026-12-14, 10:30 UTC


@pytest.mark.parametrize("override", ["in_use", "idle", "locked", "free"])
def test_labsim_renders_what_the_parser_turns_back_into_the_forced_state(override):
    for profile in make_profiles(8, 2):  # debian/ubuntu/rocky (logind) and alpine (busybox who)
        state = HostState.boot(profile, MONDAY)
        state.seat_override = override
        state.advance(MONDAY + 60)
        reading = labsim_reading(state, MONDAY + 60)
        assert reading.source == ("who" if profile.busybox else "loginctl")
        expected = "idle" if override == "locked" and profile.busybox else override  # who knows no locks
        assert seat_state(reading, reachable=True) == expected


def test_labsim_day_has_every_state_and_the_probe_session_is_never_counted():
    seen: set[str] = set()
    for profile in make_profiles(30, 3):
        state = HostState.boot(profile, MONDAY)
        for step in range(0, 8 * 3600, 900):
            state.advance(MONDAY + step)
            reading = labsim_reading(state, MONDAY + step)
            assert reading.count("local") + reading.count("remote") == (
                len([s for s in state.sessions if s.remote or s.tty.startswith("tty")])
            )
            seen.add(seat_state(reading, reachable=True))
    assert {"free", "in_use", "idle", "locked"} <= seen


@pytest.mark.parametrize(("utmp", "session", "runs"), [(False, False, False), (True, False, True), (False, True, True)])
def test_who_runs_only_where_utmp_or_a_logind_session_exists(tmp_path, utmp, session, runs):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "who").write_text('#!/bin/sh\necho "ran $*"\n')
    (bin_dir / "who").chmod(0o755)
    (tmp_path / "sessions").mkdir()
    if utmp:
        (tmp_path / "utmp").write_bytes(b"\0" * 384)
    if session:
        (tmp_path / "sessions" / "c2").write_text("REMOTE=1\n")
    command = WHO_COMMAND.replace(UTMP, str(tmp_path / "utmp")).replace(SESSION_DIR, f"{tmp_path}/sessions/")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env, timeout=10, check=True).stdout
    assert out == ("ran -u\n" if runs else "")

"""The SSH pool against a real OpenSSH server.

The pool needs a gevent-patched process (paramiko's transports must be greenlets), and pytest's own
process is not patched. So each test runs tests/support/sshpool_driver.py in a fresh ``python`` that patches
first, builds an :class:`SshPool` from JSON arguments, runs one scenario and prints JSON; the test asserts
on that and on sshd's own log (one "Accepted publickey" line per handshake).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fixtures.sshd import Sshd
from tests.support.driver import run_driver


def drive(
    sshd: Sshd,
    scenario: str,
    known_hosts: Path | None = None,
    policy: str = "strict",
    pool: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Run one scenario in a patched interpreter; restarts sshd when the driver asks for it."""
    args = {
        "scenario": scenario,
        "port": sshd.port,
        "user": sshd.user,
        "key_file": str(sshd.key_file),
        "known_hosts": str(known_hosts or sshd.trust()),
        "policy": policy,
        "pool": pool or {},
        **extra,
    }

    def answer(line: str) -> bool:
        if line.startswith("RESTART"):
            sshd.restart()
            return True
        return False

    return run_driver(["-m", "tests.support.sshpool_driver", json.dumps(args)], answer)


def test_one_handshake_serves_many_execs_also_concurrent(sshd: Sshd) -> None:
    result = drive(sshd, "reuse")
    assert result["outputs"] == ["ok\n"] * 20
    assert result["concurrent"] == ["ok\n"] * 12
    assert result["stats"]["dials"] == {"success": 1}
    assert result["stats"]["execs"] == 32
    assert sshd.accepted_logins() == 1


def test_concurrent_first_scrapes_of_one_host_share_one_dial(sshd: Sshd) -> None:
    result = drive(sshd, "concurrent_cold")
    assert result["outputs"] == ["ok\n"] * 12
    assert result["stats"]["dials"] == {"success": 1}
    assert sshd.accepted_logins() == 1


def test_reconnects_transparently_after_sshd_restart(sshd: Sshd) -> None:
    result = drive(sshd, "reconnect")
    assert result["before"] == "ok\n" and result["after"] == "ok\n"
    assert result["stats"]["dials"] == {"success": 2}
    assert result["stats"]["errors"] == {}
    assert sshd.accepted_logins() == 2


def test_a_dropped_session_stops_counting_as_open_before_anyone_touches_it(sshd: Sshd) -> None:
    result = drive(sshd, "dropped")
    assert result["before"] == ["ok\n", 1]
    assert result["dead_still_pooled"] == [True, False]  # neither reused nor reaped yet...
    assert result["open_while_dead"] == 0  # ...but the gauge no longer counts it
    assert result["after"] == ["ok\n", 1]
    assert result["stats"]["dials"] == {"success": 2}


def test_connections_are_recycled_after_max_execs(sshd: Sshd) -> None:
    result = drive(sshd, "recycle")
    assert result["outputs"] == ["ok\n"] * 7
    assert result["stats"]["dials"] == {"success": 3}  # 3 + 3 + 1 execs
    assert result["stats"]["closed"].get("execs") == 2


def test_idle_connections_are_reaped(sshd: Sshd) -> None:
    result = drive(sshd, "reaper")
    assert (result["open_before"], result["open_after"]) == (1, 0)
    assert result["second"] == "ok\n"
    assert result["stats"]["closed"].get("idle") == 1


def test_a_hanging_command_is_cut_at_the_deadline_and_the_pool_recovers(sshd: Sshd) -> None:
    result = drive(sshd, "hang")
    assert result["hung"] == "error:timeout"
    assert result["elapsed"] < 30  # returned long before `sleep 30` could have ended
    assert result["after"] == "ok\n"
    assert result["stats"]["errors"] == {"timeout": 1}
    assert (result["open"], result["transports_alive"]) == (1, 1)  # the hung one is gone, not leaked


def test_a_probe_whose_command_hangs_fails_with_timeout_and_degrades_the_host(sshd: Sshd) -> None:
    result = drive(sshd, "probe_hang")
    assert result["probe"] == [False, "timeout", "degraded", True]


def test_command_timeout_caps_the_exec_within_a_longer_deadline(sshd: Sshd) -> None:
    result = drive(sshd, "command_timeout", command_timeout=0.5)
    assert result["hung"] == "error:timeout"
    assert result["after"] == "ok\n"
    assert result["stats"]["closed"] == {"retired": 1}  # the hung connection is not reused
    assert result["stats"]["dials"] == {"success": 2}


def test_concurrent_dials_are_capped(sshd: Sshd) -> None:
    result = drive(sshd, "dial_cap", pool={"max_concurrent_dials": 2})
    # silent hosts: every probe ends at its deadline; the two dialling ones are the hosts' fault, the
    # four that waited all the while for a dial slot are the exporter's own queueing (overload)
    assert sorted(result["results"]) == ["error:overload"] * 4 + ["error:timeout"] * 2
    assert result["peak"] == 2


def test_strict_refuses_a_host_missing_from_known_hosts(sshd: Sshd, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    result = drive(sshd, "hostkey", known_hosts=empty)
    assert result["result"] == "error:hostkey"
    assert sshd.accepted_logins() == 0
    assert empty.read_text() == ""


def test_accept_new_trusts_on_first_use_and_persists_the_key(sshd: Sshd, tmp_path: Path) -> None:
    known_hosts = tmp_path / "fresh" / "known_hosts"
    result = drive(sshd, "hostkey", known_hosts=known_hosts, policy="accept-new")
    assert result["result"] == "ok\n"
    key_type, key_b64 = sshd.host_key.split()[:2]
    assert known_hosts.read_text() == f"[127.0.0.1]:{sshd.port} {key_type} {key_b64}\n"
    again = drive(sshd, "hostkey", known_hosts=known_hosts, policy="strict")  # now known: strict works
    assert again["result"] == "ok\n"


def test_hashed_known_hosts_entries_as_ssh_keyscan_h_writes_them(sshd: Sshd) -> None:
    known_hosts = sshd.trust()
    subprocess.run(["ssh-keygen", "-H", "-f", str(known_hosts)], check=True, capture_output=True)
    assert known_hosts.read_text().startswith("|1|")
    assert drive(sshd, "hostkey", known_hosts=known_hosts)["result"] == "ok\n"


def test_a_changed_host_key_is_refused_even_under_accept_new(sshd: Sshd) -> None:
    known_hosts = sshd.trust()
    before = known_hosts.read_text()
    sshd.restart(new_host_key=True)
    result = drive(sshd, "hostkey", known_hosts=known_hosts, policy="accept-new")
    assert result["result"] == "error:hostkey"
    assert known_hosts.read_text() == before  # never overwritten
    assert sshd.accepted_logins() == 0


def test_the_connection_cap_evicts_the_least_recently_used_idle_connection(sshd_factory: Callable[[], Sshd]) -> None:
    first, second = sshd_factory(), sshd_factory()
    second.key_file.write_bytes(first.key_file.read_bytes())  # one user key logs in to both
    second.authorized_keys.write_text(Path(f"{first.key_file}.pub").read_text())
    known_hosts = first.trust()
    with known_hosts.open("a") as handle:
        handle.write(second.trust().read_text())
    result = drive(first, "evict", known_hosts=known_hosts, pool={"max_connections": 1}, port2=second.port)
    assert result["outputs"] == ["ok\n"] * 4
    assert result["open"] == 1
    assert result["stats"]["dials"] == {"success": 4}
    assert result["stats"]["closed"].get("evicted") == 3

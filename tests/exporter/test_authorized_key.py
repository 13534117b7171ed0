"""The monitoring key's restricted authorized_keys line: its validation, and a real sshd that honours it.

The sshd allows forwarding and PTYs (``AllowTcpForwarding yes``, ``PermitTTY yes``), so whatever is
refused is refused by the key's own ``restrict``; the same checks with the plain key line are the
control that shows they can fail.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from optilab.exporter.authkey import authorized_key_line, parse_public_key, parse_sources
from tests.fixtures.sshd import Sshd
from tests.support.paths import REPO

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICjQZkt78C9AskKE83nBEizg0evMS/PQ2F5xRYvv16ai optilab@collector"
SSHD_OPTIONS = ["AllowTcpForwarding yes", "PermitTTY yes"]


def authorized_key(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "optilab.exporter", "authorized-key", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=REPO,
    )


def test_the_line_restricts_the_key_to_the_collector_addresses() -> None:
    assert (
        authorized_key_line(["127.0.0.1", "127.0.1.0/24,::1"], KEY)
        == f'restrict,from="127.0.0.1,127.0.1.0/24,::1" {KEY}'
    )


@pytest.mark.parametrize(
    "value", ["collector.example.edu", "127.0.0.*", "127.0.1.1/24", '127.0.0.1" x', '127.0.0.1 command="sh"', ""]
)
def test_from_must_be_addresses_or_networks(value: str) -> None:
    with pytest.raises(ValueError, match=r"^--from: "):
        parse_sources([value])


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "expected one public key line"),
        (f"{KEY}\n{KEY}\n", "expected one public key line"),
        (f"no-pty {KEY}", "already has options"),
        (f'command="/bin/sh" {KEY}', "already has options"),
        ("ssh-ed25519 not!base64", "not valid base64"),
        ("ssh-rsa " + KEY.split()[1], "is a 'ssh-ed25519' key, not 'ssh-rsa'"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n", "private key"),
    ],
)
def test_the_key_must_be_one_plain_public_key(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=r"^--key: ") as caught:
        parse_public_key(text)
    assert why in str(caught.value)


def test_a_comment_with_control_characters_is_dropped() -> None:
    assert parse_public_key(KEY.rsplit(" ", 1)[0] + " bad\x1b[31mcomment")[2] == ""


def test_the_command_prints_the_line_and_names_the_bad_flag(tmp_path: Path) -> None:
    pub = tmp_path / "id.pub"
    pub.write_text(KEY + "\n")
    done = authorized_key("--from", "127.0.0.1", "--key", str(pub))
    assert (done.returncode, done.stdout) == (0, f'restrict,from="127.0.0.1" {KEY}\n')
    bad = authorized_key("--from", "lab-gw", "--key", str(pub))
    assert bad.returncode == 2 and "--from: 'lab-gw'" in bad.stderr and bad.stdout == ""
    missing = authorized_key("--from", "127.0.0.1", "--key", str(tmp_path / "nope.pub"))
    assert missing.returncode == 2 and "--key: cannot read" in missing.stderr


DRIVER = r"""
from gevent import monkey; monkey.patch_all()
import json, sys, time
from pathlib import Path
import paramiko
from optilab.exporter.config import HealthSettings, HostEntry, PoolSettings, SshSettings
from optilab.exporter.targets import Target
from optilab.exporter.health import HealthBook
from optilab.exporter.ssherror import SshError
from optilab.exporter.probe import Prober
from optilab.exporter.sshpool import SshPool
from tests.support.driver import shell_exchange

args = json.loads(sys.argv[1])
ssh = SshSettings(user=args["user"], key_file=Path(args["key_file"]), known_hosts=Path(args["known_hosts"]),
                  connect_timeout=5, command_timeout=10)
pool = SshPool(ssh, PoolSettings())
target = Target("127.0.0.1", args["port"])
out = {}
result = Prober(pool, HealthBook(HealthSettings())).probe(HostEntry(target, "physics"), time.monotonic() + 10)
out["probe"] = [result.success, result.reason]
if result.success:
    transport = pool._connections[target].transport
    out["shell"] = shell_exchange(transport, b"echo one\n", b"echo two; exit\n", 100)
    channel = transport.open_session()
    try:
        channel.get_pty()
        out["pty"] = "granted"
    except paramiko.SSHException as exc:
        out["pty"] = "refused: " + str(exc)
    finally:
        channel.close()
    try:
        forwarded = transport.open_channel("direct-tcpip", ("127.0.0.1", args["listener"]), ("127.0.0.1", 0),
                                           timeout=5)
        out["forward"] = "opened"
        forwarded.close()
    except paramiko.ChannelException as exc:
        out["forward"] = f"refused: code {exc.code}"
    try:
        transport.request_port_forward("127.0.0.1", 0)
        out["remote_forward"] = "granted"
    except paramiko.SSHException as exc:
        out["remote_forward"] = "refused: " + str(exc)
pool.close()
print("RESULT " + json.dumps(out), flush=True)
"""


def drive(sshd: Sshd) -> dict[str, Any]:
    with socket.create_server(("127.0.0.1", 0)) as listener:  # somewhere a forward could go
        args = {
            "port": sshd.port,
            "user": sshd.user,
            "key_file": str(sshd.key_file),
            "known_hosts": str(sshd.trust()),
            "listener": listener.getsockname()[1],
        }
        done = subprocess.run(
            [sys.executable, "-c", DRIVER, json.dumps(args)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=REPO,
        )
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise AssertionError(f"driver failed: {done.stderr}")


@pytest.fixture
def server(sshd_factory: Any) -> Sshd:
    return sshd_factory(options=SSHD_OPTIONS)


def restrict_key(server: Sshd, source: str) -> str:
    done = authorized_key("--from", source, "--key", f"{server.key_file}.pub")
    assert done.returncode == 0, done.stderr
    server.authorized_keys.write_text(done.stdout)  # what the admin appends on a lab machine
    return done.stdout


def test_the_restricted_key_collects_but_gets_no_pty_and_no_forwarding(server: Sshd) -> None:
    line = restrict_key(server, "127.0.0.1")
    assert line.startswith('restrict,from="127.0.0.1" ssh-ed25519 ')
    result = drive(server)
    assert result["probe"] == [True, None]  # the batched collection command works
    assert result["shell"] == "one\ntwo\n"  # and a long-lived /bin/sh over exec
    assert result["pty"].startswith("refused")
    assert result["forward"] == "refused: code 1"  # administratively prohibited
    assert result["remote_forward"].startswith("refused")


def test_without_the_restriction_the_same_checks_succeed(server: Sshd) -> None:
    result = drive(server)  # the fixture's plain key line: the control for the test above
    assert result["probe"] == [True, None]
    assert (result["pty"], result["forward"], result["remote_forward"]) == ("granted", "opened", "granted")


def test_the_key_is_refused_from_any_other_address(server: Sshd) -> None:
    restrict_key(server, "127.0.0.2")  # the collector connects from 127.0.0.1
    assert drive(server)["probe"] == [False, "auth"]
    assert server.accepted_logins() == 0

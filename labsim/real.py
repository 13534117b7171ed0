"""Real mode: Debian's OpenSSH sshd on the lab's loopback addresses, running this machine's commands.

The simulator answers in microseconds; a real lab machine forks a shell and ``cat``/``df``/``who``
for every exec. Benchmarks run against both so the figures say which part is OptiLab's and which is
the target's. sshd takes at most 16 ``ListenAddress`` lines, so N hosts need ceil(N/16) processes,
each with its own config, host key and pidfile (the 16 addresses of one process share its key).

The login account is a dedicated ``optilab`` user with ``/bin/sh`` (root's shell here sources heavy rc
files on every exec), created when missing and unlocked (``UsePAM no`` refuses locked accounts). Its
authorized key is read by ``AuthorizedKeysCommand /bin/cat FILE`` from the state dir, so no file in
the account's home is touched and two labs with different keys can run side by side.
"""

from __future__ import annotations

import json
import logging
import pwd
import socket
import subprocess
import time
from pathlib import Path

import yaml

from optilab.labsim.keys import known_hosts_name, load_or_create
from optilab.labsim.model import make_profiles

SSHD = "/usr/sbin/sshd"
PER_PROCESS = 16
log = logging.getLogger("optilab.labsim.real")


def ensure_user(name: str) -> Path:
    """Create the login account (shell /bin/sh) if missing and unlock it for key-only login; its home.

    The one implementation, shared with the test suite's sshd fixture. Idempotent, and safe when
    parallel test runs or labs call it at the same moment: useradd/usermod fail while another one
    holds the lock on /etc/passwd, so the account's state is checked, not their exit status, and a
    failed attempt is retried (bounded, 50 x 0.1 s). Only a locked ("!") account is touched: sshd
    without PAM refuses key logins to it; an unlocked one keeps its password field.
    """
    steps = (
        (lambda: _exists(name), ["useradd", "--create-home", "--shell", "/bin/sh", name], "create"),
        (lambda: not _locked(name), ["usermod", "-p", "*", name], "unlock"),
    )
    for done, command, what in steps:
        stderr = ""
        for _ in range(50):
            if done():
                break
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            stderr = result.stderr.strip()
            if result.returncode != 0:
                time.sleep(0.1)  # another process may hold the lock on /etc/passwd, or won the race
        if not done():
            raise RuntimeError(f"cannot {what} user {name}: {stderr}")
    return Path(pwd.getpwnam(name).pw_dir)


def _exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _locked(name: str) -> bool:
    for line in Path("/etc/shadow").read_text().splitlines():
        user, _, rest = line.partition(":")
        if user == name:
            return rest.startswith("!")
    return False


def sshd_config(addresses: list[str], port: int, host_key: Path, pidfile: Path, authorized: Path, user: str) -> str:
    listen = "\n".join(f"ListenAddress {address}:{port}" for address in addresses)
    return f"""{listen}
HostKey {host_key}
PidFile {pidfile}
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthenticationMethods publickey
AuthorizedKeysFile none
AuthorizedKeysCommand /bin/cat {authorized}
AuthorizedKeysCommandUser root
AllowUsers {user}
PermitRootLogin no
StrictModes no
MaxStartups 300:30:600
MaxSessions 50
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding no
LogLevel ERROR
"""


def _listening(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((address, port)) == 0


class RealLab:
    """ceil(hosts/16) sshd processes on 127.0.1.1..N:port; same inventory format as the simulator."""

    def __init__(
        self, state_dir: Path, hosts: int = 30, departments: int = 3, port: int = 22, user: str = "optilab"
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.port, self.user = port, user
        self.profiles = make_profiles(hosts, departments)
        self.key_file = self.state_dir / "id_ed25519"
        self.known_hosts = self.state_dir / "known_hosts"
        self.inventory_path = self.state_dir / "inventory.yaml"
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, timeout: float = 30.0) -> Path:
        if not Path(SSHD).exists():
            raise RuntimeError(f"{SSHD} is missing: apt-get install openssh-server")
        ensure_user(self.user)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
        real = self.state_dir / "real"
        real.mkdir(parents=True, exist_ok=True)
        load_or_create(self.key_file, "optilab-exporter")
        authorized = real / "authorized_keys"
        authorized.write_text(self.key_file.with_name(self.key_file.name + ".pub").read_text())
        known = []
        addresses = [p.ip for p in self.profiles]
        for index in range(0, len(addresses), PER_PROCESS):
            group = addresses[index : index + PER_PROCESS]
            host_key = load_or_create(real / f"host_{index // PER_PROCESS}.key")
            config = real / f"sshd_{index // PER_PROCESS}.conf"
            config.write_text(
                sshd_config(
                    group,
                    self.port,
                    real / f"host_{index // PER_PROCESS}.key",
                    real / f"sshd_{index // PER_PROCESS}.pid",
                    authorized,
                    self.user,
                )
            )
            log_file = open(real / f"sshd_{index // PER_PROCESS}.log", "ab")
            self.processes.append(
                subprocess.Popen(
                    [SSHD, "-D", "-e", "-f", str(config)],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
            log_file.close()
            known += [f"{known_hosts_name(a, self.port)} {host_key.get_name()} {host_key.get_base64()}" for a in group]
        self.known_hosts.write_text("\n".join(known) + "\n")
        self._wait(addresses, timeout)
        self.inventory_path.write_text(yaml.safe_dump(self.inventory(), sort_keys=False))
        return self.inventory_path

    def _wait(self, addresses: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(addresses)
        while pending and time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"sshd exited with {process.returncode}; see {self.state_dir}/real/")
            pending = [a for a in pending if not _listening(a, self.port)]
            time.sleep(0.05)
        if pending:
            self.stop()
            raise RuntimeError(f"sshd not listening on {pending[:3]}... after {timeout:.0f}s")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.processes.clear()

    def inventory(self) -> dict[str, object]:
        departments: dict[str, dict[str, list[str]]] = {}
        for profile in self.profiles:
            departments.setdefault(profile.department, {"hosts": []})["hosts"].append(profile.ip)
        return {
            "ssh": {
                "user": self.user,
                "port": self.port,
                "key_file": str(self.key_file),
                "known_hosts": str(self.known_hosts),
                "host_key_policy": "strict",
                "connect_timeout": "5s",
                "command_timeout": "10s",
            },
            "departments": departments,
        }

    def describe(self) -> str:
        return json.dumps(
            {
                "inventory": str(self.inventory_path),
                "known_hosts": str(self.known_hosts),
                "key_file": str(self.key_file),
                "port": self.port,
                "control_url": None,
                "real": True,
                "hosts": [
                    {"ip": p.ip, "hostname": socket.gethostname(), "department": p.department} for p in self.profiles
                ],
            },
            indent=1,
        )

"""A running simulated lab in this process: every host listening, faults switchable, files written.

This is the in-process engine (it needs gevent's monkey patching, done by ``labsim.cli``). Code that
does not want gevent in its own process (tests, the demo, benchmarks) drives it as a subprocess
through :class:`labsim.lab.Lab` instead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from optilab.labsim.faults import ONE_SHOT, Fault, Mode
from optilab.labsim.keys import load_or_create, write_known_hosts
from optilab.labsim.model import OPENING_HOURS, SimClock, make_profiles
from optilab.labsim.server import SimHost, listen

log = logging.getLogger("optilab.labsim.runtime")


class LabRuntime:
    """N simulated hosts on 127.0.1.x:port sharing one login key, each with its own host key."""

    def __init__(
        self,
        state_dir: Path,
        hosts: int = 30,
        departments: int = 3,
        port: int = 22,
        user: str = "optilab",
        clock: Callable[[], float] | None = None,
        base: str = "127.0.1.",
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.port = port
        self.user = user
        self.clock = clock or SimClock()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.key_file = self.state_dir / "id_ed25519"
        self.authorized = load_or_create(self.key_file, "optilab-exporter")
        self.known_hosts = self.state_dir / "known_hosts"
        self.inventory_path = self.state_dir / "inventory.yaml"
        self.hosts: dict[str, SimHost] = {
            profile.ip: SimHost(profile, self.state_dir / "hostkeys" / f"{profile.ip}.key", self.clock)
            for profile in make_profiles(hosts, departments, base)
        }

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> Path:
        """Listen on every host, write known_hosts and the inventory; return the inventory's path."""
        write_known_hosts(self.known_hosts, [(ip, self.port, h.key) for ip, h in self.hosts.items()])
        for host in self.hosts.values():
            self._open(host)
        self.inventory_path.write_text(yaml.safe_dump(self.inventory(), sort_keys=False))
        return self.inventory_path

    def stop(self) -> None:
        for host in self.hosts.values():
            self._close(host)
            host.drop_sessions()

    def _open(self, host: SimHost) -> None:
        if host.listener is None:
            host.listener = listen(host, self.port, self.user, self.authorized)

    def _close(self, host: SimHost) -> None:
        if host.listener is not None:
            host.listener.close()
            host.listener = None

    # -- control -----------------------------------------------------------------------------------
    def set_fault(self, ip: str, fault: Fault) -> None:
        """Switch host ``ip`` to ``fault`` now; one-shot faults happen and leave the host normal."""
        host = self.hosts.get(ip)
        if host is None:
            raise KeyError(f"no simulated host {ip}")
        log.info("fault %s on %s (%s)", fault, ip, host.profile.hostname)
        if fault.mode in ONE_SHOT:
            host.reboot() if fault.mode is Mode.REBOOT else host.change_key()
            fault = Fault()
        host.fault = fault
        if fault.mode is Mode.REFUSE:
            self._close(host)
            host.drop_sessions()
        else:
            self._open(host)
        if fault.mode in (Mode.AUTH, Mode.HANG):
            host.drop_sessions()  # pooled sessions would otherwise dodge the fault

    def status(self) -> list[dict[str, Any]]:
        """Every host's identity, fault and a few live figures (for the control API and the demo)."""
        now = self.clock()
        rows = []
        for ip, host in self.hosts.items():
            host.state.advance(now)
            rows.append(
                {
                    "ip": ip,
                    "port": self.port,
                    "hostname": host.profile.hostname,
                    "department": host.profile.department,
                    "os": host.profile.distro[3],
                    "fault": str(host.fault),
                    "uptime": round(host.state.uptime(now)),
                    "users": len(host.state.sessions),
                    "cpu_utilisation": round(host.state.utilisation, 3),
                    "root_used": round(host.state.root_used_fraction, 4),
                    "connections": host.connections,
                    "open_sessions": sum(1 for t in list(host.transports) if t.is_active()),
                    "execs": host.execs,
                    "shells": host.shells,
                }
            )
        return rows

    def inventory(self) -> dict[str, Any]:
        """The exporter's inventory for this lab (issue 2's format): strict host keys, the lab's key."""
        departments: dict[str, dict[str, Any]] = {}
        for ip, host in self.hosts.items():
            departments.setdefault(host.profile.department, {"hosts": [], "opening_hours": dict(OPENING_HOURS)})[
                "hosts"
            ].append(ip)
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

    def describe(self, control_url: str | None) -> str:
        """JSON written to ``lab.json`` once the lab listens: how a parent process finds everything."""
        return json.dumps(
            {
                "inventory": str(self.inventory_path),
                "known_hosts": str(self.known_hosts),
                "key_file": str(self.key_file),
                "port": self.port,
                "control_url": control_url,
                "hosts": [
                    {"ip": ip, "hostname": h.profile.hostname, "department": h.profile.department}
                    for ip, h in self.hosts.items()
                ],
            },
            indent=1,
        )

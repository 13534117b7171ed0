"""The real exporter as a child process (``python -m optilab.exporter``), for the tests that need one.

``exporter_factory`` (a fixture, registered in tests/conftest.py) starts it on a free loopback port with
a given inventory; ``inventory`` writes one that logs in to a test sshd; ``promtool_problems`` is what
`promtool check metrics` says of an exposition, minus node_exporter's own names.
"""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.procs import Service, free_port, http_ok
from tests.fixtures.sshd import Sshd
from tests.support.paths import REPO


@dataclass
class Exporter:
    url: str
    config_path: Path
    service: Service

    def get(self, path: str, timeout: float = 20.0, headers: dict[str, str] | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.url + path, headers=headers or {})  # noqa: S310 - loopback
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def samples(self, path: str, name: str, **headers: str) -> list[tuple[dict[str, str], float]]:
        status, text = self.get(path, headers=headers)
        assert status == 200, text
        return [(s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]

    def metric(self, name: str, **labels: str) -> float:
        """One self-metric value from /metrics (0 when the series is absent)."""
        return sum(value for found, value in self.samples("/metrics", name) if labels.items() <= found.items())


def inventory(sshd: Sshd, **sections: Any) -> dict[str, Any]:
    """An inventory logging in to ``sshd``; ``sections`` override or add top-level sections."""
    return {
        "ssh": {
            "user": sshd.user,
            "port": sshd.port,
            "key_file": str(sshd.key_file),
            "known_hosts": str(sshd.trust()),
            "connect_timeout": "3s",
        },
        "departments": {"physics": {"hosts": [f"127.0.0.1:{sshd.port}"]}},
        **sections,
    }


def start_exporter(
    config: dict[str, Any], workdir: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[Service, str]:
    """``python -m optilab.exporter`` with ``config`` (written to ``workdir/inventory.yml``) on a free
    loopback port, ready when its /metrics answers; returns the process and its base URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "inventory.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [sys.executable, "-m", "optilab.exporter", "--config", str(workdir / "inventory.yml")]
    service = Service([*argv, "--listen", f"127.0.0.1:{port}", *args], workdir / "exporter.log", env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        service.wait_ready(lambda: http_ok(f"{url}/metrics"))
    except BaseException:
        service.stop()
        raise
    return service, url


@pytest.fixture
def exporter_factory(tmp_path: Path) -> Iterator[Callable[..., Exporter]]:
    """Start ``python -m optilab.exporter`` on a free loopback port with the given config; stopped at teardown."""
    started: list[Exporter] = []

    def start(config: dict[str, Any], env: dict[str, str] | None = None) -> Exporter:
        workdir = tmp_path / f"exporter{len(started)}"
        service, url = start_exporter(config, workdir, env=env)
        exporter = Exporter(url, workdir / "inventory.yml", service)
        started.append(exporter)
        return exporter

    yield start
    for exporter in started:
        exporter.service.stop()


#: node_exporter's own names that promtool's lint flags: CamelCase meminfo/netstat/sockstat fields, and
#: the entropy collector's ``_bits`` (promtool wants bytes); OptiLab keeps node_exporter's names
NODE_EXPORTERS_OWN = re.compile(r"not 'camelCase'|^node_entropy_(available|pool_size)_bits use base unit")


def promtool_problems(text: str) -> list[str]:
    """`promtool check metrics` findings, minus those about node_exporter's own names."""
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    lines = (result.stdout + result.stderr).splitlines()
    return [line for line in lines if line.strip() and not NODE_EXPORTERS_OWN.search(line)]

"""An exporter runtime with the SSH side replaced by a recording fake runner, for in-process tests of
the WSGI app and the admission logic (tests/exporter/test_http.py, test_admission.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from optilab.exporter.collectors import make_plan
from optilab.exporter.command import DEFAULT_COMMANDS, frame
from optilab.exporter.config import Config
from optilab.exporter.health import HealthBook
from optilab.exporter.probe import Prober
from optilab.exporter.ssherror import SshError
from optilab.exporter.targets import Target

INVENTORY = {
    "ssh": {"user": "optilab", "key_file": "/nonexistent/key", "port": 22},
    "probe": {"timeout": "10s", "offset": "500ms"},
    "health": {"jitter": 0},
    "departments": {
        "physics": {"hosts": [{"target": "127.0.1.1", "hostname": "pc-01"}, "127.0.1.2"]},
        "chemistry": {"subnets": ["127.0.2.0/30"]},
        "broken": {"hosts": ["127.0.3.1", "127.0.3.2"]},
    },
}
KERNEL = "/proc/sys/kernel/"
FAST = dataclasses.replace(make_plan(), slow=None)


def output(name: str) -> str:
    """A short valid answer: the uname files and the target's clock."""
    return frame(
        {
            f"{KERNEL}ostype": "Linux\n",
            f"{KERNEL}hostname": f"{name}\n",
            f"{KERNEL}osrelease": "6.1.0\n",
            f"{KERNEL}version": "#1 SMP\n",
            f"{KERNEL}arch": "x86_64\n",
            f"{KERNEL}domainname": "(none)\n",
            "cmd:date": "1700000000 +0000 UTC\n",
        },
        DEFAULT_COMMANDS,
    )


class FakeRunner:
    """Answers like a host: 127.0.1.2 refuses, the others print a short valid batch output."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []
        self.scripts: list[str] = []  # what each of ``calls`` asked the host to run
        self.slow_calls: list[str] = []  # the slow tier's background refreshes (exporter/slowtier.py)

    def run(self, target: Target, command: str, deadline: float) -> str:
        if command == make_plan().slow.script:
            self.slow_calls.append(str(target))
            return frame({}, make_plan().slow.commands)
        self.calls.append((str(target), deadline))
        self.scripts.append(command)
        if target.host == "127.0.1.2":
            raise SshError("refused", "connection refused")
        if target.host == "127.0.3.1":  # session dropped mid-output: no end marker
            return output("cut").split("==> cmd:date")[0]
        if target.host == "127.0.3.2":  # not a Linux shell: nothing parses
            return frame({}, DEFAULT_COMMANDS)
        return output(f"node-{target.host.rsplit('.', 1)[1]}")


class FakeRuntime:
    def __init__(self, config: Config, clock: float) -> None:
        self.config = config
        self.runner = FakeRunner()
        self.prober = Prober(
            self.runner, HealthBook(config.health, clock=lambda: clock), clock=lambda: clock, plans=lambda entry: FAST
        )  # one request per probe: the slow tier is tested apart
        self.reload_checks = 0

    def maybe_reload(self) -> None:
        self.reload_checks += 1

    def self_metrics(self) -> Iterable[Metric]:
        return []


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]

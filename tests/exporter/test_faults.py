"""Every fault a lab machine can have, met by the real exporter (a child process) over real SSH.

For each fault: the probe answers (within the HTTP client's bound, set just above the exporter's
probe timeout) with success 0 and the right ``optilab_probe_error_info`` reason, the host moves
healthy → degraded, the exporter keeps no connection to the failed host (its pooled-connections
gauge, and the lab's own count of open sessions), and once the fault is cleared the host returns
to healthy — except a changed host key, which stays refused. Health intervals are tiny so backoff
passes in a fraction of a second.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from optilab.labsim.lab import Lab
from tests.fixtures.procs import Service, free_port, http_ok, wait_for

PROBE_TIMEOUT = 1.5
HEALTH = {
    "degraded_after": 1,
    "offline_after": 2,
    "dead_after": 3,
    "degraded_interval": "300ms",
    "offline_interval": "300ms",
    "dead_interval": "300ms",
    "jitter": 0,
}


class Probe:
    """One ``/probe?target=`` answer, read with prometheus_client's own text parser."""

    def __init__(self, text: str) -> None:
        self.samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, tuple(sorted(labels.items()))))

    @property
    def success(self) -> bool:
        return self.value("optilab_probe_success") == 1.0

    @property
    def reason(self) -> str | None:
        return next(
            (dict(labels)["reason"] for name, labels in self.samples if name == "optilab_probe_error_info"), None
        )

    @property
    def state(self) -> str:
        return next(
            dict(labels)["state"]
            for (name, labels), value in self.samples.items()
            if name == "optilab_host_health_state" and value == 1.0
        )


class Setup:
    def __init__(self, lab: Lab, url: str, mode: str) -> None:
        self.lab, self.url, self.mode = lab, url, mode

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=PROBE_TIMEOUT + 5) as response:  # noqa: S310
            return response.read().decode()

    def probe(self, ip: str) -> Probe:
        return Probe(self.get(f"/probe?target={ip}:{self.lab.port}"))

    def pooled(self) -> float:
        text = self.get("/metrics")
        return next(
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "optilab_exporter_ssh_pooled_connections"
        )

    def sessions(self, ip: str) -> int:
        return next(h["open_sessions"] for h in self.lab.status() if h["ip"] == ip)

    def dials(self) -> float:
        text = self.get("/metrics")
        return sum(
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "optilab_exporter_ssh_dials_total"
        )

    def probe_until(self, ip: str, success: bool, seen: list[Probe] | None = None) -> Probe:
        """Probe until the answer is a real dial with this outcome (backoff answers come in between);
        every answer is appended to ``seen``."""
        seen = [] if seen is None else seen

        def check() -> bool:
            seen.append(self.probe(ip))
            return seen[-1].success is success and seen[-1].reason != "backoff"

        wait_for(check, timeout=15, interval=0.05, what=f"{ip} success={success}")
        return seen[-1]


@pytest.fixture(scope="module", params=["shell", "exec"])
def setup(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Setup]:
    """The lab and an exporter reading it through a long-lived shell per host, or one exec per scrape:
    every fault must look the same either way."""
    workdir: Path = tmp_path_factory.mktemp("faults")
    lab = Lab.start(workdir / "lab", hosts=10, departments=1, port=free_port())
    raw = yaml.safe_load(lab.inventory.read_text())
    raw["ssh"].update(connect_timeout="1s", command_timeout="1s", session={"mode": request.param})
    # a 4 s idle timeout makes the pool's reaper pass every 2 s (closing broken connections too)
    raw.update(health=HEALTH, probe={"timeout": f"{PROBE_TIMEOUT}s"}, pool={"idle_timeout": "4s"})
    inventory = workdir / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(raw))
    url = f"http://127.0.0.1:{free_port()}"
    exporter = Service(
        [*_exporter_argv(), "--config", str(inventory), "--listen", url[7:], "--log-level", "WARNING"],
        workdir / "exporter.log",
    )
    try:
        exporter.wait_ready(lambda: http_ok(url + "/metrics"))
        yield Setup(lab, url, request.param)
    finally:
        exporter.stop()
        lab.stop()


def _exporter_argv() -> list[str]:
    import sys

    return [sys.executable, "-m", "optilab.exporter"]


# (fault, reason, whether the exporter still holds a healthy pooled connection to the host after it)
FAULTS = [
    ("refuse", "refused", False),
    ("hang", "timeout", False),
    ("slow", "timeout", False),
    ("garbage", "parse", True),
    ("auth", "auth", False),
    ("drop", "protocol", False),
]


@pytest.mark.parametrize(
    ("index", "fault", "reason", "keeps_connection"),
    [(i + 1, *fault) for i, fault in enumerate(FAULTS)],
    ids=[f[0] for f in FAULTS],
)
def test_fault_gives_its_reason_degrades_and_recovers(
    setup: Setup, index: int, fault: str, reason: str, keeps_connection: bool
) -> None:
    ip = setup.lab.hosts[index]["ip"]
    warm = setup.probe_until(ip, success=True)  # a pooled connection exists before the fault
    assert warm.state == "healthy"
    dials = setup.dials()
    setup.lab.set_fault(ip, fault, delay=PROBE_TIMEOUT + 2 if fault == "slow" else None)
    failed = setup.probe(ip)
    assert (failed.success, failed.reason, failed.state) == (False, reason, "degraded")
    assert failed.value("system_status", **_lab_labels(failed)) == 0.0
    if keeps_connection:  # the session is sound, only its output is not: reused, not redialled
        assert setup.dials() == dials and setup.sessions(ip) == 1
        assert failed.value("optilab_session_mode", mode=setup.mode) == 1.0
    else:
        wait_for(lambda: setup.sessions(ip) == 0, timeout=10, what=f"{ip}: lab sees no open session")
    setup.lab.set_fault(ip, "none")
    recovered = setup.probe_until(ip, success=True)
    assert (recovered.state, recovered.reason) == ("healthy", None)
    assert recovered.value("optilab_session_mode", mode=setup.mode) == 1.0
    assert recovered.value("optilab_login_check_success") == 1.0  # the pooled dial was a fresh login
    shells = next(h["shells"] for h in setup.lab.status() if h["ip"] == ip)
    assert (shells > 0) == (setup.mode == "shell")  # the lab really served the mode the exporter names


def test_no_connection_outlives_its_host(setup: Setup) -> None:
    """Every host dies: after one fan-out the pool holds nothing, on the exporter's side and the lab's."""
    setup.lab.set_fault("all", "refuse")
    try:
        text = setup.get("/probe?all=1")
        assert text.count("optilab_probe_success{") == len(setup.lab.hosts)
        wait_for(lambda: setup.pooled() == 0, timeout=10, what="pooled connections to drop to 0")
        wait_for(
            lambda: all(host["open_sessions"] == 0 for host in setup.lab.status()),
            timeout=10,
            what="the lab to see every session closed",
        )
    finally:
        setup.lab.set_fault("all", "none")


def _lab_labels(probe: Probe) -> dict[str, str]:
    return next(dict(labels) for name, labels in probe.samples if name == "system_status")


def test_failures_walk_down_to_dead_backoff_costs_no_dial_and_one_success_heals(setup: Setup) -> None:
    ip = setup.lab.hosts[7]["ip"]
    setup.probe_until(ip, success=True)
    setup.lab.set_fault(ip, "refuse")
    dials, answers, states = setup.dials(), [], []
    for _ in range(3):
        states.append(setup.probe_until(ip, success=False, seen=answers).state)
    assert states == ["degraded", "offline", "dead"]
    backoff = [a for a in answers if a.reason == "backoff"]
    assert backoff and {a.state for a in backoff} <= {"degraded", "offline"}
    assert setup.dials() - dials == len(answers) - len(backoff) == 3  # answers from state never dial
    setup.lab.set_fault(ip, "none")
    assert setup.probe_until(ip, success=True).state == "healthy"


def test_changed_host_key_is_refused_and_stays_refused(setup: Setup) -> None:
    ip = setup.lab.hosts[8]["ip"]
    setup.probe_until(ip, success=True)
    setup.lab.set_fault(ip, "hostkey")
    failed = setup.probe(ip)
    assert (failed.success, failed.reason, failed.state) == (False, "hostkey", "degraded")
    again = setup.probe_until(ip, success=False)  # the fault is one-shot: the new key stays
    assert again.reason == "hostkey"
    wait_for(lambda: setup.sessions(ip) == 0, timeout=10, what=f"{ip}: refused sessions closed")


def test_reboot_breaks_the_pooled_session_and_the_probe_redials(setup: Setup) -> None:
    ip = setup.lab.hosts[9]["ip"]
    before = setup.probe_until(ip, success=True).value("node_boot_time_seconds")
    setup.lab.set_fault(ip, "reboot")
    after = setup.probe(ip)
    assert (after.success, after.state) == (True, "healthy")
    assert after.value("node_boot_time_seconds") > before

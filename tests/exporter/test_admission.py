"""Overload accounting in-process: shared collections, shed requests, blame for timeouts, key files.

The pieces are pure logic over gevent primitives (no monkey patching needed): a fake runner that
sleeps in gevent stands in for SSH here; tests/exporter/test_reliability_exporter.py runs the same paths
against the real exporter and labsim's real SSH hosts.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import gevent
import gevent.event
import pytest
from werkzeug.test import Client

from optilab.exporter.admission import Admission, Flights
from optilab.exporter.config import HealthSettings, HostEntry, key_file_problems, parse_config
from optilab.exporter.health import HealthBook
from optilab.exporter.http import ExporterApp
from optilab.exporter.overload import LoopMonitor, QueueSlots, call_started, probe_window, timeout_reason
from optilab.exporter.probe import Prober
from optilab.exporter.ssherror import SshError
from optilab.exporter.targets import Target
from tests.support.fake_runtime import FAST, INVENTORY, FakeRuntime, output, samples

ENTRY = HostEntry(Target("127.0.1.1", 22), "physics", "pc-01")


class SlowRunner:
    """Each call takes ``seconds`` (in gevent), then fails with ``reason`` or prints a batch."""

    def __init__(self, seconds: float, reason: str | None = None) -> None:
        self.seconds, self.reason, self.calls = seconds, reason, 0

    def run(self, target: Target, command: str, deadline: float) -> str:
        self.calls += 1
        gevent.sleep(self.seconds)
        if self.reason:
            raise SshError(self.reason, "fake")
        return output("pc-01")


def prober_with(runner: SlowRunner) -> Prober:
    return Prober(
        runner,
        HealthBook(HealthSettings(jitter=0, degraded_after=1, offline_after=2, dead_after=3)),
        plans=lambda entry: FAST,
    )


def test_concurrent_probes_of_one_host_share_one_collection_and_count_once() -> None:
    runner = SlowRunner(0.05, reason="timeout")
    prober, flights = prober_with(runner), Flights()
    now = time.monotonic()
    jobs = [gevent.spawn(flights.probe, prober, ENTRY, now + 5, now) for _ in range(6)]
    gevent.joinall(jobs, timeout=5)
    assert [job.value.reason for job in jobs] == ["timeout"] * 6
    assert runner.calls == 1 and flights.shared["host"] == 5
    health = prober.health.get("127.0.1.1:22")
    assert (health.failures, health.state) == (1, "degraded")  # six separate failures would be "dead"


def test_probes_of_one_host_share_a_collection_only_with_the_same_collect_filter() -> None:
    """A full job and a ``collect[]`` job scraping one host at once each get their own answer (the
    other's would lack series or carry extra ones); two of the same filter share one."""
    runner = SlowRunner(0.05)
    prober, flights = prober_with(runner), Flights()
    now = time.monotonic()
    uname = frozenset({"uname"})
    jobs = [gevent.spawn(flights.probe, prober, ENTRY, now + 5, now, collect) for collect in (None, uname, uname)]
    gevent.joinall(jobs, timeout=5)
    assert runner.calls == 2 and flights.shared["host"] == 1
    collectors = [
        {s[0][0] for f in job.value.families if f.name == "node_scrape_collector_success" for s in f.samples}
        for job in jobs
    ]
    assert collectors[1] == collectors[2] == {"uname"} and len(collectors[0]) == len(FAST.collectors)


def test_a_joiner_whose_deadline_comes_first_answers_without_counting() -> None:
    runner = SlowRunner(0.3, reason="timeout")
    prober, flights = prober_with(runner), Flights()
    now = time.monotonic()
    leader = gevent.spawn(flights.probe, prober, ENTRY, now + 5, now)
    gevent.sleep(0)
    early = flights.probe(prober, ENTRY, now + 0.05, now)
    assert (early.success, early.reason) == (False, "timeout")
    assert prober.health.get("127.0.1.1:22").failures == 0  # the leader has not finished yet
    leader.join(timeout=5)
    assert prober.health.get("127.0.1.1:22").failures == 1 and runner.calls == 1


def test_a_fan_out_and_a_single_probe_of_one_host_share_one_collection() -> None:
    """Families carry no request labels (a fan-out adds instance and department when it renders), so a
    fan-out and a single-target probe of the same host can share one collection."""
    runner = SlowRunner(0.05)
    prober, flights = prober_with(runner), Flights()
    now = time.monotonic()
    fan_out = gevent.spawn(flights.probe, prober, ENTRY, now + 5, now)
    gevent.sleep(0)
    single = flights.probe(prober, ENTRY, now + 5, now)
    fan_out.join(timeout=5)
    assert single.success and fan_out.value is single
    success = [family for family in single.families if family.name == "optilab_probe_success"]
    assert [(family.labels, family.samples) for family in success] == [((), [((), 1.0)])]
    assert runner.calls == 1


def test_a_probe_that_starts_too_late_dials_nothing_and_an_exporter_bug_costs_one_host() -> None:
    class Broken(SlowRunner):
        def run(self, target: Target, command: str, deadline: float) -> str:
            self.calls += 1
            raise RuntimeError("Semaphore released too many times")

    runner = SlowRunner(0)
    prober, flights = prober_with(runner), Flights()
    now = time.monotonic()
    late = flights.probe(prober, ENTRY, now + 0.01, now - 4)
    assert (late.reason, runner.calls, prober.health.get("127.0.1.1:22").state) == ("overload", 0, "healthy")
    broken = prober_with(Broken(0))
    result = flights.probe(broken, ENTRY, now + 5, now)
    assert (result.success, result.reason, broken.health.get("127.0.1.1:22").failures) == (False, "internal", 0)


def test_a_fan_out_where_one_host_raises_answers_200_with_that_hosts_reason() -> None:
    runtime = FakeRuntime(parse_config(INVENTORY, "lab.yml", env={}), clock=100.0)
    original = runtime.runner.run

    def run(target: Target, command: str, deadline: float) -> str:
        if target.host == "127.0.1.1":
            raise RuntimeError("Semaphore released too many times")
        return original(target, command, deadline)

    runtime.runner.run = run  # type: ignore[method-assign]
    response = Client(ExporterApp(runtime, clock=lambda: 100.0)).get("/probe?department=physics")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert sorted(
        (labels["instance"], labels["reason"]) for labels, _ in samples(text, "optilab_probe_error_info")
    ) == [("127.0.1.1:22", "internal"), ("127.0.1.2:22", "refused")]


def test_concurrent_identical_fan_outs_share_one_answer() -> None:
    flights, calls = Flights(), []

    def produce() -> bytes:
        calls.append(1)
        gevent.sleep(0.05)
        return b"answer"

    jobs = [gevent.spawn(flights.answer, ("all",), 10.0 + time.monotonic(), produce) for _ in range(5)]
    gevent.joinall(jobs, timeout=5)
    assert [job.value for job in jobs] == [b"answer"] * 5 and len(calls) == 1
    assert flights.shared["answer"] == 4


def test_requests_beyond_the_limit_get_503_and_are_counted() -> None:
    release = gevent.event.Event()
    runtime = FakeRuntime(parse_config(INVENTORY, "lab.yml", env={}), clock=100.0)

    def blocked(target: Target, command: str, deadline: float) -> str:
        release.wait(5)
        return output("x")

    runtime.runner.run = blocked  # type: ignore[method-assign]
    app = ExporterApp(runtime, max_requests=2)
    client = Client(app)
    holders = [gevent.spawn(client.get, f"/probe?target=127.0.2.{i}") for i in (1, 2)]
    gevent.sleep(0.05)
    shed = client.get("/probe?target=127.0.1.1")
    assert shed.status_code == 503 and shed.headers["Retry-After"] == "1"
    assert "--web.max-requests" in shed.get_data(as_text=True)
    assert client.get("/metrics").status_code == 200  # the exporter's own metrics are never shed
    release.set()
    gevent.joinall(holders, timeout=5)
    assert [h.value.status_code for h in holders] == [200, 200]
    text = client.get("/metrics").get_data(as_text=True)
    assert samples(text, "optilab_exporter_requests_shed_total") == [({}, 1.0)]
    assert samples(text, "optilab_exporter_requests_in_flight") == [({}, 0.0)]
    assert Admission(0).try_enter()  # 0: no limit


def test_timeouts_are_the_hosts_only_when_the_exporter_took_at_most_half_the_time() -> None:
    class Clock:
        now = 100.0

        def __call__(self) -> float:
            return self.now

    clock = Clock()
    monitor = LoopMonitor(interval=0.05, clock=clock)
    for _ in range(20):  # 1 s of punctual ticks
        clock.now += 0.05
        monitor.tick()
    call = clock.now
    assert timeout_reason(call, monitor, clock=lambda: call + 1.0) == "timeout"
    clock.now += 2.0  # the loop could not run for 2 s (rendering, key exchanges, other processes)
    monitor.tick()
    assert monitor.stalled(call) == pytest.approx(1.95)
    assert timeout_reason(call, monitor, clock=lambda: call + 2.5) == "overload"
    with probe_window(call - 4.0):  # queued 4 s before the SSH call even began (fan-out slots)
        assert timeout_reason(call, None, clock=lambda: call + 1.0) == "overload"


def test_waiting_for_a_slot_is_the_exporters_queueing() -> None:
    slots = QueueSlots(1)

    def hold() -> None:
        with slots:
            gevent.sleep(0.2)

    def wait() -> str:
        start = call_started()
        with slots:
            pass
        return timeout_reason(start, None)

    holder, waiter = gevent.spawn(hold), gevent.spawn(wait)
    gevent.joinall([holder, waiter], timeout=5)
    assert waiter.value == "overload"


def test_overload_and_internal_failures_never_move_a_host_and_retry_now_ends_a_wait() -> None:
    health = HealthBook(HealthSettings(jitter=0))
    for reason in ("overload", "internal"):
        assert health.record_failure("h:22", reason) is None
    assert (health.get("h:22").state, health.get("h:22").failures) == ("healthy", 0)
    health.record_failure("h:22", "auth")
    assert not health.may_dial("h:22")
    assert health.retry_now(["h:22", "other:22"]) == ["h:22"]
    assert health.may_dial("h:22") and health.get("h:22").state == "degraded"  # state waits for evidence


def test_key_file_problems_name_the_field(tmp_path: Path) -> None:
    def config(**ssh: str) -> object:
        return parse_config(
            {"ssh": {"user": "u", **ssh}, "departments": {"p": {"hosts": ["127.0.1.1"]}}},
            "lab.yml",
            env={"PASS": "secret-1"},
        )

    missing = key_file_problems(config(key_file=str(tmp_path / "absent")))
    assert missing == [
        f"lab.yml: ssh.key_file: {tmp_path / 'absent'} is not readable (No such file or "
        f"directory); every login will fail"
    ]
    (tmp_path / "junk").write_text("not a key\n")
    assert "is not a usable private key" in key_file_problems(config(key_file=str(tmp_path / "junk")))[0]
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret-1", "-f", str(key)], check=True)
    assert "is encrypted" in key_file_problems(config(key_file=str(key)))[0]
    assert key_file_problems(config(key_file=str(key), passphrase_env="PASS")) == []
    assert key_file_problems(config(password_env="PASS")) == []
    assert "secret-1" not in " ".join(key_file_problems(config(key_file=str(tmp_path / "junk"), passphrase_env="PASS")))


def test_fan_outs_hold_at_most_a_quarter_of_the_places() -> None:
    admission = Admission(8)
    assert admission.try_enter(fan_out=True) and admission.try_enter(fan_out=True)
    assert not admission.try_enter(fan_out=True)  # two fan-outs are a quarter of eight
    assert all(admission.try_enter() for _ in range(6))  # single-target scrapes still get in
    assert not admission.try_enter() and admission.shed == 2
    admission.leave(fan_out=True)
    assert admission.try_enter(fan_out=True)  # its place is free again
    assert not admission.try_enter() and admission.shed == 3

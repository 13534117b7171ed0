"""The WSGI app in-process, with the SSH side replaced by a recording fake runner.

Routing, the inventory allow-list, the deadline arithmetic, fan-out labelling and /sd are pure
logic: they run here without sshd or gevent patching (test_probe_sshd.py covers the real thing).
"""

from __future__ import annotations

import json

import gevent
import pytest
from werkzeug.test import Client

from optilab.exporter.collectors import restrict
from optilab.exporter.command import frame
from optilab.exporter.config import HealthSettings, HostEntry, parse_config
from optilab.exporter.health import HealthBook
from optilab.exporter.http import ExporterApp
from optilab.exporter.probe import Prober
from optilab.exporter.targets import Target
from tests.support.fake_runtime import FAST, INVENTORY, FakeRunner, FakeRuntime, samples


@pytest.fixture
def runtime() -> FakeRuntime:
    return FakeRuntime(parse_config(INVENTORY, "lab.yml", env={}), clock=100.0)


@pytest.fixture
def client(runtime: FakeRuntime) -> Client:
    return Client(ExporterApp(runtime, clock=lambda: 100.0))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("target=127.0.9.9", "target 127.0.9.9:22 is not in the inventory (lab.yml)"),
        ("target=127.0.1.1:2222", "target 127.0.1.1:2222 is not in the inventory"),
        ("target=;reboot", "target ';reboot' is not a host name or IP address"),
        ("target=", "target '' is not a host name"),
        ("target=127.0.1.1&department=physics", "give one of target, department, all=1, not target and department"),
        ("department=physics&all=1", "not department and all"),
        ("", "no target: give target=HOST[:PORT]"),
        ("module=ssh&target=127.0.1.1", "OptiLab has no probe modules"),
        (
            "target=127.0.1.1&tagret=x",
            "unknown parameter 'tagret' (known: target, department, all, fail_status, collect[])",
        ),
        ("target=127.0.1.1&collect[]=uname&collect[]=nosuch", "unknown collector 'nosuch' in collect[] (known: arp,"),
        ("target=127.0.1.1&collect[]=", "unknown collector '' in collect[]"),
        ("department=physics&collect[]=cpu_freq", "unknown collector 'cpu_freq'"),
        ("target=127.0.1.1&collect[]=interrupts", "collect[]: 'interrupts' not enabled for department 'physics'"),
        ("all=0", "use all=1 to probe every machine"),
        ("all=1&fail_status=5xx", "fail_status applies to target= probes only"),
        ("target=127.0.1.1&fail_status=500", "fail_status='500': use 5xx"),
        ("target=127.0.1.1&target=127.0.1.2", "give 'target' once"),
        ("department=biology", "department 'biology' is not in the inventory (known: broken, chemistry, physics)"),
    ],
)
def test_bad_or_unknown_targets_get_400_and_nothing_is_dialled(
    client: Client, runtime: FakeRuntime, query: str, message: str
) -> None:
    response = client.get(f"/probe?{query}")
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert runtime.runner.calls == []


def test_output_cut_short_or_unparsable_is_a_failed_probe(client: Client) -> None:
    text = client.get("/probe?department=broken").get_data(as_text=True)
    assert sorted(samples(text, "optilab_probe_error_info"), key=lambda sample: sample[0]["instance"]) == [
        ({"instance": "127.0.3.1:22", "department": "broken", "reason": "protocol"}, 1.0),
        ({"instance": "127.0.3.2:22", "department": "broken", "reason": "parse"}, 1.0),
    ]
    assert samples(text, "node_uname_info") == []


def test_one_target_has_no_instance_label_and_uses_the_inventory_name(client: Client) -> None:
    response = client.get("/probe?target=127.0.1.1")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert samples(text, "optilab_probe_success") == [({}, 1.0)]
    assert samples(text, "system_status") == [({"hostname": "pc-01", "ip": "127.0.1.1", "department": "physics"}, 1.0)]
    assert (
        {
            "nodename": "node-1",
            "sysname": "Linux",
            "release": "6.1.0",
            "version": "#1 SMP",
            "machine": "x86_64",
            "domainname": "(none)",
        },
        1.0,
    ) in samples(text, "node_uname_info")


@pytest.mark.parametrize(("header", "deadline"), [(None, 110.0), ("3", 102.5), ("30", 110.0), ("0.4", 100.2)])
def test_the_deadline_is_the_scrape_timeout_minus_offset_capped(
    client: Client, runtime: FakeRuntime, header: str | None, deadline: float
) -> None:
    """The answer's deadline; collection stops earlier by the time kept for rendering one host."""
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": header} if header else {}
    reserve = client.application.render_one.reserve(1, deadline - 100.0)
    assert 0.01 <= reserve <= (deadline - 100.0) / 2
    client.get("/probe?target=127.0.1.1", headers=headers)
    assert runtime.runner.calls == [("127.0.1.1:22", pytest.approx(deadline - reserve))]


def test_a_malformed_scrape_timeout_header_is_a_400(client: Client) -> None:
    response = client.get("/probe?target=127.0.1.1", headers={"X-Prometheus-Scrape-Timeout-Seconds": "soon"})
    assert response.status_code == 400


def test_failure_says_why_and_then_backs_off_without_dialling(client: Client, runtime: FakeRuntime) -> None:
    first = client.get("/probe?target=127.0.1.2").get_data(as_text=True)
    assert samples(first, "optilab_probe_success") == [({}, 0.0)]
    assert samples(first, "optilab_probe_error_info") == [({"reason": "refused"}, 1.0)]
    assert ({"state": "degraded"}, 1.0) in samples(first, "optilab_host_health_state")
    second = client.get("/probe?target=127.0.1.2").get_data(as_text=True)
    assert samples(second, "optilab_probe_error_info") == [({"reason": "backoff"}, 1.0)]
    assert ({"state": "degraded"}, 1.0) in samples(second, "optilab_host_health_state")
    assert [call[0] for call in runtime.runner.calls] == ["127.0.1.2:22"]  # the second never dialled


def test_fail_status_5xx_turns_a_failed_probe_into_a_503_and_leaves_success_alone(client: Client) -> None:
    """The per-job way to get up == 0 for a dead machine (docs/exporter.md, "What up means")."""
    failed = client.get("/probe?target=127.0.1.2&fail_status=5xx")
    assert failed.status_code == 503
    assert "probe of 127.0.1.2:22 failed: refused" in failed.get_data(as_text=True)
    backoff = client.get("/probe?target=127.0.1.2&fail_status=5xx")  # answered from the health state
    assert backoff.status_code == 503 and "backoff" in backoff.get_data(as_text=True)
    ok = client.get("/probe?target=127.0.1.1&fail_status=5xx")
    assert ok.status_code == 200
    assert samples(ok.get_data(as_text=True), "optilab_probe_success") == [({}, 1.0)]
    default = client.get("/probe?target=127.0.1.2")  # without the parameter: 200 and system_status 0
    assert default.status_code == 200
    assert samples(default.get_data(as_text=True), "system_status")[0][1] == 0.0


def test_department_fan_out_labels_every_series_with_instance_and_department(client: Client) -> None:
    text = client.get("/probe?department=physics").get_data(as_text=True)
    assert sorted(samples(text, "optilab_probe_success"), key=str) == sorted(
        [
            ({"instance": "127.0.1.1:22", "department": "physics"}, 1.0),
            ({"instance": "127.0.1.2:22", "department": "physics"}, 0.0),
        ],
        key=str,
    )
    assert samples(text, "optilab_probe_error_info") == [
        ({"instance": "127.0.1.2:22", "department": "physics", "reason": "refused"}, 1.0)
    ]
    uname = samples(text, "node_uname_info")
    assert [labels["instance"] for labels, _ in uname] == ["127.0.1.1:22"]


def test_whole_lab_fan_out_covers_every_department(client: Client, runtime: FakeRuntime) -> None:
    response = client.get("/probe?all=1")
    text = response.get_data(as_text=True)
    assert int(response.headers["Content-Length"]) == len(response.get_data())  # the pieces' sum
    instances = {labels["instance"] for labels, _ in samples(text, "optilab_probe_success")}
    assert instances == {"127.0.1.1:22", "127.0.1.2:22", "127.0.2.1:22", "127.0.2.2:22", "127.0.3.1:22", "127.0.3.2:22"}
    assert len(runtime.runner.calls) == 6


def test_sd_lists_every_target_with_department_and_hostname(client: Client, runtime: FakeRuntime) -> None:
    groups = json.loads(client.get("/sd").get_data())
    assert {"targets": ["127.0.1.1:22"], "labels": {"department": "physics", "hostname": "pc-01"}} in groups
    assert {"targets": ["127.0.2.1:22"], "labels": {"department": "chemistry", "hostname": "127.0.2.1"}} in groups
    assert len(groups) == 6
    client.get("/probe?target=127.0.2.1")  # once read, a bare address is named by its uname nodename
    groups = json.loads(client.get("/sd").get_data())
    assert {"targets": ["127.0.2.1:22"], "labels": {"department": "chemistry", "hostname": "node-1"}} in groups
    assert runtime.reload_checks == 3  # /sd and /probe look for a changed config file


def test_sd_names_the_bastion_of_each_host_behind_one() -> None:
    """The `jump` target label (HOST:PORT, as optilab_exporter_jump_health_state's `jump`) lets
    Alertmanager inhibit the alerts of machines behind a bastion that is down; direct hosts have none."""
    inventory = {
        **INVENTORY,
        "ssh": {**INVENTORY["ssh"], "jump": {"host": "127.0.9.1"}},
        "departments": {
            "physics": {"hosts": ["127.0.1.1"]},
            "chemistry": {"hosts": ["127.0.2.1"], "jump": {"host": "127.0.9.2:2222"}},
            "staff": {"hosts": ["127.0.3.1"], "jump": False},
        },
    }
    runtime = FakeRuntime(parse_config(inventory, "lab.yml", env={}), clock=100.0)
    groups = json.loads(Client(ExporterApp(runtime, clock=lambda: 100.0)).get("/sd").get_data())
    assert {g["targets"][0]: g["labels"].get("jump") for g in groups} == {
        "127.0.1.1:22": "127.0.9.1:22",
        "127.0.2.1:22": "127.0.9.2:2222",
        "127.0.3.1:22": None,
    }


def test_landing_metrics_and_errors(client: Client) -> None:
    landing = client.get("/").get_data(as_text=True)
    assert 'href="/metrics"' in landing and 'href="/probe?department=physics"' in landing
    assert 'href="/probe"' not in landing and 'href="/probe?all' not in landing  # no 500-machine click
    client.get("/probe?target=127.0.1.1")
    metrics = client.get("/metrics").get_data(as_text=True)
    assert samples(metrics, "optilab_exporter_probes_total") == [({"result": "success"}, 1.0)]
    assert ({"kind": "target"}, 1.0) in samples(metrics, "optilab_exporter_scrape_duration_seconds_count")
    assert client.get("/nope").status_code == 404
    assert client.post("/probe?target=127.0.1.1").status_code == 405


def test_fan_out_runs_hosts_concurrently_but_bounded() -> None:
    class SlowRunner(FakeRunner):
        inflight = peak = 0

        def run(self, target: Target, command: str, deadline: float) -> str:
            SlowRunner.inflight += 1
            SlowRunner.peak = max(SlowRunner.peak, SlowRunner.inflight)
            gevent.sleep(0.01)
            SlowRunner.inflight -= 1
            return super().run(target, command, deadline)

    raw = {**INVENTORY, "probe": {"concurrency": 3}}
    runtime = FakeRuntime(parse_config(raw, "lab.yml", env={}), clock=100.0)
    runtime.prober.runner = runtime.runner = SlowRunner()
    text = Client(ExporterApp(runtime, clock=lambda: 100.0)).get("/probe?all=true").get_data(as_text=True)
    assert len(samples(text, "optilab_probe_success")) == 6
    assert SlowRunner.peak == 3


def test_collect_filter_reads_and_serves_only_the_chosen_collectors(client: Client, runtime: FakeRuntime) -> None:
    """node_exporter's ``collect[]``: the host runs a script that reads only the chosen collectors'
    files, and the answer has their families plus the probe's own, no seats and no other collector."""
    text = client.get("/probe?target=127.0.1.1&collect[]=uname&collect[]=uname").get_data(as_text=True)
    filtered = runtime.runner.scripts[-1]
    assert [labels for labels, _ in samples(text, "node_uname_info")] != []
    assert samples(text, "node_scrape_collector_success") == [({"collector": "uname"}, 1.0)]
    assert samples(text, "optilab_probe_success") == [({}, 1.0)]
    assert samples(text, "optilab_seat_state") == []
    assert "/proc/sys/kernel/ostype" in filtered and "/proc/meminfo" not in filtered and "who" not in filtered
    text = client.get("/probe?target=127.0.1.1").get_data(as_text=True)
    assert runtime.runner.scripts[-1] == FAST.script  # the unfiltered job's script is the department's own
    assert len(samples(text, "node_scrape_collector_success")) == len(FAST.collectors)


def test_a_filter_without_seats_gives_no_seat_state_for_a_host_that_fails(client: Client) -> None:
    """A host that refuses, then waits out its backoff: the full job's answer says its seat is
    down, a job that asked for other collectors says nothing about seats (the board counts seats
    from one job), whether the probe failed just now or answers from the backoff."""
    for reason in ("refused", "backoff"):
        filtered = client.get("/probe?target=127.0.1.2&collect[]=uname").get_data(as_text=True)
        assert samples(filtered, "optilab_probe_error_info") == [({"reason": reason}, 1.0)]
        assert samples(filtered, "optilab_seat_state") == []
    full = client.get("/probe?target=127.0.1.2").get_data(as_text=True)
    assert [labels["state"] for labels, value in samples(full, "optilab_seat_state") if value == 1.0] != []
    chosen = client.get("/probe?target=127.0.1.2&collect[]=seats").get_data(as_text=True)
    assert samples(chosen, "optilab_seat_state") == samples(full, "optilab_seat_state")


def test_a_department_fan_out_takes_the_filter_too(client: Client, runtime: FakeRuntime) -> None:
    text = client.get("/probe?department=physics&collect[]=uname").get_data(as_text=True)
    assert {labels["instance"] for labels, _ in samples(text, "node_uname_info")} == {"127.0.1.1:22"}  # .2 refuses
    assert {labels["collector"] for labels, _ in samples(text, "node_scrape_collector_success")} == {"uname"}
    assert all("/proc/meminfo" not in script for script in runtime.runner.scripts)


STAT = "cpu  {busy} 0 100 {idle} 100 0 5 5 0 0\ncpu0 {busy} 0 100 {idle} 100 0 5 5 0 0\n"


UNAME = restrict(FAST, frozenset({"uname"}))


class StatRunner:
    """A host whose /proc/stat moves 100 busy and 100 idle ticks per call; it answers the script it
    is sent (the full plan's or the uname filter's) with the files that script reads."""

    def __init__(self) -> None:
        self.count = 0

    def run(self, target: Target, command: str, deadline: float) -> str:
        self.count += 1
        plan = {FAST.script: FAST, UNAME.script: UNAME}[command]
        stat = STAT.format(busy=100 * self.count, idle=700 + 100 * self.count)
        files = {"/proc/stat": stat, "/proc/sys/kernel/ostype": "Linux\n", "/proc/sys/kernel/hostname": "pc\n"}
        return frame({path: text for path, text in files.items() if path in command}, plan.commands, plan.piped)


def test_a_filtered_probe_without_proc_stat_leaves_the_cpu_baseline_alone() -> None:
    """A second Prometheus job with ``collect[]=uname`` between two full scrapes must not cost the
    full job its ``system_cpu_usage`` (a delta against this host's previous /proc/stat)."""
    prober = Prober(StatRunner(), HealthBook(HealthSettings(jitter=0)), plans=lambda entry: FAST)
    entry = HostEntry(Target("127.0.1.1", 22), "physics", "pc-01")

    def cpu(collect: frozenset[str] | None) -> list[float]:
        result = prober.probe(entry, 1e12, collect)
        assert result.success, result.reason
        return [family.samples[0][1] for family in result.families if family.name == "system_cpu_usage"]

    assert cpu(None) == []  # the first read: no delta yet
    assert cpu(frozenset({"uname"})) == []
    assert cpu(None) == [50.0]  # 100 of 200 ticks busy (user + system), against the first full read

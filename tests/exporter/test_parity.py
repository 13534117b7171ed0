"""/probe of this machine through a real sshd against the real node_exporter on the same machine.

node_exporter (Debian's 1.5) runs with upstream's default filters (and its interrupts, processes and
tcpstat collectors, off by default in both, enabled in both); the exporter runs as its own process
and probes 127.0.0.1 through a real sshd, as it would a lab machine. Compared family by family: names,
types, HELP, label names, the set of series, and values (each of ours must lie between node_exporter's
reads just before and just after it, within the tolerance stated per family). Then the "Node Exporter
Full" dashboard's panels and the node-mixin alerts (tests skip when the anchor files are absent).

Every remaining difference is listed here, with its reason, and in docs/exporter.md:
:data:`DIFFERENCES` are deliberate; :data:`NOT_YET` are collectors another part of #12 ports (the
/sys collectors and the slow tier): shrink it as they land, the tests then check those families too.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.procs import Service, free_port, http_ok
from tests.fixtures.prometheus import query, start_prometheus
from tests.fixtures.sshd import Sshd, start_sshd
from tests.support.exporter_proc import inventory, start_exporter
from tests.support.paths import REPO

NODE_EXPORTER = Path("/usr/bin/prometheus-node-exporter")
UPSTREAM_FILTERS = (
    "--collector.netdev.device-exclude=",
    "--collector.filesystem.mount-points-exclude="
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)",
)
#: ``<repo>/../shared/anchors`` (a worktree sits one level deeper: ``<repo>/../../shared/anchors``)
ANCHORS = next(
    (path for path in (REPO.parent / "shared" / "anchors", REPO.parents[1] / "shared" / "anchors") if path.is_dir()),
    REPO.parent / "shared" / "anchors",
)

#: families node_exporter has that /probe does not, on purpose
DIFFERENCES = {
    "node_exporter_build_info": "node_exporter's own build; the exporter's is on its /metrics",
}
#: series whose value differs on purpose: (family, the value of its one label) -> why
VALUE_DIFFERENCES = {
    ("node_tcp_connection_states", "tx_queued_bytes"): "netlink reports a listener's backlog limit as its send "
    "queue; /proc/net/tcp does not show it",
}
#: series (family, the value of its one label) whose value moves faster than their family's
SERIES_TOLERANCE = {
    # bytes in flight on any socket of the machine, the other tests' too, at the instant of each read
    ("node_tcp_connection_states", "rx_queued_bytes"): (0.0, float(1 << 20)),
}
#: families that count by state: upstream emits only the states it saw, so a series one side lacks is a
#: count of 0 there (a process that was running, a connection in time_wait, during one of the reads)
BY_STATE = re.compile(r"^node_(processes_state|processes_threads_state|tcp_connection_states)$")
#: node_exporter's own process (go_*, process_*, promhttp_*): the exporter's own are on its /metrics
OWN_PROCESS = re.compile(r"^(go|process|promhttp)_")
#: collector -> the families it makes, for collectors not ported yet (none left: bcache was the last)
NOT_YET: dict[str, re.Pattern[str]] = {}
#: families whose value our own SSH session, or time, moves by more than the bracket allows:
#: (relative, absolute) tolerance around node_exporter's two reads
TOLERANCE: list[tuple[re.Pattern[str], float, float]] = [
    (re.compile(r"^node_(sockstat|netstat_Tcp_CurrEstab|nf_conntrack_entries$|udp_queues|arp_entries)"), 0.5, 64),
    (re.compile(r"^node_(procs_|load|filefd_allocated|pressure_|schedstat_|entropy_available)"), 0.5, 16),
    (re.compile(r"^node_memory_"), 0.05, 64 << 20),
    (re.compile(r"^node_filesystem_(free|avail)_bytes|^node_filesystem_files_free"), 0.01, 64 << 20),
    (re.compile(r"^node_disk_io_now|^node_softnet_times_squeezed|^node_vmstat_"), 0.05, 1024),
    (re.compile(r"^node_time_seconds"), 0.0, 5.0),
    (re.compile(r"^node_timex_"), 0.05, 1e-3),
    (re.compile(r"^node_interrupts_total"), 0.05, 1000),  # timer and IPI counts move with every read
    # the probe's own sshd session, sh and grep, and what the tests beside this one start and stop;
    # their connections too (which state each socket line counts as: tests/exporter/test_collectors.py)
    (re.compile(r"^node_processes_(pids|threads|state|threads_state)$"), 0.02, 32),
    (re.compile(r"^node_tcp_connection_states$"), 0.0, 64),
]
BRACKET = (0.001, 1e-6)  # everything else: between the two reads, up to float rounding
#: collectors off by default in both, enabled in both: compared too
OFF_BY_DEFAULT = ("interrupts", "processes", "tcpstat")


def collector_not_yet(name: str) -> str | None:
    return next((collector for collector, pattern in NOT_YET.items() if pattern.search(name)), None)


def explained(name: str) -> str | None:
    """Why /probe may lack sample ``name``: a collector not ported yet, a difference, or node_exporter's own."""
    if OWN_PROCESS.search(name):
        return "node_exporter's own process"
    if name in DIFFERENCES or name.removesuffix("_total") in DIFFERENCES:
        return "difference"
    return collector_not_yet(name)


def tolerance(name: str) -> tuple[float, float]:
    return next(((rel, absolute) for pattern, rel, absolute in TOLERANCE if pattern.search(name)), BRACKET)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback test peers
        return response.read().decode()


def parse(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def series(family: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}


@dataclass
class Reads:
    before: dict[str, Any]  # node_exporter, just before /probe
    ours: dict[str, Any]  # /probe through sshd
    after: dict[str, Any]  # node_exporter, just after
    exporter_url: str
    target: str
    ours_text: str


@pytest.fixture(scope="module")
def reads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reads]:
    if not NODE_EXPORTER.exists():
        pytest.skip("prometheus-node-exporter is not installed")
    workdir = tmp_path_factory.mktemp("parity")
    sshd: Sshd = start_sshd(workdir / "sshd")
    ne_port = free_port()
    node_exporter = Service(
        [
            str(NODE_EXPORTER),
            *UPSTREAM_FILTERS,
            *(f"--collector.{name}" for name in OFF_BY_DEFAULT),
            f"--web.listen-address=127.0.0.1:{ne_port}",
        ],
        workdir / "node_exporter.log",
    )
    config = inventory(sshd, collectors={"enable": list(OFF_BY_DEFAULT)})
    try:
        exporter, url = start_exporter(config, workdir / "exporter")
    except BaseException:
        node_exporter.stop()
        raise
    try:
        node_exporter.wait_ready(lambda: http_ok(f"http://127.0.0.1:{ne_port}/metrics"), timeout=20)
        target = f"127.0.0.1:{sshd.port}"
        probe = f"{url}/probe?target={target}"
        fetch(probe)  # warm: the pooled connection exists, as it does between scrapes
        before = parse(fetch(f"http://127.0.0.1:{ne_port}/metrics"))
        ours_text = fetch(probe)
        after = parse(fetch(f"http://127.0.0.1:{ne_port}/metrics"))
        yield Reads(before, parse(ours_text), after, url.removeprefix("http://"), target, ours_text)
    finally:
        exporter.stop()
        node_exporter.stop()
        sshd.stop()
        sshd.authorized_keys.unlink(missing_ok=True)


def compared(reads: Reads) -> list[str]:
    """node_exporter's families that /probe must have: all but the listed differences and gaps."""
    return sorted(
        name
        for name in reads.before
        if not OWN_PROCESS.search(name)
        and name not in DIFFERENCES
        and not collector_not_yet(name)
        and not name.startswith("node_scrape_collector_")
    )


def test_every_family_node_exporter_has_here_is_in_the_probe_with_its_type_help_and_labels(reads: Reads) -> None:
    names = compared(reads)
    assert len(names) > 150  # the /proc collectors alone make this many families on this host
    missing = [name for name in names if name not in reads.ours]
    assert not missing, f"families /probe lacks: {missing}"
    for name in names:
        theirs, ours = reads.before[name], reads.ours[name]
        assert (ours.type, ours.documentation) == (theirs.type, theirs.documentation), name
        assert {frozenset(s.labels) for s in ours.samples} == {frozenset(s.labels) for s in theirs.samples}, name


def test_the_same_series_with_values_between_node_exporters_reads(reads: Reads) -> None:
    problems = []
    for name in compared(reads):
        before, after, ours = series(reads.before[name]), series(reads.after[name]), series(reads.ours[name])
        if BY_STATE.search(name):
            keys = set(before) | set(after) | set(ours)
            before, after, ours = ({key: read.get(key, 0.0) for key in keys} for read in (before, after, ours))
        elif set(ours) != set(before) & set(after) and set(ours) != set(before):
            problems.append(
                f"{name}: series differ: only ours {sorted(set(ours) - set(before))[:3]}, "
                f"only node_exporter's {sorted(set(before) - set(ours))[:3]}"
            )
            continue
        for key, value in ours.items():
            series_key = (name, next((v for _, v in key[1]), ""))
            if series_key in VALUE_DIFFERENCES:
                continue
            rel, absolute = SERIES_TOLERANCE.get(series_key) or tolerance(name)
            low, high = min(before[key], after.get(key, before[key])), max(before[key], after.get(key, before[key]))
            slack = max(absolute, rel * max(abs(low), abs(high)))
            if not low - slack <= value <= high + slack:
                problems.append(f"{name}{dict(key[1])}: ours {value}, node_exporter {low}..{high} (±{slack})")
    assert not problems, "\n".join(problems)


def test_every_collector_that_succeeds_for_node_exporter_succeeds_here(reads: Reads) -> None:
    def successes(parsed: dict[str, Any]) -> dict[str, float]:
        return {s.labels["collector"]: s.value for s in parsed["node_scrape_collector_success"].samples}

    theirs, ours = successes(reads.before), successes(reads.ours)
    mine = {name for name, ok in theirs.items() if ok == 1 and name not in NOT_YET}
    assert {name for name in mine if ours.get(name) != 1} == set()
    # OptiLab's own (lab gauges, seat state); GPUs and SMART (slow tier)
    assert set(ours) - set(theirs) == {"lab", "seats", "nvidia_gpu", "smartctl"}
    assert {s.labels["collector"] for s in reads.ours["node_scrape_collector_duration_seconds"].samples} == set(ours)


def test_the_probe_passes_promtool_apart_from_node_exporters_camel_case(reads: Reads) -> None:
    result = subprocess.run(
        ["/usr/bin/promtool", "check", "metrics"],
        input=reads.ours_text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    flagged = {line.split()[0] for line in complaints}
    assert flagged, complaints  # node_exporter's CamelCase (node_memory_MemTotal_bytes) at least
    assert flagged <= sample_names(reads.before), (
        f"promtool flags names that are not node_exporter's own: {sorted(flagged - sample_names(reads.before))}"
    )


# --- the "Node Exporter Full" dashboard -------------------------------------------------------------


#: panels node_exporter fills here and /probe does not, with the metrics and why (shrink as they land)
def panel_metrics(dashboard: dict[str, Any]) -> dict[str, set[str]]:
    """{panel title (with its row): metric names of its queries}, rows' nested panels included."""
    panels: dict[str, set[str]] = {}

    def walk(items: list[dict[str, Any]], row: str) -> None:
        for panel in items:
            if panel.get("type") == "row":
                walk(panel.get("panels", []), panel.get("title", ""))
                row = panel.get("title", row)
                continue
            exprs = [target.get("expr", "") for target in panel.get("targets", [])]
            names = {name for expr in exprs for name in re.findall(r"\b((?:node|go|process)_[A-Za-z0-9_]+)", expr)}
            if names:
                panels[f"{row} / {panel.get('title', panel.get('id'))}"] = names

    walk(dashboard["panels"], "")
    return panels


def sample_names(parsed: dict[str, Any]) -> set[str]:
    return {s.name for family in parsed.values() for s in family.samples}


def test_every_dashboard_panel_node_exporter_fills_the_probe_fills(reads: Reads) -> None:
    path = ANCHORS / "node-exporter-full.json"
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared anchors live next to the repository)")
    panels = panel_metrics(json.loads(path.read_text()))
    theirs, ours = sample_names(reads.before), sample_names(reads.ours)
    filled_by_them = {title: names for title, names in panels.items() if names <= theirs}
    gaps: dict[str, set[str]] = {}
    for title, names in filled_by_them.items():
        lacking = names - ours
        if lacking:
            gaps[title] = lacking
    pending = {title: lacking for title, lacking in gaps.items() if all(explained(name) for name in lacking)}
    unexplained = {title: sorted(lacking) for title, lacking in gaps.items() if title not in pending}
    assert not unexplained, f"panels node_exporter fills and /probe does not: {unexplained}"
    # what is left are the panels of node_exporter's own process ("Node Exporter" row), nothing else
    assert {explained(name) for lacking in gaps.values() for name in lacking} <= {"node_exporter's own process"}
    assert len(filled_by_them) - len(gaps) >= 95, (len(panels), len(filled_by_them), len(gaps))
    print(
        f"dashboard: {len(panels)} panels with metrics; node_exporter fills {len(filled_by_them)}, /probe "
        f"{len(filled_by_them) - len(gaps)}; waiting for: "
        + "; ".join(
            f"{title}: {sorted(lacking)} ({', '.join(sorted({explained(n) or '' for n in lacking}))})"
            for title, lacking in sorted(pending.items())
        )
    )


# --- node-mixin alerts on a real Prometheus scraping /probe as job="node" -----------------------------


def test_every_mixin_alert_node_exporter_feeds_has_its_inputs_in_prometheus(reads: Reads, tmp_path: Path) -> None:
    path = ANCHORS / "node-mixin-alerts.yml"
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared anchors live next to the repository)")
    rules = tmp_path / "node-mixin.yml"
    rules.write_text(path.read_text().replace('job="__JOB__"', 'job="node"'))
    prometheus = start_prometheus(
        tmp_path / "prometheus",
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [
                {
                    "job_name": "node",
                    "metrics_path": "/probe",
                    "params": {"target": [reads.target]},
                    "static_configs": [{"targets": [reads.exporter_url]}],
                }
            ],
        },
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not query(prometheus.url, 'up{job="node"} == 1'):
            time.sleep(0.5)
        time.sleep(3)  # a few scrapes, a few rule evaluations
        alerts = [
            rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"] if "alert" in rule
        ]
        theirs = sample_names(reads.before)
        fed, lacking = [], {}
        for alert in alerts:
            names = set(re.findall(r"\b(node_[A-Za-z0-9_]+)", alert["expr"]))
            if not names <= theirs:
                continue  # node_exporter does not feed it on this host either
            fed.append(alert["alert"])
            absent = {name for name in names if not query(prometheus.url, f'count({{__name__="{name}",job="node"}})')}
            if absent:
                lacking[alert["alert"]] = sorted(absent)
        pending = {alert: names for alert, names in lacking.items() if all(explained(n) for n in names)}
        assert {alert: names for alert, names in lacking.items() if alert not in pending} == {}
        assert len(fed) >= 18, fed
        health = [rule for group in query_rules(prometheus.url) for rule in group["rules"]]
        assert health and all(rule["health"] == "ok" for rule in health), [r for r in health if r["health"] != "ok"]
        print(
            f"alerts: {len(alerts)}; node_exporter feeds {len(fed)} here; /probe {len(fed) - len(pending)}; "
            f"waiting for: {pending}"
        )
    finally:
        prometheus.stop()


def query_rules(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/v1/rules", timeout=10) as response:  # noqa: S310 - loopback
        return json.load(response)["data"]["groups"]

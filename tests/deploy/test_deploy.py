"""The deployment files work as shipped: Prometheus configs, the hashmod sharding, systemd units.

promtool checks both example Prometheus configs (including that their relative rule_files find the
repository's alert rules); a real Prometheus runs the sharded config against three real exporters and
must probe every lab machine exactly once, through the exporter of its shard, as job "node". The
systemd units pass ``systemd-analyze verify`` and its offline security score, and their command lines
only use flags the console scripts accept. (The single-exporter prometheus.yml runs for real in
tests/grafana/test_dashboards.py, where every dashboard query is answered through it.)
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from optilab.remote_write_bridge.config import DEFAULT_ALLOW_LIST
from optilab.remote_write_bridge.mapping import SEAT_METRIC
from tests.fixtures.procs import Service, free_port, http_ok, wait_for
from tests.fixtures.prometheus import Peer, get_json
from tests.support.paths import REPO

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
PROMETHEUS_CONFIGS = sorted(PROMETHEUS_DIR.glob("*.yml"))
UNIT_FILES = sorted((REPO / "deploy" / "systemd").glob("*.service"))
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
#: The series the bridge pivots into usage_metrics / systems (docs/interfaces.md).
PIVOTED = ("system_cpu_usage", "system_ram_usage", "system_disk_usage", "system_status", "optilab_logged_in_users")


def seconds(duration: str) -> float:
    """A Prometheus duration such as 30s, 1m or 500ms."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    match = re.fullmatch(r"(\d+)(ms|s|m|h)", duration)
    assert match, duration
    return int(match[1]) * units[match[2]]


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def node_jobs(config: dict) -> list[dict]:
    return [job for job in config["scrape_configs"] if job["job_name"].startswith("node")]


# --------------------------------------------------------------------------------------------------
# Prometheus


def test_both_example_configs_exist() -> None:
    assert [p.name for p in PROMETHEUS_CONFIGS] == ["prometheus-sharded.yml", "prometheus.yml"]


@pytest.mark.parametrize("path", PROMETHEUS_CONFIGS, ids=lambda p: p.name)
def test_promtool_accepts_the_config_and_finds_the_rules(path: Path, tmp_path: Path) -> None:
    """Run from another directory: rule_files are resolved relative to the config file itself."""
    result = subprocess.run(
        ["promtool", "check", "config", str(path)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    found = re.search(r"SUCCESS: (\d+) rule files found", output)
    assert found and int(found[1]) >= 1, f"the rule_files glob matched nothing:\n{output}"
    assert "alert_rules/optilab.yml" in output


@pytest.mark.parametrize("path", PROMETHEUS_CONFIGS, ids=lambda p: p.name)
def test_probe_jobs_use_the_exporter_as_a_multi_target_proxy(path: Path) -> None:
    """Each node job: targets from /sd, sent to /probe?target=..., instance = target; timeouts < intervals."""
    config = load_yaml(path)
    defaults = config["global"]
    jobs = node_jobs(config)
    assert jobs
    for job in jobs:
        interval = seconds(job.get("scrape_interval", defaults["scrape_interval"]))
        timeout = seconds(job.get("scrape_timeout", defaults["scrape_timeout"]))
        assert timeout < interval, job["job_name"]
        assert job["metrics_path"] == "/probe"
        assert job["http_sd_configs"][0]["url"].endswith("/sd")
        relabel = job["relabel_configs"]
        assert relabel[0] == {"source_labels": ["__address__"], "target_label": "__param_target"}
        assert relabel[1] == {"source_labels": ["__param_target"], "target_label": "instance"}
        assert relabel[-1]["target_label"] == "__address__"
    exporter_job = next(job for job in config["scrape_configs"] if job["job_name"] == "optilab-exporter")
    assert exporter_job.get("metrics_path", "/metrics") == "/metrics"
    assert seconds(exporter_job["scrape_timeout"]) < seconds(exporter_job["scrape_interval"])
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]


@pytest.mark.parametrize("path", PROMETHEUS_CONFIGS, ids=lambda p: p.name)
def test_remote_write_sends_what_the_bridge_stores_and_nothing_more(path: Path) -> None:
    """The write filter keeps the pivoted lab series and the bridge's default allow-list only."""
    remote = load_yaml(path)["remote_write"]
    assert [r["url"] for r in remote] == ["http://127.0.0.1:9843/api/v1/write"]
    keep = next(rule for rule in remote[0]["write_relabel_configs"] if rule["action"] == "keep")
    regex = re.compile(keep["regex"])
    for name in (*PIVOTED, *DEFAULT_ALLOW_LIST, SEAT_METRIC):  # seat states: the reports' history
        assert regex.fullmatch(name), f"{name} would not reach the bridge"
    for name in ("node_cpu_seconds_total", "node_filesystem_avail_bytes", "ALERTS", "up"):
        assert not regex.fullmatch(name), f"{name} would be sent for nothing"
    queue = remote[0]["queue_config"]
    assert queue["max_samples_per_send"] <= queue["capacity"]


def start_exporter(workdir: Path, inventory: dict) -> tuple[Service, str]:
    config = workdir / "exporter.yml"
    config.write_text(yaml.safe_dump(inventory))
    address = f"127.0.0.1:{free_port()}"
    service = Service(
        [str(Path(sys.executable).with_name("optilab-exporter")), "--config", str(config), "--listen", address],
        workdir / "exporter.log",
    )
    return service.wait_ready(lambda: http_ok(f"http://{address}/sd")), address


def test_sharded_config_probes_every_machine_once_through_its_shard(
    tmp_path: Path, prometheus_factory: Callable[..., Peer]
) -> None:
    """Three real exporters, twelve machines: each machine is one target of job "node", scraped via
    the exporter whose hashmod shard it falls in, and every shard gets some of them."""
    closed_port = free_port()  # nothing listens there: every probe fails fast, which is fine here
    machines = [f"127.0.1.{i}:{closed_port}" for i in range(1, 13)]
    inventory = {
        "ssh": {
            "user": "optilab",
            "key_file": str(tmp_path / "absent_key"),
            "known_hosts": str(tmp_path / "known_hosts"),
            "connect_timeout": "1s",
        },
        "departments": {"physics": {"hosts": machines}},
    }
    (tmp_path / "known_hosts").write_text("")
    exporters: list[Service] = []
    try:
        addresses = []
        for shard in range(3):
            (tmp_path / f"exporter{shard}").mkdir()
            service, address = start_exporter(tmp_path / f"exporter{shard}", inventory)
            exporters.append(service)
            addresses.append(address)
        text = (PROMETHEUS_DIR / "prometheus-sharded.yml").read_text()
        for default, actual in zip(("127.0.0.1:9842", "127.0.0.1:9852", "127.0.0.1:9862"), addresses, strict=True):
            text = text.replace(default, actual)
        config = yaml.safe_load(text)
        config["global"].update(scrape_interval="1s", scrape_timeout="1s")
        for key in ("rule_files", "alerting", "remote_write"):
            config.pop(key)
        prometheus = prometheus_factory(config)

        def node_targets() -> list[dict]:
            active = get_json(f"{prometheus.url}/api/v1/targets?state=active")["data"]["activeTargets"]
            return [t for t in active if t["labels"]["job"] == "node"]

        def all_up() -> bool:
            found = node_targets()
            return len(found) == len(machines) and all(t["health"] == "up" for t in found)

        wait_for(all_up, timeout=30, interval=0.3, what="every machine scraped through the exporters")
        targets = node_targets()
    finally:
        for service in exporters:
            service.stop()

    assert sorted(t["labels"]["instance"] for t in targets) == sorted(machines)
    shard_of = {}
    for target in targets:
        url = urllib.parse.urlsplit(target["scrapeUrl"])
        assert url.path == "/probe"
        assert urllib.parse.parse_qs(url.query)["target"] == [target["labels"]["instance"]]
        shard = int(target["scrapePool"].removeprefix("node-shard-"))
        assert url.netloc == addresses[shard], "scraped through another shard's exporter"
        shard_of[target["labels"]["instance"]] = shard
    assert set(shard_of.values()) == {0, 1, 2}, f"a shard got no machine: {shard_of}"


# --------------------------------------------------------------------------------------------------
# systemd


def unit_settings(path: Path) -> dict[str, list[str]]:
    """Key → values of a unit file (keys may repeat, as SystemCallFilter does)."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def exec_start(path: Path) -> list[str]:
    return shlex.split(unit_settings(path)["ExecStart"][0])


def installable_copy(path: Path, workdir: Path) -> Path:
    """The unit with ExecStart pointing at this venv's console script (verify needs the binary)."""
    copy = workdir / path.name
    copy.write_text(path.read_text().replace("/usr/local/bin/", f"{Path(sys.executable).parent}/"))
    return copy


def test_one_unit_per_service() -> None:
    assert [p.stem for p in UNIT_FILES] == ["optilab-api", "optilab-bridge", "optilab-consumer", "optilab-exporter"]


@needs_systemd
def test_systemd_analyze_verify_reports_nothing(tmp_path: Path) -> None:
    """No unknown directive, bad value or missing binary (verify only warns on typos: read its output)."""
    copies = [str(installable_copy(path, tmp_path)) for path in UNIT_FILES]
    result = subprocess.run([SYSTEMD_ANALYZE, "verify", *copies], capture_output=True, text=True, timeout=60)
    ours = [line for line in (result.stdout + result.stderr).splitlines() if "optilab" in line]
    assert result.returncode == 0 and not ours, "\n".join(ours) or result.stderr


@needs_systemd
@pytest.mark.parametrize("path", UNIT_FILES, ids=lambda p: p.stem)
def test_unit_is_hardened(path: Path, tmp_path: Path) -> None:
    """Key sandboxing options set, and systemd's own exposure score is "OK" (at most 2.0 of 10)."""
    settings = unit_settings(path)
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "ProtectHome": "yes",
    }.items():
        assert settings.get(key) == [value], f"{path.name}: {key}={value}"
    assert settings["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    assert settings.get("DynamicUser") == ["yes"] or settings.get("User") == ["optilab"]
    assert "EnvironmentFile" in settings, "secrets come from an EnvironmentFile, not the unit"
    unit = installable_copy(path, tmp_path)
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", str(unit)], capture_output=True, text=True, timeout=60
    )
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert score, result.stdout + result.stderr
    assert float(score[1]) <= 2.0, result.stdout


@pytest.mark.parametrize("path", UNIT_FILES, ids=lambda p: p.stem)
def test_unit_command_line_uses_only_flags_the_cli_accepts(path: Path) -> None:
    """Every --flag of ExecStart is in the console script's --help; no secret is on the command line."""
    argv = exec_start(path)
    assert argv[0].startswith("/usr/local/bin/optilab-")
    subcommand = [argv[1]] if len(argv) > 1 and not argv[1].startswith("-") else []
    script = str(Path(sys.executable).with_name(Path(argv[0]).name))
    usage = subprocess.run([script, *subcommand, "--help"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 0, usage.stderr
    for flag in (arg for arg in argv if arg.startswith("--")):
        assert flag in usage.stdout, f"{path.name}: {flag} is not an option of {argv[0]} {subcommand}"
    assert not any(re.search(r"password|passwd|amqp://", arg, re.I) for arg in argv), argv


def test_units_listen_where_the_prometheus_config_sends() -> None:
    """Exporter and bridge addresses in the units are the ones prometheus.yml scrapes and writes to."""
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    exporter = exec_start(REPO / "deploy" / "systemd" / "optilab-exporter.service")
    bridge = exec_start(REPO / "deploy" / "systemd" / "optilab-bridge.service")
    exporter_listen = exporter[exporter.index("--web.listen-address") + 1]
    bridge_listen = bridge[bridge.index("--web.listen-address") + 1]
    assert node_jobs(config)[0]["relabel_configs"][-1]["replacement"] == exporter_listen
    assert node_jobs(config)[0]["http_sd_configs"][0]["url"] == f"http://{exporter_listen}/sd"
    assert config["remote_write"][0]["url"] == f"http://{bridge_listen}/api/v1/write"

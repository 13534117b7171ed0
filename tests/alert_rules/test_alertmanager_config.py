"""The example Alertmanager config is valid (`amtool check-config`), routes each alert to exactly
one receiver by severity and department, inhibits a down host's other alerts, and every receiver
is the bridge's webhook with resolved notifications on."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.procs import free_port, wait_for
from tests.fixtures.prometheus import get_json
from tests.support.paths import REPO

CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
AMTOOL = "/usr/bin/amtool"

pytestmark = pytest.mark.skipif(not Path(AMTOOL).exists(), reason="amtool (Debian alertmanager) missing")


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AMTOOL, *args], capture_output=True, text=True, timeout=30)


def config_without_listeners() -> dict[str, Any]:
    """This config with every webhook pointed at a free loopback port: notifications fail, alerts stay."""
    config = yaml.safe_load(CONFIG.read_text())
    for receiver in config["receivers"]:
        receiver["webhook_configs"] = [{"url": f"http://127.0.0.1:{free_port()}/", "send_resolved": True}]
    return config


def assert_states_after_sending(url: str, alerts: list[dict[str, Any]], expected: dict[tuple[str, str], str]) -> None:
    """Post ``alerts`` to a real Alertmanager and wait (bounded) until its states by (alertname, instance)
    are ``expected`` (active or suppressed)."""
    request = urllib.request.Request(  # noqa: S310 - loopback Alertmanager
        f"{url}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback Alertmanager
        assert response.status == 200

    def states() -> dict[tuple[str, str], str]:
        return {
            (a["labels"]["alertname"], a["labels"]["instance"]): a["status"]["state"]
            for a in get_json(f"{url}/api/v2/alerts")
        }

    wait_for(lambda: states() == expected, timeout=20, what=f"inhibition {expected}")


def test_amtool_check_config_passes() -> None:
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=OptiLabHostDown", "severity=critical", "department=physics"], "optilab-oncall"),
        (["alertname=OptiLabCPUSaturated", "severity=warning", "department=physics"], "lab-physics"),
        (["alertname=OptiLabDiskAlmostFull", "severity=warning", "department=chemistry"], "lab-chemistry"),
        (["alertname=OptiLabDiskAlmostFull", "severity=warning", "department=biology"], "optilab-default"),
        (["alertname=OptiLabExporterDown", "severity=critical"], "optilab-oncall"),
        (["alertname=OptiLabBridgeDown", "severity=critical", "alert_type=pipeline"], "optilab-self"),
        (["alertname=OptiLabBridgeDroppingSamples", "severity=warning", "alert_type=pipeline"], "optilab-self"),
        (["alertname=OptiLabBastionDown", "severity=critical", "alert_type=bastion", "jump=gw:22"], "optilab-oncall"),
        (["alertname=OptiLabExporterOverloaded", "severity=warning", "alert_type=exporter"], "optilab-default"),
    ],
)
def test_routes_by_severity_and_department(labels: list[str], receiver: str) -> None:
    result = amtool("config", "routes", "test", f"--config.file={CONFIG}", *labels)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receiver  # one receiver: no alert reaches the database twice


def test_a_host_down_inhibits_that_hosts_other_alerts() -> None:
    rules = yaml.safe_load(CONFIG.read_text())["inhibit_rules"]
    host = next(r for r in rules if r["source_matchers"] == ['alertname=~"OptiLabHostDown|OptiLabHostDead"'])
    assert host["equal"] == ["instance"]
    assert host["target_matchers"] == ['alertname!~"OptiLabHostDown|OptiLabHostDead"']


def test_a_bastion_down_inhibits_the_alerts_of_machines_behind_it() -> None:
    rules = yaml.safe_load(CONFIG.read_text())["inhibit_rules"]
    bastion = next(r for r in rules if r["source_matchers"] == ['alertname="OptiLabBastionDown"'])
    assert bastion["equal"] == ["jump"]  # the /sd target label, the jump gauge's label
    assert bastion["target_matchers"] == ['alert_type=~"host_down|collection"']
    assert "match" not in bastion and "source_match" not in bastion


def test_every_receiver_is_the_bridge_webhook_with_resolved() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert len(config["receivers"]) >= 3
    for receiver in config["receivers"]:
        hooks = receiver["webhook_configs"]
        assert [h["url"] for h in hooks] == ["http://127.0.0.1:9843/api/v1/alerts"], receiver["name"]
        assert all(h["send_resolved"] for h in hooks)
    assert "match" not in CONFIG.read_text().replace("matchers", "")  # deprecated match/match_re unused


def test_real_alertmanager_inhibits_only_the_down_hosts_alerts(alertmanager_factory) -> None:
    """Alertmanager itself, with this config: a host's CPU alert is muted while that host is down,
    another host's is not."""
    config = config_without_listeners()
    config["route"]["group_wait"] = "0s"
    for route in config["route"]["routes"]:
        route["group_wait"] = "0s"
    am = alertmanager_factory(config)

    def labels(name: str, instance: str, severity: str) -> dict[str, str]:
        return {"alertname": name, "instance": instance, "department": "physics", "severity": severity}

    alerts = [
        {"labels": labels("OptiLabHostDown", "a:22", "critical")},
        {"labels": labels("OptiLabCPUSaturated", "a:22", "warning")},
        {"labels": labels("OptiLabCPUSaturated", "b:22", "warning")},
    ]
    expected = {
        ("OptiLabHostDown", "a:22"): "active",
        ("OptiLabCPUSaturated", "a:22"): "suppressed",
        ("OptiLabCPUSaturated", "b:22"): "active",
    }
    assert_states_after_sending(am.url, alerts, expected)


def test_real_alertmanager_mutes_only_the_machines_behind_a_down_bastion(alertmanager_factory) -> None:
    """Alertmanager itself, with this config: while bastion gw:22 is down, the alerts of machines
    behind it (target label jump="gw:22") are suppressed; a machine behind another bastion and a
    directly dialled machine still page, and so does the bastion alert itself."""
    config = config_without_listeners()
    am = alertmanager_factory(config)

    def host(name: str, instance: str, alert_type: str, **extra: str) -> dict[str, dict[str, str]]:
        return {
            "labels": {
                "alertname": name,
                "instance": instance,
                "department": "physics",
                "severity": "critical",
                "alert_type": alert_type,
                **extra,
            }
        }

    alerts = [
        {
            "labels": {
                "alertname": "OptiLabBastionDown",
                "instance": "127.0.0.1:9842",
                "jump": "gw:22",
                "severity": "critical",
                "alert_type": "bastion",
            }
        },
        host("OptiLabHostDown", "a:22", "host_down", jump="gw:22"),
        host("OptiLabProbeFailing", "b:22", "collection", jump="gw:22"),
        host("OptiLabHostDown", "c:22", "host_down", jump="other-gw:22"),
        host("OptiLabHostDown", "d:22", "host_down"),
    ]
    expected = {
        ("OptiLabBastionDown", "127.0.0.1:9842"): "active",
        ("OptiLabHostDown", "a:22"): "suppressed",
        ("OptiLabProbeFailing", "b:22"): "suppressed",
        ("OptiLabHostDown", "c:22"): "active",
        ("OptiLabHostDown", "d:22"): "active",
    }
    assert_states_after_sending(am.url, alerts, expected)

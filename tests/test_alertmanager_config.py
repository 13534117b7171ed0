"""The example Alertmanager config is valid (`amtool check-config`), routes each alert to exactly
one receiver by severity and department, inhibits a down host's other alerts, and every receiver
is the bridge's webhook with resolved notifications on."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "alertmanager" / "alertmanager.yml"
AMTOOL = "/usr/bin/amtool"

pytestmark = pytest.mark.skipif(not Path(AMTOOL).exists(), reason="amtool (Debian alertmanager) missing")


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AMTOOL, *args], capture_output=True, text=True, timeout=30)


def test_amtool_check_config_passes() -> None:
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(("labels", "receiver"), [
    (["alertname=OptiLabHostDown", "severity=critical", "department=physics"], "optilab-oncall"),
    (["alertname=OptiLabCPUSaturated", "severity=warning", "department=physics"], "lab-physics"),
    (["alertname=OptiLabDiskAlmostFull", "severity=warning", "department=chemistry"], "lab-chemistry"),
    (["alertname=OptiLabDiskAlmostFull", "severity=warning", "department=biology"], "optilab-default"),
    (["alertname=OptiLabExporterDown", "severity=critical"], "optilab-oncall"),
])
def test_routes_by_severity_and_department(labels: list[str], receiver: str) -> None:
    result = amtool("config", "routes", "test", f"--config.file={CONFIG}", *labels)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receiver  # one receiver: no alert reaches the database twice


def test_a_host_down_inhibits_that_hosts_other_alerts() -> None:
    rules = yaml.safe_load(CONFIG.read_text())["inhibit_rules"]
    host = next(r for r in rules if r["source_matchers"] == ['alertname=~"OptiLabHostDown|OptiLabHostDead"'])
    assert host["equal"] == ["instance"]
    assert host["target_matchers"] == ['alertname!~"OptiLabHostDown|OptiLabHostDead"']


def test_every_receiver_is_the_bridge_webhook_with_resolved() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert len(config["receivers"]) >= 3
    for receiver in config["receivers"]:
        hooks = receiver["webhook_configs"]
        assert [h["url"] for h in hooks] == ["http://127.0.0.1:9843/api/v1/alerts"], receiver["name"]
        assert all(h["send_resolved"] for h in hooks)
    assert "match" not in CONFIG.read_text().replace("matchers", "")  # deprecated match/match_re unused

"""The alert rules: `promtool check rules` and `promtool test rules` (simulated time) must pass,
every rule is covered by a unit test, carries the labels routing needs and a runbook that exists,
and the unit tests can fail: a loosened threshold or a shortened `for:` is caught."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO

RULES = REPO / "alert_rules" / "optilab.yml"
UNIT_TESTS = REPO / "alert_rules" / "tests" / "optilab_test.yml"
RUNBOOKS = REPO / "docs" / "alerts.md"
PROMTOOL = "/usr/bin/promtool"
RUNBOOK_BASE = "https://optilab.example/docs/alerts.md"  # toolkit.resources.RUNBOOK_BASE

pytestmark = pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="promtool (Debian prometheus) missing")


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=60)


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_promtool_check_rules_passes() -> None:
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", UNIT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_rule_has_a_unit_test_that_expects_it() -> None:
    tests = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    firing = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    quiet = {
        case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if not case.get("exp_alerts")
    }
    queried = {case["expr"] for test in tests for case in test.get("promql_expr_test", []) if case.get("exp_samples")}
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    records = {rule["record"] for rule in rules() if "record" in rule}
    assert len(alerts) >= 16 and len(records) >= 5
    assert alerts - firing == set(), "alerts never expected to fire"
    assert alerts - quiet == set(), "alerts never expected to stay quiet (before for: or below threshold)"
    assert records - queried == set(), "recording rules without an expected sample"


def test_alerts_carry_severity_type_and_an_existing_runbook() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("#")
    }
    for rule in (r for r in rules() if "alert" in r):
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["labels"]["alert_type"], rule["alert"]
        url = rule["annotations"]["runbook_url"]
        assert url == f"{RUNBOOK_BASE}#{rule['alert'].lower()}", rule["alert"]  # absolute, replaceable base
        assert url.split("#")[1] in anchors, f"{rule['alert']}: no section in docs/alerts.md"
        assert {"summary", "description"} <= rule["annotations"].keys(), rule["alert"]
        # department comes from the series (target label); the exporter alert has none
        assert "department" not in rule["labels"], rule["alert"]


def test_required_expressions_are_the_documented_ones() -> None:
    exprs = {r["alert"]: r["expr"] for r in rules() if "alert" in r}
    fors = {r["alert"]: r["for"] for r in rules() if "alert" in r}
    assert fors["OptiLabCPUSaturated"] == "15m" and "system_cpu_usage > 90" in exprs["OptiLabCPUSaturated"]
    assert 'optilab_host_health_state{state="dead"} == 1' in exprs["OptiLabHostDead"]
    assert 'predict_linear(node_filesystem_avail_bytes{fstype!="", mountpoint!=""}' in exprs["OptiLabDiskFillsIn24h"]
    assert 'up{job="optilab-exporter"} == 0' in exprs["OptiLabExporterDown"]
    # the exporter's and the bastion's failures are not the machine's (docs/alerts.md "What counts as down")
    assert 'optilab_probe_error_info{reason=~"overload|internal|jump_.*"}' in exprs["OptiLabHostDown"]
    assert "optilab_exporter_requests_shed_total" in exprs["OptiLabExporterOverloaded"]
    assert "optilab_exporter_jump_health_state" in exprs["OptiLabBastionDown"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("expr: system_cpu_usage > 90", "expr: system_cpu_usage > 85"),  # b:22 at 89 % would fire
        ("        for: 3m\n", "        for: 1m\n"),  # host down alerts too early
        ("unless on (instance) system_status", ""),  # reachable host reported down
        # a bastion outage counted as machines offline / paging every machine behind it
        ('reason=~"overload|internal|jump_.*"', 'reason=~"overload|internal"'),
        (
            '(optilab_probe_error_info{reason=~"overload|internal|jump_.*"} == 1)',
            '(optilab_probe_error_info{reason=~"overload|internal"} == 1)',
        ),
        # an exporter shedding 503s (up == 0) pages a fine machine as down
        ("unless on () (sum(rate(optilab_exporter_requests_shed_total[5m])) > 0)", ""),
        ("count(optilab_probe_success) > 0.05", "count(optilab_probe_success) > 0.1"),  # 10 % overload missed
        ('optilab_exporter_jump_health_state{state!="healthy"}', "optilab_exporter_jump_health_state"),
    ],
)
def test_unit_tests_catch_a_broken_rule(tmp_path: Path, old: str, new: str) -> None:
    text = RULES.read_text()
    assert old in text
    (tmp_path / "tests").mkdir()
    (tmp_path / "optilab.yml").write_text(text.replace(old, new, 1))
    shutil.copy(UNIT_TESTS, tmp_path / "tests" / UNIT_TESTS.name)
    result = promtool("test", "rules", tmp_path / "tests" / UNIT_TESTS.name)
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr

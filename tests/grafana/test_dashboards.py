"""The Grafana dashboards work as shipped: valid models, and every query answers from real peers.

Static part: each file of grafana/dashboards/ is a Grafana dashboard model (uid, schemaVersion,
panels on the 24-column grid with datasource references through the ${prometheus}/${postgres}
variables of scripts/dashboard-datasources.py, template variables
defined before use) that imports as it is, and the provisioning files load it.

Live part: a real sshd on loopback is probed by the real exporter, together with one inventory machine
that refuses connections. A real Prometheus runs deploy/prometheus/prometheus.yml (addresses and
intervals shortened) with the repository's alert rules and remote-writes into the real bridge on a
migrated database. Every PromQL target of every panel runs with its template variables substituted
as Grafana does and must return data; only expressions over ``ALERTS`` may be empty (nothing has to
be firing). Every SQL target runs with Grafana's macros expanded and must return rows.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from optilab.timescale.migrate import migrate
from tests.fixtures.postgres import create_database, drop_database
from tests.fixtures.procs import Service, free_port, http_ok, wait_for
from tests.fixtures.prometheus import get_json, query, start_prometheus
from tests.fixtures.sshd import Sshd, start_sshd
from tests.support.grafana import (
    DASHBOARD_DIR,
    DASHBOARD_FILES,
    VARIABLE_REF,
    expand_sql_macros,
    load,
    panels,
    substitute,
    targets,
)
from tests.support.paths import REPO

DATASOURCES_YML = REPO / "grafana" / "provisioning" / "datasources" / "optilab.yml"
PROVIDERS_YML = REPO / "grafana" / "provisioning" / "dashboards" / "optilab.yml"
PROMETHEUS_YML = REPO / "deploy" / "prometheus" / "prometheus.yml"

PANEL_TYPES = {
    "row",
    "stat",
    "timeseries",
    "table",
    "bargauge",
    "gauge",
    "piechart",
    "state-timeline",
    "text",
    "barchart",
    "heatmap",
}
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")
# Only expressions over Prometheus' ALERTS (directly or through the alert recording rules) may
# legitimately come back empty: nothing has to be firing. Everything else must return data.
MAY_BE_EMPTY = re.compile(r"\bALERTS\b|alerts_firing|alerts_activations")


def strings(node: Any) -> Iterator[str]:
    """Every string anywhere in a JSON value: titles, queries, legends, links, ..."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def variable_refs(text: str) -> set[str]:
    names = {next(group for group in match.groups() if group) for match in VARIABLE_REF.finditer(text)}
    return {name for name in names if not name.startswith("__")}


def provisioned_datasources() -> dict[str, str]:
    """uid → type of the provisioned datasources."""
    config = yaml.safe_load(DATASOURCES_YML.read_text())
    return {source["uid"]: source["type"] for source in config["datasources"]}


def variable_query(variable: dict[str, Any]) -> str:
    """The query text; Grafana stores it as a string or as {"query": ..., "refId": ...}."""
    definition = variable["query"]
    return definition["query"] if isinstance(definition, dict) else definition


def overlaps(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]
    )


# --------------------------------------------------------------------------------------------------
# Static: the files are dashboards Grafana accepts, wired to the provisioned datasources.


def test_the_four_dashboards_exist_with_unique_uids() -> None:
    """Overview, Department, Machine and Alerts, each with its own uid (links and provisioning use it)."""
    uids = [load(path)["uid"] for path in DASHBOARD_FILES]
    assert sorted(uids) == ["optilab-alerts", "optilab-department", "optilab-machine", "optilab-overview"]


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_dashboard_is_a_valid_grafana_model(path: Path) -> None:
    """Top-level fields, panels on the grid without overlap, typed targets with unique refIds."""
    dashboard = load(path)
    assert dashboard["title"].startswith("OptiLab / ")
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["id"] is None, "an id would clash on import into another Grafana"
    assert [i["type"] for i in dashboard["__inputs"]] == ["datasource"] * len(dashboard["__inputs"])
    assert {"from", "to"} <= dashboard["time"].keys()
    all_panels = list(panels(dashboard))
    ids = [panel["id"] for panel in all_panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in all_panels:
        where = f"{path.name}: panel {panel['id']} {panel.get('title')!r}"
        assert panel["type"] in PANEL_TYPES, where
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, where
        if panel["type"] == "row":
            continue
        assert panel["title"], where
        assert panel["targets"], f"{where}: no query"
        assert panel["datasource"]["uid"] == "${" + panel["datasource"]["type"] + "}", where
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), where
        for target in panel["targets"]:
            source = target["datasource"]
            assert source == panel["datasource"], f"{where}: mixed datasources"
            if source["type"] == "prometheus":
                assert target["expr"].strip(), where
            else:
                assert target["rawQuery"] is True and target["rawSql"].strip(), where
                assert target["format"] in {"table", "time_series"}, where
    grids = [panel["gridPos"] for panel in all_panels]
    for i, a in enumerate(grids):
        for b in grids[i + 1 :]:
            assert not overlaps(a, b), f"{path.name}: panels overlap at {a} and {b}"


def datasource_pass() -> Any:
    """scripts/dashboard-datasources.py, the mechanical pass (re-run it after editing a dashboard)."""
    script = REPO / "scripts" / "dashboard-datasources.py"
    spec = importlib.util.spec_from_file_location("dashboard_datasources", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_datasources_are_template_variables_with_import_inputs(path: Path) -> None:
    """No fixed uid: every reference (panels, targets, variables) is ${prometheus} or ${postgres}, a
    datasource variable of a provisioned type, and __inputs let grafana.com's import flow ask for them.
    The pass leaves a converted file unchanged, so a dashboard edited after it fails here."""
    dashboard = load(path)
    assert datasource_pass().convert(json.loads(path.read_text())) == dashboard, (
        f"{path.name}: run python3 scripts/dashboard-datasources.py"
    )
    provisioned_types = set(provisioned_datasources().values())
    refs = [panel["datasource"] for panel in panels(dashboard) if panel["type"] != "row"]
    refs += [target["datasource"] for _, target in targets(dashboard)]
    refs += [v["datasource"] for v in dashboard["templating"]["list"] if v["type"] != "datasource"]
    assert refs
    for ref in refs:
        assert ref == {"type": ref["type"], "uid": "${" + ref["type"] + "}"}, f"{path.name}: fixed datasource {ref}"
    variables = {v["name"]: v for v in dashboard["templating"]["list"] if v["type"] == "datasource"}
    assert {ref["type"] for ref in refs} == set(variables) <= provisioned_types
    assert all(variables[name]["query"] == name for name in variables)
    inputs = {i["name"]: i["pluginId"] for i in dashboard["__inputs"]}
    assert inputs == {f"DS_{name.upper()}": name for name in variables}
    assert "optilab-prometheus" not in path.read_text() and "optilab-postgres" not in path.read_text()


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_template_variables_are_defined_before_use(path: Path) -> None:
    """A variable's query uses only variables above it; panels use only defined variables."""
    dashboard = load(path)
    defined: list[str] = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "datasource":
            defined.append(variable["name"])
            continue
        query = variable_query(variable)
        assert LABEL_VALUES.match(query), f"{variable['name']}: expected label_values(...), got {query!r}"
        assert variable_refs(query) <= set(defined), f"{variable['name']} uses a variable defined below it"
        defined.append(variable["name"])
    assert len(defined) == len(set(defined))
    for panel in panels(dashboard):
        undefined = set().union(*(variable_refs(text) for text in strings(panel))) - set(defined)
        assert not undefined, f"{path.name}: panel {panel.get('title')!r} uses undefined {undefined}"


def test_machine_dashboard_selects_machines_within_the_department() -> None:
    """instance depends on department, so it must come after it (Grafana refreshes in order)."""
    names = [
        v["name"]
        for v in load(DASHBOARD_DIR / "optilab-machine.json")["templating"]["list"]
        if v["type"] != "datasource"
    ]
    assert names == ["department", "instance"]


def test_provisioning_points_grafana_at_the_dashboards_and_datasources(monkeypatch) -> None:
    """The provider's path (from the environment) holds the dashboards; no secret is in the files."""
    providers = yaml.safe_load(PROVIDERS_YML.read_text())["providers"]
    assert [p["type"] for p in providers] == ["file"]
    monkeypatch.setenv("OPTILAB_GRAFANA_DASHBOARDS", str(DASHBOARD_DIR))
    path = Path(expand_grafana_env(providers[0]["options"]["path"]))
    assert sorted(path.glob("*.json")) == DASHBOARD_FILES

    sources = yaml.safe_load(DATASOURCES_YML.read_text())["datasources"]
    assert {s["uid"]: s["url"] for s in sources} == {
        "optilab-prometheus": "http://127.0.0.1:9090",
        "optilab-postgres": "127.0.0.1:5432",
    }
    prometheus = next(s for s in sources if s["type"] == "prometheus")
    node_job = next(j for j in yaml.safe_load(PROMETHEUS_YML.read_text())["scrape_configs"] if j["job_name"] == "node")
    assert prometheus["jsonData"]["timeInterval"] == node_job["scrape_interval"], "$__rate_interval needs it"
    postgres = next(s for s in sources if s["type"] == "postgres")
    assert postgres["jsonData"]["database"] == "optilab" and postgres["user"] == "optilab_reader"
    assert postgres["secureJsonData"]["password"].startswith("$"), "the password comes from the environment"


def expand_grafana_env(value: str) -> str:
    """Grafana's provisioning expands $VAR and ${VAR} from its environment."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: os.environ[m.group(1)], value)


# --------------------------------------------------------------------------------------------------
# Grafana's substitutions, as the Prometheus and PostgreSQL datasources apply them.


def test_substitution_follows_grafanas_formats() -> None:
    """The emulation the live tests rely on: regex alternation and escaping for PromQL, quoted lists
    for SQL, single values as they are, interval built-ins, and the SQL time macros."""
    chosen = {"department": (["physics", "bio.lab"], True), "instance": (["127.0.0.1:22"], False)}
    assert (
        substitute('x{department=~"$department", instance="${instance}"}[$__rate_interval]', chosen, "promql")
        == 'x{department=~"(physics|bio\\\\.lab)", instance="127.0.0.1:22"}[1m]'
    )
    assert (
        substitute("department IN ($department) AND $__timeFilter(t)", chosen, "sql")
        == "department IN ('physics','bio.lab') AND $__timeFilter(t)"
    )
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    assert expand_sql_macros("SELECT $__timeGroupAlias(t, 1h) WHERE $__timeFilter(t)", start, end) == (
        'SELECT floor(extract(epoch from t)/3600)*3600 AS "time" '
        "WHERE t BETWEEN '2026-01-01T00:00:00.000Z' AND '2026-01-02T00:00:00.000Z'"
    )


# --------------------------------------------------------------------------------------------------
# Live: real sshd, exporter, Prometheus, bridge and PostgreSQL.


@dataclass
class Lab:
    prometheus: str
    dsn: str
    up_instance: str
    down_instance: str
    departments: dict[str, str]  # instance → department


def prometheus_config(exporter: str, bridge: str) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml pointed at this test's peers, with second-scale intervals."""
    text = PROMETHEUS_YML.read_text().replace("127.0.0.1:9842", exporter).replace("127.0.0.1:9843", bridge)
    config = yaml.safe_load(text)
    config["global"].update(scrape_interval="2s", scrape_timeout="2s", evaluation_interval="1s")
    for job in config["scrape_configs"]:
        job.pop("scrape_interval", None)
        job.pop("scrape_timeout", None)
    config["rule_files"] = [str(REPO / "alert_rules" / "*.yml")]
    config.pop("alerting")  # no Alertmanager here; ALERTS is still evaluated by Prometheus
    config["remote_write"][0]["queue_config"]["batch_send_deadline"] = "500ms"
    return config


def start_exporter(workdir: Path, sshd: Sshd) -> tuple[Service, str, dict[str, str]]:
    """The real exporter with an inventory of two departments: the real sshd, and a machine that is down.

    The down machine is a loopback address where nothing listens on the sshd's port, so every dial
    is refused at once. Returns the service, its address and each target's department.
    """
    down = f"127.0.0.3:{sshd.port}"
    inventory = {
        "ssh": {
            "user": sshd.user,
            "key_file": str(sshd.key_file),
            "known_hosts": str(sshd.trust()),
            "host_key_policy": "strict",
            "connect_timeout": "2s",
            "command_timeout": "2s",
        },
        "departments": {
            "physics": {"hosts": [{"target": sshd.target, "hostname": "pc-01"}]},
            "chemistry": {"hosts": [{"target": down, "hostname": "pc-02"}]},
        },
        # A first handshake slowed by a busy machine must not park the reachable host for the default
        # 10 minutes; the down host still settles in "offline" (3 failures) and never reaches "dead".
        "health": {"degraded_interval": "1s", "offline_interval": "10m"},
        "probe": {"offset": "0.2s"},
    }
    config = workdir / "exporter.yml"
    config.write_text(yaml.safe_dump(inventory))
    address = f"127.0.0.1:{free_port()}"
    service = Service(
        [console_script("optilab-exporter"), "--config", str(config), "--listen", address], workdir / "exporter.log"
    )
    service.wait_ready(lambda: http_ok(f"http://{address}/sd"))
    return service, address, {sshd.target: "physics", down: "chemistry"}


def console_script(name: str) -> str:
    """The package's console scripts live beside the interpreter running the tests (the venv)."""
    return str(Path(sys.executable).with_name(name))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, pg_server_dsn: str) -> Iterator[Lab]:
    """The whole data path running, with at least two successful probes evaluated by the rules.

    Module-scoped (one lab for all live tests here), so it builds from the fixtures' functions.
    """
    workdir = tmp_path_factory.mktemp("lab")
    dsn = create_database(pg_server_dsn)
    sshd = start_sshd(workdir / "sshd")
    services: list[Service] = []
    try:
        migrate(dsn)
        exporter, exporter_addr, departments = start_exporter(workdir, sshd)
        services.append(exporter)
        bridge_port = free_port()
        bridge = Service(
            [console_script("optilab-bridge"), "--listen", f"127.0.0.1:{bridge_port}", "--dsn", dsn],
            workdir / "bridge.log",
        )
        services.append(bridge)
        bridge.wait_ready(lambda: http_ok(f"http://127.0.0.1:{bridge_port}/health"))
        # Stopped first (last in the list): it flushes remote write to the bridge while that still runs.
        peer = start_prometheus(workdir / "prometheus", prometheus_config(exporter_addr, f"127.0.0.1:{bridge_port}"))
        services.append(peer.service)
        up, down = sshd.target, next(target for target in departments if target != sshd.target)
        # CPU percent and rate() need two probes; the recording rules one evaluation after that.
        wait_for(
            lambda: (
                query(peer.url, f'system_cpu_usage{{instance="{up}"}}')
                and query(peer.url, "department:system_cpu_usage:avg")
                and query(peer.url, f'rate(node_cpu_seconds_total{{instance="{up}"}}[1m])')
                and query(peer.url, f'system_status{{instance="{down}"}}')
            ),
            timeout=30,
            interval=0.3,
            what="Prometheus to hold two probes of the lab",
        )
        yield Lab(peer.url, dsn, up, down, departments)
    finally:
        for service in reversed(services):
            service.stop()
        sshd.stop()
        sshd.authorized_keys.unlink(missing_ok=True)
        drop_database(dsn, pg_server_dsn)


def choose_variables(lab: Lab, dashboard: dict[str, Any]) -> dict[str, tuple[list[str], bool]]:
    """Evaluate each variable's label_values query in order, as Grafana does, and pick values.

    Multi-value variables take "All" (every value); single ones the value of the reachable machine.
    Each variable's values must include the lab's own.
    """
    preferred = {"department": lab.departments[lab.up_instance], "instance": lab.up_instance}
    chosen: dict[str, tuple[list[str], bool]] = {}
    for variable in (v for v in dashboard["templating"]["list"] if v["type"] != "datasource"):
        match = LABEL_VALUES.match(substitute(variable_query(variable), chosen, "promql"))
        assert match, variable
        url = f"{lab.prometheus}/api/v1/label/{match['label']}/values?" + urllib.parse.urlencode(
            {"match[]": match["selector"]}
        )
        values = get_json(url)["data"]
        name = variable["name"]
        assert preferred[name] in values, f"{name}: {values}"
        chosen[name] = (values, True) if variable["multi"] else ([preferred[name]], False)
    return chosen


def lab_targets(lab: Lab, datasource_type: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """("uid / panel / refId", target, chosen variable values) of every target of one datasource type."""
    for path in DASHBOARD_FILES:
        dashboard = load(path)
        chosen = choose_variables(lab, dashboard)
        for panel, target in targets(dashboard):
            if target["datasource"]["type"] == datasource_type:
                yield f"{dashboard['uid']} / {panel['title']} / {target['refId']}", target, chosen


def run_promql(lab: Lab, target: dict[str, Any], expr: str) -> list[dict[str, Any]]:
    """Instant targets as an instant query, others as a range query over the last 30 s (as Grafana)."""
    if target.get("instant"):
        return query(lab.prometheus, expr)
    now = time.time()
    url = f"{lab.prometheus}/api/v1/query_range?" + urllib.parse.urlencode(
        {"query": expr, "start": now - 30, "end": now, "step": 2}
    )
    body = get_json(url)
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_every_promql_target_returns_data(lab: Lab) -> None:
    """All PromQL of all dashboards, variables substituted, answers with series from the lab."""
    problems, checked = [], 0
    for name, target, chosen in lab_targets(lab, "prometheus"):
        expr = substitute(target["expr"], chosen, "promql")
        where = f"{name}: {expr}"
        try:
            result = run_promql(lab, target, expr)
        except Exception as exc:  # collect every failing query, report them together
            problems.append(f"{where}\n    error: {exc}")
            continue
        checked += 1
        if not result and not MAY_BE_EMPTY.search(target["expr"]):
            problems.append(f"{where}\n    returned no data")
    assert not problems, "\n".join(problems)
    assert checked >= 60


def instant_value(lab: Lab, dashboard: dict[str, Any], title: str) -> float:
    chosen = choose_variables(lab, dashboard)
    panel = next(p for p in panels(dashboard) if p.get("title") == title)
    result = query(lab.prometheus, substitute(panel["targets"][0]["expr"], chosen, "promql"))
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def test_overview_counts_the_lab_correctly(lab: Lab) -> None:
    """Two machines known, one answering, one refusing SSH (down but not yet dead)."""
    overview = load(DASHBOARD_DIR / "optilab-overview.json")
    assert instant_value(lab, overview, "Machines") == 2
    assert instant_value(lab, overview, "Up") == 1
    assert instant_value(lab, overview, "Down") == 1
    assert instant_value(lab, overview, "Dead") == 0


def test_merged_tables_join_their_queries_row_by_row(lab: Lab) -> None:
    """Grafana's "merge" joins rows on their common fields: every query of such a table must return the
    same label names and no __name__, or one machine would spread over several rows."""
    merged = 0
    for path in DASHBOARD_FILES:
        dashboard = load(path)
        chosen = choose_variables(lab, dashboard)
        for panel in panels(dashboard):
            if not any(t["id"] == "merge" for t in panel.get("transformations", [])):
                continue
            merged += 1
            label_names = set()
            for target in panel["targets"]:
                result = query(lab.prometheus, substitute(target["expr"], chosen, "promql"))
                assert result, f"{panel['title']} / {target['refId']}"
                label_names |= {frozenset(series["metric"]) for series in result}
            assert len(label_names) == 1, f"{panel['title']}: {label_names}"
            assert "__name__" not in label_names.pop(), panel["title"]
    assert merged == 2


def seed_events(dsn: str, lab: Lab) -> None:
    """An alert and a health transition, stored by the event consumer's own code (no broker needed)."""
    from optilab.remote_write_bridge.event_store import store_event

    now = datetime.now(UTC)
    department = lab.departments[lab.down_instance]
    labels = {
        "alertname": "OptiLabHostDown",
        "severity": "critical",
        "alert_type": "host_down",
        "department": department,
        "instance": lab.down_instance,
    }
    alert = {
        "type": "alert",
        "version": 1,
        "receiver": "optilab-bridge",
        "externalURL": "http://127.0.0.1:9093",
        "alert": {
            "status": "firing",
            "fingerprint": "0123456789abcdef",
            "labels": labels,
            "startsAt": (now - timedelta(minutes=10)).isoformat(),
            "endsAt": "0001-01-01T00:00:00Z",
            "annotations": {"summary": f"Lab machine {lab.down_instance} is down"},
            "generatorURL": "http://127.0.0.1:9090/graph",
        },
    }
    health = {
        "type": "health",
        "version": 1,
        "instance": lab.up_instance,
        "hostname": "pc-01",
        "ip": lab.up_instance.split(":")[0],
        "department": lab.departments[lab.up_instance],
        "from": "degraded",
        "to": "healthy",
        "reason": "recovered",
        "at": now.isoformat(),
    }
    with psycopg.connect(dsn) as conn:
        store_event(conn, alert)
        store_event(conn, health)


@pytest.fixture
def grafana_reader(lab: Lab) -> Iterator[str]:
    """DSN of the reader role made by ``optilab-migrate --roles`` (docs/dashboards.md, docs/storage.md
    "Database roles"): the very code of the CLI, with unique names (roles are server-wide)."""
    from optilab.timescale.roles import Roles

    suffix = uuid.uuid4().hex[:8]
    roles = Roles(f"g{suffix}_owner", f"g{suffix}_writer", f"g{suffix}_reader")
    migrate(lab.dsn, roles=roles, passwords={})  # already migrated: only roles and grants
    yield psycopg.conninfo.make_conninfo(lab.dsn, user=roles.reader)
    ident = psycopg.sql.Identifier
    with psycopg.connect(lab.dsn, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(ident(roles.owner)))
        for _, name in roles.items():
            conn.execute(psycopg.sql.SQL("DROP OWNED BY {}").format(ident(name)))
            conn.execute(psycopg.sql.SQL("DROP ROLE {}").format(ident(name)))


def test_every_sql_target_returns_rows(lab: Lab, grafana_reader: str) -> None:
    """All SQL panels run, as Grafana's read-only role, on the database fed by the real bridge, with rows."""
    seed_events(lab.dsn, lab)
    with psycopg.connect(lab.dsn) as conn:
        wait_for(
            lambda: conn.execute("SELECT count(*) FROM usage_metrics").fetchone()[0] > 0,
            timeout=20,
            interval=0.3,
            what="the bridge to store remote-written usage",
        )
    end, start = datetime.now(UTC) + timedelta(minutes=1), datetime.now(UTC) - timedelta(days=7)
    problems, checked = [], 0
    with psycopg.connect(grafana_reader, autocommit=True) as conn:
        for name, target, chosen in lab_targets(lab, "postgres"):
            sql = expand_sql_macros(substitute(target["rawSql"], chosen, "sql"), start, end)
            where = f"{name}:\n{sql}"
            try:
                rows = conn.execute(sql).fetchall()
            except psycopg.Error as exc:
                problems.append(f"{where}\n    error: {exc}")
                continue
            checked += 1
            if not rows:
                problems.append(f"{where}\n    returned no rows")
    assert not problems, "\n\n".join(problems)
    assert checked >= 10


def test_the_read_only_role_cannot_write(lab: Lab, grafana_reader: str) -> None:
    """Grafana's role reads what the dashboards show but cannot change it."""
    with psycopg.connect(grafana_reader, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM systems").fetchone()[0] == 2
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM alerts")


# --------------------------------------------------------------------------------------------------
# The community "Node Exporter Full" dashboard (grafana.com 1860) on OptiLab's data.

#: Its variable chain: job, then nodename (from node_uname_info), then the instance of that node.
NODE_EXPORTER_FULL_VARIABLES = (
    ("job", "label_values(node_uname_info, job)"),
    ("nodename", 'label_values(node_uname_info{job="$job"}, nodename)'),
    ("node", 'label_values(node_uname_info{job="$job", nodename="$nodename"}, instance)'),
)
#: What its top row computes (CPU busy, RAM used, root FS used, uptime, cores), in its selector style.
NODE_EXPORTER_FULL_QUERIES = (
    '100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle", instance="$node", job="$job"}[$__rate_interval])))',
    '(1 - node_memory_MemAvailable_bytes{instance="$node", job="$job"}'
    ' / node_memory_MemTotal_bytes{instance="$node", job="$job"}) * 100',
    '100 - node_filesystem_avail_bytes{instance="$node", job="$job", mountpoint="/", fstype!="rootfs"} * 100'
    ' / node_filesystem_size_bytes{instance="$node", job="$job", mountpoint="/", fstype!="rootfs"}',
    'node_time_seconds{instance="$node", job="$job"} - node_boot_time_seconds{instance="$node", job="$job"}',
    'count(count(node_cpu_seconds_total{instance="$node", job="$job"}) by (cpu))',
    'rate(node_network_receive_bytes_total{instance="$node", job="$job"}[$__rate_interval])',
)


def test_node_exporter_full_finds_the_machine_by_its_nodename(lab: Lab) -> None:
    """job "node" → the probed machine's own nodename (uname -n, here this host) → instance = its target."""
    chosen: dict[str, tuple[list[str], bool]] = {}
    for name, definition in NODE_EXPORTER_FULL_VARIABLES:
        match = LABEL_VALUES.match(substitute(definition, chosen, "promql"))
        assert match
        params = {"match[]": match["selector"]} if match["selector"] else {}
        url = f"{lab.prometheus}/api/v1/label/{match['label']}/values?" + urllib.parse.urlencode(params)
        values = get_json(url)["data"]
        expected = {"job": "node", "nodename": os.uname().nodename, "node": lab.up_instance}[name]
        assert expected in values, f"{name}: {values}"
        chosen[name] = ([expected], False)
    assert get_json(
        f"{lab.prometheus}/api/v1/label/instance/values?"
        + urllib.parse.urlencode({"match[]": 'node_uname_info{job="node"}'})
    )["data"] == [lab.up_instance], "one per reachable machine"
    for expr in NODE_EXPORTER_FULL_QUERIES:
        assert query(lab.prometheus, substitute(expr, chosen, "promql")), expr

"""The shipped Grafana dashboards as the tests read them, and Grafana's substitutions (template
variables for the Prometheus and PostgreSQL datasources, the PostgreSQL macros) as Grafana applies them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.support.paths import REPO

DASHBOARD_DIR = REPO / "grafana" / "dashboards"


DASHBOARD_FILES = sorted(DASHBOARD_DIR.glob("*.json"))


# $var, ${var}, ${var:format}, [[var]]; names starting with "__" are Grafana's built-ins.
VARIABLE_REF = re.compile(r"\$(\w+)|\$\{(\w+)[^}]*\}|\[\[(\w+)[^\]]*\]\]")


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


INTERVALS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
    "__interval_ms": "15000",
    "__range_s": "300",
}


def format_value(values: list[str], multi: bool, dialect: str) -> str:
    """Grafana's default formats: for Prometheus a multi-value variable becomes a regex alternation,
    its metacharacters escaped inside the PromQL string (so "." becomes "\\\\."); for SQL quoted
    literals. A single-value variable is inserted as it is."""
    if not multi:
        return values[0]
    if dialect == "sql":
        return ",".join("'" + v.replace("'", "''") + "'" for v in values)
    escaped = [re.sub(r"([\\$^*+?.()|{}\[\]])", r"\\\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(text: str, chosen: dict[str, tuple[list[str], bool]], dialect: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name in INTERVALS:
            return INTERVALS[name]
        if name.startswith("__"):
            return match.group(0)  # a SQL macro such as $__timeFilter, expanded afterwards
        values, multi = chosen[name]
        return format_value(values, multi, dialect)

    return VARIABLE_REF.sub(replace, text)


def sql_time(at: datetime) -> str:
    return "'" + at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") + "'"


def expand_sql_macros(sql: str, start: datetime, end: datetime) -> str:
    """Grafana's PostgreSQL macros ($__timeFilter, $__timeGroupAlias, ...), as its datasource expands them."""
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def group(column: str, interval: str, alias: bool) -> str:
        step = int(interval[:-1]) * seconds[interval[-1]]
        return f"floor(extract(epoch from {column})/{step})*{step}" + (' AS "time"' if alias else "")

    def replace(match: re.Match[str]) -> str:
        name, args = match.group(1), [a.strip().strip("'") for a in match.group(2).split(",")]
        if name == "timeFilter":
            return f"{args[0]} BETWEEN {sql_time(start)} AND {sql_time(end)}"
        if name in ("timeGroup", "timeGroupAlias"):
            return group(args[0], args[1], alias=name == "timeGroupAlias")
        if name == "timeFrom":
            return sql_time(start)
        if name == "timeTo":
            return sql_time(end)
        raise AssertionError(f"macro $__{name} is not expanded by this test: add it")

    return re.sub(r"\$__(\w+)\(([^)]*)\)", replace, sql)

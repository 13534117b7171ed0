#!/usr/bin/env python3
"""Make grafana/dashboards/*.json import on any Grafana: datasource variables instead of fixed uids.

Idempotent and mechanical, so it can be re-run after dashboards are edited or merged:

* two datasource template variables, ``prometheus`` and ``postgres``, first in ``templating.list``;
* every datasource reference of type prometheus/postgres (panels, targets, variables) becomes
  ``{"type": ..., "uid": "${prometheus}"}`` / ``"${postgres}"``;
* ``__inputs`` (``DS_PROMETHEUS``, ``DS_POSTGRES``) for grafana.com's import flow, whose chosen
  datasources become the variables' current values.

Provisioned dashboards need no inputs: each variable falls back to the default datasource of its
type (grafana/provisioning/datasources/optilab.yml). tests/grafana/test_dashboards.py checks the result.
Usage: python3 scripts/dashboard-datasources.py [FILE...]   (default: every dashboard)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DASHBOARDS = Path(__file__).resolve().parent.parent / "grafana" / "dashboards"
SOURCES = {
    "prometheus": ("DS_PROMETHEUS", "Prometheus", "prometheus", "Prometheus"),
    "postgres": ("DS_POSTGRES", "PostgreSQL", "postgres", "PostgreSQL"),
}


def _reference(kind: str) -> dict[str, str]:
    return {"type": kind, "uid": "${" + kind + "}"}


def _rewrite(node: Any) -> Any:
    if isinstance(node, dict):
        source = node.get("datasource")
        if isinstance(source, dict) and source.get("type") in SOURCES:
            node["datasource"] = _reference(source["type"])
        for value in node.values():
            _rewrite(value)
    elif isinstance(node, list):
        for value in node:
            _rewrite(value)
    return node


def variable(kind: str) -> dict[str, Any]:
    name, label, _, _ = SOURCES[kind]
    return {
        "name": kind,
        "label": label,
        "type": "datasource",
        "query": kind,
        "hide": 0,
        "current": {"text": "${" + name + "}", "value": "${" + name + "}"},
        "regex": "",
        "includeAll": False,
        "multi": False,
        "refresh": 1,
        "options": [],
    }


def convert(dashboard: dict[str, Any]) -> dict[str, Any]:
    used = {kind for kind in SOURCES if f'"type": "{kind}"' in json.dumps(dashboard)}
    templating = dashboard.setdefault("templating", {}).setdefault("list", [])
    templating[:] = [v for v in templating if not (v.get("type") == "datasource" and v.get("name") in SOURCES)]
    templating[:0] = [variable(kind) for kind in SOURCES if kind in used]
    _rewrite(dashboard)
    inputs = [
        {
            "name": SOURCES[kind][0],
            "label": SOURCES[kind][1],
            "description": "",
            "type": "datasource",
            "pluginId": SOURCES[kind][2],
            "pluginName": SOURCES[kind][3],
        }
        for kind in SOURCES
        if kind in used
    ]
    return {"__inputs": inputs, **{k: v for k, v in dashboard.items() if k != "__inputs"}}


def main(argv: list[str]) -> int:
    paths = [Path(p) for p in argv] or sorted(DASHBOARDS.glob("*.json"))
    for path in paths:
        converted = convert(json.loads(path.read_text()))
        path.write_text(json.dumps(converted, indent=2, ensure_ascii=False) + "\n")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

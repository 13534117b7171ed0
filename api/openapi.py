"""The OpenAPI 3.0 document of the API, built as data so tests (schemathesis) can hold the code to it.

Every response the code can give is described, errors included: the suite checks that generated
requests never produce a 5xx and that each answer matches the schema for its status.
"""

from __future__ import annotations

from typing import Any

from optilab.api import params, seats, series, systems, tabular

REF = "#/components/schemas/"
NUM = {"type": "number", "nullable": True}
TIME = {"type": "string", "format": "date-time"}
NTIME = {**TIME, "nullable": True}
NSTR = {"type": "string", "nullable": True}
INT = {"type": "integer"}
SOURCE = {"type": "string", "enum": list(series.SOURCES)}
RATIO = {
    "type": "number",
    "nullable": True,
    "minimum": 0,
    "maximum": 1,
    "description": "A share from 0 to 1 (every *_ratio field of the API).",
}
SEAT = {
    "type": "string",
    "enum": list(seats.STATES),
    "nullable": True,
    "description": "Seat state now; null when the exporter has not reported seats for the machine.",
}
BOOL = {"type": "boolean"}
OCCUPIED_MEANING = (
    "Occupied (every report, /departments, the history and the heatmap): a seat somebody sits "
    "at, i.e. seat state in_use, idle or locked; a machine with only a remote SSH session is free "
    "and not occupied."
)
NO_SEAT_DATA = "A machine without seat data (an older exporter, or seat collection off) is neither in use nor free."
OCCUPIED = {
    "type": "number",
    "nullable": True,
    "description": "Occupied machines (mean over the bucket). " + OCCUPIED_MEANING,
}


def _obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        **extra,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def _page(item: str) -> dict[str, Any]:
    return _obj({"items": {"type": "array", "items": _ref(item)}, "total": INT, "limit": INT, "offset": INT})


SCHEMAS: dict[str, Any] = {
    "Error": _obj({"status": INT, "error": {"type": "string"}, "message": {"type": "string"}}),
    "LatestUsage": _obj(
        {
            "timestamp": TIME,
            "cpu_usage": NUM,
            "ram_usage": NUM,
            "disk_usage": NUM,
            "logged_in_users": {"type": "integer", "nullable": True},
            "in_use": {"type": "boolean"},
        },
        nullable=True,
        description="The newest usage row of the machine, null when it has none.",
    ),
    "System": _obj(
        {
            "id": INT,
            "instance": {"type": "string"},
            "hostname": NSTR,
            "ip_address": NSTR,
            "department": NSTR,
            "os_type": NSTR,
            "os_version": NSTR,
            "status": NSTR,
            "health_state": NSTR,
            "last_seen": NTIME,
            "created_at": NTIME,
            "seat_state": SEAT,
            "latest": _ref("LatestUsage"),
        }
    ),
    "StatusChange": _obj({"timestamp": NTIME, "status": NSTR, "health_state": NSTR, "reason": NSTR}),
    "SystemDetail": {
        "allOf": [_ref("System"), _obj({"status_history": {"type": "array", "items": _ref("StatusChange")}})]
    },
    "SystemPage": {
        "allOf": [
            _page("System"),
            _obj(
                {
                    "free_by_department": {
                        "type": "object",
                        "additionalProperties": INT,
                        "description": "Machines whose seat is free now, per department (whatever the filters).",
                    }
                }
            ),
        ]
    },
    "Point": _obj(
        {"t": TIME, "cpu": NUM, "cpu_max": NUM, "ram": NUM, "disk": NUM, "users": NUM, "occupied": NUM, "samples": INT}
    ),
    "Series": _obj(
        {
            "system_id": INT,
            "start": TIME,
            "end": TIME,
            "source": {
                "type": "string",
                "enum": list(series.SOURCES),
                "description": "Table that answered: raw usage_metrics, usage_hourly or usage_daily.",
            },
            "step_seconds": INT,
            "points": {"type": "array", "items": _ref("Point"), "maxItems": 10000},
        }
    ),
    "DepartmentNow": _obj(
        {
            "in_use": {
                **INT,
                "description": "Machines whose seat is occupied now (in_use, idle or locked). "
                + OCCUPIED_MEANING
                + " "
                + NO_SEAT_DATA,
            },
            "free": {**INT, "description": "Machines whose seat is free now (the board's count). " + NO_SEAT_DATA},
            "avg_cpu": NUM,
            "peak_cpu": NUM,
            "avg_ram": NUM,
            "avg_disk": NUM,
            "seats": _obj({name: INT for name in seats.STATES}),
        }
    ),
    "DepartmentRange": _obj(
        {
            "avg_cpu": NUM,
            "peak_cpu": NUM,
            "avg_ram": NUM,
            "avg_disk": NUM,
            "occupancy_ratio": {
                **RATIO,
                "description": "in_use_avg / machines with seat data; null without seat data.",
            },
            "in_use_avg": {
                **NUM,
                "description": "Occupied machines, mean over the UTC hours of the range with seat "
                "data. " + OCCUPIED_MEANING,
            },
            "in_use_peak": {**NUM, "description": "Occupied machines, the most in one hour (hourly mean)."},
            "samples": INT,
        }
    ),
    "Department": _obj(
        {
            "name": NSTR,
            "machines": INT,
            "up": INT,
            "down": INT,
            "now": _ref("DepartmentNow"),
            "range": _ref("DepartmentRange"),
        }
    ),
    "DepartmentList": _obj(
        {"start": TIME, "end": TIME, "source": SOURCE, "items": {"type": "array", "items": _ref("Department")}}
    ),
    "DepartmentDetail": {
        "allOf": [
            _ref("Department"),
            _obj({"start": TIME, "end": TIME, "source": SOURCE, "systems": {"type": "array", "items": _ref("System")}}),
        ]
    },
    "Alert": _obj(
        {
            "id": INT,
            "system_id": {"type": "integer", "nullable": True},
            "fingerprint": NSTR,
            "alertname": NSTR,
            "alert_type": NSTR,
            "severity": NSTR,
            "status": NSTR,
            "department": NSTR,
            "instance": NSTR,
            "message": NSTR,
            "labels": {"type": "object", "nullable": True},
            "annotations": {"type": "object", "nullable": True},
            "starts_at": NTIME,
            "ends_at": NTIME,
            "updated_at": NTIME,
        }
    ),
    "AlertPage": _page("Alert"),
    "UtilisationRow": _obj(
        {
            "department": {"type": "string"},
            "timezone": {"type": "string"},
            "machines": INT,
            "open_hours": NUM,
            "occupied_machine_hours": OCCUPIED,
            "utilisation_ratio": RATIO,
            "peak_occupancy": OCCUPIED,
            "peak_occupancy_ratio": RATIO,
            "hours_at_capacity": NUM,
            "at_capacity_ratio": RATIO,
            "over_subscribed": BOOL,
            "underused": BOOL,
        }
    ),
    "UtilisationReport": _obj(
        {
            "start": TIME,
            "end": TIME,
            "items": {"type": "array", "items": _ref("UtilisationRow")},
            "over_subscribed": {"type": "array", "items": {"type": "string"}},
            "underused": {"type": "array", "items": {"type": "string"}},
        }
    ),
    "MachineRow": _obj(
        {
            "system_id": INT,
            "instance": {"type": "string"},
            "hostname": NSTR,
            "department": {"type": "string"},
            "open_hours": NUM,
            "in_use_ratio": {**RATIO, "description": "Occupied share of open time. " + OCCUPIED_MEANING},
            "availability_ratio": RATIO,
            "room_average_in_use_ratio": RATIO,
            "hot_seat": BOOL,
        }
    ),
    "MachineReport": _obj(
        {
            "start": TIME,
            "end": TIME,
            "items": {"type": "array", "items": _ref("MachineRow")},
            "hot_seats": {"type": "array", "items": INT},
        }
    ),
    "HeatmapCell": _obj(
        {
            "day": {"type": "integer", "minimum": 0, "maximum": 6},
            "hour": {"type": "integer", "minimum": 0, "maximum": 23},
            "utilisation_ratio": RATIO,
            "open_ratio": RATIO,
        }
    ),
    "Heatmap": _obj(
        {
            "department": {"type": "string"},
            "start": TIME,
            "end": TIME,
            "timezone": {"type": "string"},
            "machines": INT,
            "opening_hours": {"type": "object"},
            "cells": {"type": "array", "items": _ref("HeatmapCell"), "minItems": 168, "maxItems": 168},
        }
    ),
    "HistoryPoint": _obj(
        {
            "t": TIME,
            "occupied": OCCUPIED,
            "utilisation_ratio": RATIO,
            "states": _obj({name: {"type": "number"} for name in seats.STATES}),
        }
    ),
    "History": _obj(
        {
            "department": {"type": "string"},
            "start": TIME,
            "end": TIME,
            "machines": INT,
            "source": SOURCE,
            "step_seconds": INT,
            "points": {"type": "array", "items": _ref("HistoryPoint"), "maxItems": 10000},
        }
    ),
    "BoardSystem": _obj({"id": INT, "hostname": NSTR, "state": {"type": "string", "enum": [*seats.STATES, "unknown"]}}),
    "BoardDepartment": _obj(
        {
            "name": {"type": "string"},
            "machines": INT,
            "free": INT,
            "counts": _obj({name: INT for name in (*seats.STATES, "unknown")}),
            "systems": {"type": "array", "items": _ref("BoardSystem")},
        }
    ),
    "Board": _obj(
        {"generated_at": TIME, "public": BOOL, "departments": {"type": "array", "items": _ref("BoardDepartment")}}
    ),
    "BoardReports": _obj(
        {
            "generated_at": TIME,
            "departments": {
                "type": "array",
                "items": _obj({"name": {"type": "string"}, "heatmap": _ref("Heatmap"), "history": _ref("History")}),
            },
        }
    ),
    "Health": _obj(
        {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "database": {"type": "string"},
            "storage_mode": {"type": "string", "enum": ["timescaledb", "postgresql"], "nullable": True},
            "newest_sample": NTIME,
            "newest_sample_age_seconds": NUM,
            "message": {"type": "string"},
        },
        required=["status", "database", "storage_mode", "newest_sample_age_seconds"],
    ),
}

TIME_HELP = "ISO-8601, Unix seconds, `now`, or relative like `-24h`, `now-30m` (units s m h d w)."


def _q(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string", "maxLength": params.MAX_TEXT},
    }


PAGE = [
    _q("limit", "Page size.", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
    _q("offset", "Rows to skip.", {"type": "integer", "minimum": 0, "maximum": params.MAX_OFFSET}),
]
RANGE = [_q("start", "Range start (default end-24h). " + TIME_HELP), _q("end", "Range end (default now). " + TIME_HELP)]
NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": params.MAX_TEXT},
}
SYSTEM_ID = {"name": "system_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
ERRORS = {
    "400": "Invalid parameter; the message names it.",
    "401": "Missing or invalid API key.",
    "404": "No such resource.",
    "429": "Rate limit exceeded; see Retry-After.",
    "503": "Database unreachable or schema missing; retry later.",
}


def _errors(*codes: str) -> dict[str, Any]:
    return {
        code: {"description": ERRORS[code], "content": {"application/json": {"schema": _ref("Error")}}}
        for code in codes
    }


FORMAT = _q(
    "format",
    "json (default) or csv; `Accept: text/csv` also selects CSV (the rows only).",
    {"type": "string", "enum": list(tabular.FORMATS)},
)
CSV = {"text/csv": {"schema": {"type": "string"}}}


def _op(
    summary: str, schema: str, parameters: list[dict[str, Any]], errors: tuple[str, ...], public: bool = False
) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": _ref(schema)}}
    if FORMAT in parameters:
        content.update(CSV)
    responses: dict[str, Any] = {"200": {"description": "OK", "content": content}}
    responses.update(_errors(*errors))
    operation = {"summary": summary, "parameters": parameters, "responses": responses}
    if public:
        operation["security"] = []
    return {"get": operation}


ALL = ("400", "401", "404", "429", "503")


def document() -> dict[str, Any]:
    """The OpenAPI 3.0.3 document served at /openapi.json."""
    health = _op(
        "Database reachability, storage mode, newest sample age (no key).", "Health", [], ("429",), public=True
    )
    health["get"]["responses"]["503"] = {
        "description": "Database unreachable or schema missing.",
        "content": {"application/json": {"schema": _ref("Health")}},
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "OptiLab API",
            "version": "1.0.0",
            "description": "Read-only JSON over OptiLab's lab history: machines, departments, alerts. "
            + OCCUPIED_MEANING,
        },
        "servers": [{"url": "/"}],
        "security": [{"ApiKey": []}, {"Bearer": []}],
        "paths": {
            "/systems": _op(
                "Machines, filtered and paginated.",
                "SystemPage",
                [
                    _q("department", "Exact department name."),
                    _q("status", "Reachability.", {"type": "string", "enum": list(systems.STATUSES)}),
                    _q("health", "Exporter health state.", {"type": "string", "enum": list(systems.HEALTH_STATES)}),
                    _q("state", "Seat state now.", {"type": "string", "enum": list(seats.STATES)}),
                    _q("q", "Substring of hostname, IP address or instance."),
                    *PAGE,
                    FORMAT,
                ],
                ALL,
            ),
            "/systems/{system_id}": _op(
                "One machine with latest usage and status history.", "SystemDetail", [SYSTEM_ID], ALL
            ),
            "/systems/{system_id}/metrics": _op(
                "Bucketed cpu/ram/disk/users; `source` tells which table answered.",
                "Series",
                [
                    SYSTEM_ID,
                    *RANGE,
                    _q("step", "Bucket width: 60, 60s, 5m, 1h, 1d, 1w; raised to stay within max_points."),
                    _q("source", "Force a source (default auto).", {"type": "string", "enum": list(systems.SOURCES)}),
                ],
                ALL,
            ),
            "/departments": _op(
                "Every department: up/down, in use/free and seats now, utilisation over a range.",
                "DepartmentList",
                [*RANGE, FORMAT],
                ALL,
            ),
            "/departments/{name}/history": _op(
                "Machines in each seat state and utilisation per step.",
                "History",
                [NAME, *RANGE, _q("step", "Bucket width: 60, 5m, 1h, 1d; raised to stay within max_points."), FORMAT],
                ALL,
            ),
            "/departments/{name}/heatmap": _op(
                "7 x 24 hour-of-week utilisation in the department's time zone (default last 7 days).",
                "Heatmap",
                [NAME, *RANGE, FORMAT],
                ALL,
            ),
            "/reports/utilisation": _op(
                "Per department inside opening hours: utilisation, peak occupancy, hours at capacity, "
                "over-subscribed and underused labs (default last 7 days).",
                "UtilisationReport",
                [*RANGE, FORMAT],
                ALL,
            ),
            "/reports/machines": _op(
                "Per machine inside opening hours: share in use, availability, hot seats (default last 7 days).",
                "MachineReport",
                [*RANGE, _q("department", "Exact department name."), FORMAT],
                ALL,
            ),
            "/departments/{name}": _op("One department and its machines.", "DepartmentDetail", [NAME, *RANGE], ALL),
            "/alerts": _op(
                "Alerts newest first.",
                "AlertPage",
                [
                    _q(
                        "state",
                        "active (firing), resolved or all.",
                        {"type": "string", "enum": ["active", "resolved", "all"]},
                    ),
                    _q("severity", "Exact severity."),
                    _q("department", "Exact department."),
                    _q("alertname", "Exact alert name."),
                    *RANGE,
                    *PAGE,
                ],
                ALL,
            ),
            "/board": {
                "get": {
                    "summary": "The live lab board (HTML page; its data needs a key unless the "
                    "board is public). Live updates: GET /board/events (Server-Sent "
                    "Events, see docs/api.md).",
                    "security": [],
                    "responses": {
                        "200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}},
                        **_errors("400", "429"),
                    },
                }
            },
            "/board/data": _op(
                "The board's snapshot: per department machines, seat states, free counts.",
                "Board",
                [],
                ("400", "401", "429", "503"),
            ),
            "/board/reports": _op(
                "The board's charts: per department the 7-day heatmap and 24 h of utilisation.",
                "BoardReports",
                [],
                ("400", "401", "429", "503"),
            ),
            "/health": health,
            "/metrics": {
                "get": {
                    "summary": "The API's own Prometheus metrics (no key).",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **_errors("429"),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document.",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.0 document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **_errors("401", "429"),
                    },
                }
            },
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }

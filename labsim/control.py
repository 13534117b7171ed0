"""Loopback HTTP control of a running lab: switch faults and read host state from another process.

Tests, benchmarks and the demo run the lab as a subprocess (so gevent's monkey patching stays out of
their own process) and steer it through these routes:

- ``GET /hosts`` → JSON list of hosts with their fault and live figures
- ``POST /fault`` with JSON ``{"hosts": ["127.0.1.5"], "mode": "slow", "delay": 1.5}``
  (``"host"`` for one, ``"all"`` for every host) → ``{"changed": [...]}``
- ``POST /seat`` with JSON ``{"host": "127.0.1.5", "state": "in_use"}`` → force a login (or idle,
  locked, free) on that seat until ``"state": null``
- ``GET /inventory`` → the exporter inventory (YAML)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from gevent.pywsgi import WSGIServer

from optilab.labsim.faults import parse_fault
from optilab.labsim.model import SEAT_OVERRIDES
from optilab.labsim.runtime import LabRuntime

MAX_BODY = 64 * 1024
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _reply(
    start_response: StartResponse, status: str, body: Any, content_type: str = "application/json"
) -> Iterable[bytes]:
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return [data]


def make_app(lab: LabRuntime) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """WSGI app over ``lab``; bad requests get 400 with the reason, unknown hosts 404."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        if method == "GET" and path == "/hosts":
            return _reply(start_response, "200 OK", lab.status())
        if method == "GET" and path == "/inventory":
            return _reply(start_response, "200 OK", lab.inventory_path.read_text(), "application/yaml")
        if method == "GET" and path == "/health":
            return _reply(start_response, "200 OK", {"status": "ok", "hosts": len(lab.hosts)})
        if method == "POST" and path == "/fault":
            return _set_fault(lab, environ, start_response)
        if method == "POST" and path == "/seat":
            return _set_seat(lab, environ, start_response)
        return _reply(start_response, "404 Not Found", {"error": f"no route {method} {path}"})

    return app


def _json_body(environ: dict[str, Any]) -> Any:
    """The request's JSON body (``{}`` when empty); ``ValueError`` when too large or not JSON."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > MAX_BODY:
        raise ValueError("body too large")
    return json.loads(environ["wsgi.input"].read(length) or b"{}")


def _set_fault(lab: LabRuntime, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    try:
        body = _json_body(environ)
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        fault = parse_fault(str(body.get("mode", "")), body.get("delay"))
        hosts = body.get("hosts", body.get("host"))
        targets = list(lab.hosts) if hosts == "all" else [hosts] if isinstance(hosts, str) else hosts
        if not isinstance(targets, list) or not targets:
            raise ValueError('give "host", "hosts" (a list) or "hosts": "all"')
    except (ValueError, TypeError) as exc:
        return _reply(start_response, "400 Bad Request", {"error": str(exc)})
    unknown = [ip for ip in targets if ip not in lab.hosts]
    if unknown:
        return _reply(start_response, "404 Not Found", {"error": f"unknown hosts {unknown}"})
    for ip in targets:
        lab.set_fault(ip, fault)
    return _reply(start_response, "200 OK", {"changed": targets, "fault": str(fault)})


def _set_seat(lab: LabRuntime, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``{"host": "127.0.1.5", "state": "in_use"}`` (a login now); ``"state": null`` clears it."""
    try:
        body = _json_body(environ)
        if not isinstance(body, dict) or not isinstance(body.get("host"), str):
            raise ValueError('give {"host": IP, "state": one of ' + ", ".join(SEAT_OVERRIDES) + " or null}")
        seat = body.get("state")
        if seat is not None and seat not in SEAT_OVERRIDES:
            raise ValueError(f"state: expected one of {', '.join(SEAT_OVERRIDES)} or null")
    except (ValueError, TypeError) as exc:
        return _reply(start_response, "400 Bad Request", {"error": str(exc)})
    host = lab.hosts.get(body["host"])
    if host is None:
        return _reply(start_response, "404 Not Found", {"error": f"unknown host {body['host']}"})
    host.state.force_seat(seat, lab.clock())
    return _reply(start_response, "200 OK", {"host": body["host"], "state": seat})


def serve(lab: LabRuntime, host: str, port: int) -> WSGIServer:
    """Start the control server on loopback; port 0 picks a free one (read ``server.server_port``)."""
    if not host.startswith("127."):
        raise ValueError(f"the control API listens on loopback only, not {host}")
    server = WSGIServer((host, port), make_app(lab), log=None)
    server.start()
    return server

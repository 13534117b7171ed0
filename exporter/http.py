"""The exporter's HTTP face: a plain WSGI app served by gevent's WSGIServer.

Endpoints (docs/exporter.md has the reference):

* ``/probe?target=HOST[:PORT]`` — one host, no ``instance`` label (Prometheus sets it by relabelling);
* ``/probe?department=NAME`` and ``/probe`` — fan-out to a department / the whole lab, concurrently
  (bounded by ``probe.concurrency``), every series labelled ``instance`` and ``department``;
* ``/metrics`` — the exporter's own ``optilab_exporter_*`` metrics;
* ``/sd`` — Prometheus http_sd JSON of every allowed target;
* ``/`` — a landing page.

Only targets of the inventory are ever dialled: anything else is a 400, so the exporter is not an
open SSH relay. Every probe runs under one deadline, ``min(X-Prometheus-Scrape-Timeout-Seconds −
offset, probe.timeout)``, so a hanging host produces a timely "failed" answer, never a scrape timeout.
"""

from __future__ import annotations

import html
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol
from urllib.parse import parse_qs

import gevent.pool
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import Metric

from exporter.config import Config, HostEntry, TargetError, parse_target
from exporter.family import Exposition, render
from exporter.probe import Prober

log = logging.getLogger(__name__)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
SCRAPE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Runtime(Protocol):
    """What the app needs from the running exporter (``exporter.cli.Runtime``; fakes in tests)."""

    config: Config
    prober: Prober

    def maybe_reload(self) -> None: ...

    def self_metrics(self) -> Iterable[Metric]: ...


class BadRequestError(Exception):
    """A request the exporter refuses (400) with a message for the client."""


class _SelfMetrics:
    """Collector adapter: the runtime's families built fresh at each /metrics scrape."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def collect(self) -> Iterable[Metric]:
        return self._runtime.self_metrics()


class ExporterApp:
    def __init__(self, runtime: Runtime, clock: Callable[[], float] = time.monotonic) -> None:
        self.runtime, self._clock = runtime, clock
        self.registry = CollectorRegistry(auto_describe=False)
        self.scrape_seconds = Histogram(
            "optilab_exporter_scrape_duration_seconds", "Wall time of /probe requests, by kind of probe.",
            ["kind"], buckets=SCRAPE_BUCKETS, registry=self.registry)
        self.probes = Counter(
            "optilab_exporter_probes_total",
            "Host probes by result: success, or the failure reason (backoff = answered from health state).",
            ["result"], registry=self.registry)
        self.requests = Counter("optilab_exporter_http_requests_total", "HTTP requests by path and status.",
                                ["path", "code"], registry=self.registry)
        self.registry.register(_SelfMetrics(runtime))  # type: ignore[arg-type]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        path = environ.get("PATH_INFO", "/")
        routes = {"/": self.landing, "/probe": self.probe, "/metrics": self.metrics, "/sd": self.sd}
        handler = routes.get(path)
        if handler is None:
            return self._reply(start_response, path, "404 Not Found", b"not found\n")
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return self._reply(start_response, path, "405 Method Not Allowed", b"only GET\n",
                               extra=[("Allow", "GET, HEAD")])
        try:
            content_type, body = handler(environ)
        except BadRequestError as exc:
            return self._reply(start_response, path, "400 Bad Request", f"{exc}\n".encode())
        except Exception:
            log.exception("%s failed", path)
            return self._reply(start_response, path, "500 Internal Server Error", b"internal error\n")
        return self._reply(start_response, path, "200 OK", body, content_type)

    # -- handlers -------------------------------------------------------------------------------

    def probe(self, environ: dict[str, Any]) -> tuple[str, bytes]:
        self.runtime.maybe_reload()
        params = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        for name in ("target", "department"):
            if len(params.get(name, [])) > 1:
                raise BadRequestError(f"give '{name}' once")
        if "target" in params and "department" in params:
            raise BadRequestError("give either 'target' or 'department', not both")
        deadline = self._deadline(environ.get("HTTP_X_PROMETHEUS_SCRAPE_TIMEOUT_SECONDS"))
        started = self._clock()
        if "target" in params:
            entry = self._allowed(params["target"][0])
            result = self.runtime.prober.probe(entry, deadline)
            self.probes.labels(result.reason or "success").inc()
            self.scrape_seconds.labels("target").observe(self._clock() - started)
            return CONTENT_TYPE_LATEST, render(result.families)
        inventory = self.runtime.config.inventory
        if "department" in params:
            name = params["department"][0]
            entries, kind = inventory.department(name), "department"
            if not entries:
                raise BadRequestError(f"department {name!r} is not in the inventory "
                                 f"(known: {', '.join(inventory.departments) or 'none'})")
        else:
            entries, kind = list(inventory.hosts.values()), "all"
        body = self._fan_out(entries, deadline)
        self.scrape_seconds.labels(kind).observe(self._clock() - started)
        return CONTENT_TYPE_LATEST, body

    def metrics(self, environ: dict[str, Any]) -> tuple[str, bytes]:
        return CONTENT_TYPE_LATEST, generate_latest(self.registry)

    def sd(self, environ: dict[str, Any]) -> tuple[str, bytes]:
        self.runtime.maybe_reload()
        groups = []
        for entry in sorted(self.runtime.config.inventory.hosts.values(), key=lambda e: e.target):
            labels = self.runtime.prober.labels(entry)
            groups.append({"targets": [str(entry.target)],
                           "labels": {"department": entry.department, "hostname": labels.hostname}})
        return "application/json", json.dumps(groups, indent=1).encode()

    def landing(self, environ: dict[str, Any]) -> tuple[str, bytes]:
        inventory = self.runtime.config.inventory
        departments = "".join(
            f'<li><a href="/probe?department={html.escape(name)}">{html.escape(name)}</a> '
            f"({len(inventory.department(name))} hosts)</li>" for name in inventory.departments)
        page = (
            "<html><head><title>OptiLab exporter</title></head><body><h1>OptiLab exporter</h1>"
            "<p>Agentless lab monitoring over SSH.</p><ul>"
            '<li><a href="/metrics">/metrics</a> — the exporter\'s own metrics</li>'
            '<li><a href="/sd">/sd</a> — targets for Prometheus http_sd_configs</li>'
            "<li>/probe?target=HOST:PORT — one machine</li>"
            '<li><a href="/probe">/probe</a> — every machine (fan-out)</li>'
            f"</ul><h2>Departments</h2><ul>{departments}</ul></body></html>")
        return "text/html; charset=utf-8", page.encode()

    # -- helpers --------------------------------------------------------------------------------

    def _allowed(self, text: str) -> HostEntry:
        config = self.runtime.config
        try:
            target = parse_target(text, config.ssh.port)
        except TargetError as exc:
            raise BadRequestError(f"target {text!r} {exc}") from None
        entry = config.inventory.lookup(target)
        if entry is None:
            raise BadRequestError(f"target {target} is not in the inventory ({config.source})")
        return entry

    def _deadline(self, header: str | None) -> float:
        """Absolute deadline: the configured cap, lowered by Prometheus's own scrape timeout."""
        settings = self.runtime.config.probe
        budget = settings.timeout
        if header:
            try:
                scrape_timeout = float(header)
            except ValueError:
                raise BadRequestError(f"scrape timeout header {header!r} is not a number") from None
            budget = min(budget, max(scrape_timeout - settings.offset, scrape_timeout / 2))
        return self._clock() + max(0.0, budget)

    def _fan_out(self, entries: list[HostEntry], deadline: float) -> bytes:
        """Probe every entry concurrently (bounded); each host's series get instance + department.
        Each answer becomes text as soon as it is in (in inventory order), so its families die young."""
        workers = gevent.pool.Pool(self.runtime.config.probe.concurrency)
        prober = self.runtime.prober
        exposition = Exposition()
        results = workers.imap(lambda entry: (entry, prober.probe(entry, deadline)), entries)
        for entry, result in results:
            self.probes.labels(result.reason or "success").inc()
            exposition.add(result.families, {"instance": str(entry.target), "department": entry.department})
        return exposition.render()

    def _reply(self, start_response: StartResponse, path: str, status: str, body: bytes,
               content_type: str = "text/plain; charset=utf-8",
               extra: list[tuple[str, str]] | None = None) -> list[bytes]:
        known = path if path in ("/", "/probe", "/metrics", "/sd") else "other"
        self.requests.labels(known, status.split()[0]).inc()
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                                *(extra or [])])
        return [body]

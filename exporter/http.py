"""The exporter's HTTP face: a plain WSGI app served by gevent's WSGIServer.

Endpoints (docs/exporter.md has the reference):

* ``/probe?target=HOST[:PORT]`` — one host, no ``instance`` label (Prometheus sets it by relabelling);
* ``/probe?target=HOST&fail_status=5xx`` — the same, but a failed probe answers 503 (``up`` = 0);
* ``/probe?department=NAME`` and ``/probe?all=1`` — fan-out to a department / the whole lab, concurrently
  (bounded by ``probe.concurrency``), every series labelled ``instance`` and ``department``;
* ``/metrics`` — the exporter's own ``optilab_exporter_*`` metrics;
* ``/sd`` — Prometheus http_sd JSON of every allowed target;
* ``/`` — a landing page (it links no whole-lab probe).

``/probe`` without a target, department or ``all=1``, or with an unknown parameter, is a 400, as in
blackbox_exporter. ``/-/healthy``, ``/-/ready`` and ``/-/reload`` come from toolkit.wsgi.

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
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs

import gevent.pool
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import Metric

from optilab.exporter.admission import Admission, Flights
from optilab.exporter.collectors import Plan, by_name
from optilab.exporter.config import Config, HostEntry
from optilab.exporter.family import Exposition
from optilab.exporter.probe import Prober
from optilab.exporter.targets import TargetError, parse_target

log = logging.getLogger(__name__)

#: An answer's body: one ``bytes``, or pieces the server writes in turn (a fan-out's ~15 MB is never
#: joined into one more copy; ``Content-Length`` is their sum). Immutable, so joiners share it.
Body = bytes | tuple[bytes, ...]
Rendered = TypeVar("Rendered")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
SCRAPE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: node_exporter's --web.max-requests default: /probe requests in flight before new ones get 503
DEFAULT_MAX_REQUESTS = 40
#: node_exporter's query parameter that limits a scrape to some collectors (given once per name)
COLLECT = "collect[]"


class Runtime(Protocol):
    """What the app needs from the running exporter (``exporter.cli.Runtime``; fakes in tests)."""

    config: Config
    prober: Prober

    def maybe_reload(self) -> None: ...

    def self_metrics(self) -> Iterable[Metric]: ...


class BadRequestError(Exception):
    """A request the exporter refuses (400) with a message for the client."""


class ProbeFailedError(Exception):
    """A single-target probe failed and the request asked for ``fail_status=5xx`` (answered 503)."""


PROBE_PARAMS = ("target", "department", "all", "fail_status", COLLECT)
PROBE_USAGE = (
    "give target=HOST[:PORT] (one machine, what Prometheus scrapes), department=NAME, "
    "or all=1 (every machine of the lab: one SSH command per machine)"
)


def probe_params(query: str) -> dict[str, str]:
    """The /probe parameters, each given once (``collect[]`` apart: :func:`collect_filter` reads
    it); exactly one of target, department, all=1. Like
    blackbox_exporter, no parameter and unknown parameters are 400s (``module`` included: one probe
    always collects everything). ``fail_status=5xx`` (target only) turns a failed probe into a 503."""
    raw = parse_qs(query, keep_blank_values=True)
    if "module" in raw:
        raise BadRequestError(
            "OptiLab has no probe modules ('module' is blackbox_exporter's): every probe "
            "collects everything; " + PROBE_USAGE
        )
    unknown = sorted(set(raw) - set(PROBE_PARAMS))
    if unknown:
        raise BadRequestError(
            f"unknown parameter {', '.join(map(repr, unknown))} (known: {', '.join(PROBE_PARAMS)}); " + PROBE_USAGE
        )
    for name, values in raw.items():
        if len(values) > 1 and name != COLLECT:
            raise BadRequestError(f"give '{name}' once")
    params = {name: values[0] for name, values in raw.items() if name != COLLECT}
    if "all" in params and params["all"].lower() not in ("1", "true"):
        raise BadRequestError(f"all={params['all']!r}: use all=1 to probe every machine, or leave it out")
    chosen = [name for name in ("target", "department", "all") if name in params]
    if not chosen:
        raise BadRequestError("no target: " + PROBE_USAGE)
    if len(chosen) > 1:
        raise BadRequestError(f"give one of target, department, all=1, not {' and '.join(chosen)}")
    fail_status = params.get("fail_status")
    if fail_status is not None and fail_status not in ("5xx", "200"):
        raise BadRequestError(
            f"fail_status={fail_status!r}: use 5xx (a failed probe answers 503, so up=0) "
            f"or 200 (the default: a failed probe answers system_status 0)"
        )
    if fail_status is not None and "target" not in params:
        raise BadRequestError("fail_status applies to target= probes only (a fan-out answers for many machines)")
    return params


def collect_filter(query: str) -> frozenset[str] | None:
    """The ``collect[]`` values of a /probe query (node_exporter's filter: only these collectors), or
    None without any. Each must name a collector the exporter knows (a 400 otherwise, as
    node_exporter's "missing collector")."""
    names = parse_qs(query, keep_blank_values=True).get(COLLECT)
    if names is None:
        return None
    known = by_name()
    for name in names:
        if name not in known:
            raise BadRequestError(f"unknown collector {name!r} in collect[] (known: {', '.join(sorted(known))})")
    return frozenset(names)


def check_enabled(collect: frozenset[str], plan: Plan, department: str) -> None:
    """A 400 for a ``collect[]`` name that ``department``'s plan does not run (node_exporter's
    "disabled collector"): a filter chooses among the enabled collectors, it enables none."""
    enabled = set(plan.names) | set(plan.slow.names if plan.slow is not None else ())
    disabled = sorted(collect - enabled)
    if disabled:
        raise BadRequestError(
            f"collect[]: {', '.join(map(repr, disabled))} not enabled for department {department!r} "
            "(enable it in the inventory's collectors:)"
        )


class _SelfMetrics:
    """Collector adapter: the runtime's families built fresh at each /metrics scrape."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def collect(self) -> Iterable[Metric]:
        return self._runtime.self_metrics()


class ExporterApp:
    def __init__(
        self, runtime: Runtime, clock: Callable[[], float] = time.monotonic, max_requests: int = DEFAULT_MAX_REQUESTS
    ) -> None:
        self.runtime, self._clock = runtime, clock
        self.admission, self.flights = Admission(max_requests), Flights(clock)
        self.render_one, self.render_many = RenderCost(), RenderCost()  # a single answer costs more per host
        self._shed_logged = float("-inf")
        self.registry = CollectorRegistry(auto_describe=False)
        self.scrape_seconds = Histogram(
            "optilab_exporter_scrape_duration_seconds",
            "Wall time of /probe requests, by kind of probe.",
            ["kind"],
            buckets=SCRAPE_BUCKETS,
            registry=self.registry,
        )
        self.probes = Counter(
            "optilab_exporter_probes_total",
            "Host probes by result: success, or the failure reason (backoff = answered from health state).",
            ["result"],
            registry=self.registry,
        )
        self.requests = Counter(
            "optilab_exporter_http_requests_total",
            "HTTP requests by path and status.",
            ["path", "code"],
            registry=self.registry,
        )
        self.registry.register(_SelfMetrics(runtime))
        self.registry.register(_OverloadMetrics(self))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        path = environ.get("PATH_INFO", "/")
        routes = {"/": self.landing, "/probe": self.probe, "/metrics": self.metrics, "/sd": self.sd}
        handler = routes.get(path)
        if handler is None:
            return self._reply(start_response, path, "404 Not Found", b"not found\n")
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return self._reply(
                start_response, path, "405 Method Not Allowed", b"only GET\n", extra=[("Allow", "GET, HEAD")]
            )
        fan_out = path == "/probe" and "target" not in parse_qs(environ.get("QUERY_STRING", ""))
        if path == "/probe" and not self.admission.try_enter(fan_out):
            return self._shed(start_response, fan_out)
        try:
            content_type, body = handler(environ)
        except BadRequestError as exc:
            return self._reply(start_response, path, "400 Bad Request", f"{exc}\n".encode())
        except ProbeFailedError as exc:
            return self._reply(start_response, path, "503 Service Unavailable", f"{exc}\n".encode())
        except Exception:
            log.exception("%s failed", path)
            return self._reply(start_response, path, "500 Internal Server Error", b"internal error\n")
        finally:  # the answer is written after this: a slow reader holds no place
            if path == "/probe":
                self.admission.leave(fan_out)
        return self._reply(start_response, path, "200 OK", body, content_type)

    # -- handlers -------------------------------------------------------------------------------

    def probe(self, environ: dict[str, Any]) -> tuple[str, Body]:
        self.runtime.maybe_reload()
        query = environ.get("QUERY_STRING", "")
        params, collect = probe_params(query), collect_filter(query)
        started = self._clock()
        deadline = self._deadline(environ.get("HTTP_X_PROMETHEUS_SCRAPE_TIMEOUT_SECONDS"))
        if "target" in params:
            entry = self._allowed(params["target"])
            if collect is not None:
                check_enabled(collect, self.runtime.prober.plans(entry), entry.department)
            return CONTENT_TYPE_LATEST, self._probe_one(
                entry, started, deadline, fail=params.get("fail_status") == "5xx", collect=collect
            )
        inventory = self.runtime.config.inventory
        if "department" in params:
            name = params["department"]
            entries, kind = inventory.department(name), "department"
            if not entries:
                raise BadRequestError(
                    f"department {name!r} is not in the inventory (known: {', '.join(inventory.departments) or 'none'})"
                )
        else:
            entries, kind = list(inventory.hosts.values()), "all"
        key = (kind, params.get("department"), id(inventory), collect)
        body = self.flights.answer(key, deadline, lambda: self._probe_many(entries, started, deadline, collect))
        self.scrape_seconds.labels(kind).observe(self._clock() - started)
        return CONTENT_TYPE_LATEST, body

    def metrics(self, environ: dict[str, Any]) -> tuple[str, bytes]:
        return CONTENT_TYPE_LATEST, generate_latest(self.registry)

    def sd(self, environ: dict[str, Any]) -> tuple[str, bytes]:
        self.runtime.maybe_reload()
        groups = []
        for entry in sorted(self.runtime.config.inventory.hosts.values(), key=lambda e: e.target):
            labels = self.runtime.prober.labels(entry)
            target_labels = {"department": entry.department, "hostname": labels.hostname}
            if entry.jump is not None:  # the bastion it is dialled through: Alertmanager inhibits on it
                target_labels["jump"] = str(entry.jump)
            groups.append({"targets": [str(entry.target)], "labels": target_labels})
        return "application/json", json.dumps(groups, indent=1).encode()

    def landing(self, environ: dict[str, Any]) -> tuple[str, bytes]:
        inventory = self.runtime.config.inventory
        departments = "".join(
            f'<li><a href="/probe?department={html.escape(name)}">{html.escape(name)}</a> '
            f"({len(inventory.department(name))} hosts)</li>"
            for name in inventory.departments
        )
        page = (
            "<html><head><title>OptiLab exporter</title></head><body><h1>OptiLab exporter</h1>"
            "<p>Agentless lab monitoring over SSH.</p><ul>"
            '<li><a href="/metrics">/metrics</a> — the exporter\'s own metrics</li>'
            '<li><a href="/sd">/sd</a> — targets for Prometheus http_sd_configs</li>'
            "<li>/probe?target=HOST:PORT — one machine (what Prometheus scrapes; add fail_status=5xx "
            "for up=0 on a dead machine)</li>"
            "<li>/probe?department=NAME — one department (fan-out, below)</li>"
            "<li>/probe?all=1 — every machine of the lab (not linked: one SSH command per machine)</li>"
            "<li>add collect[]=NAME (repeatable) — only those collectors, as node_exporter</li>"
            '<li><a href="/-/healthy">/-/healthy</a>, <a href="/-/ready">/-/ready</a>, '
            "POST /-/reload — lifecycle, as in Prometheus</li>"
            f"</ul><h2>Departments</h2><ul>{departments}</ul></body></html>"
        )
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

    def _probe_one(
        self,
        entry: HostEntry,
        started: float,
        deadline: float,
        fail: bool = False,
        collect: frozenset[str] | None = None,
    ) -> bytes:
        """One host, shared with concurrent probes of it; collection stops in time to render by
        ``deadline`` (the answer's deadline). ``fail``: a failed probe raises :class:`ProbeFailedError`
        (``fail_status=5xx``, so that Prometheus records ``up == 0``). ``collect``: only those
        collectors (``collect[]``)."""
        collect_by = deadline - self.render_one.reserve(1, deadline - started)
        result = self.flights.probe(self.runtime.prober, entry, collect_by, started, collect)
        self.probes.labels(result.reason or "success").inc()
        if fail and result.reason is not None:
            self.scrape_seconds.labels("target").observe(self._clock() - started)
            raise ProbeFailedError(
                f"probe of {entry.target} failed: {result.reason} (fail_status=5xx, so Prometheus records up=0)"
            )
        exposition = Exposition(reuse=True)
        exposition.add(result.families)
        body = self.render_one.timed(1, exposition.render)
        self.scrape_seconds.labels("target").observe(self._clock() - started)
        return body

    def _probe_many(
        self, entries: list[HostEntry], started: float, deadline: float, collect: frozenset[str] | None = None
    ) -> tuple[bytes, ...]:
        """Probe every entry concurrently (bounded); each host's series get instance + department at
        render time. A host's failure, whatever it is, costs that host's series only
        (``Flights.probe``). Each answer becomes text as soon as it is in (in inventory order), so its
        families die young. ``collect``: only those collectors, of those each host's department runs."""
        collect_by = deadline - self.render_many.reserve(len(entries), deadline - started)
        workers = gevent.pool.Pool(self.runtime.config.probe.concurrency)
        prober, flights = self.runtime.prober, self.flights
        exposition = Exposition(reuse=True)  # families served from the collector cache keep their text
        results = workers.imap(
            lambda entry: (entry, flights.probe(prober, entry, collect_by, started, collect)), entries
        )
        for entry, result in results:
            self.probes.labels(result.reason or "success").inc()
            exposition.add(result.families, {"instance": str(entry.target), "department": entry.department})
        return self.render_many.timed(len(entries), lambda: tuple(exposition.chunks()))

    def _shed(self, start_response: StartResponse, fan_out: bool) -> list[bytes]:
        """503 like node_exporter's --web.max-requests: the exporter is overloaded, not the hosts."""
        a = self.admission
        busy = (
            f"{a.fan_outs} fan-outs in flight, limit {a.fan_out_limit} (a quarter of --web.max-requests)"
            if fan_out and a.in_flight < a.limit
            else f"{a.in_flight} /probe requests in flight, limit {a.limit} (--web.max-requests)"
        )
        if self._clock() - self._shed_logged >= 10.0:  # one line per 10 s of shedding, not one per request
            self._shed_logged = self._clock()
            log.warning("shedding /probe (%d shed so far): %s", a.shed, busy)
        return self._reply(
            start_response,
            "/probe",
            "503 Service Unavailable",
            f"overloaded: {busy}; request shed\n".encode(),
            extra=[("Retry-After", "1")],
        )

    def _reply(
        self,
        start_response: StartResponse,
        path: str,
        status: str,
        body: Body,
        content_type: str = "text/plain; charset=utf-8",
        extra: list[tuple[str, str]] | None = None,
    ) -> list[bytes]:
        known = path if path in ("/", "/probe", "/metrics", "/sd") else "other"
        self.requests.labels(known, status.split()[0]).inc()
        parts = [body] if isinstance(body, bytes) else list(body)
        length = sum(len(part) for part in parts)
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(length)), *(extra or [])])
        return parts


class RenderCost:
    """How long rendering takes per host (moving average of measured wall time), so a probe stops
    collecting early enough that its whole answer is ready by the deadline."""

    def __init__(self, per_host: float = 0.002, clock: Callable[[], float] = time.perf_counter) -> None:
        self.per_host, self._clock = per_host, clock

    def reserve(self, hosts: int, budget: float) -> float:
        """Seconds kept for rendering ``hosts`` hosts: 1.5 times the estimate plus 10 ms, at most half
        the budget (the hosts keep at least the other half)."""
        return min(max(0.0, budget) / 2, 0.01 + 1.5 * self.per_host * hosts)

    def timed(self, hosts: int, work: Callable[[], Rendered]) -> Rendered:
        started = self._clock()
        body = work()
        self.per_host = 0.8 * self.per_host + 0.2 * (self._clock() - started) / max(1, hosts)
        return body


class _OverloadMetrics:
    """Requests shed, collections and answers shared, requests in flight."""

    def __init__(self, app: ExporterApp) -> None:
        self._app = app

    def collect(self) -> Iterable[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        admission, flights = self._app.admission, self._app.flights
        yield CounterMetricFamily(
            "optilab_exporter_requests_shed",
            "/probe requests answered 503 because --web.max-requests were in flight.",
            value=admission.shed,
        )
        yield GaugeMetricFamily(
            "optilab_exporter_requests_in_flight", "/probe requests being answered now.", value=admission.in_flight
        )
        shared = CounterMetricFamily(
            "optilab_exporter_probes_shared",
            "Probes answered from a concurrent collection of the same host (host) "
            "or a concurrent identical fan-out (answer).",
            labels=["kind"],
        )
        for kind in ("host", "answer"):
            shared.add_metric([kind], flights.shared[kind])
        yield shared

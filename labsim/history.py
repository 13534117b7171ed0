"""A simulated lab day (or week) of history, written through the real bridge: ``python -m labsim.history``.

Reports and the board need months of history that nobody can wait for. This replays a lab in
simulated time: every ``step`` each host's state is advanced and rendered exactly as it would answer
the probe (labsim.render), the exporter's own parsers and metric builders turn it into families
(seat state included), and the series the bridge stores are remote-written to a running bridge with
their simulated timestamps — the same decode, mapping and store path as Prometheus' samples, minus SSH
and Prometheus' scraping. Only loopback bridge URLs are accepted.

The lab's rhythm (labsim.model): logins by time of day and department — physics over-subscribed,
biology underused — sessions idle after ten minutes or locked, evening remote logins.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

import cramjam

from exporter.metrics import HostLabels, lab_families, probe_families, seat_families
from exporter.parsers import HostSnapshot, parse_snapshot
from exporter.parsers_seat import seat_state
from labsim.model import HostState, make_profiles
from labsim.render import RENDERERS
from remote_write_bridge.protocol import WriteRequest

#: what the bridge pivots into usage_metrics / systems / the seat history
STORED = ("system_cpu_usage", "system_ram_usage", "system_disk_usage", "optilab_logged_in_users",
          "system_status", "optilab_seat_state")
HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
           "X-Prometheus-Remote-Write-Version": "0.1.0"}


@dataclass(frozen=True)
class ReplayResult:
    requests: int
    samples: int
    seconds: float


def _loopback(url: str) -> str:
    host = urllib.parse.urlsplit(url).hostname or ""
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise ValueError(f"the bridge URL must be a loopback address, not {host!r}")
    return url


def host_series(state: HostState, previous: HostSnapshot | None, now: float,
                port: int = 22) -> tuple[HostSnapshot, list[tuple[dict[str, str], float]]]:
    """One probe of one simulated host as the exporter would expose it, reduced to the stored series."""
    profile = state.profile
    sections = {name: render(state, now) for name, render in RENDERERS.items()}
    snapshot, _errors = parse_snapshot(sections)
    labels = HostLabels(profile.hostname, profile.ip, profile.department)
    extra = {"instance": f"{profile.ip}:{port}"}
    families = [*lab_families(snapshot, previous, labels, extra),
                *probe_families(labels, True, 0.05, "healthy", None, extra),
                *seat_families(seat_state(snapshot.seats, reachable=True), snapshot.seats, labels, extra)]
    out = []
    for family in families:
        if family.name in STORED:
            out += [({"__name__": sample.name, **sample.labels}, sample.value) for sample in family.samples]
    return snapshot, out


def encode(series: Sequence[tuple[dict[str, str], list[tuple[float, int]]]]) -> bytes:
    request = WriteRequest()
    for labels, samples in series:
        ts = request.timeseries.add()
        for name, value in sorted(labels.items()):
            ts.labels.add(name=name, value=value)
        for value, ms in samples:
            ts.samples.add(value=value, timestamp=ms)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def replay(bridge_url: str, start: float, end: float, hosts: int = 30, departments: int = 3,
           step: float = 60.0, batch_steps: int = 10, port: int = 22) -> ReplayResult:
    """Write ``[start, end)`` of a ``hosts``-machine lab, ``step`` seconds apart, ``batch_steps`` per request."""
    url = _loopback(bridge_url.rstrip("/") + "/api/v1/write")
    if step <= 0 or end <= start:
        raise ValueError("need step > 0 and end after start")
    states = [HostState.boot(profile, start) for profile in make_profiles(hosts, departments)]
    previous: dict[int, HostSnapshot] = {}
    pending: dict[tuple[tuple[str, str], ...], list[tuple[float, int]]] = {}
    requests = samples = 0
    began = time.monotonic()

    def flush() -> None:
        nonlocal requests
        if not pending:
            return
        body = encode([(dict(key), values) for key, values in pending.items()])
        request = urllib.request.Request(url, data=body, method="POST", headers=HEADERS)  # noqa: S310 - loopback
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - checked loopback URL
            if response.status != 204:
                raise RuntimeError(f"bridge answered {response.status}")
        requests += 1
        pending.clear()

    now, steps = start, 0
    while now < end:
        for state in states:
            state.advance(now)
            snapshot, series = host_series(state, previous.get(state.profile.index), now, port)
            previous[state.profile.index] = snapshot
            for labels, value in series:
                pending.setdefault(tuple(sorted(labels.items())), []).append((value, int(now * 1000)))
                samples += 1
        steps += 1
        if steps % batch_steps == 0:
            flush()
        now += step
    flush()
    return ReplayResult(requests, samples, time.monotonic() - began)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labsim.history", description=__doc__.splitlines()[0])
    parser.add_argument("--bridge", required=True, help="the bridge's base URL, e.g. http://127.0.0.1:9843")
    parser.add_argument("--hours", type=float, default=24.0, help="how much history, ending now (default 24)")
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--departments", type=int, default=3)
    parser.add_argument("--step", type=float, default=60.0, help="seconds between samples (default 60)")
    args = parser.parse_args(argv)
    end = time.time()
    try:
        result = replay(args.bridge, end - args.hours * 3600, end, args.hosts, args.departments, args.step)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"labsim.history: {exc}", file=sys.stderr)
        return 2
    print(f"{result.samples} samples in {result.requests} requests, {result.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

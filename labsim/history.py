"""A simulated lab day (or week) of history, written through the real bridge: ``python -m optilab.labsim.history``.

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
import dataclasses
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

import cramjam

from optilab.exporter.collectors import make_plan
from optilab.exporter.config import HealthSettings, HostEntry
from optilab.exporter.health import HealthBook
from optilab.exporter.probe import Prober
from optilab.exporter.targets import Target
from optilab.labsim.model import HostState, make_profiles
from optilab.labsim.render import render_script
from optilab.remote_write_bridge.protocol import WriteRequest

#: what the bridge pivots into usage_metrics / systems / the seat history
STORED = (
    "system_cpu_usage",
    "system_ram_usage",
    "system_disk_usage",
    "optilab_logged_in_users",
    "system_status",
    "optilab_seat_state",
)
#: the collectors whose families hold them (``stat`` for /proc/stat: the probe's CPU percent)
HISTORY_COLLECTORS = ("stat", "lab", "seats")
HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


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


class _Simulated:
    """A ``Runner`` that answers the probe's script from a simulated host's state at a simulated time."""

    def __init__(self) -> None:
        self.state: HostState | None = None
        self.now = 0.0

    def run(self, target: Target, command: str, deadline: float) -> str:
        assert self.state is not None
        return render_script(command, self.state, self.now) or ""


class Replayer:
    """The exporter's own probe (collectors, lab gauges, seat state) over simulated hosts."""

    def __init__(self, port: int = 22) -> None:
        self.port, self.host = port, _Simulated()
        # only the collectors behind the stored series (the slow tier is not stored history either):
        # the others' files would be rendered and parsed only to be thrown away, ~30x the time
        plan = dataclasses.replace(make_plan(HISTORY_COLLECTORS), slow=None)
        self.prober = Prober(
            self.host, HealthBook(HealthSettings()), clock=lambda: self.host.now, plans=lambda entry: plan
        )

    def series(self, state: HostState, now: float) -> list[tuple[dict[str, str], float]]:
        """One probe of one simulated host as the exporter would expose it, reduced to the stored series."""
        self.host.state, self.host.now = state, now
        profile = state.profile
        entry = HostEntry(Target(profile.ip, self.port), profile.department, profile.hostname)
        result = self.prober.probe(entry, now + 10.0)
        instance = {"instance": f"{profile.ip}:{self.port}"}
        return [
            ({"__name__": family.name, **dict(zip(family.labels, values, strict=True)), **instance}, value)
            for family in result.families
            if family.name in STORED
            for values, value in family.samples
        ]


def encode(series: Sequence[tuple[dict[str, str], list[tuple[float, int]]]]) -> bytes:
    request = WriteRequest()
    for labels, samples in series:
        ts = request.timeseries.add()
        for name, value in sorted(labels.items()):
            ts.labels.add(name=name, value=value)
        for sample_value, ms in samples:
            ts.samples.add(value=sample_value, timestamp=ms)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def replay(
    bridge_url: str,
    start: float,
    end: float,
    hosts: int = 30,
    departments: int = 3,
    step: float = 60.0,
    batch_steps: int = 10,
    port: int = 22,
) -> ReplayResult:
    """Write ``[start, end)`` of a ``hosts``-machine lab, ``step`` seconds apart, ``batch_steps`` per request."""
    url = _loopback(bridge_url.rstrip("/") + "/api/v1/write")
    if step <= 0 or end <= start:
        raise ValueError("need step > 0 and end after start")
    states = [HostState.boot(profile, start) for profile in make_profiles(hosts, departments)]
    replayer = Replayer(port)
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
            for labels, value in replayer.series(state, now):
                pending.setdefault(tuple(sorted(labels.items())), []).append((value, int(now * 1000)))
                samples += 1
        steps += 1
        if steps % batch_steps == 0:
            flush()
        now += step
    flush()
    return ReplayResult(requests, samples, time.monotonic() - began)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optilab.labsim.history", description=__doc__.splitlines()[0])
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
        print(f"optilab.labsim.history: {exc}", file=sys.stderr)
        return 2
    print(f"{result.samples} samples in {result.requests} requests, {result.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

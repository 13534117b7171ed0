"""Adaptive vs naive polling over a simulated day with 30 % of the lab dead (the "−80 %" claim).

One day at the design's healthy interval (5 min = 288 rounds) over 30 hosts, 9 of which are dead
(fault ``hang``: the port accepts and then says nothing, like a powered-off machine whose SYNs go
unanswered, so every dial costs the connect timeout). The exporter's own Prober, SshPool and
HealthBook run in this process; the HealthBook's clock is simulated (+300 s per round), so backoff
intervals of hours pass in seconds. Naive = the same code with every backoff interval 0.
Counted: dials, CPU seconds of the collector and of the lab, wall time of the day's rounds.

    python -m bench.adaptive [--rounds 288] [--connect-timeout 0.2]
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402 - after monkey patching, on purpose
import dataclasses  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

import gevent.pool  # noqa: E402

from bench.common import cpu_seconds, ms, peak_rss_mb, report, running_lab  # noqa: E402
from bench.sshfloor import cpu  # noqa: E402
from optilab.exporter.config import HealthSettings, load_config  # noqa: E402
from optilab.exporter.health import HealthBook  # noqa: E402
from optilab.exporter.probe import Prober  # noqa: E402
from optilab.exporter.sshpool import SshPool  # noqa: E402

INTERVAL = 300.0  # the design's healthy polling period


def simulate_day(lab, health: HealthSettings, rounds: int, connect_timeout: float) -> dict[str, float]:
    config = load_config(lab.inventory)
    ssh = dataclasses.replace(config.ssh, connect_timeout=connect_timeout)
    pool = SshPool(ssh, config.pool)
    day = {"now": 0.0}
    book = HealthBook(health, clock=lambda: day["now"])
    prober = Prober(pool, book)
    entries = list(config.inventory.hosts.values())
    workers = gevent.pool.Pool(len(entries))
    cpu0, lab0, wall0 = cpu(), cpu_seconds(lab.process.pid), time.perf_counter()
    probe_seconds = 0.0
    successes = 0
    try:
        for round_index in range(rounds):
            day["now"] = round_index * INTERVAL
            deadline = time.monotonic() + connect_timeout + 5
            results = workers.map(lambda entry, deadline=deadline: prober.probe(entry, deadline), entries)
            probe_seconds += sum(result.duration for result in results)
            successes += sum(result.success for result in results)
    finally:
        pool.close()
    return {
        "dials": sum(pool.stats.dials.values()),
        "cpu": cpu() - cpu0,
        "lab_cpu": cpu_seconds(lab.process.pid) - lab0,
        "wall": time.perf_counter() - wall0,
        "probe_seconds": probe_seconds,
        "successes": successes,
        "dead_dials": sum(v for k, v in pool.stats.dials.items() if k != "success"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=288, help="scrape rounds (288 = one day at 5 min)")
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=0.2,
        help="seconds a dead host holds a dial (a LAN's default would be 5 s)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # dead hosts make paramiko and the health book chatty
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    with running_lab(args.hosts, departments=3) as lab:
        dead = [h["ip"] for i, h in enumerate(lab.hosts) if i % 10 in (1, 4, 7)]
        lab.set_fault(dead, "hang")
        naive = simulate_day(
            lab,
            HealthSettings(degraded_interval=0, offline_interval=0, dead_interval=0),
            args.rounds,
            args.connect_timeout,
        )
        adaptive = simulate_day(lab, HealthSettings(), args.rounds, args.connect_timeout)

    def cut(key: str) -> str:
        return f"{(1 - adaptive[key] / naive[key]) * 100:+.0f}%".replace("+", "−", 1) if naive[key] else "n/a"

    per_dead = (naive["dead_dials"] - adaptive["dead_dials"]) / naive["dead_dials"] * 100
    rows = [
        (
            "lab",
            f"{args.hosts} hosts, {len(dead)} dead (hang), {args.rounds} rounds of {INTERVAL:.0f} s "
            f"simulated, connect timeout {args.connect_timeout} s",
        ),
        ("successful probes naive / adaptive", f"{naive['successes']:.0f} / {adaptive['successes']:.0f}"),
        ("dials naive / adaptive", f"{naive['dials']:.0f} / {adaptive['dials']:.0f}  ({cut('dials')})"),
        (
            "dials to dead hosts naive / adaptive",
            f"{naive['dead_dials']:.0f} / {adaptive['dead_dials']:.0f}  (−{per_dead:.0f}%)",
        ),
        ("collector CPU naive / adaptive", f"{naive['cpu']:.2f} s / {adaptive['cpu']:.2f} s  ({cut('cpu')})"),
        ("lab CPU naive / adaptive", f"{naive['lab_cpu']:.2f} s / {adaptive['lab_cpu']:.2f} s  ({cut('lab_cpu')})"),
        ("wall time of the day's rounds", f"{naive['wall']:.1f} s / {adaptive['wall']:.1f} s  ({cut('wall')})"),
        (
            "probe-seconds (scrape time occupied)",
            f"{naive['probe_seconds']:.0f} s / {adaptive['probe_seconds']:.0f} s  ({cut('probe_seconds')})",
        ),
        ("collector process peak RSS (both runs)", f"{peak_rss_mb(os.getpid()):.0f} MB"),
        ("mean round naive / adaptive", f"{ms(naive['wall'] / args.rounds)} / {ms(adaptive['wall'] / args.rounds)}"),
    ]
    report(
        "adaptive",
        "Adaptive vs naive polling over a simulated day, 30 % dead",
        rows,
        {"naive": naive, "adaptive": adaptive},
    )


if __name__ == "__main__":
    main()

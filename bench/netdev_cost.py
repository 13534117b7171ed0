"""How netdev should get ``receive_nohandler``: what each way of reading costs the target and the exporter.

node_exporter 1.5 reads netdev over netlink (``rtnl_link_stats64``); /proc/net/dev prints the same
counters, summed into its columns exactly as node_exporter's ``legacy()`` sums netlink's (the kernel's
net-procfs.c), but has no ``rx_nohandler``. sysfs has every ``rtnl_link_stats64`` counter as a file
(``/sys/class/net/<dev>/statistics/<name>``). Three requests, on this machine's own devices:

- ``/proc/net/dev`` alone (before: no nohandler);
- ``/proc/net/dev`` plus ``statistics/rx_nohandler`` per device (one file per device);
- every ``statistics/*`` file (24 per device), from which the legacy columns would be summed.

Target side: CPU of a fresh ``sh`` running each request (``RUSAGE_CHILDREN``, batches of 10, median
of batches), the three in turns, minus an empty request's. Exporter side: the netdev collector's
``collect`` on the first two answers, and a sum-the-24-files parse on the third.

    python -m bench.netdev_cost [--runs 200] [--turns 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

from bench.collector_cost import target_ms
from bench.common import report
from optilab.exporter.collectors import by_name
from optilab.exporter.collectors.base import Collector, Sources
from optilab.exporter.command import build_script, split_sources

STATISTICS = (
    "collisions",
    "multicast",
    "rx_bytes",
    "rx_compressed",
    "rx_crc_errors",
    "rx_dropped",
    "rx_errors",
    "rx_fifo_errors",
    "rx_frame_errors",
    "rx_length_errors",
    "rx_missed_errors",
    "rx_nohandler",
    "rx_over_errors",
    "rx_packets",
    "tx_aborted_errors",
    "tx_bytes",
    "tx_carrier_errors",
    "tx_compressed",
    "tx_dropped",
    "tx_errors",
    "tx_fifo_errors",
    "tx_heartbeat_errors",
    "tx_packets",
    "tx_window_errors",
)


def _reader(name: str, paths: tuple[str, ...]) -> Collector:
    return Collector(name, paths, lambda sources, options: [])


VARIANTS = {
    "/proc/net/dev alone": _reader("proc", ("/proc/net/dev",)),
    "/proc/net/dev + statistics/rx_nohandler": _reader(
        "nohandler", ("/proc/net/dev", "/sys/class/net/*/statistics/rx_nohandler")
    ),
    "every statistics/* file (24 per device)": _reader(
        "sysfs", tuple(f"/sys/class/net/*/statistics/{name}" for name in STATISTICS)
    ),
}


def legacy_from_sysfs(sources: Sources) -> dict[str, dict[str, int]]:
    """The legacy columns node_exporter sums from netlink, summed from the 24 files instead."""
    raw: dict[str, dict[str, int]] = {}
    for path, text in sources.items():
        parts = path.split("/")
        if len(parts) == 7 and parts[5] == "statistics":
            raw.setdefault(parts[4], {})[parts[6]] = int(text)
    out = {}
    for device, s in raw.items():
        out[device] = {
            "receive_bytes": s["rx_bytes"],
            "receive_packets": s["rx_packets"],
            "receive_errs": s["rx_errors"],
            "receive_drop": s["rx_dropped"] + s["rx_missed_errors"],
            "receive_fifo": s["rx_fifo_errors"],
            "receive_frame": s["rx_frame_errors"] + s["rx_length_errors"] + s["rx_over_errors"] + s["rx_crc_errors"],
            "receive_compressed": s["rx_compressed"],
            "receive_multicast": s["multicast"],
            "receive_nohandler": s["rx_nohandler"],
            "transmit_bytes": s["tx_bytes"],
            "transmit_packets": s["tx_packets"],
            "transmit_errs": s["tx_errors"],
            "transmit_drop": s["tx_dropped"],
            "transmit_fifo": s["tx_fifo_errors"],
            "transmit_colls": s["collisions"],
            "transmit_carrier": s["tx_carrier_errors"]
            + s["tx_aborted_errors"]
            + s["tx_heartbeat_errors"]
            + s["tx_window_errors"],
            "transmit_compressed": s["tx_compressed"],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--turns", type=int, default=3)
    args = parser.parse_args()
    devices = sorted(path.name for path in Path("/sys/class/net").iterdir())
    scripts = {label: build_script([collector]) for label, collector in VARIANTS.items()}
    empty = build_script([])
    target: dict[str, list[float]] = {label: [] for label in scripts}
    bases = []
    for _ in range(args.turns):  # in turns: the box is shared, its load drifts
        bases.append(target_ms(empty, args.runs))
        for label, script in scripts.items():
            target[label].append(target_ms(script, args.runs))
    base = statistics.median(bases)
    netdev = by_name()["netdev"]
    options = netdev.options()
    exporter: dict[str, float] = {}
    files: dict[str, int] = {}
    for label, script in scripts.items():
        out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
        sources, complete = split_sources(out, ())
        assert complete
        files[label] = len(sources)
        began = time.process_time()
        for _ in range(args.runs):
            if label.startswith("every"):
                legacy_from_sysfs(sources)
            else:
                netdev.collect(sources, options)
        exporter[label] = (time.process_time() - began) / args.runs * 1e6
    print(
        f"{len(devices)} network devices here ({', '.join(devices)}); empty request {base:.2f} ms "
        f"(the sh start); medians of {args.turns} turns of {args.runs} runs"
    )
    print(f"{'request':<44}{'files':>6}{'target ms':>11}{'(turns)':>22}{'exporter µs':>13}")
    rows = []
    for label in scripts:
        cost = statistics.median(target[label]) - base
        turns = ", ".join(f"{value - base:.2f}" for value in target[label])
        print(f"{label:<44}{files[label]:>6}{cost:>11.2f}{turns:>22}{exporter[label]:>13.1f}")
        rows.append(
            (
                f"{label}: target CPU (minus sh start) / exporter",
                f"{cost:.2f} ms / {exporter[label]:.1f} µs ({files[label]} files)",
            )
        )
    report(
        "netdev_cost",
        "netdev: /proc/net/dev + rx_nohandler vs every statistics file",
        rows,
        {"devices": devices, "target_ms_turns": target, "empty_ms_turns": bases},
    )


if __name__ == "__main__":
    main()

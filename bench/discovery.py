"""Discovery of a /24 with 30 live hosts (design: "< 5 s for a /24", issue 8 target < 2 s).

Runs ``optilab-exporter scan 127.0.1.0/24`` as the admin would (a fresh process each time), against
a simulated lab of 30 hosts: 254 TCP probes, 30 SSH logins reading hostname and OS, the inventory
merge. Reports the scan's own elapsed time, the whole command (with Python start-up) and its CPU.

    python -m bench.discovery [--repeats 3] [--hosts 30]
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import median, ms, report, running_lab


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=30)
    args = parser.parse_args()
    scans, commands, cpus = [], [], []
    with running_lab(args.hosts, departments=3) as lab, tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            out = Path(tmp) / f"inventory-{repeat}.yaml"
            cpu0, wall0 = children_cpu(), time.perf_counter()
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "optilab.exporter",
                    "scan",
                    "127.0.1.0/24",
                    "--port",
                    str(lab.port),
                    "--config",
                    str(lab.inventory),
                    "--out",
                    str(out),
                    "--quiet",
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            commands.append(time.perf_counter() - wall0)
            cpus.append(children_cpu() - cpu0)
            found = re.search(r"in ([\d.]+)s: (\d+) SSH ports open, (\d+) logged in", result.stderr)
            if result.returncode != 0 or not found or int(found.group(3)) != args.hosts:
                raise SystemExit(f"scan failed or missed hosts:\n{result.stderr[-2000:]}")
            scans.append(float(found.group(1)))
    report(
        "discovery",
        f"Discovery of 127.0.1.0/24 with {args.hosts} live simulated hosts",
        [
            ("addresses probed / hosts logged in", f"254 / {args.hosts}"),
            ("scan elapsed, median (target < 2 s, design < 5 s)", ms(median(scans))),
            ("whole command incl. Python start-up", ms(median(commands))),
            ("CPU of the scan process", ms(median(cpus))),
            ("peak RSS of the scan process", f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB"),
        ],
    )


if __name__ == "__main__":
    main()

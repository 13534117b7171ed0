"""``make bench``: run every benchmark in bench/ one after the other, each in its own process.

Each benchmark is a fresh process (gevent's monkey patching, peak RSS and CPU accounting stay its
own) with a time limit; one that fails is reported and the others still run. Results land in
bench/results/*.json; bench/README.md is where a person records them with the machine they came from.

    python -m bench.run_all [--only fanout,pooling] [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: (module, arguments, arguments with --quick); the lab benchmarks first, in the order of issue 8
OWN = [
    ("fanout", [], ["--hosts", "64", "--rounds", "3", "--cold", "1"]),
    ("pooling", [], ["--probes", "10"]),
    ("batching", [], ["--repeats", "10"]),
    ("adaptive", [], ["--rounds", "60"]),
    ("discovery", [], ["--repeats", "1"]),
    ("profile_probe", [], ["--hosts", "64", "--rounds", "1"]),
    ("fanout", ["--real"], ["--real", "--hosts", "64", "--rounds", "3", "--cold", "1"]),
    ("target_cost", [], ["--scrapes", "10"]),
]
#: --quick arguments of the other benchmarks whose defaults take minutes (api_bench seeds 10.8 M rows)
QUICK = {"api_bench": ["--systems", "20", "--days", "3", "--requests", "50"]}
#: helpers other benchmarks import (no ``__main__`` of their own: run alone they measure nothing)
NOT_BENCHMARKS = {"__init__", "__main__", "bridge_prometheus", "common", "lab_series", "sshfloor", "run_all"}


def plan(quick: bool, only: set[str] | None) -> list[tuple[str, list[str]]]:
    """Our benchmarks, then every other ``bench/*.py`` script (other parts' benchmarks) without args."""
    runs = [(module, quick_args if quick else args) for module, args, quick_args in OWN]
    known = {module for module, _, _ in OWN}
    runs += [
        (path.stem, QUICK.get(path.stem, []) if quick else [])
        for path in sorted(HERE.glob("*.py"))
        if path.stem not in NOT_BENCHMARKS | known and not path.stem.startswith("_")
    ]
    return [(module, args) for module, args in runs if only is None or module in only]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated benchmark names")
    parser.add_argument("--quick", action="store_true", help="fewer hosts and repeats (a smoke run)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per benchmark")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    failed = []
    for module, extra in plan(args.quick, only):
        name = " ".join([module, *extra])
        print(f"\n### bench.{name}", flush=True)
        started = time.monotonic()
        try:
            result = subprocess.run(
                [sys.executable, "-m", f"bench.{module}", *extra], timeout=args.timeout, check=False
            )
            code = result.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
        print(
            f"### bench.{name}: {'ok' if code == 0 else f'FAILED ({code})'} in {time.monotonic() - started:.0f} s",
            flush=True,
        )
        if code != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

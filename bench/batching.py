"""One batched exec vs one exec per command on the same pooled connection (the "3–5x" claim).

The exporter reads ~50 files per scrape (exporter/command.py DEFAULT_PATHS). A collector that runs them
as separate commands pays a channel open, an exec request, a session (a forked shell on a real
sshd) and an exit status per command; the batch pays them once. Measured with bare paramiko on
one open connection, sequentially (the design document's ``execute`` per command) and with 4
channels in parallel (the best a per-command collector can do within sshd's MaxSessions), against a
simulated host and a real Debian sshd.

    python -m bench.batching [--repeats 30]
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402 - after monkey patching, on purpose
import time  # noqa: E402

import gevent.pool  # noqa: E402
import paramiko  # noqa: E402

from bench.common import median, ms, ratio, report, running_lab  # noqa: E402
from bench.sshfloor import cpu, dial, execute  # noqa: E402
from optilab.exporter.command import BATCH_SCRIPT, DEFAULT_PATHS  # noqa: E402

#: one exec per file the default script reads (globs left out): what a collector without batching does
SEPARATE = [f"LC_ALL=C cat {path}" for path in DEFAULT_PATHS if not any(c in path for c in "*?[")]


def timed(action) -> tuple[float, float]:
    cpu0, wall0 = cpu(), time.perf_counter()
    action()
    return time.perf_counter() - wall0, cpu() - cpu0


def measure(transport: paramiko.Transport, repeats: int) -> dict[str, list[tuple[float, float]]]:
    parallel = gevent.pool.Pool(4)
    modes = {
        "batched": lambda: execute(transport, BATCH_SCRIPT),
        "separate": lambda: [execute(transport, command) for command in SEPARATE],
        "separate_parallel4": lambda: parallel.map(lambda c: execute(transport, c), SEPARATE),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in modes}
    for _ in range(repeats):  # interleaved, so drift on the shared machine hits every mode alike
        for name, action in modes.items():
            results[name].append(timed(action))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    for real in (False, True):
        kind = "real sshd" if real else "simulated host"
        with running_lab(1, departments=1, real=real) as lab:
            key = paramiko.Ed25519Key.from_private_key_file(str(lab.key_file))
            transport = dial(lab.hosts[0]["ip"], lab.port, "optilab", key, paramiko.HostKeys(str(lab.known_hosts)))
            try:
                results = measure(transport, args.repeats)
            finally:
                transport.close()
        wall = {name: median([w for w, _ in values]) for name, values in results.items()}
        cpus = {name: median([c for _, c in values]) for name, values in results.items()}
        for name in results:
            rows.append((f"{kind}: {name.replace('_', ' ')}", f"{ms(wall[name])}  client CPU {ms(cpus[name])}"))
        rows.append(
            (
                f"{kind}: batching speed-up (claim 3-5x)",
                f"{ratio(wall['separate'], wall['batched'])} vs sequential, "
                f"{ratio(wall['separate_parallel4'], wall['batched'])} vs 4 parallel channels",
            )
        )
    report("batching", f"One batched exec vs {len(SEPARATE)} execs, {args.repeats} repeats", rows)


if __name__ == "__main__":
    main()

"""Pooled connection vs a new connection per scrape (the design's "50–200x faster" claim).

The same exporter, probing one host over and over with ``GET /probe?target=...``: once with its
pool (one handshake, then an exec per scrape), once with ``pool.max_execs: 1`` so every scrape
dials, exchanges keys, authenticates and closes — what a collector without a pool does. Both
against a simulated host and against a real Debian sshd (which also forks a session per connection).
The same comparison with bare paramiko (exec on an open connection vs connect+auth+exec+close)
isolates the SSH part from the exporter's fixed per-probe work.

    python -m bench.pooling [--probes 40]
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402 - after monkey patching, on purpose
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import paramiko  # noqa: E402

from bench.common import Exporter, median, ms, ratio, report, running_lab, write_inventory  # noqa: E402
from bench.sshfloor import dial, execute  # noqa: E402
from optilab.exporter.command import BATCH_SCRIPT  # noqa: E402


def bare_series(lab, probes: int) -> tuple[float, float]:
    """(median s of an exec on one open connection, median s of connect+auth+exec+close)."""
    key = paramiko.Ed25519Key.from_private_key_file(str(lab.key_file))
    known = paramiko.HostKeys(str(lab.known_hosts))
    host = lab.hosts[0]["ip"]
    pooled, fresh = [], []
    transport = dial(host, lab.port, "optilab", key, known)
    try:
        for _ in range(probes):
            started = time.perf_counter()
            execute(transport, BATCH_SCRIPT)
            pooled.append(time.perf_counter() - started)
            started = time.perf_counter()
            once = dial(host, lab.port, "optilab", key, known)
            execute(once, BATCH_SCRIPT)
            once.close()
            fresh.append(time.perf_counter() - started)
    finally:
        transport.close()
    return median(pooled), median(fresh)


def probe_series(lab, workdir: Path, probes: int, pool: dict[str, int]) -> tuple[float, float, float, float]:
    """(median wall s, exporter CPU s per probe, dials per probe, exporter peak RSS MiB) of ``probes``
    sequential probes."""
    inventory = write_inventory(lab, workdir / "inventory.yaml", pool=pool)
    exporter = Exporter(inventory, workdir / "exporter.log")
    target = f"/probe?target={lab.hosts[0]['ip']}:{lab.port}"
    try:
        exporter.get(target)  # first scrape of the host: CPU percent needs a previous one
        dials0, cpu0 = exporter.metric("optilab_exporter_ssh_dials_total"), exporter.cpu()
        walls = []
        for _ in range(probes):
            wall, body = exporter.get(target)
            if b"optilab_probe_success 1" not in body:
                raise RuntimeError(f"probe failed: {body[-400:]!r}")
            walls.append(wall)
        cpu = (exporter.cpu() - cpu0) / probes
        dials = (exporter.metric("optilab_exporter_ssh_dials_total") - dials0) / probes
        rss = exporter.peak_rss_mb()
    finally:
        exporter.stop()
    return median(walls), cpu, dials, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--probes", type=int, default=40)
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    for real in (False, True):
        kind = "real sshd" if real else "simulated host"
        with running_lab(2, departments=1, real=real) as lab, tempfile.TemporaryDirectory() as tmp:
            pooled = probe_series(lab, Path(tmp), args.probes, {})
            fresh = probe_series(lab, Path(tmp), args.probes, {"max_execs": 1})
            bare = bare_series(lab, args.probes)
        rows += [
            (
                f"{kind}: pooled probe",
                f"{ms(pooled[0])}  exporter CPU {ms(pooled[1])}  "
                f"dials/probe {pooled[2]:.2f}  peak RSS {pooled[3]:.0f} MB",
            ),
            (
                f"{kind}: new connection per probe",
                f"{ms(fresh[0])}  exporter CPU {ms(fresh[1])}  dials/probe {fresh[2]:.2f}  peak RSS {fresh[3]:.0f} MB",
            ),
            (
                f"{kind}: speed-up of pooling (claim 50-200x)",
                f"{ratio(fresh[0], pooled[0])} wall, {ratio(fresh[1], pooled[1])} exporter CPU",
            ),
            (
                f"{kind}: bare paramiko exec, open vs new connection",
                f"{ms(bare[0])} vs {ms(bare[1])}: {ratio(bare[1], bare[0])}",
            ),
        ]
    report("pooling", f"Pooled vs new connection per scrape, {args.probes} sequential probes", rows)


if __name__ == "__main__":
    main()

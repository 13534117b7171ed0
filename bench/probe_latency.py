"""What one probe of a real sshd on loopback costs, warm (pooled connection) and cold (fresh handshake).

Starts Debian's sshd on a free loopback port (the test fixture's way: dedicated user, ed25519 keys),
then measures, over repeats, medians of:

* end to end, as Prometheus sees it: ``GET /probe?target=...`` against the real exporter process,
  warm probes on their own and then in turns with cold ones; cold = an exporter whose pool recycles
  after every exec (``pool.max_execs: 1``), so each probe
  pays TCP + key exchange + auth; also the exporter's CPU time per probe (from /proc/PID/stat);
* in process (gevent-patched, no HTTP): ``SshPool.run("true")`` warm and cold, the batched exec,
  and parse + render of one batch output.

Usage: ``.venv/bin/python bench/probe_latency.py [--repeats 50]`` (root: sshd must switch users).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # before paramiko (exporter.sshpool) is imported

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optilab.exporter.collectors import make_plan  # noqa: E402
from optilab.exporter.command import BATCH_SCRIPT  # noqa: E402
from optilab.exporter.config import PoolSettings, SshSettings  # noqa: E402
from optilab.exporter.family import render  # noqa: E402
from optilab.exporter.metrics import HostLabels, probe_families  # noqa: E402
from optilab.exporter.sshpool import SshPool  # noqa: E402
from optilab.exporter.targets import Target  # noqa: E402
from tests.fixtures.procs import Service  # noqa: E402
from tests.fixtures.sshd import Sshd, start_sshd  # noqa: E402
from tests.support.exporter_proc import start_exporter as start_exporter_process  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def interleaved(actions: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Time each action ``repeats`` times, taking turns, so load drift on a shared machine hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(repeats):
        for name, action in actions.items():
            started = time.perf_counter()
            action()
            times[name].append(time.perf_counter() - started)
    return times


def show(name: str, times: list[float]) -> float:
    median = statistics.median(times)
    p90 = statistics.quantiles(times, n=10)[-1] if len(times) >= 10 else max(times)
    print(f"  {name:<46} median {median * 1000:8.2f} ms   p90 {p90 * 1000:8.2f} ms   (n={len(times)})")
    return median


def start_exporter(sshd: Sshd, workdir: Path, pool: dict[str, int]) -> tuple[Service, Callable[[], None]]:
    """A real exporter process for ``sshd``, and a function doing one checked GET /probe on it."""
    config = {
        "ssh": {"user": sshd.user, "port": sshd.port, "key_file": str(sshd.key_file), "known_hosts": str(sshd.trust())},
        "departments": {"bench": {"hosts": [sshd.target]}},
        "pool": pool,
    }
    service, base = start_exporter_process(config, workdir, "--log-level", "WARNING")
    url = f"{base}/probe?target={sshd.target}"

    def probe() -> None:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback exporter
            body = response.read()
        if b"optilab_probe_success 1.0" not in body:
            raise RuntimeError(f"probe failed:\n{body.decode()[-500:]}")

    probe()  # the warm exporter dials here, before timing starts
    return service, probe


def end_to_end(sshd: Sshd, workdir: Path, repeats: int) -> None:
    """Warm probes on their own first (what Prometheus's scrapes of one host see), then warm and cold
    exporters side by side; cold recycles its connection after every exec. A cold probe leaves sshd
    tearing down a session and forking the next, which lands on the interleaved warm probes: both
    warm figures are printed."""
    warm, warm_probe = start_exporter(sshd, workdir / "warm", {})
    cold, cold_probe = start_exporter(sshd, workdir / "cold", {"max_execs": 1})
    try:
        cpu_alone = cpu_seconds(warm.process.pid)
        alone = interleaved({"warm": warm_probe}, repeats)["warm"]
        cpu_alone = (cpu_seconds(warm.process.pid) - cpu_alone) / repeats
        cpu_before = {service: cpu_seconds(service.process.pid) for service in (warm, cold)}
        times = interleaved({"warm": warm_probe, "cold": cold_probe}, repeats)
        cpu = {service: (cpu_seconds(service.process.pid) - cpu_before[service]) / repeats for service in (warm, cold)}
    finally:
        warm.stop()
        cold.stop()
    show("warm probe, warm probes only", alone)
    print(f"  exporter CPU per warm probe, warm probes only: {cpu_alone * 1000:.2f} ms")
    warm_median = show("warm probe, in turns with cold probes", times["warm"])
    cold_median = show("cold probe (new TCP + key exchange + auth)", times["cold"])
    print(f"  exporter CPU per probe, in turns: warm {cpu[warm] * 1000:.2f} ms, cold {cpu[cold] * 1000:.2f} ms")
    print(f"  cold / warm ratio: {cold_median / warm_median:.1f}x")


def in_process(sshd: Sshd, repeats: int) -> None:
    ssh = SshSettings(user=sshd.user, key_file=sshd.key_file, known_hosts=sshd.trust())
    target = Target(sshd.host, sshd.port)
    warm_pool = SshPool(ssh, PoolSettings())
    cold_pool = SshPool(ssh, PoolSettings(max_execs=1))
    try:

        def run(pool: SshPool, command: str) -> str:
            return pool.run(target, command, time.monotonic() + 30)

        output = run(warm_pool, BATCH_SCRIPT)
        labels = HostLabels("bench", sshd.host, "bench")
        plan = make_plan()

        def parse_and_render() -> bytes:
            sources, _complete = plan.split(output)
            families = [
                family for collector, options in plan.collectors for family in collector.collect(sources, options)
            ]
            return render(families + probe_families(labels, True, 0.01, "healthy", None))

        times = interleaved(
            {
                "warm true": lambda: run(warm_pool, "true"),
                "cold true": lambda: run(cold_pool, "true"),
                "warm batch": lambda: run(warm_pool, BATCH_SCRIPT),
                "floor": lambda: subprocess.run(["sh", "-c", BATCH_SCRIPT], capture_output=True, check=True),
                "parse": parse_and_render,
            },
            repeats,
        )
        warm = show("SshPool.run('true'), warm", times["warm true"])
        cold = show("SshPool.run('true'), cold (dial + auth + exec)", times["cold true"])
        print(f"  cold / warm exec ratio: {cold / warm:.1f}x")
        show("SshPool.run(BATCH_SCRIPT), warm", times["warm batch"])
        show("floor: the same script in a local sh, no SSH", times["floor"])
        show("parse + render one batch output (CPU only)", times["parse"])
    finally:
        warm_pool.close()
        cold_pool.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="optilab-bench-") as tmp:
        sshd = start_sshd(Path(tmp) / "sshd")
        try:
            print(f"probe of a real OpenSSH sshd on {sshd.target}, {os.cpu_count()} CPUs, {args.repeats} repeats each")
            print("end to end (HTTP GET /probe on the exporter process):")
            end_to_end(sshd, Path(tmp), args.repeats)
            print("in process (no HTTP):")
            in_process(sshd, args.repeats)
        finally:
            sshd.stop()
            sshd.authorized_keys.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

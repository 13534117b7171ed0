"""What a bastion costs: the same probes direct and through a jump host (real sshd on loopback).

Starts a real sshd as bastion (``AllowTcpForwarding yes``) and ``--hosts`` real sshd lab machines on
127.0.4.x (the test fixture's way), then measures, in process (gevent-patched), medians over
``--repeats`` of:

* warm exec of ``true`` on the pooled connection, direct vs through the bastion (every packet of
  the lab session is then wrapped once more in the bastion's SSH session);
* one command round trip in a long-lived ``/bin/sh`` over exec (the collection shell's pattern);
* cold dial + exec (a pool that recycles after every exec), direct vs through an already connected
  bastion (a direct-tcpip channel open replaces the TCP connect);
* a warm fan-out of the batched collection command over all lab machines, wall time and client CPU.

Usage: ``.venv/bin/python bench/jump.py [--hosts 8] [--repeats 100]`` (root: sshd must switch users).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # before paramiko (exporter.sshpool) is imported

import argparse  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optilab.exporter.command import BATCH_SCRIPT  # noqa: E402
from optilab.exporter.config import JumpSettings, PoolSettings, SshSettings  # noqa: E402
from optilab.exporter.sshpool import SshPool  # noqa: E402
from optilab.exporter.targets import Target  # noqa: E402
from tests.fixtures.procs import free_port  # noqa: E402
from tests.fixtures.sshd import Sshd, start_sshd  # noqa: E402


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(
    ssh: SshSettings, route: JumpSettings | None, targets: list[Target], repeats: int
) -> tuple[float, float, float, float, float]:
    """(warm exec ms, round trip in a long-lived sh ms, cold dial+exec ms, warm fan-out wall ms,
    client CPU ms per host)."""
    warm = SshPool(ssh, PoolSettings(), route=lambda target: route)
    cold = SshPool(ssh, PoolSettings(max_execs=1), route=lambda target: route)

    def run(pool: SshPool, command: str = "true", target: Target = targets[0]) -> str:
        return pool.run(target, command, time.monotonic() + 30)

    try:
        run(warm)
        run(cold)  # connects the cold pool's bastion (if any) once; every dial below is cold
        warm_ms = median_ms(lambda: run(warm), repeats)
        shell = warm._connections[targets[0]].transport.open_session()  # a long-lived sh over exec
        shell.exec_command("/bin/sh")

        def round_trip() -> None:
            shell.sendall(b"echo ok\n")
            assert shell.recv(16) == b"ok\n"

        shell_ms = median_ms(round_trip, repeats)
        shell.close()
        cold_ms = median_ms(lambda: run(cold), max(10, repeats // 5))
        for target in targets:
            run(warm, BATCH_SCRIPT, target)
        walls, cpus = [], []
        for _ in range(max(5, repeats // 10)):
            started, cpu_before = time.perf_counter(), cpu()
            gevent.joinall([gevent.spawn(run, warm, BATCH_SCRIPT, target) for target in targets], raise_error=True)
            walls.append(time.perf_counter() - started)
            cpus.append(cpu() - cpu_before)
        return (
            warm_ms,
            shell_ms,
            cold_ms,
            1000 * statistics.median(walls),
            1000 * statistics.median(cpus) / len(targets),
        )
    finally:
        warm.close()
        cold.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="optilab-bench-jump-"))
    servers: list[Sshd] = []
    try:
        bastion = start_sshd(work / "bastion", options=["AllowTcpForwarding yes"])
        servers.append(bastion)
        port = free_port("127.0.4.1")
        for index in range(args.hosts):
            servers.append(start_sshd(work / f"lab{index}", f"127.0.4.{index + 1}", port))
        labs = servers[1:]
        for lab in labs[1:]:
            lab.authorized_keys.write_text(Path(f"{labs[0].key_file}.pub").read_text())
        known = work / "lab_known_hosts"
        known.write_text("".join(lab.trust().read_text() for lab in labs))
        ssh = SshSettings(user="optilab", key_file=labs[0].key_file, known_hosts=known)
        jump = JumpSettings(Target("127.0.0.1", bastion.port), "optilab", bastion.key_file, bastion.trust())
        targets = [Target(lab.host, port) for lab in labs]
        rows = [
            (name, *measure(ssh, route, targets, args.repeats)) for name, route in (("direct", None), ("bastion", jump))
        ]
        print(f"{args.hosts} lab machines, real sshd on loopback; medians")
        print(
            "| path | warm exec `true` | `echo` in a long-lived sh | cold dial + exec | warm fan-out of the batch "
            "| client CPU per host |"
        )
        print("|---|---|---|---|---|---|")
        for name, warm_ms, shell_ms, cold_ms, wall_ms, cpu_ms in rows:
            print(
                f"| {name} | {warm_ms:.1f} ms | {shell_ms:.2f} ms | {cold_ms:.1f} ms | {wall_ms:.0f} ms "
                f"| {cpu_ms:.2f} ms |"
            )
    finally:
        for server in servers:
            server.stop()
            server.authorized_keys.unlink(missing_ok=True)


if __name__ == "__main__":
    main()

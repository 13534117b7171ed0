"""What the lab machine pays per warm scrape: exec per scrape vs a long-lived shell vs node_exporter.

All in one run, taking turns so load drift on the shared machine hits every subject alike:

* **exec** and **shell**: a real exporter process (``ssh.session.mode: exec`` / ``shell``) scraping a
  real Debian sshd of its own (one sshd each, so their process trees stay apart) through
  ``GET /probe?target=``. The target's CPU is summed over the sshd's process tree — the listener, the
  per-connection sshd processes, the shell and every command, with the reaped children's
  cutime/cstime — from /proc/<pid>/stat before and after the scrapes;
* **node_exporter**: Debian's ``prometheus-node-exporter`` on a free loopback port with upstream's
  default filters, scraped on ``/metrics``; its own utime+stime per scrape.

Then, in this process (gevent-patched, no HTTP), what one exec costs the target by itself — sshd's
session set-up and the account's login shell (``/bin/sh`` here) — as ``true`` by exec vs ``true``
sent to the long-lived shell, a one-process script and BATCH_SCRIPT itself the same two ways (target
CPU and ``SshPool.run`` wall time, without the exporter's HTTP, parsing and rendering), and what one
fresh-login check costs (new connection + auth + exec).

Usage: ``python -m bench.target_cost [--scrapes 50]`` (root: sshd must switch users).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # before paramiko (exporter.sshpool) is imported

import argparse  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import cpu_seconds, median, ms, ratio, report, tree_cpu_seconds  # noqa: E402
from optilab.exporter.command import BATCH_SCRIPT  # noqa: E402
from optilab.exporter.config import PoolSettings, SessionSettings, SshSettings  # noqa: E402
from optilab.exporter.sshpool import SshPool  # noqa: E402
from optilab.exporter.targets import Target  # noqa: E402
from tests.fixtures.procs import Service, free_port, http_ok  # noqa: E402
from tests.fixtures.sshd import Sshd, start_sshd  # noqa: E402
from tests.support.exporter_proc import start_exporter as start_exporter_process  # noqa: E402

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
UPSTREAM_FILTERS = [  # Debian's package changes both defaults (shared notes, node-exporter.md)
    "--collector.netdev.device-exclude=",
    "--collector.filesystem.mount-points-exclude="
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)",
]
WARMUP = 5


class Subject:
    """One thing scraped over HTTP, with the process(es) whose CPU is the target's and the collector's."""

    def __init__(
        self, name: str, url: str, target_cpu: Callable[[], float], collector_cpu: Callable[[], float], ok: bytes
    ) -> None:
        self.name, self.url, self.target_cpu, self.collector_cpu, self.ok = name, url, target_cpu, collector_cpu, ok
        self.walls: list[float] = []

    def scrape(self) -> float:
        started = time.perf_counter()
        with urllib.request.urlopen(self.url, timeout=30) as response:  # noqa: S310 - loopback only
            body = response.read()
        wall = time.perf_counter() - started
        if self.ok not in body:
            raise RuntimeError(f"{self.name}: unexpected answer:\n{body.decode()[-500:]}")
        return wall


def start_exporter(sshd: Sshd, workdir: Path, mode: str) -> tuple[Service, str]:
    config = {
        "ssh": {
            "user": sshd.user,
            "port": sshd.port,
            "key_file": str(sshd.key_file),
            "known_hosts": str(sshd.trust()),
            "session": {"mode": mode, "login_check_interval": 0},
        },  # measured on its own below
        "departments": {"bench": {"hosts": [sshd.target]}},
    }
    service, base = start_exporter_process(config, workdir, "--log-level", "WARNING")
    return service, f"{base}/probe?target={sshd.target}"


def start_node_exporter(workdir: Path) -> tuple[Service, str]:
    port = free_port()
    service = Service(
        [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}", *UPSTREAM_FILTERS], workdir / "node_exporter.log"
    )
    service.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/metrics"))
    return service, f"http://127.0.0.1:{port}/metrics"


def over_http(subjects: list[Subject], scrapes: int) -> dict[str, dict[str, float]]:
    """Warm every subject up, then scrape them in turns; CPU deltas per scrape."""
    for subject in subjects:
        for _ in range(WARMUP):
            subject.scrape()
    before = {s.name: (s.target_cpu(), s.collector_cpu()) for s in subjects}
    for _ in range(scrapes):
        for subject in subjects:
            subject.walls.append(subject.scrape())
    figures = {}
    for subject in subjects:
        target0, collector0 = before[subject.name]
        figures[subject.name] = {
            "target_cpu": (subject.target_cpu() - target0) / scrapes,
            "collector_cpu": (subject.collector_cpu() - collector0) / scrapes,
            "wall": median(subject.walls),
        }
    return figures


#: A stand-in for a one-process collection script (issue 12's "one tail"): the /proc files of
#: BATCH_SCRIPT and more, read by a single ``tail``. It shows what the transport adds to a cheap script.
ONE_PROCESS = (
    "LC_ALL=C tail -n +1 /proc/stat /proc/meminfo /proc/loadavg /proc/uptime /proc/net/dev "
    "/proc/mounts /proc/sys/fs/file-nr /proc/vmstat /proc/diskstats /proc/net/snmp "
    "/proc/net/netstat /proc/net/sockstat /proc/pressure/cpu /proc/pressure/memory "
    "/proc/pressure/io /proc/sys/kernel/random/entropy_avail /proc/net/arp /proc/net/softnet_stat "
    "/proc/schedstat /proc/sys/fs/file-nr /etc/os-release /proc/sys/kernel/hostname "
    "/proc/sys/kernel/osrelease /proc/sys/kernel/version 2>/dev/null"
)
COMMANDS = {"true": "true", "one_process": ONE_PROCESS, "batch": BATCH_SCRIPT}


def in_process(sshd: Sshd, repeats: int) -> dict[str, float]:
    """Target CPU and wall time of ``true`` and of a one-process script, by exec and through the shell;
    and what one fresh-login check costs the target."""
    assert sshd.service is not None
    listener = sshd.service.process.pid
    target = Target(sshd.host, sshd.port)
    figures: dict[str, float] = {}
    pools = {
        mode: SshPool(
            SshSettings(
                user=sshd.user, key_file=sshd.key_file, known_hosts=sshd.trust(), session=SessionSettings(mode=mode)
            ),
            PoolSettings(),
        )
        for mode in ("exec", "shell")
    }
    try:
        for name, command in COMMANDS.items():
            for mode, pool in pools.items():
                for _ in range(WARMUP):
                    pool.run(target, command, time.monotonic() + 30)
                walls = []
                before = tree_cpu_seconds(listener)
                for _ in range(repeats):
                    started = time.perf_counter()
                    pool.run(target, command, time.monotonic() + 30)
                    walls.append(time.perf_counter() - started)
                figures[f"{name}_{mode}_cpu"] = (tree_cpu_seconds(listener) - before) / repeats
                figures[f"{name}_{mode}_wall"] = median(walls)
        before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        # the login shell alone, as sshd starts it for an exec (`sh -c CMD`), forked by a shell loop
        # (forked from this gevent-patched Python, each child would also pay gevent's fork hooks)
        subprocess.run(
            ["/bin/sh", "-c", f"i=0; while [ $i -lt {repeats} ]; do /bin/sh -c true; i=$((i+1)); done"], check=True
        )
        after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        figures["sh_c_true_cpu"] = (
            after_children.ru_utime + after_children.ru_stime - before_children.ru_utime - before_children.ru_stime
        ) / repeats
        checks = max(5, repeats // 5)
        before = tree_cpu_seconds(listener)
        results = [pools["exec"].login.check_now(target) for _ in range(checks)]
        time.sleep(0.2)  # let the closed connections' sshd processes exit and be reaped
        figures["login_check_cpu"] = (tree_cpu_seconds(listener) - before) / checks
        figures["login_check_wall"] = median([r.duration for r in results])
        if not all(r.success for r in results):
            raise RuntimeError(f"login check failed: {results[-1]}")
    finally:
        for pool in pools.values():
            pool.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="optilab-bench-") as tmp:
        work = Path(tmp)
        servers = {mode: start_sshd(work / f"sshd-{mode}") for mode in ("exec", "shell")}
        services: list[Service] = []
        try:
            subjects = []
            for mode, sshd in servers.items():
                exporter, url = start_exporter(sshd, work / f"exporter-{mode}", mode)
                services.append(exporter)
                assert sshd.service is not None
                listener = sshd.service.process.pid
                subjects.append(
                    Subject(
                        mode,
                        url,
                        lambda pid=listener: tree_cpu_seconds(pid),
                        lambda pid=exporter.process.pid: cpu_seconds(pid),
                        b"optilab_probe_success 1.0",
                    )
                )
            node, node_url = start_node_exporter(work)
            services.append(node)
            subjects.append(
                Subject(
                    "node_exporter",
                    node_url,
                    lambda pid=node.process.pid: cpu_seconds(pid),
                    lambda: 0.0,
                    b"node_cpu_seconds_total",
                )
            )
            load = os.getloadavg()[0]
            http = over_http(subjects, args.scrapes)
            local = in_process(servers["exec"], args.scrapes)
        finally:
            for service in services:
                service.stop()
            for sshd in servers.values():
                sshd.stop()
                sshd.authorized_keys.unlink(missing_ok=True)
    exec_, shell, node_ = http["exec"], http["shell"], http["node_exporter"]
    rows = [
        ("target CPU per warm scrape, exec per scrape", ms(exec_["target_cpu"])),
        ("target CPU per warm scrape, long-lived shell", ms(shell["target_cpu"])),
        ("node_exporter's own CPU per scrape, same host", ms(node_["target_cpu"])),
        ("shell / node_exporter (target CPU)", ratio(shell["target_cpu"], node_["target_cpu"])),
        ("exec / shell (target CPU)", ratio(exec_["target_cpu"], shell["target_cpu"])),
        ("warm GET /probe median, exec", ms(exec_["wall"])),
        ("warm GET /probe median, shell", ms(shell["wall"])),
        ("GET /metrics median, node_exporter", ms(node_["wall"])),
        ("exporter CPU per probe, exec / shell", f"{ms(exec_['collector_cpu'])} / {ms(shell['collector_cpu'])}"),
        (
            "target CPU of `true`: exec (session + login shell) / shell",
            f"{ms(local['true_exec_cpu'])} / {ms(local['true_shell_cpu'])}",
        ),
        ("  of which the login shell alone (`/bin/sh -c true`, local)", ms(local["sh_c_true_cpu"])),
        ("wall of `true`: exec / shell", f"{ms(local['true_exec_wall'])} / {ms(local['true_shell_wall'])}"),
        (
            "target CPU of a one-`tail` script: exec / shell",
            f"{ms(local['one_process_exec_cpu'])} / {ms(local['one_process_shell_cpu'])}",
        ),
        (
            "wall of a one-`tail` script: exec / shell",
            f"{ms(local['one_process_exec_wall'])} / {ms(local['one_process_shell_wall'])}",
        ),
        (
            "target CPU of BATCH_SCRIPT alone (no HTTP): exec / shell",
            f"{ms(local['batch_exec_cpu'])} / {ms(local['batch_shell_cpu'])}",
        ),
        (
            "wall of BATCH_SCRIPT alone (SshPool.run): exec / shell",
            f"{ms(local['batch_exec_wall'])} / {ms(local['batch_shell_wall'])}",
        ),
        ("target CPU of one fresh-login check (connect + auth + exec)", ms(local["login_check_cpu"])),
        ("fresh-login check wall time (median)", ms(local["login_check_wall"])),
        ("load average at start", f"{load:.1f}"),
    ]
    report(
        "target_cost",
        f"What the target pays per warm scrape, {args.scrapes} scrapes each in turns",
        rows,
        {"http": http, "in_process": local, "scrapes": args.scrapes},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Shared plumbing of the benchmarks: a lab, an exporter child process, CPU and RSS accounting, output.

Every benchmark measures its baseline and its subject in the same run and prints medians and ratios:
the machine has 2 cores and is shared, so absolute figures drift from run to run while ratios hold.
Each one also writes ``bench/results/<name>.json`` so ``bench/run_all.py`` can print one table.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from optilab.demo.supervisor import free_port
from optilab.labsim.lab import Lab

#: where each benchmark saves its figures; a smoke test points it elsewhere to keep the committed ones
RESULTS = Path(os.environ.get("OPTILAB_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (children not included), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU of ``pid`` and all its descendants, with the reaped children each counts (cutime/cstime).

    For a real-mode lab this is the sshd listeners, their per-connection processes and every shell
    and command those ran: the targets' whole cost.
    """
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        times[child] = sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    tree, frontier = {pid}, [pid]
    while frontier:
        frontier = [c for c, parent in parents.items() if parent in frontier and c not in tree]
        tree.update(frontier)
    return sum(times.get(p, 0.0) for p in tree)


def peak_rss_mb(pid: int) -> float:
    """Peak resident set (VmHWM) of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stop_process(process: subprocess.Popen, grace: float) -> None:
    """Terminate ``process``; kill it if it has not exited after ``grace`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def machine() -> dict[str, Any]:
    """Where the figures came from."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    import gevent
    import paramiko

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "paramiko": paramiko.__version__,
        "gevent": gevent.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


@contextlib.contextmanager
def running_lab(hosts: int, departments: int = 3, real: bool = False) -> Iterator[Lab]:
    """A lab child process on a free port, in a temporary state dir, stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="optilab-bench-") as tmp:
        lab = Lab.start(
            Path(tmp) / "lab",
            hosts=hosts,
            departments=min(departments, hosts),
            port=free_port(),
            real=real,
            timeout=120,
        )
        try:
            yield lab
        finally:
            lab.stop()


def write_inventory(lab: Lab, path: Path, **sections: dict[str, Any]) -> Path:
    """The lab's inventory plus extra sections (pool, health, probe) for one benchmark."""
    import yaml

    raw = yaml.safe_load(lab.inventory.read_text())
    raw.update(sections)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


class Exporter:
    """``optilab-exporter`` as a child process; its CPU and peak RSS are read from /proc."""

    def __init__(self, config: Path, log: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self._log = open(log, "ab")  # closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "optilab.exporter",
                "--config",
                str(config),
                "--listen",
                self.url[7:],
                "--log-level",
                "WARNING",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"exporter exited: {log.read_text()[-2000:]}")
            try:
                self.get("/metrics", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("exporter did not start")

    def get(self, path: str, timeout: float = 120) -> tuple[float, bytes]:
        """(wall seconds, body) of one GET."""
        started = time.perf_counter()
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:  # noqa: S310 - loopback
            body = response.read()
        return time.perf_counter() - started, body

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.process.pid)

    def metric(self, name: str) -> float:
        """Sum of the samples of ``name`` in /metrics (all label sets)."""
        _, body = self.get("/metrics")
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in body.decode().splitlines()
            if line.startswith(name) and not line.startswith("#")
        )

    def stop(self) -> None:
        stop_process(self.process, 10)
        self._log.close()


def report(name: str, title: str, rows: list[tuple[str, str]], extra: dict[str, Any] | None = None) -> None:
    """Print ``rows`` (figure, value) under ``title`` and save them with the machine description."""
    width = max(len(label) for label, _ in rows)
    print(f"\n== {title}")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    RESULTS.mkdir(exist_ok=True)
    data = {"title": title, "rows": rows, "machine": machine(), **(extra or {})}
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"

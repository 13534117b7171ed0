"""Real node_exporter (Debian's 1.5) on a free loopback port, and the probe's own answer for the same
collectors run here by ``sh``: the two sides the collector tests compare."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from optilab.exporter.collectors import Plan
from optilab.exporter.family import render
from tests.fixtures.procs import free_port, wait_for

NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
needs_node_exporter = pytest.mark.skipif(NODE_EXPORTER is None, reason="node_exporter not installed")


@contextlib.contextmanager
def running_node_exporter(*flags: str) -> Iterator[Callable[[], str]]:
    """node_exporter with ``flags``; yields a function that scrapes its /metrics once."""
    assert NODE_EXPORTER is not None
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    proc = subprocess.Popen(
        [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}", *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def scrape() -> str:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.read().decode()

    def answers() -> bool:
        try:
            scrape()
        except OSError:
            return False
        return True

    try:
        wait_for(answers, timeout=10, what="node_exporter to answer")
        yield scrape
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def scrape_once(*flags: str) -> str:
    """One /metrics answer of a node_exporter started with ``flags``."""
    with running_node_exporter(*flags) as scrape:
        return scrape()


def probe_here(plan: Plan, root: Path | None = None) -> str:
    """The exposition a probe would serve for ``plan``, its script run by ``sh`` on this machine; with
    ``root`` (a capture tree) every ``/sys/`` and ``/proc/`` of the script points into it."""
    script = plan.script
    if root is not None:
        script = script.replace("/sys/", f"{root}/sys/").replace("/proc/", f"{root}/proc/")
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30, cwd="/").stdout
    if root is not None:
        out = out.replace(str(root), "")
    sources, complete = plan.split(out)
    assert complete
    families = []
    for collector, options in plan.collectors:
        families += collector.collect(sources, options)
    return render(families).decode()

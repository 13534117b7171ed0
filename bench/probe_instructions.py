"""Instructions the exporter's own Python work costs per probe, counted by valgrind's callgrind.

On a shared 2-core VM timings of the same code swing by 20 % and more between runs (and the VM's
speed drifts within a session), so a change of a few percent in the exporter's CPU per probe cannot
be seen in ``bench/fanout.py``. Instruction counts are repeatable: this benchmark captures four
answers of this machine's default collection script (a second apart, with loopback traffic and a
file write in between, so the network and disk counters change as on a lab machine), then runs the
exporter's WSGI app in a child process under callgrind (with the exporter's own garbage-collector
thresholds), where a runner serves those answers in turn to each of ``--hosts`` inventory hosts (no
SSH: the transport's own cost is ``bench/fanout.py``'s "shell floor"). It counts the child twice,
with and without ``--requests`` more requests after the same warm-up, and divides the difference:
instructions per probe in a whole-lab fan-out (``/probe?all=1``) and per single ``/probe?target=``.
Compare a change by running this before and after it; the figures do not depend on the machine's
load.

    python -m bench.probe_instructions [--hosts 16] [--requests 4] [--answers FILE]

``--answers FILE`` keeps the captured answers in FILE (captured once if FILE does not exist yet): an
A/B of two checkouts then counts the same answers, so the capture's own variation (a few per cent:
the counters' digits, which sockets are open) does not show as a difference.

Needs ``valgrind`` (Debian's package). Nothing is dialled: the inventory's 127.0.1.x hosts are only
names here.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import report
from optilab.exporter.collectors import make_plan

CHILD = r"""
import gc, io, pickle, sys
from gevent import monkey; monkey.patch_all()
from optilab.exporter.cli import GC_THRESHOLD
gc.set_threshold(*GC_THRESHOLD)  # as exporter.cli.serve sets it for the exporter process
from optilab.exporter.config import load_config
from optilab.exporter.http import ExporterApp
from optilab.exporter.runtime import Runtime

answers_file, inventory, mode, warm, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
answers = pickle.loads(open(answers_file, "rb").read())


class Answers:
    # each host gets the captured answers in turn, as if scraped a second apart
    def __init__(self):
        self.calls = {}

    def run(self, target, command, deadline):
        key = str(target)
        self.calls[key] = self.calls.get(key, 0) + 1
        return answers[self.calls[key] % len(answers)]


runtime = Runtime(inventory, load_config(inventory))
runtime.prober.runner = runtime.prober.slow.runner = Answers()
app = ExporterApp(runtime)
query = "all=1" if mode == "all" else "target=127.0.1.1"
environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/probe", "QUERY_STRING": query}
for _ in range(warm + count):
    body = sum(len(chunk) for chunk in app({**environ, "wsgi.input": io.BytesIO()}, lambda *a: None))
runtime.close()
"""
_REFS = re.compile(r"refs:\s*([\d,]+)")


def capture(script: str, count: int = 4) -> list[str]:
    """``count`` answers of ``script`` from a local ``sh``, with loopback traffic and a file write
    between them (so /proc/net/dev, netstat, sockstat and diskstats change from one to the next)."""
    answers = []
    for index in range(count):
        answers.append(subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout)
        with socket.create_server(("127.0.0.1", 0)) as server:
            with socket.create_connection(server.getsockname(), timeout=5) as client:
                peer, _ = server.accept()
                with peer:
                    client.sendall(b"x" * 65536 * (index + 1))
                    received = 0
                    while received < 65536 * (index + 1):
                        received += len(peer.recv(1 << 20))
        with tempfile.NamedTemporaryFile() as scratch:
            scratch.write(os.urandom(1 << 20))
            scratch.flush()
            os.fsync(scratch.fileno())
        time.sleep(1.0)
    return answers


def instructions(args: list[str]) -> int:
    """Instructions callgrind counts for the child run with ``args``."""
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", CHILD, *args],
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    found = _REFS.search(result.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in callgrind's output: {result.stderr[-500:]}")
    return int(found.group(1).replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--requests", type=int, default=4, help="fan-outs counted (single probes: 10x as many)")
    parser.add_argument("--answers", type=Path, help="pickle of captured answers: read if it exists, else written")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt install valgrind)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="optilab-instructions-") as tmp:
        answers = Path(tmp) / "answers.pickle"
        if args.answers is not None and args.answers.exists():
            answers.write_bytes(args.answers.read_bytes())
        else:
            answers.write_bytes(pickle.dumps(capture(make_plan().script)))
            if args.answers is not None:
                args.answers.write_bytes(answers.read_bytes())
        inventory = Path(tmp) / "inventory.yaml"
        hosts = ", ".join(f"127.0.1.{index + 1}" for index in range(args.hosts))
        inventory.write_text(f"ssh: {{user: u, key_file: {tmp}/none}}\ndepartments: {{d: {{hosts: [{hosts}]}}}}\n")
        figures = {}
        for mode, count in (("all", args.requests), ("one", 10 * args.requests)):
            common = [str(answers), str(inventory), mode, "8"]
            extra = instructions([*common, str(count)]) - instructions([*common, "0"])
            figures[mode] = extra / count / (args.hosts if mode == "all" else 1)
    fan_out = f"per probe in a fan-out of {args.hosts} hosts (GET /probe?all=1)"
    rows = [
        (fan_out, f"{figures['all'] / 1e6:.2f} M instructions"),
        ("per single probe (GET /probe?target=)", f"{figures['one'] / 1e6:.2f} M instructions"),
    ]
    report("probe_instructions", "Exporter instructions per probe, no SSH (callgrind)", rows, {"figures": figures})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

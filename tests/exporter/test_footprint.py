"""What the exporter process loads: the exporter never talks to PostgreSQL, so it must not pay for
a database driver (psycopg with its bundled libpq is ~11 MB of RSS per exporter, issue 12's memory
bound for 254 pooled hosts); pika loads only with a ``rabbitmq`` section (tests/exporter/test_events.py
publishes through it), tqdm only for ``scan``."""

from __future__ import annotations

import subprocess
import sys

LOADED = """
from gevent import monkey
monkey.patch_all()
import sys
import optilab.exporter.cli
from optilab.exporter.config import load_config
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_the_exporter_loads_no_database_driver_and_no_unused_client() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", LOADED], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert "optilab" in loaded and "paramiko" in loaded  # the probe ran what the exporter imports
    assert not {"psycopg", "psycopg_binary", "psycopg_c", "flask", "waitress", "pika", "tqdm"} & set(loaded)


MMAPPED = """
import ctypes, sys
from optilab.exporter.cli import fix_mmap_threshold

class Info(ctypes.Structure):  # glibc's struct mallinfo2: ten size_t fields, hblks is the fourth
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
pinned = sys.argv[1] == "pin" and fix_mmap_threshold()
block = bytearray(4_000_000)  # sizes above what the heap has free at its top (~230 KB here)
del block  # unpinned, glibc now raises its threshold to ~4 MB
before = libc.mallinfo2().hblks
block = bytearray(2_000_000)
print(int(pinned), libc.mallinfo2().hblks - before)
"""


def test_with_the_threshold_pinned_a_large_block_still_gets_its_own_mapping() -> None:
    """glibc raises its mmap threshold when an mmapped block is freed, so the next large blocks come
    from the heap and fragment it; the exporter pins the threshold (exporter/cli.py), measured on
    RSS in bench/README.md."""

    def mmapped(mode: str) -> tuple[int, int]:
        out = subprocess.run([sys.executable, "-c", MMAPPED, mode], capture_output=True, text=True, check=True)
        pinned, blocks = out.stdout.split()
        return int(pinned), int(blocks)

    assert mmapped("pin") == (1, 1)  # glibc took the threshold; the 2 MB block is its own mapping
    assert mmapped("default") == (0, 0)  # without it, the same block comes from the heap

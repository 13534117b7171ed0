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

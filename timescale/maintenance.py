"""Plain-PostgreSQL upkeep that TimescaleDB's background jobs do in the other mode.

One run: create the daily partitions for yesterday … the day after tomorrow, fold dirty hours into
the rollup tables behind ``usage_hourly`` / ``usage_daily``, then drop raw partitions past
retention. Every step is an idempotent SQL function (timescale/migrations/0002, 0003), so a run
may be repeated, interrupted, or done by several bridges at once. In TimescaleDB mode nothing is
needed: compression, retention and aggregate refresh are policies inside the database.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from optilab.toolkit.backends import first

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaintenanceResult:
    partitions_created: int
    hours_refreshed: int
    partitions_dropped: int


def run_maintenance(
    conn: psycopg.Connection, retention_days: int = 30, now: datetime | None = None
) -> MaintenanceResult:
    """One maintenance pass on an autocommit connection (each step commits on its own).

    A no-op in TimescaleDB mode, so a bridge that started before its database was reachable
    (mode unknown) can run the thread regardless.
    """
    if first(conn.execute("SELECT storage_mode()")) != "postgresql":
        return MaintenanceResult(0, 0, 0)
    now = now or datetime.now(UTC)
    today = now.date()
    created = first(
        conn.execute("SELECT optilab_ensure_partitions(%s, %s)", (today - timedelta(days=1), today + timedelta(days=2)))
    )
    refreshed = first(conn.execute("SELECT optilab_refresh_rollups()"))
    dropped = first(conn.execute("SELECT optilab_drop_partitions(%s)", (now - timedelta(days=retention_days),)))
    return MaintenanceResult(created, refreshed, dropped)


class MaintenanceThread(threading.Thread):
    """Runs ``run_maintenance`` every ``interval`` seconds until ``stop()``; failures are logged
    and retried next period (a database outage must not kill the thread)."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection],
        interval: float,
        retention_days: int,
        on_result: Callable[[MaintenanceResult | None], None] = lambda result: None,
    ) -> None:
        super().__init__(name="optilab-maintenance", daemon=True)
        self._connect, self._interval, self._retention = connect, interval, retention_days
        self._on_result = on_result
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                with self._connect() as conn:
                    result = run_maintenance(conn, self._retention)
                if result.partitions_dropped:
                    log.info("maintenance: %s", result)
                self._on_result(result)
            except psycopg.Error as exc:
                log.warning("maintenance failed, retrying in %.0fs: %s", self._interval, exc)
                self._on_result(None)
            self._stopping.wait(self._interval)

    def stop(self) -> None:
        self._stopping.set()

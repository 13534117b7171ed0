"""Write a mapped ``Batch`` into PostgreSQL / TimescaleDB through a connection pool.

One request = one data transaction of at most four set-based statements (arrays passed with
``unnest``, binary protocol): samples insert, usage upsert, rollup dirty marks, status update.
Set-based ``INSERT … SELECT FROM unnest(…) ON CONFLICT`` measured faster here than COPY into a
staging table followed by INSERT … ON CONFLICT (1.2-1.3x, bench/bridge_write_paths.py; see
docs/storage.md), and ON CONFLICT is what makes Prometheus' retries idempotent.

Systems and series ids are resolved before that transaction (short autocommit upserts, cached in
the process), and on plain PostgreSQL the daily partitions a batch needs are created first, so the
data transaction never takes a DDL lock. A database failure is classified by its SQLSTATE
(``dberrors.py``): transient ones surface as ``DatabaseUnavailableError`` (503, Prometheus retries),
permanent ones as ``UnstorableBatchError`` (the receiver then isolates the refusing series).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool, PoolTimeout

from optilab.remote_write_bridge.dberrors import classify
from optilab.remote_write_bridge.mapping import DAY_MS, Batch
from optilab.remote_write_bridge.pgarrays import Float8Array, Int4Array, Int8Array, Int8Values, register
from optilab.toolkit.backends import DatabaseUnavailableError, first

register()

log = logging.getLogger("optilab.bridge.store")

# Timestamps travel as int8 milliseconds (cheap binary arrays) and become timestamptz in SQL, exactly.
HOUR_MS = 3_600_000
SERIES_CACHE_LIMIT = 1_000_000
# an unchanged status is written (to advance systems.last_seen) at most this often per system
STATUS_REFRESH_MS = 10_000

USAGE_UPSERT = """
INSERT INTO usage_metrics AS u (system_id, timestamp, cpu_usage, ram_usage, disk_usage, logged_in_users)
SELECT s, TIMESTAMPTZ 'epoch' + t * INTERVAL '1 millisecond', c, r, d, n::int
FROM unnest(%(s)b::int[], %(t)b::int8[], %(c)b::float8[], %(r)b::float8[], %(d)b::float8[],
            %(n)b::float8[]) AS x(s, t, c, r, d, n)
ORDER BY s, t
ON CONFLICT (system_id, timestamp) DO UPDATE SET
    cpu_usage = COALESCE(u.cpu_usage, EXCLUDED.cpu_usage),
    ram_usage = COALESCE(u.ram_usage, EXCLUDED.ram_usage),
    disk_usage = COALESCE(u.disk_usage, EXCLUDED.disk_usage),
    logged_in_users = COALESCE(u.logged_in_users, EXCLUDED.logged_in_users)
"""

# Duplicates (same series and timestamp): the first stored value wins, in every table and inside one
# request too — as in Prometheus' TSDB, which refuses a different value for a stored timestamp. A
# column a row does not have yet is still filled (rows are completed series by series). ORDINALITY
# keeps the request's order among duplicates through the sort, so its first one is inserted first.
SAMPLES_INSERT = """
INSERT INTO samples (series_id, timestamp, value)
SELECT i, TIMESTAMPTZ 'epoch' + t * INTERVAL '1 millisecond', v
FROM unnest(%(i)b::int8[], %(t)b::int8[], %(v)b::float8[]) WITH ORDINALITY AS x(i, t, v, o)
ORDER BY i, t, o
ON CONFLICT (series_id, timestamp) DO NOTHING
"""

# Latest status per system; only a newer sample than the one that set the current status applies,
# and a change is written to status_history.
STATUS_UPDATE = """
WITH incoming AS (
    SELECT s, TIMESTAMPTZ 'epoch' + t * INTERVAL '1 millisecond' AS at,
           CASE WHEN o THEN 'online' ELSE 'offline' END AS status
    FROM unnest(%(s)b::int[], %(t)b::int8[], %(o)b::bool[]) AS x(s, t, o)
), previous AS (
    SELECT sy.id, sy.status AS old_status FROM systems sy JOIN incoming i ON i.s = sy.id
    WHERE sy.status_at IS NULL OR sy.status_at < i.at
    ORDER BY sy.id FOR NO KEY UPDATE OF sy  -- compatible with the FK checks of concurrent usage inserts
), changed AS (
    UPDATE systems sy SET status = i.status, status_at = i.at,
        last_seen = CASE WHEN i.status = 'online' THEN GREATEST(sy.last_seen, i.at) ELSE sy.last_seen END
    FROM incoming i JOIN previous p ON p.id = i.s
    WHERE sy.id = i.s
    RETURNING sy.id, i.at, i.status, p.old_status
)
INSERT INTO status_history (system_id, timestamp, status, reason)
SELECT id, at, status, 'remote_write' FROM changed WHERE old_status IS DISTINCT FROM status
"""

# Plain-PostgreSQL mode: the hours this transaction touched, for optilab_refresh_rollups().
DIRTY_MARKS = """
INSERT INTO usage_rollup_dirty (bucket)
SELECT TIMESTAMPTZ 'epoch' + h * INTERVAL '1 millisecond' FROM unnest(%b::int8[]) AS x(h)
"""

SYSTEM_UPSERT = """
INSERT INTO systems AS sy (instance, hostname, ip_address, department) VALUES (%s, %s, %s, %s)
ON CONFLICT (instance) DO UPDATE SET
    hostname = COALESCE(EXCLUDED.hostname, sy.hostname),
    ip_address = COALESCE(EXCLUDED.ip_address, sy.ip_address),
    department = COALESCE(EXCLUDED.department, sy.department)
RETURNING id
"""


# Deadlocks between concurrent upserts, a foreign-key miss after the systems cache went stale, and
# "no partition of relation found for row" (check_violation) after retention dropped a cached day.
RETRYABLE = (errors.DeadlockDetected, errors.SerializationFailure, errors.ForeignKeyViolation, errors.CheckViolation)


class UnstorableBatchError(Exception):
    """The database refused data of the batch for good; no retry of it can succeed."""


class Store:
    """Owns the pool and the id caches; safe to call from many request threads."""

    def __init__(
        self,
        dsn: str,
        pool_min: int = 2,
        pool_max: int = 8,
        pool_timeout: float = 5.0,
        settings: dict[str, str] | None = None,
    ) -> None:
        self._settings = settings or {}
        self.pool = ConnectionPool(
            dsn,
            min_size=pool_min,
            max_size=pool_max,
            timeout=pool_timeout,
            check=ConnectionPool.check_connection,
            open=False,
            configure=self._configure if self._settings else None,
            kwargs={"connect_timeout": 3, "application_name": "optilab-bridge"},
            name="optilab-bridge",
        )
        self._writes: dict[int, float] = {}  # in-flight write -> monotonic start
        self.last_failure: tuple[float, str] | None = None  # (monotonic time, reason) of the last transient one
        self._write_ids = itertools.count()
        self._lock = threading.Lock()
        self._systems: dict[str, tuple[int, tuple[str | None, ...]]] = {}
        self._series: dict[tuple[str, str], int] = {}
        self._days: set[int] = set()
        self._status: dict[str, tuple[int, bool]] = {}  # instance -> (ms, online) last written
        self._mode: str | None = None

    def _configure(self, conn: psycopg.Connection) -> None:
        """Bound every statement of the session (statement_timeout, lock_timeout: config.py)."""
        for name, value in self._settings.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        conn.commit()

    def open(self) -> None:
        self.pool.open(wait=False)

    def oldest_write_s(self) -> tuple[int, float]:
        """(writes in flight, age in seconds of the oldest) — /health's stuck-writer check."""
        with self._lock:
            starts = list(self._writes.values())
        return len(starts), (time.monotonic() - min(starts)) if starts else 0.0

    def close(self) -> None:
        self.pool.close()

    def storage_mode(self) -> str | None:
        """The database's mode, fetched once it is reachable; None while it is not."""
        if self._mode is None:
            try:
                with self.pool.connection() as conn:
                    self._mode = first(conn.execute("SELECT storage_mode()"))
            except (psycopg.Error, PoolTimeout) as exc:
                log.warning("storage mode unknown: %s", exc)
        return self._mode

    @property
    def known_mode(self) -> str | None:
        """The mode last read from the database, without asking it again."""
        return self._mode

    def ping(self, timeout: float = 2.0) -> bool:
        try:
            with self.pool.connection(timeout=timeout) as conn:
                conn.execute("SELECT 1")
            return True
        except (psycopg.Error, PoolTimeout):
            return False

    def write(self, batch: Batch) -> None:
        """Store ``batch`` atomically; retried once on deadlock or a stale cache."""
        token = next(self._write_ids)
        with self._lock:
            self._writes[token] = time.monotonic()
        try:
            self._write_classified(batch)
        finally:
            with self._lock:
                del self._writes[token]

    def _write_classified(self, batch: Batch) -> None:
        try:
            for attempt in (1, 2):
                try:
                    self._write(batch)
                    return
                except RETRYABLE as exc:
                    if attempt == 2:
                        raise
                    log.info("retrying write after %s", type(exc).__name__)
                    with self._lock:
                        self._systems.clear()
                        self._status.clear()
                        self._days.clear()
        except psycopg.Error as exc:  # PoolTimeout is an OperationalError
            verdict = classify(exc)
            if verdict.transient:
                self.last_failure = (time.monotonic(), verdict.reason)
                raise DatabaseUnavailableError(verdict.reason) from exc
            raise UnstorableBatchError(verdict.reason) from exc

    def _write(self, batch: Batch) -> None:
        if self.storage_mode() == "postgresql":
            self._ensure_partitions(batch)
        system_ids = self._system_ids(batch)
        series_ids = self._series_ids(batch)
        items = self._status_changes(batch, system_ids)
        # One transaction, ordered so the contended row locks are taken last and held only until the
        # commit: samples (no contention) first, then the usage upsert (rows that other Prometheus
        # shards complete at the same time), then `systems` status. Taking them first made every
        # concurrent request wait for the others' whole sample insert (Lock:transactionid).
        with self.pool.connection() as conn, conn.transaction():
            if batch.generic_keys:
                ids = Int8Values(map(series_ids.__getitem__, batch.generic_keys))
                conn.execute(SAMPLES_INSERT, {"i": ids, "t": batch.generic_ms, "v": batch.generic_values}, prepare=True)
            if batch.usage:
                self._write_usage(conn, batch, system_ids)
            if items:
                conn.execute(
                    STATUS_UPDATE,
                    {
                        "s": Int4Array(i[0] for i in items),
                        "t": Int8Array(i[1] for i in items),
                        "o": [i[2] for i in items],
                    },
                    prepare=True,
                )
        with self._lock:
            for _, ms, online, instance in items:
                self._status[instance] = (ms, online)

    def _status_changes(self, batch: Batch, system_ids: dict[str, int]) -> list[tuple[int, int, bool, str]]:
        """Status samples worth a write: a change, or ``last_seen`` older than STATUS_REFRESH_MS.

        Sent every scrape, system_status would update every system row every few seconds; the
        skipped samples change nothing but ``last_seen`` by less than the refresh period.
        """
        items = []
        for instance, (ms, online) in batch.status.items():
            known = self._status.get(instance)
            if known is not None and (ms <= known[0] or (online == known[1] and ms - known[0] < STATUS_REFRESH_MS)):
                continue
            items.append((system_ids[instance], ms, online, instance))
        return sorted(items)

    def _write_usage(self, conn: psycopg.Connection, batch: Batch, system_ids: dict[str, int]) -> None:
        columns: dict[str, list] = {
            "s": Int4Array(),
            "t": Int8Array(),
            "c": Float8Array(),
            "r": Float8Array(),
            "d": Float8Array(),
            "n": Float8Array(),
        }
        for (instance, ms), (cpu, ram, disk, users) in batch.usage.items():
            columns["s"].append(system_ids[instance])
            columns["t"].append(ms)
            columns["c"].append(cpu)
            columns["r"].append(ram)
            columns["d"].append(disk)
            columns["n"].append(users)
        conn.execute(USAGE_UPSERT, columns, prepare=True)
        if self._mode == "postgresql":
            hours = sorted({ms - ms % HOUR_MS for ms in columns["t"]})
            conn.execute(DIRTY_MARKS, (Int8Array(hours),), prepare=True)

    def _ensure_partitions(self, batch: Batch) -> None:
        span = batch.time_range_ms()
        if span is None:
            return
        days = range(span[0] // DAY_MS, span[1] // DAY_MS + 1)
        if all(day in self._days for day in days):
            return
        first = date(1970, 1, 1) + timedelta(days=days.start)
        last = date(1970, 1, 1) + timedelta(days=days.stop - 1)
        with self.pool.connection() as conn:
            conn.execute("SELECT optilab_ensure_partitions(%s, %s)", (first, last))
        with self._lock:
            self._days.update(days)

    def forget_partitions(self) -> None:
        """Called after retention dropped partitions, so they are re-checked before use."""
        with self._lock:
            self._days.clear()

    def _system_ids(self, batch: Batch) -> dict[str, int]:
        ids: dict[str, int] = {}
        missing = []
        for instance, labels in batch.systems.items():
            cached = self._systems.get(instance)
            if cached is not None and cached[1] == labels:
                ids[instance] = cached[0]
            else:
                missing.append((instance, labels))
        if missing:
            with self.pool.connection() as conn:
                for instance, labels in sorted(missing, key=lambda item: item[0]):
                    ids[instance] = first(conn.execute(SYSTEM_UPSERT, (instance, *labels)))
                    conn.commit()
            with self._lock:
                for instance, labels in missing:
                    self._systems[instance] = (ids[instance], labels)
        return ids

    def _series_ids(self, batch: Batch) -> dict[tuple[str, str], int]:
        found = {key: self._series.get(key) for key in set(batch.generic_keys)}
        missing = [key for key, series_id in found.items() if series_id is None]
        if missing:
            metrics, labels = [key[0] for key in missing], [key[1] for key in missing]
            with self.pool.connection() as conn:
                conn.execute(
                    "INSERT INTO series (metric, labels) SELECT * FROM unnest(%s::text[], "
                    "%s::jsonb[]) ORDER BY 1, 2 ON CONFLICT DO NOTHING",
                    (metrics, labels),
                )
                rows = conn.execute(
                    "SELECT s.id, x.m, x.l FROM unnest(%s::text[], %s::text[]) AS x(m, l) "
                    "JOIN series s ON s.metric = x.m AND s.labels = x.l::jsonb",
                    (metrics, labels),
                ).fetchall()
            with self._lock:
                if len(self._series) > SERIES_CACHE_LIMIT:
                    self._series.clear()  # bounded memory; ids are simply fetched again
                for series_id, metric, label_json in rows:
                    self._series[(metric, label_json)] = found[(metric, label_json)] = series_id
        return found  # type: ignore[return-value]  # every key now has an id


def utc_now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)

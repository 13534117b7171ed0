"""Map a decoded ``WriteRequest`` onto OptiLab's tables (pure: no I/O, the clock is passed in).

- ``system_cpu_usage``, ``system_ram_usage``, ``system_disk_usage`` and ``optilab_logged_in_users``
  become columns of one ``usage_metrics`` row per (instance, timestamp); a row may be completed by a
  later request (the store upserts column by column).
- ``system_status`` sets ``systems.status`` (latest sample per instance wins).
- Any series whose name is allow-listed goes to ``samples`` (``optilab_logged_in_users`` is both).
- Stale markers and other NaNs are not stored; neither are samples outside the retention window.

Label validation costs more than the mapping itself, so validated label sets are remembered in a
bounded ``LabelCache``: the same series arriving again (every scrape) skips the checks.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from remote_write_bridge.protocol import validate_labels

USAGE_COLUMNS = {"system_cpu_usage": 0, "system_ram_usage": 1, "system_disk_usage": 2,
                 "optilab_logged_in_users": 3}
STATUS_METRIC = "system_status"
SYSTEM_LABELS = ("hostname", "ip", "department")
DAY_MS = 86_400_000

LabelSet = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SeriesInfo:
    """What one validated label set means for storage."""
    metric: str
    instance: str | None          # set for system_* series
    system_labels: tuple[str | None, str | None, str | None]  # hostname, ip, department
    usage_column: int | None      # index into the usage row, or None
    is_status: bool
    generic_key: tuple[str, str] | None  # (metric, canonical labels JSON) for allow-listed series


@dataclass
class Batch:
    """Rows derived from one request, keyed so duplicates inside the request merge."""
    systems: dict[str, tuple[str | None, str | None, str | None]] = field(default_factory=dict)
    usage: dict[tuple[str, int], list[float | None]] = field(default_factory=dict)
    status: dict[str, tuple[int, bool]] = field(default_factory=dict)   # instance -> (ms, online)
    generic: dict[tuple[str, str], dict[int, float]] = field(default_factory=dict)
    received: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    @property
    def stored_estimate(self) -> int:
        return self.received - sum(self.dropped.values())

    def time_range_ms(self) -> tuple[int, int] | None:
        stamps = [ms for _, ms in self.usage] + [ms for points in self.generic.values() for ms in points]
        return (min(stamps), max(stamps)) if stamps else None


class LabelCache:
    """Validated label sets → ``SeriesInfo``; cleared wholesale when it outgrows ``limit``."""

    def __init__(self, allow_list: frozenset[str], limit: int = 500_000) -> None:
        self.allow_list = allow_list
        self.limit = limit
        self._known: dict[LabelSet, SeriesInfo | None] = {}

    def info(self, labels: LabelSet) -> SeriesInfo | None:
        """None for a valid series OptiLab does not store; raises RemoteWriteError when invalid."""
        try:
            return self._known[labels]
        except KeyError:
            pass
        info = classify(labels, self.allow_list)
        if len(self._known) >= self.limit:
            self._known.clear()
        self._known[labels] = info
        return info


def classify(labels: LabelSet, allow_list: frozenset[str]) -> SeriesInfo | None:
    metric = validate_labels(labels)
    label_map = dict(labels)
    usage_column = USAGE_COLUMNS.get(metric)
    is_status = metric == STATUS_METRIC
    instance = label_map.get("instance") if (usage_column is not None or is_status) else None
    if instance is None:
        usage_column, is_status = None, False
    generic_key = None
    if metric in allow_list:
        rest = {name: value for name, value in labels if name != "__name__"}
        generic_key = (metric, json.dumps(rest, sort_keys=True, separators=(",", ":")))
    if instance is None and generic_key is None:
        return None
    system_labels = tuple(label_map.get(name) for name in SYSTEM_LABELS)
    return SeriesInfo(metric, instance, system_labels, usage_column, is_status, generic_key)  # type: ignore[arg-type]


def to_batch(request: Any, cache: LabelCache, now_ms: int, retention_days: int,
             future_tolerance_s: int) -> Batch:
    """Turn a ``WriteRequest`` into a ``Batch``; raises RemoteWriteError (400) on invalid labels."""
    batch = Batch()
    oldest, newest = now_ms - retention_days * DAY_MS, now_ms + future_tolerance_s * 1000
    dropped = batch.dropped
    isnan = math.isnan
    for series in request.timeseries:
        samples = series.samples
        batch.received += len(samples)
        info = cache.info(tuple((label.name, label.value) for label in series.labels))
        if info is None:
            dropped["not_allowed"] += len(samples)
            continue
        if info.instance is not None:
            batch.systems[info.instance] = info.system_labels
        for sample in samples:
            value, ms = sample.value, sample.timestamp
            if isnan(value):
                dropped["stale_or_nan"] += 1
                continue
            if ms < oldest or ms > newest:
                dropped["out_of_window"] += 1
                continue
            _add(batch, info, ms, value)
    return batch


def _add(batch: Batch, info: SeriesInfo, ms: int, value: float) -> None:
    if info.usage_column is not None:
        row = batch.usage.get((info.instance, ms))  # type: ignore[arg-type]
        if row is None:
            row = batch.usage[(info.instance, ms)] = [None, None, None, None]  # type: ignore[index]
        row[info.usage_column] = value
    elif info.is_status:
        previous = batch.status.get(info.instance)  # type: ignore[arg-type]
        if previous is None or previous[0] <= ms:
            batch.status[info.instance] = (ms, value >= 1)  # type: ignore[index]
    if info.generic_key is not None:
        points = batch.generic.get(info.generic_key)
        if points is None:
            points = batch.generic[info.generic_key] = {}
        points[ms] = value

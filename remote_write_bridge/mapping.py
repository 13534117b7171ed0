"""Map a decoded ``WriteRequest`` onto OptiLab's tables (pure: no I/O, the clock is passed in).

- ``system_cpu_usage``, ``system_ram_usage``, ``system_disk_usage`` and ``optilab_logged_in_users``
  become columns of one ``usage_metrics`` row per (instance, timestamp); a row may be completed by a
  later request (the store upserts column by column).
- ``system_status`` sets ``systems.status`` (latest sample per instance wins).
- ``optilab_host_health_state{state}`` (the series at 1) and ``node_os_info{name, version_id}``
  become ``Batch.health`` / ``Batch.os``, which remote_write_bridge/facts.py turns into
  ``systems.health_state`` (with a ``status_history`` row per change) and ``os_type``/``os_version``,
  so a site without RabbitMQ gets them too.
- Duplicates (same series or usage column and timestamp): the first value wins, here as in store.py.
- Any series whose name is allow-listed goes to ``samples`` (``optilab_logged_in_users`` is both).
- ``optilab_seat_state{state}`` (1 for the machine's current state, 0 for the five others) is folded
  into one series per machine, ``optilab_seat_state{instance}``, whose sample value is the state's
  code (``SEAT_CODES``; table ``seat_states`` of migration 0092): one stored sample per scrape
  instead of six. The zeros carry nothing the code does not, so they are folded away (not dropped).
- Stale markers and other NaNs are not stored; neither are samples outside the retention window,
  ±Inf, usage percentages outside 0–100, or session counts that cannot be one (``bad_value``).
- A series whose labels exceed the ``LabelLimits`` or hold a NUL is dropped (``limits.py``).

Label validation costs more than the mapping itself, so validated label sets are remembered in a
bounded ``LabelCache``: the same series arriving again (every scrape) skips the checks.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from optilab.remote_write_bridge.limits import IP_ADDRESS_CHARS, LABEL_LIMIT, LabelLimits, check
from optilab.remote_write_bridge.pgarrays import Float8Values, Int8Values
from optilab.remote_write_bridge.protocol import validate_labels

USAGE_COLUMNS = {"system_cpu_usage": 0, "system_ram_usage": 1, "system_disk_usage": 2, "optilab_logged_in_users": 3}
USERS_COLUMN = USAGE_COLUMNS["optilab_logged_in_users"]
PERCENT_MAX = 100.0
STATUS_METRIC = "system_status"
HEALTH_METRIC = "optilab_host_health_state"
OS_METRIC = "node_os_info"
HEALTH_STATES = frozenset({"healthy", "degraded", "offline", "dead"})
SEAT_METRIC = "optilab_seat_state"
#: exporter/parsers_seat.py STATES in order; the codes are rows of the seat_states table.
SEAT_CODES = {"free": 0, "in_use": 1, "idle": 2, "locked": 3, "offline": 4, "maintenance": 5}
SYSTEM_LABELS = ("hostname", "ip", "department")
DAY_MS = 86_400_000

LabelSet = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SeriesInfo:
    """What one validated label set means for storage."""

    metric: str
    instance: str | None  # set for system_* series
    system_labels: tuple[str | None, str | None, str | None]  # hostname, ip, department
    usage_column: int | None  # index into the usage row, or None
    is_status: bool
    generic_key: tuple[str, str] | None  # (metric, canonical labels JSON) for allow-listed series
    fact: tuple[str, str, str | None] | None = None  # (instance, health state, None) | (instance, os name, version)
    seat_code: int | None = None  # optilab_seat_state: code of this series' state label


@dataclass
class Batch:
    """Rows derived from one request, keyed so duplicates inside the request merge."""

    systems: dict[str, tuple[str | None, str | None, str | None]] = field(default_factory=dict)
    usage: dict[tuple[str, int], list[float | None]] = field(default_factory=dict)
    status: dict[str, tuple[int, bool]] = field(default_factory=dict)  # instance -> (ms, online)
    health: dict[str, tuple[int, str]] = field(default_factory=dict)  # instance -> (ms, health state)
    os: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # instance -> (name, version)
    # allow-listed samples as parallel columns (duplicates are harmless: the insert skips conflicts);
    # compact arrays, 8 bytes per element instead of ~40 for a list of Python numbers
    generic_keys: list[tuple[str, str]] = field(default_factory=list)
    generic_ms: Int8Values = field(default_factory=Int8Values)
    generic_values: Float8Values = field(default_factory=Float8Values)
    received: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    @property
    def stored_estimate(self) -> int:
        return self.received - sum(self.dropped.values())

    def time_range_ms(self) -> tuple[int, int] | None:
        stamps = [ms for _, ms in self.usage]
        if self.generic_ms:
            stamps += (min(self.generic_ms), max(self.generic_ms))
        return (min(stamps), max(stamps)) if stamps else None


class LabelCache:
    """Validated label sets → ``SeriesInfo``; cleared wholesale when it outgrows ``limit``.

    Series refused by the label limits are not remembered: they are checked again each time, so an
    oversized label set never occupies the cache.
    """

    def __init__(
        self, allow_list: frozenset[str], limit: int = 500_000, label_limits: LabelLimits | None = None
    ) -> None:
        self.allow_list = allow_list
        self.limit = limit
        self.label_limits = label_limits or LabelLimits()
        self._known: dict[LabelSet, SeriesInfo | None] = {}

    def info(self, labels: LabelSet) -> SeriesInfo | str | None:
        """None for a valid series OptiLab does not store, a drop reason (str) for one it cannot
        store; raises RemoteWriteError when the labels are invalid (unsorted, no name…)."""
        try:
            return self._known[labels]
        except KeyError:
            pass
        info = classify(labels, self.allow_list, self.label_limits)
        if isinstance(info, str):
            return info
        if len(self._known) >= self.limit:
            self._known.clear()
        self._known[labels] = info
        return info


def classify(
    labels: LabelSet, allow_list: frozenset[str], label_limits: LabelLimits | None = None
) -> SeriesInfo | str | None:
    metric = validate_labels(labels)
    refused = check(labels, label_limits or LabelLimits())
    if refused is not None:
        return refused
    labels = tuple((name, value) for name, value in labels if value)  # empty value = label absent
    label_map = dict(labels)
    usage_column = USAGE_COLUMNS.get(metric)
    is_status = metric == STATUS_METRIC
    if metric == SEAT_METRIC:
        return _seat_info(label_map)
    instance = label_map.get("instance") if (usage_column is not None or is_status) else None
    if instance is None:
        usage_column, is_status = None, False
    generic_key = None
    if metric in allow_list:
        rest = {name: value for name, value in labels if name != "__name__"}
        generic_key = (metric, json.dumps(rest, sort_keys=True, separators=(",", ":")))
    fact = _fact(metric, label_map)
    if fact is not None and "instance" in label_map and instance is None:
        return SeriesInfo(metric, None, (None, None, None), None, False, generic_key, (label_map["instance"], *fact))
    if instance is None and generic_key is None:
        return None
    system_labels = _system_labels(label_map)
    if instance is not None and len(system_labels[1] or "") > IP_ADDRESS_CHARS:
        return LABEL_LIMIT  # systems.ip_address would refuse it, and with it the host's every row
    return SeriesInfo(metric, instance, system_labels, usage_column, is_status, generic_key)


def _system_labels(label_map: dict[str, str]) -> tuple[str | None, str | None, str | None]:
    """The ``SYSTEM_LABELS`` (hostname, ip, department) of a series, None where absent."""
    hostname, ip, department = SYSTEM_LABELS
    return label_map.get(hostname), label_map.get(ip), label_map.get(department)


def _fact(metric: str, label_map: dict[str, str]) -> tuple[str, str | None] | None:
    """(health state) or (os name, version) that a series states about its machine, else None."""
    if metric == HEALTH_METRIC and label_map.get("state") in HEALTH_STATES:
        return label_map["state"], None
    if metric == OS_METRIC and label_map.get("name"):
        return label_map["name"], label_map.get("version_id")
    return None


def _seat_info(label_map: dict[str, str]) -> SeriesInfo | None:
    """One folded series per instance; an unknown state or a missing instance is not stored."""
    instance, code = label_map.get("instance"), SEAT_CODES.get(label_map.get("state", ""))
    if instance is None or code is None:
        return None
    key = (SEAT_METRIC, json.dumps({"instance": instance}, separators=(",", ":")))
    return SeriesInfo(SEAT_METRIC, instance, _system_labels(label_map), None, False, key, seat_code=code)


_label_pair = attrgetter("name", "value")
_INFINITIES = (math.inf, -math.inf)


def _plausible(usage_column: int | None, value: float) -> bool:
    """A value the API can serve: finite; a percentage within 0–100; a session count an int4.

    ±Inf, 1e308 or -5 % in ``usage_metrics`` made averages overflow (API 500) and reach JSON as
    ``Infinity``; a status sample only needs to be finite.
    """
    if usage_column is None:
        return value not in _INFINITIES
    if usage_column == USERS_COLUMN:
        return 0 <= value < 2**31
    return 0.0 <= value <= PERCENT_MAX


def to_batch(request: Any, cache: LabelCache, now_ms: int, retention_days: int, future_tolerance_s: int) -> Batch:
    """Turn a ``WriteRequest`` into a ``Batch``; raises RemoteWriteError (400) on invalid labels.

    This loop runs for every sample (100,000/s at the target), hence the local names and the
    inlined path for allow-listed series, which are most of the traffic.
    """
    batch = Batch()
    oldest, newest = now_ms - retention_days * DAY_MS, now_ms + future_tolerance_s * 1000
    dropped = batch.dropped
    keys, stamps, values = batch.generic_keys, batch.generic_ms, batch.generic_values
    received = 0
    for series in request.timeseries:
        samples = series.samples
        received += len(samples)
        info = cache.info(tuple(map(_label_pair, series.labels)))
        if info is None:
            dropped["not_allowed"] += len(samples)
            continue
        if isinstance(info, str):
            dropped[info] += len(samples)  # a drop reason
            continue
        if info.fact is not None:
            _add_fact(batch, info.metric, info.fact, samples, oldest, newest)
        key, instance = info.generic_key, info.instance
        if instance is None:
            if key is None:  # a fact only (classify keeps no other series without an instance)
                continue
            for sample in samples:  # allow-listed only: the inlined path
                value, ms = sample.value, sample.timestamp
                if value != value:  # NaN, including the stale marker 0x7ff0000000000002
                    dropped["stale_or_nan"] += 1
                elif ms < oldest or ms > newest:
                    dropped["out_of_window"] += 1
                elif value in _INFINITIES:
                    dropped["bad_value"] += 1
                else:
                    keys.append(key)
                    stamps.append(ms)
                    values.append(value)
            continue
        batch.systems[instance] = info.system_labels
        for sample in samples:
            value, ms = sample.value, sample.timestamp
            if value != value:
                dropped["stale_or_nan"] += 1
            elif ms < oldest or ms > newest:
                dropped["out_of_window"] += 1
            else:
                _add_system_sample(batch, info, instance, ms, value)
    batch.received = received
    return batch


def _add_fact(
    batch: Batch, metric: str, fact: tuple[str, str, str | None], samples: Any, oldest: int, newest: int
) -> None:
    """The newest in-window sample at 1 states the fact (0: another state's series; NaN: stale)."""
    instance, first, second = fact
    for sample in samples:
        ms = sample.timestamp
        if sample.value != 1 or ms < oldest or ms > newest:
            continue
        if metric == HEALTH_METRIC:
            previous = batch.health.get(instance)
            if previous is None or previous[0] <= ms:
                batch.health[instance] = (ms, first)
        else:
            batch.os[instance] = (first, second)


def _add_system_sample(batch: Batch, info: SeriesInfo, instance: str, ms: int, value: float) -> None:
    if info.seat_code is not None:
        key = info.generic_key
        if value == 1 and key is not None:  # the current state (zero siblings say nothing more); key: always set
            batch.generic_keys.append(key)
            batch.generic_ms.append(ms)
            batch.generic_values.append(float(info.seat_code))
        return
    if not _plausible(info.usage_column, value):
        batch.dropped["bad_value"] += 1
        return
    if info.usage_column is not None:
        row = batch.usage.get((instance, ms))
        if row is None:
            row = batch.usage[(instance, ms)] = [None, None, None, None]
        if row[info.usage_column] is None:  # duplicates: the first value wins (store.py)
            row[info.usage_column] = value
    elif info.is_status:
        previous = batch.status.get(instance)
        if previous is None or previous[0] < ms:  # the newest sample; of equal ones the first
            batch.status[instance] = (ms, value >= 1)
    if info.generic_key is not None:
        batch.generic_keys.append(info.generic_key)
        batch.generic_ms.append(ms)
        batch.generic_values.append(value)

"""In-process unit tests of remote_write_bridge/mapping.py: which series become which rows, and why
the others are dropped; no database, no server."""

from __future__ import annotations

from typing import Any

import pytest

from optilab.remote_write_bridge.mapping import DAY_MS, LabelCache, SeriesInfo, classify, to_batch
from optilab.remote_write_bridge.protocol import RemoteWriteError, WriteRequest

NOW = 1_800_000_000_000
HOST = {"instance": "127.0.1.5:22", "hostname": "pc-05", "ip": "127.0.1.5", "department": "physics"}


def labels(metric: str, **extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"__name__": metric, **HOST, **extra}.items()))


def request(*series: tuple[tuple[tuple[str, str], ...], list[tuple[float, int]]]) -> Any:
    out = WriteRequest()
    for label_set, samples in series:
        one = out.timeseries.add()
        for name, value in label_set:
            one.labels.add(name=name, value=value)
        for value, ms in samples:
            one.samples.add(value=value, timestamp=ms)
    return out


def batch(
    *series: tuple[tuple[tuple[str, str], ...], list[tuple[float, int]]],
    allow: frozenset[str] = frozenset({"node_load1"}),
) -> Any:
    return to_batch(request(*series), LabelCache(allow), NOW, retention_days=30, future_tolerance_s=3600)


def test_classify_says_where_a_series_goes() -> None:
    cpu = classify(labels("system_cpu_usage"), frozenset())
    assert isinstance(cpu, SeriesInfo)
    assert (cpu.instance, cpu.system_labels, cpu.usage_column, cpu.is_status) == (
        "127.0.1.5:22",
        ("pc-05", "127.0.1.5", "physics"),
        0,
        False,
    )
    load = classify(labels("node_load1"), frozenset({"node_load1"}))
    assert isinstance(load, SeriesInfo) and load.instance is None and load.generic_key is not None
    assert classify(labels("node_load5"), frozenset({"node_load1"})) is None  # valid, not stored
    health = classify(labels("optilab_host_health_state", state="offline"), frozenset())
    assert isinstance(health, SeriesInfo) and health.fact == ("127.0.1.5:22", "offline", None)
    with pytest.raises(RemoteWriteError):
        classify((("job", "x"),), frozenset())  # no __name__


def test_usage_status_and_allow_listed_samples_become_rows() -> None:
    got = batch(
        (labels("system_cpu_usage"), [(12.5, NOW - 1000)]),
        (labels("system_ram_usage"), [(40.0, NOW - 1000)]),
        (labels("system_status"), [(0.0, NOW - 2000), (1.0, NOW - 1000)]),
        (labels("node_load1"), [(0.5, NOW - 1000)]),
    )
    assert got.systems == {"127.0.1.5:22": ("pc-05", "127.0.1.5", "physics")}
    assert got.usage == {("127.0.1.5:22", NOW - 1000): [12.5, 40.0, None, None]}
    assert got.status == {"127.0.1.5:22": (NOW - 1000, True)}  # the newest sample wins
    assert list(got.generic_ms) == [NOW - 1000] and list(got.generic_values) == [0.5]
    assert (got.received, got.stored_estimate, dict(got.dropped)) == (5, 5, {})


def test_dropped_samples_are_counted_by_reason() -> None:
    got = batch(
        (
            labels("system_cpu_usage"),
            [(float("nan"), NOW), (101.0, NOW), (5.0, NOW - 31 * DAY_MS), (5.0, NOW + 2 * 3600_000)],
        ),
        (labels("node_load5"), [(1.0, NOW)]),
        (labels("node_load1"), [(float("inf"), NOW)]),
    )
    assert dict(got.dropped) == {"stale_or_nan": 1, "bad_value": 2, "out_of_window": 2, "not_allowed": 1}
    assert got.usage == {} and got.stored_estimate == 0


def test_facts_take_the_newest_sample_at_one() -> None:
    got = batch(
        (labels("optilab_host_health_state", state="degraded"), [(1.0, NOW - 2000)]),
        (labels("optilab_host_health_state", state="offline"), [(1.0, NOW - 1000)]),
        (labels("optilab_host_health_state", state="healthy"), [(0.0, NOW)]),
        (labels("node_os_info", name="Debian GNU/Linux", version_id="12"), [(1.0, NOW)]),
    )
    assert got.health == {"127.0.1.5:22": (NOW - 1000, "offline")}
    assert got.os == {"127.0.1.5:22": ("Debian GNU/Linux", "12")}

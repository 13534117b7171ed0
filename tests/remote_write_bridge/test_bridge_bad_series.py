"""One hostile series never stops ingestion (issue #11 item 1): oversized labels and NULs are dropped
before the database sees them, a series the database refuses anyway is isolated, and the rest of the
request is stored — against the real bridge, PostgreSQL and (last test) a real Prometheus."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import psycopg
import pytest

from tests.fixtures.procs import wait_for
from tests.support.remote_write import HOST, encode, metric_value, now_ms, post, prometheus_config

# Limits high enough that the database itself has to refuse what the bridge passes on.
NO_LIMITS = {
    "max_labels": 100_000,
    "max_label_name_bytes": 1_000_000,
    "max_label_value_bytes": 4_000_000,
    "max_series_bytes": 8_000_000,
}


def rows(dsn: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def dropped(bridge, reason: str) -> float:
    return metric_value(bridge.metrics(), "optilab_bridge_samples_dropped_total", f'reason="{reason}"')


def hostile_series(t: int) -> list:
    """The shapes of the issue: a 3 KB incompressible value, a 1 MB instance, 3,000 labels."""
    return [
        ({"__name__": "node_load5", **HOST, "big": secrets.token_urlsafe(2300)}, [(1.0, t)]),  # ~3 KB
        ({"__name__": "system_cpu_usage", **HOST, "instance": secrets.token_urlsafe(760_000)}, [(5.0, t)]),
        ({"__name__": "node_load15", **HOST, **{f"l{i:04}": "v" for i in range(3000)}}, [(2.0, t)]),
    ]


def good_series(t: int, hosts: int = 20) -> list:
    series = []
    for i in range(hosts):
        host = {"instance": f"127.0.1.{i + 1}:22", "hostname": f"pc-{i}", "ip": f"127.0.1.{i + 1}", "department": "lab"}
        series.append(({"__name__": "node_load1", **host}, [(0.5, t)]))
        series.append(({"__name__": "system_cpu_usage", **host}, [(12.5, t)]))
    return series


def test_oversized_labels_and_nul_bytes_are_dropped_before_the_database(migrated_dsn, bridge_factory) -> None:
    bridge = bridge_factory(migrated_dsn)
    t = now_ms() - 5000
    nul = [
        ({"__name__": "node_load1", **HOST, "job": "a\x00b"}, [(1.0, t)]),
        ({"__name__": "system_ram_usage", **HOST, "hostname": "pc\x0005"}, [(1.0, t)]),
    ]
    long_ip = [({"__name__": "system_disk_usage", **HOST, "ip": "1" * 46}, [(50.0, t)])]
    body = encode(
        hostile_series(t)[:1] + good_series(t)[:20] + nul + hostile_series(t)[1:] + long_ip + good_series(t)[20:]
    )
    code, text = post(bridge.write_url, body)
    assert code == 204, text
    assert rows(migrated_dsn, "SELECT count(*) FROM samples") == [(20,)]
    usage = rows(migrated_dsn, "SELECT count(*), min(cpu_usage), max(ram_usage) FROM usage_metrics")
    assert usage == [(20, 12.5, None)]
    assert rows(migrated_dsn, "SELECT count(*) FROM systems") == [(20,)]
    counted = [dropped(bridge, reason) for reason in ("label_limit", "invalid_label", "unstorable")]
    assert counted == [4, 2, 0]
    assert metric_value(bridge.metrics(), "optilab_bridge_samples_stored_total") == 40


def test_series_at_every_default_limit_are_stored(migrated_dsn, bridge_factory) -> None:
    """The defaults are safe: the largest label sets they pass fit PostgreSQL's unique B-tree keys even
    when incompressible (names of 128 bytes, values of 1024, 32 labels, 2048 bytes in all)."""
    bridge = bridge_factory(migrated_dsn)
    t = now_ms() - 5000
    name = "n" + secrets.token_hex(64)[:127]
    widest = {"__name__": "node_load1", name: secrets.token_urlsafe(800)[:1024]}
    widest |= {f"x{i:02}": secrets.token_urlsafe(30)[:26] for i in range(30)}
    assert len(widest) == 32 and sum(len(k) + len(v) for k, v in widest.items()) <= 2048
    long_instance = {"__name__": "system_cpu_usage", "instance": secrets.token_urlsafe(800)[:1024]}
    code, text = post(bridge.write_url, encode([(widest, [(1.0, t)]), (long_instance, [(3.0, t)])]))
    assert code == 204, text
    assert rows(migrated_dsn, "SELECT count(*) FROM samples") == [(1,)]
    assert rows(migrated_dsn, "SELECT length(instance) FROM systems") == [(1024,)]
    assert dropped(bridge, "label_limit") == 0
    over = dict(widest) | {"x00": widest["x00"] + "abcdefghij"}  # 10 bytes past max_series_bytes
    assert post(bridge.write_url, encode([(over, [(1.0, t)])]))[0] == 204
    assert dropped(bridge, "label_limit") == 1


def test_a_series_the_database_refuses_is_isolated_and_the_rest_stored(migrated_dsn, bridge_factory) -> None:
    """With the label limits lifted, PostgreSQL refuses the hostile series ("index row size exceeds
    btree maximum", SQLSTATE 54000): that is permanent, so the bridge bisects, stores the 40 good
    series and answers 204 — it used to answer 503, which Prometheus retried forever."""
    bridge = bridge_factory(migrated_dsn, {"remote_write": NO_LIMITS})
    t = now_ms() - 5000
    body = encode(good_series(t)[:17] + hostile_series(t) + good_series(t)[17:])
    for attempt in range(2):  # a second copy (Prometheus would never send one) is idempotent
        code, text = post(bridge.write_url, body)
        assert code == 204, text
        assert rows(migrated_dsn, "SELECT count(*) FROM samples") == [(20,)]
        assert rows(migrated_dsn, "SELECT count(*) FROM usage_metrics") == [(20,)]
        assert dropped(bridge, "unstorable") == 3 * (attempt + 1)
    assert metric_value(bridge.metrics(), "optilab_bridge_requests_total", 'code="503"') == 0
    assert "54000" in bridge.service.log()


def test_isolation_is_bounded_by_its_write_budget(migrated_dsn, bridge_factory) -> None:
    """Every series refused: bisection stops after ``isolation_max_writes`` and counts them all."""
    bridge = bridge_factory(migrated_dsn, {"remote_write": {**NO_LIMITS, "isolation_max_writes": 4}})
    t = now_ms() - 5000
    bad = [
        ({"__name__": "node_load5", "instance": f"h{i}", "big": secrets.token_urlsafe(2300)}, [(1.0, t)])
        for i in range(16)
    ]
    code, _ = post(bridge.write_url, encode(bad))
    assert code == 204
    assert dropped(bridge, "unstorable") == 16
    assert rows(migrated_dsn, "SELECT count(*) FROM samples") == [(0,)]


def _good_rows(dsn: str) -> int:
    return rows(
        dsn,
        "SELECT count(*) FROM usage_metrics u JOIN systems s ON s.id = u.system_id WHERE s.instance LIKE '127.0.1.%%'",
    )[0][0]


@pytest.mark.slow
@pytest.mark.parametrize("limits", ["default", "lifted"])
def test_prometheus_keeps_ingesting_after_a_hostile_series_appears(
    limits, migrated_dsn, scrape_target, bridge_factory, prometheus_factory: Callable
) -> None:
    """A real Prometheus scrapes three good hosts; then the target adds the hostile series. Good rows
    keep arriving scrape after scrape, nothing is answered 503, and the hostile series is counted
    (``label_limit`` before the database, or ``unstorable`` when the database itself refuses it)."""
    bridge = bridge_factory(migrated_dsn, {"remote_write": NO_LIMITS} if limits == "lifted" else None)
    prometheus_factory(prometheus_config(scrape_target.address, bridge.write_url))
    wait_for(lambda: _good_rows(migrated_dsn) >= 6, timeout=30, what="rows before the hostile series")
    big = secrets.token_urlsafe(2300)
    many = ",".join(f'l{i:04}="v"' for i in range(3000))
    scrape_target.extra = [
        f'node_load5{{instance="127.0.2.1:22",big="{big}"}} 1',
        f'system_cpu_usage{{instance="{secrets.token_urlsafe(150_000)}"}} 5',
        f'node_load15{{instance="127.0.2.1:22",{many}}} 2',
    ]
    reason = "label_limit" if limits == "default" else "unstorable"
    wait_for(lambda: dropped(bridge, reason) >= 3, timeout=30, what="the hostile series to be dropped")
    before, scrapes = _good_rows(migrated_dsn), scrape_target.scrapes
    wait_for(lambda: scrape_target.scrapes >= scrapes + 4, timeout=30, what="four more scrapes")
    wait_for(
        lambda: _good_rows(migrated_dsn) >= before + 3 * 3,
        timeout=30,
        what="good rows of three more scrapes (3 hosts each)",
    )
    metrics = bridge.metrics()
    assert metric_value(metrics, "optilab_bridge_requests_total", 'code="503"') == 0
    assert metric_value(metrics, "optilab_bridge_requests_total", 'code="400"') == 0
    assert rows(migrated_dsn, "SELECT count(*) FROM series WHERE metric IN ('node_load5', 'node_load15')") == [(0,)]

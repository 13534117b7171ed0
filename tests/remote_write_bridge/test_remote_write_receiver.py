"""The bridge as Prometheus sees it: status codes per the remote-write 1.0 spec, and what each
accepted request leaves in the real database (subprocess bridge, machine's PostgreSQL)."""

from __future__ import annotations

import json

import cramjam
import psycopg
import pytest

from tests.support.remote_write import HEADERS, HOST, STALE_NAN, encode, get, metric_value, now_ms, post, write_request


def rows(dsn: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture
def bridge(migrated_dsn, bridge_factory):
    return bridge_factory(migrated_dsn, {"remote_write": {"max_body_bytes": 64 * 1024}})


def test_malformed_bodies_get_their_4xx_and_the_bridge_keeps_serving(bridge, migrated_dsn) -> None:
    good = [({"__name__": "node_load1", **HOST}, [(0.5, now_ms())])]
    raw = write_request(good)
    cases = {
        "garbage instead of snappy": (b"\xff\x00not snappy at all", HEADERS, 400, "snappy"),
        "framed snappy": (bytes(cramjam.snappy.compress(raw)), HEADERS, 400, "snappy"),
        "snappy of a non-protobuf": (
            bytes(cramjam.snappy.compress_raw(b"\x0a\xff\xff\xff\xff\x0f")),
            HEADERS,
            400,
            "protobuf",
        ),
        "unsorted labels": (
            encode([({"job": "x", "__name__": "node_load1"}, [(1.0, now_ms())])], sort_labels=False),
            HEADERS,
            400,
            "unsorted",
        ),
        "duplicate label": (bytes(cramjam.snappy.compress_raw(_duplicate_label_request())), HEADERS, 400, "duplicate"),
        "empty label name": (
            encode([({"__name__": "node_load1", "": "x"}, [(1.0, now_ms())])]),
            HEADERS,
            400,
            "empty label name",
        ),
        "no metric name": (encode([({"job": "x"}, [(1.0, now_ms())])]), HEADERS, 400, "__name__"),
        "JSON content type": (encode(good), {**HEADERS, "Content-Type": "application/json"}, 415, "Content-Type"),
        "remote write 2.0": (
            encode(good),
            {**HEADERS, "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"},
            415,
            "1.0",
        ),
        "gzip encoding": (
            bytes(cramjam.gzip.compress(raw)),
            {**HEADERS, "Content-Encoding": "gzip"},
            415,
            "Content-Encoding",
        ),
        "too large": (b"\x00" * (64 * 1024 + 1), HEADERS, 413, "limit"),
    }
    for case, (body, headers, status, words) in cases.items():
        code, text = post(bridge.write_url, body, headers)
        assert (code, words in text) == (status, True), f"{case}: {code} {text!r}"
    assert post(bridge.write_url, encode(good))[0] == 204
    assert rows(migrated_dsn, "SELECT count(*) FROM samples") == [(1,)]
    assert metric_value(bridge.metrics(), "optilab_bridge_requests_total", 'code="400"') == 7
    assert bridge.service.process.poll() is None


def _duplicate_label_request() -> bytes:
    from optilab.remote_write_bridge.protocol import WriteRequest

    request = WriteRequest()
    series = request.timeseries.add()
    for name, value in (("__name__", "node_load1"), ("job", "a"), ("job", "b")):
        series.labels.add(name=name, value=value)
    series.samples.add(value=1.0, timestamp=now_ms())
    return request.SerializeToString()


def test_usage_is_pivoted_across_requests_and_retries_do_not_double(bridge, migrated_dsn) -> None:
    t1, t2 = now_ms() - 30_000, now_ms() - 15_000
    first = encode(
        [
            ({"__name__": "system_cpu_usage", **HOST}, [(12.5, t1), (20.0, t2)]),
            ({"__name__": "system_ram_usage", **HOST}, [(40.0, t1)]),
        ]
    )
    second = encode(
        [
            ({"__name__": "system_disk_usage", **HOST}, [(77.0, t1), (78.0, t2)]),
            ({"__name__": "optilab_logged_in_users", **HOST}, [(2, t1), (0, t2)]),
            ({"__name__": "system_ram_usage", **HOST}, [(41.0, t2)]),
        ]
    )
    for body in (first, second, first, second):  # the second pair is Prometheus retrying
        assert post(bridge.write_url, body)[0] == 204
    usage = rows(
        migrated_dsn,
        "SELECT s.instance, s.hostname, s.ip_address, s.department, "
        "extract(epoch FROM u.timestamp) * 1000, u.cpu_usage, u.ram_usage, u.disk_usage, u.logged_in_users "
        "FROM usage_metrics u JOIN systems s ON s.id = u.system_id ORDER BY u.timestamp",
    )
    assert usage == [
        ("127.0.1.5:22", "pc-05", "127.0.1.5", "physics", t1, 12.5, 40.0, 77.0, 2),
        ("127.0.1.5:22", "pc-05", "127.0.1.5", "physics", t2, 20.0, 41.0, 78.0, 0),
    ]
    # logged-in users are also a generic (allow-listed) series
    assert rows(migrated_dsn, "SELECT count(*) FROM samples") == [(2,)]
    hourly = rows(migrated_dsn, "SELECT max_cpu, samples FROM usage_hourly")
    assert sum(row[1] for row in hourly) == 2 and max(row[0] for row in hourly) == 20.0


def test_stale_markers_nan_old_unlisted_and_impossible_values_are_not_stored(bridge, migrated_dsn) -> None:
    t = now_ms()
    body = encode(
        [
            ({"__name__": "node_load5", **HOST}, [(STALE_NAN, t), (float("nan"), t - 1000), (1.25, t - 2000)]),
            ({"__name__": "node_load15", **HOST}, [(3.0, t - 40 * 86_400_000)]),
            ({"__name__": "go_goroutines", "job": "node"}, [(7.0, t)]),
            ({"__name__": "optilab_logged_in_users", **HOST}, [(float("inf"), t)]),
            ({"__name__": "node_load1", "job": "", **HOST}, [(0.75, t)]),  # empty value: label absent
        ]
    )
    assert post(bridge.write_url, body)[0] == 204
    stored = rows(
        migrated_dsn,
        "SELECT s.metric, s.labels, x.value FROM samples x JOIN series s ON s.id = x.series_id ORDER BY s.metric",
    )
    assert stored == [("node_load1", HOST, 0.75), ("node_load5", HOST, 1.25)]
    metrics = bridge.metrics()
    assert metric_value(metrics, "optilab_bridge_samples_dropped_total", 'reason="stale_or_nan"') == 2
    assert metric_value(metrics, "optilab_bridge_samples_dropped_total", 'reason="out_of_window"') == 1
    assert metric_value(metrics, "optilab_bridge_samples_dropped_total", 'reason="not_allowed"') == 1
    assert metric_value(metrics, "optilab_bridge_samples_dropped_total", 'reason="bad_value"') == 1
    assert metric_value(metrics, "optilab_bridge_samples_received_total") == 7
    assert rows(migrated_dsn, "SELECT count(*) FROM usage_metrics") == [(0,)]


def test_system_status_updates_systems_and_history_only_on_change(bridge, migrated_dsn) -> None:
    t = now_ms() - 60_000
    statuses = [(1, t), (1, t + 15_000), (0, t + 30_000), (1, t + 45_000)]
    for value, ms in statuses:
        assert post(bridge.write_url, encode([({"__name__": "system_status", **HOST}, [(value, ms)])]))[0] == 204
    # an older sample retried late must not flip the status back
    assert post(bridge.write_url, encode([({"__name__": "system_status", **HOST}, [(0, t + 30_000)])]))[0] == 204
    system = rows(migrated_dsn, "SELECT status, extract(epoch FROM last_seen) * 1000 FROM systems")
    assert system == [("online", t + 45_000)]
    history = rows(
        migrated_dsn, "SELECT status, extract(epoch FROM timestamp) * 1000 FROM status_history ORDER BY timestamp"
    )
    assert history == [("online", t), ("offline", t + 30_000), ("online", t + 45_000)]


def test_health_reports_mode_database_and_newest_sample(bridge, migrated_dsn) -> None:
    code, text = get(f"{bridge.url}/health")
    body = json.loads(text)
    assert (code, body["status"], body["storage_mode"], body["database"]["reachable"]) == (
        200,
        "ok",
        "postgresql",
        True,
    )
    assert body["newest_sample_age_seconds"] is None
    assert post(bridge.write_url, encode([({"__name__": "node_load1", **HOST}, [(1.0, now_ms() - 5000)])]))[0] == 204
    age = json.loads(get(f"{bridge.url}/health")[1])["newest_sample_age_seconds"]
    assert 4 < age < 600


def test_database_unreachable_gives_503_never_429(bridge_factory, tmp_path) -> None:
    from tests.fixtures.procs import free_port

    dsn = f"host=127.0.0.1 port={free_port()} user=postgres dbname=postgres"
    bridge = bridge_factory(dsn, {"remote_write": {"pool_timeout": 1}})
    code, text = post(bridge.write_url, encode([({"__name__": "node_load1", **HOST}, [(1.0, now_ms())])]))
    assert code == 503 and "retry" in text
    code, text = get(f"{bridge.url}/health")
    assert code == 503 and json.loads(text)["database"]["reachable"] is False
    # refusals that can never succeed stay 4xx even while the database is down
    assert post(bridge.write_url, b"junk")[0] == 400


def test_concurrent_requests_completing_the_same_rows_all_succeed(bridge, migrated_dsn) -> None:
    """Eight senders at once, each carrying one column of the same 40 hosts × 5 timestamps, in
    different orders: no deadlock surfaces as a 503, and every row ends up complete."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    base = now_ms() - 300_000
    hosts = [
        {"instance": f"127.0.1.{i}:22", "hostname": f"pc-{i}", "ip": f"127.0.1.{i}", "department": "lab"}
        for i in range(1, 41)
    ]
    columns = ["system_cpu_usage", "system_ram_usage", "system_disk_usage", "optilab_logged_in_users"]
    bodies = []
    for round_ in range(2):  # every column twice: the second copy is a retry
        for column in columns:
            series = [
                ({"__name__": column, **host}, [(float(i + k), base + k * 15_000) for k in range(5)])
                for i, host in enumerate(hosts)
            ]
            random.Random(round_ * 10 + len(bodies)).shuffle(series)
            bodies.append(encode(series + [({"__name__": "system_status", **host}, [(1, base)]) for host in hosts]))
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda body: post(bridge.write_url, body)[0], bodies))
    assert codes == [204] * len(bodies)
    complete = rows(
        migrated_dsn,
        "SELECT count(*) FILTER (WHERE cpu_usage IS NOT NULL AND ram_usage IS NOT NULL "
        "AND disk_usage IS NOT NULL AND logged_in_users IS NOT NULL), count(*) FROM usage_metrics",
    )
    assert complete == [(200, 200)]
    assert rows(migrated_dsn, "SELECT count(*), count(*) FILTER (WHERE status = 'online') FROM systems") == [(40, 40)]
    assert rows(migrated_dsn, "SELECT count(*) FROM status_history") == [(40,)]


def test_plain_mode_maintenance_runs_inside_the_bridge(migrated_dsn, bridge_factory) -> None:
    from tests.fixtures.procs import wait_for

    bridge = bridge_factory(migrated_dsn, {"remote_write": {"maintenance_interval_s": 0.3}})
    t = now_ms() - 60_000
    body = encode([({"__name__": "system_cpu_usage", **HOST}, [(10.0, t), (30.0, t + 15_000)])])
    assert post(bridge.write_url, body)[0] == 204
    wait_for(
        lambda: rows(migrated_dsn, "SELECT count(*) FROM usage_rollup_dirty") == [(0,)],
        timeout=20,
        what="the maintenance thread to fold the dirty hours",
    )
    rolled = rows(migrated_dsn, "SELECT sum(cpu_sum), sum(cpu_n), max(cpu_max) FROM usage_hourly_rollup")
    assert rolled == [(40.0, 2, 30.0)]
    assert rows(migrated_dsn, "SELECT sum(samples), max(max_cpu) FROM usage_daily") == [(2, 30.0)]
    tomorrow = rows(
        migrated_dsn,
        "SELECT to_regclass('usage_metrics_p' || to_char(now() AT TIME ZONE 'UTC' "
        "+ INTERVAL '1 day', 'YYYYMMDD')) IS NOT NULL",
    )
    assert tomorrow == [(True,)]
    assert metric_value(bridge.metrics(), "optilab_bridge_maintenance_runs_total", 'result="ok"') >= 1

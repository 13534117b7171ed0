"""Pure parts of the API without a database: query parsing, source/step planning, config, OpenAPI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.exceptions import BadRequest

from optilab.api import openapi, params, series
from optilab.api.config import ApiConfig, ConfigError, load_config, parse_keys
from optilab.toolkit.flags import parse_listen

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
KEY = "k" * 24


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("-24h", NOW - timedelta(hours=24)),
        ("now-30m", NOW - timedelta(minutes=30)),
        ("-2w", NOW - timedelta(weeks=2)),
        ("+1d", NOW + timedelta(days=1)),
        ("2026-11-01T10:00:00Z", datetime(2026, 11, 1, 10, tzinfo=UTC)),
        ("2026-11-01T12:00:00+02:00", datetime(2026, 11, 1, 10, tzinfo=UTC)),
        ("2026-11-01 10:00", datetime(2026, 11, 1, 10, tzinfo=UTC)),  # naive means UTC
        ("1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
    ],
)
def test_timestamps_parse_absolute_relative_and_epoch(text: str, expected: datetime) -> None:
    assert params.timestamp(text, "start", NOW) == expected


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "-24x",
        "24h",
        "2026-13-01",
        "",
        "--1h",
        "1e9",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31",
        "-999999999w",
        "99999999999999",
    ],
)
def test_bad_timestamps_name_the_parameter(text: str) -> None:
    with pytest.raises(BadRequest, match=r"^400 Bad Request: start: "):
        params.timestamp(text, "start", NOW)


def test_time_range_defaults_and_order() -> None:
    assert params.time_range({}, NOW, timedelta(hours=24)) == (NOW - timedelta(hours=24), NOW)
    assert params.time_range({"start": "-1h", "end": "-30m"}, NOW, timedelta(hours=24)) == (
        NOW - timedelta(hours=1),
        NOW - timedelta(minutes=30),
    )
    with pytest.raises(BadRequest, match="start: must be before end"):
        params.time_range({"start": "-1h", "end": "-2h"}, NOW, timedelta(hours=24))
    with pytest.raises(BadRequest, match="3660 days"):
        params.time_range({"start": "1970-01-01", "end": "2100-01-01"}, NOW, timedelta(hours=24))


@pytest.mark.parametrize(
    ("text", "seconds"), [("60", 60), ("90s", 90), ("5m", 300), ("2h", 7200), ("1d", 86400), ("1w", 604800)]
)
def test_durations(text: str, seconds: int) -> None:
    assert params.duration(text, "step") == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["0", "0s", "-5m", "5 minutes", "1.5h", "abc", "9999999999d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(BadRequest, match="step: "):
        params.duration(text, "step")


def test_integers_text_and_choices_are_validated() -> None:
    assert params.integer({"limit": "50"}, "limit", 100, 1, 1000) == 50
    assert params.integer({}, "limit", 100, 1, 1000) == 100
    for bad in ("0", "1001", "ten", "1.5", "9" * 30):
        with pytest.raises(BadRequest, match="limit: "):
            params.integer({"limit": bad}, "limit", 100, 1, 1000)
    assert params.text({"q": "pc-01"}, "q") == "pc-01"
    for bad in ("a\x00b", "tab\there", "x" * 201, "\ud800"):
        with pytest.raises(BadRequest, match="q: "):
            params.text({"q": bad}, "q")
    with pytest.raises(BadRequest, match="status: expected one of online, offline"):
        params.choice({"status": "asleep"}, "status", ("online", "offline"), None)


def test_like_pattern_takes_wildcards_literally() -> None:
    assert params.like_pattern("50%_a\\b") == "%50\\%\\_a\\\\b%"


@pytest.mark.parametrize(
    ("span", "step", "source", "expected"),
    [
        (timedelta(hours=1), None, None, series.Plan("raw", 15)),
        (timedelta(hours=24), None, None, series.Plan("raw", 300)),
        (timedelta(days=30), None, None, series.Plan("hourly", 3 * 3600)),
        (timedelta(days=400), None, None, series.Plan("daily", 2 * 86400)),
        (timedelta(days=30), timedelta(days=1), None, series.Plan("daily", 86400)),
        (timedelta(days=3), timedelta(hours=1), None, series.Plan("hourly", 3600)),
        (timedelta(days=3), timedelta(minutes=90), None, series.Plan("hourly", 7200)),  # whole hours only
        (timedelta(days=3), timedelta(seconds=1), None, series.Plan("raw", 300)),  # capped at 1000 points
        (timedelta(days=30), None, "raw", series.Plan("raw", 3 * 3600)),
        (timedelta(hours=2), None, "hourly", series.Plan("hourly", 3600)),
    ],
)
def test_plan_picks_source_by_step_and_caps_points(
    span: timedelta, step: timedelta | None, source: str | None, expected: series.Plan
) -> None:
    chosen = series.plan(NOW - span, NOW, step, 1000, source)
    assert chosen == expected
    assert span.total_seconds() / chosen.step_seconds <= 1000


def test_range_source_for_department_summaries() -> None:
    assert series.range_source(NOW - timedelta(hours=3), NOW) == "raw"
    assert series.range_source(NOW - timedelta(days=1), NOW) == "hourly"
    assert series.range_source(NOW - timedelta(days=30), NOW) == "daily"


def test_config_keys_from_env_and_file(tmp_path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("# lab scripts\n" + "f" * 20 + "\n\n")
    config = load_config("dbname=x", {"OPTILAB_API_KEYS": f"{KEY}, {'e' * 16}"}, keys_file=str(keys_file))
    assert config.api_keys == (KEY, "e" * 16, "f" * 20)
    assert KEY not in repr(config)
    assert parse_keys("a" * 16 + "\n" + "a" * 16) == ("a" * 16,)


@pytest.mark.parametrize(
    ("kwargs", "env", "field"),
    [
        ({}, {}, "api_keys"),
        ({}, {"OPTILAB_API_KEYS": "short"}, "api_keys"),
        ({"keys_file": "/nonexistent/keys"}, {}, "api_keys_file"),
        ({"rate_limit": "lots"}, {"OPTILAB_API_KEYS": KEY}, "rate_limit"),
        ({"max_points": "0"}, {"OPTILAB_API_KEYS": KEY}, "max_points"),
    ],
)
def test_config_errors_name_the_field(kwargs: dict, env: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: "):
        load_config("dbname=x", env, **kwargs)


def test_unparseable_dsn_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError, match=r"^dsn: ") as info:
        load_config("postgresql://u:secret pw@h/x", {"OPTILAB_API_KEYS": KEY})
    assert "secret" not in str(info.value)


def test_config_without_auth_needs_no_key_and_listen_parses() -> None:
    assert load_config("dbname=x", {}, auth_enabled=False, rate_limit="").rate_limit == ""
    assert parse_listen("127.0.0.1:9844") == ("127.0.0.1", 9844)
    assert parse_listen("[::1]:0") == ("::1", 0)
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        parse_listen("127.0.0.1")


def test_openapi_document_references_resolve() -> None:
    doc = openapi.document()
    assert doc["openapi"].startswith("3.")
    text = repr(doc)
    for name in doc["components"]["schemas"]:
        assert f"#/components/schemas/{name}" in text or name in ("SystemDetail",)
    refs = {part.split("'")[0] for part in text.split("#/components/schemas/")[1:]}
    assert refs <= set(doc["components"]["schemas"])
    assert doc["paths"]["/health"]["get"]["security"] == []
    assert "security" not in doc["paths"]["/systems"]["get"]
    assert ApiConfig(dsn="x").max_points == 1000  # the documented default (docs/api.md)


def test_no_auth_is_refused_off_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    from optilab.api.cli import main

    assert main(["--dsn", "dbname=x", "--no-auth", "--listen", "0.0.0.0:9"]) == 2
    assert "--no-auth is only allowed on a loopback address" in capsys.readouterr().err


# --- opening hours (api.hours) ------------------------------------------------------------------


def test_open_share_per_utc_hour_follows_the_local_zone_dst_and_closed_days():
    from datetime import date

    from optilab.api import hours
    from optilab.exporter.config import OpeningHours

    berlin = OpeningHours("Europe/Berlin", (((510, 1200),),) * 5 + ((), ()), frozenset({date(2026, 12, 24)}))
    utc = UTC
    # winter (UTC+1): 08:30 local = 07:30 UTC, so the 07:00 UTC hour is half open
    assert hours.weight(berlin, datetime(2026, 12, 1, 7, tzinfo=utc)) == 0.5
    assert hours.weight(berlin, datetime(2026, 12, 1, 8, tzinfo=utc)) == 1.0
    assert hours.weight(berlin, datetime(2026, 12, 1, 19, tzinfo=utc)) == 0.0  # 20:00 local: closed
    # summer (UTC+2): the same local opening is an hour earlier in UTC
    assert hours.weight(berlin, datetime(2026, 7, 1, 6, tzinfo=utc)) == 0.5
    assert hours.weight(berlin, datetime(2026, 12, 24, 10, tzinfo=utc)) == 0.0  # closed day
    assert hours.weight(berlin, datetime(2026, 12, 5, 10, tzinfo=utc)) == 0.0  # Saturday
    assert hours.weight(None, datetime(2026, 12, 5, 3, tzinfo=utc)) == 1.0  # no hours: always open
    week = hours.weights(berlin, datetime(2026, 11, 30, tzinfo=utc), datetime(2026, 12, 7, tzinfo=utc))
    assert len(week) == 168 and sum(w for _, w in week) == 5 * 11.5
    assert hours.describe(berlin)["weekly"]["fri"] == ["08:30-20:00"]

"""Safety of the API: keys, rate limits, CORS, and a JSON 4xx (never a 500) for every bad input."""

from __future__ import annotations

import pytest

from optilab.api.app import close_app
from tests.support import api_lab as lab_fixtures
from tests.support.api_lab import AUTH, KEY, OTHER_KEY, Lab, make_app

api_lab, api_app, client = lab_fixtures.api_lab, lab_fixtures.api_app, lab_fixtures.client

ORIGIN = "http://127.0.0.1:3000"


def assert_error(response, status: int, starts: str = "") -> dict:  # type: ignore[no-untyped-def]
    """The one error shape: JSON status/error/message, no HTML, no traceback."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"status", "error", "message"} and body["status"] == status
    assert body["message"].startswith(starts), body["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": "wrong-key-0123456789abcdef"},
        {"X-API-Key": KEY[:-1]},
        {"Authorization": "Bearer wrong-key-0123456789abcdef"},
        {"Authorization": f"Basic {KEY}"},
    ],
)
def test_data_endpoints_need_a_valid_key(client, headers: dict) -> None:
    for path in ("/systems", "/systems/1", "/departments", "/alerts", "/openapi.json", "/no/such/path"):
        response = client.get(path, headers=headers)
        assert_error(response, 401, "missing or invalid API key")
        assert response.headers["WWW-Authenticate"].lower().startswith("bearer")


def test_key_in_header_or_bearer_and_not_in_query(client) -> None:
    assert client.get("/systems", headers={"X-API-Key": OTHER_KEY}).status_code == 200
    assert client.get("/systems", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert client.get("/systems", query_string={"api_key": KEY}).status_code == 401


def test_health_and_metrics_need_no_key(client) -> None:
    assert client.get("/health").status_code == 200
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    ("path", "params", "starts"),
    [
        ("/systems", {"limit": "0"}, "limit: "),
        ("/systems", {"limit": "abc"}, "limit: "),
        ("/systems", {"limit": "1001"}, "limit: "),
        ("/systems", {"offset": "-1"}, "offset: "),
        ("/systems", {"offset": "99999999999"}, "offset: "),
        ("/systems", {"status": "sleeping"}, "status: "),
        ("/systems", {"health": "sick"}, "health: "),
        ("/systems", {"q": "a\x00b"}, "q: "),
        ("/systems", {"q": "x" * 201}, "q: "),
        ("/systems", {"department": "\x00"}, "department: "),
        ("/systems/1/metrics", {"start": "yesterday"}, "start: "),
        ("/systems/1/metrics", {"start": "-24x"}, "start: "),
        ("/systems/1/metrics", {"end": "2026-13-01"}, "end: "),
        ("/systems/1/metrics", {"start": "-1h", "end": "-2h"}, "start: must be before end"),
        ("/systems/1/metrics", {"start": "1970-01-01", "end": "2150-01-01"}, "start: "),
        ("/systems/1/metrics", {"start": "-99999999999w"}, "start: "),
        ("/systems/1/metrics", {"step": "0"}, "step: "),
        ("/systems/1/metrics", {"step": "-5m"}, "step: "),
        ("/systems/1/metrics", {"step": "fast"}, "step: "),
        ("/systems/1/metrics", {"source": "weekly"}, "source: "),
        ("/departments", {"start": "later"}, "start: "),
        ("/departments/physics", {"end": "0001-01-01T00:00:00+14:00"}, "end: "),
        ("/departments/a\x00b", {}, "name: "),
        ("/alerts", {"state": "open"}, "state: "),
        ("/alerts", {"start": "soon"}, "start: "),
        ("/alerts", {"start": "-1h", "end": "-2h"}, "start: "),
        ("/alerts", {"severity": "\x07"}, "severity: "),
    ],
)
def test_bad_input_is_400_naming_the_parameter(client, path: str, params: dict, starts: str) -> None:
    assert_error(client.get(path, query_string=params, headers=AUTH), 400, starts)


@pytest.mark.parametrize(
    "path",
    [
        "/systems/999999",
        "/systems/99999999999999999999",
        "/systems/-1",
        "/systems/abc",
        "/systems/99999999999999/metrics",
        "/departments/nowhere",
        "/nothing/here",
    ],
)
def test_unknown_resources_are_404(client, path: str) -> None:
    assert_error(client.get(path, headers=AUTH), 404)


def test_wrong_method_is_405_with_allow(client) -> None:
    response = client.post("/systems", headers=AUTH, json={})
    assert_error(response, 405)
    assert "GET" in response.headers["Allow"]
    assert_error(client.delete("/systems/1", headers=AUTH), 405)


def test_unexpected_error_is_a_bare_500(api_lab: Lab) -> None:
    app = make_app(api_lab.dsn)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    try:
        response = app.test_client().get("/boom", headers=AUTH)
        body = assert_error(response, 500)
        assert "hunter2" not in response.get_data(as_text=True) and "server log" in body["message"]
    finally:
        close_app(app)


def test_rate_limit_per_key_then_429(api_lab: Lab) -> None:
    app = make_app(api_lab.dsn, rate_limit="3/minute")
    try:
        test_client = app.test_client()
        assert [test_client.get("/alerts", headers=AUTH).status_code for _ in range(3)] == [200] * 3
        response = test_client.get("/alerts", headers=AUTH)
        assert_error(response, 429, "rate limit exceeded")
        assert int(response.headers["Retry-After"]) > 0
        # another key has its own budget; key guessing from one address is throttled too
        assert test_client.get("/alerts", headers={"X-API-Key": OTHER_KEY}).status_code == 200
        guesses = [test_client.get("/alerts", headers={"X-API-Key": f"guess-{n:020d}"}).status_code for n in range(4)]
        assert guesses == [401, 401, 401, 429]
    finally:
        close_app(app)


def test_cors_allows_configured_origin_only(api_lab: Lab) -> None:
    app = make_app(api_lab.dsn, cors_origins=(ORIGIN,))
    try:
        test_client = app.test_client()
        preflight = test_client.options(
            "/systems",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "X-API-Key",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "x-api-key" in preflight.headers["Access-Control-Allow-Headers"].lower()
        response = test_client.get("/systems", headers={**AUTH, "Origin": ORIGIN})
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        other = test_client.get("/systems", headers={**AUTH, "Origin": "http://127.0.0.2:3000"})
        assert "Access-Control-Allow-Origin" not in other.headers
        # the answers differ by Origin, so every one says so (caches must not mix them up)
        for answer in (
            preflight,
            response,
            other,
            test_client.get("/systems", headers=AUTH),
            test_client.get("/health"),
            test_client.get("/systems"),
        ):
            assert "origin" in answer.headers.get("Vary", "").lower(), answer.headers
    finally:
        close_app(app)


def test_no_cors_headers_unless_configured(client) -> None:
    response = client.get("/systems", headers={**AUTH, "Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in response.headers

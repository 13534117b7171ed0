"""Alerts without a broker (``OPTILAB_ALERTS_DELIVERY=direct``): the webhook stores each alert itself,
idempotently, and answers 503 while the database is down so Alertmanager retries."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from flask.testing import FlaskClient

from optilab.remote_write_bridge import config as bridge_config
from optilab.remote_write_bridge.app import create_app
from optilab.timescale.migrate import migrate
from tests.fixtures.postgres import PrivatePostgres
from tests.support.alerts import alert, payload


def client_for(dsn: str) -> Iterator[FlaskClient]:
    app = create_app(bridge_config.load(None, dsn))
    try:
        yield app.test_client()
    finally:
        app.extensions["optilab_bridge"].stop()


@pytest.fixture
def direct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPTILAB_ALERTS_DELIVERY", "direct")


def rows(dsn: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT alertname, instance, status FROM alerts ORDER BY id").fetchall()


def test_alerts_are_stored_once_and_resolved_in_place(direct: None, migrated_dsn: str) -> None:
    for client in client_for(migrated_dsn):
        firing = payload(alert(), alert(instance="127.0.1.6:22"))
        assert client.post("/api/v1/alerts", json=firing).status_code == 200
        assert client.post("/api/v1/alerts", json=firing).status_code == 200  # Alertmanager repeat
        assert client.post("/api/v1/alerts", json=payload(alert(status="resolved"))).status_code == 200
        assert client.post("/api/v1/alerts", json={"version": "4"}).status_code == 400
    assert rows(migrated_dsn) == [
        ("OptiLabHostDown", "127.0.1.5:22", "resolved"),
        ("OptiLabHostDown", "127.0.1.6:22", "firing"),
    ]


def test_database_down_answers_503_and_the_retry_lands(direct: None, private_postgres: PrivatePostgres) -> None:
    migrate(private_postgres.dsn)
    for client in client_for(private_postgres.dsn):
        private_postgres.stop()
        assert client.post("/api/v1/alerts", json=payload(alert())).status_code == 503
        private_postgres.start()
        assert client.post("/api/v1/alerts", json=payload(alert())).status_code == 200
    assert rows(private_postgres.dsn) == [("OptiLabHostDown", "127.0.1.5:22", "firing")]

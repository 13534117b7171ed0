"""Alertmanager webhook → RabbitMQ against the machine's broker: every alert of a v4 payload is its
own persistent message in a durable queue, 200 only after confirms, 400 for payloads no retry can
fix (and nothing published), 503 when the broker is unreachable, one connection per thread."""

from __future__ import annotations

import json
import threading

import pika
import pika.exceptions
import pytest
from flask.testing import FlaskClient

from optilab.remote_write_bridge.app import create_app
from optilab.remote_write_bridge.config import validate
from tests.fixtures.procs import free_port
from tests.fixtures.rabbitmq import AmqpNames, drain
from tests.support.alerts import alert, payload


def make_client(url: str, names: AmqpNames) -> FlaskClient:
    app = create_app(validate({"OPTILAB_AMQP_URL": url, "OPTILAB_AMQP_PREFIX": names.prefix}), start=False)
    return app.test_client()


@pytest.fixture
def client(amqp_url: str, amqp_names: AmqpNames) -> FlaskClient:
    return make_client(amqp_url, amqp_names)


def test_each_alert_is_one_persistent_message(client: FlaskClient, amqp_url: str, amqp_names: AmqpNames) -> None:
    sent = [alert("127.0.1.5:22"), alert("127.0.1.6:22", status="resolved")]
    response = client.post("/api/v1/alerts", json=payload(*sent))
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"status": "ok", "published": 2}

    messages = drain(amqp_url, amqp_names.queue)
    assert [key for key, _, _ in messages] == ["alert.firing", "alert.resolved"]
    bodies = [json.loads(body) for _, _, body in messages]
    assert [b["alert"] for b in bodies] == sent
    assert all(
        b["type"] == "alert"
        and b["version"] == 1
        and b["receiver"] == "optilab-oncall"
        and b["externalURL"] == "http://127.0.0.1:9093"
        for b in bodies
    )
    assert all(props.delivery_mode == 2 and props.content_type == "application/json" for _, props, _ in messages)


def test_queue_is_durable_and_dead_letters(client: FlaskClient, amqp_url: str, amqp_names: AmqpNames) -> None:
    assert client.post("/api/v1/alerts", json=payload(alert())).status_code == 200
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        # same arguments: accepted; RabbitMQ refuses a redeclare that differs from the real queue
        channel.queue_declare(
            amqp_names.queue, durable=True, arguments={"x-dead-letter-exchange": amqp_names.dead_exchange}
        )
        assert channel.queue_declare(amqp_names.dead_queue, passive=True).method.message_count == 0
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="PRECONDITION_FAILED"):
            channel.queue_declare(amqp_names.queue, durable=False)
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "not JSON"),
        (json.dumps({"version": "3", "alerts": []}).encode(), "version"),
        (json.dumps({"version": "4", "alerts": {}}).encode(), "alerts: expected a list"),
        (json.dumps(payload({**alert(), "fingerprint": ""})).encode(), "alerts[0].fingerprint"),
        (json.dumps(payload({**alert(), "status": "pending"})).encode(), "alerts[0].status"),
        (json.dumps(payload(alert(), {**alert(), "startsAt": "yesterday"})).encode(), "alerts[1].startsAt"),
        (json.dumps(payload({**alert(status="resolved"), "endsAt": None})).encode(), "alerts[0].endsAt"),
        (json.dumps(payload({**alert(), "labels": {"instance": "x"}})).encode(), "labels.alertname"),
    ],
)
def test_bad_payloads_get_400_and_publish_nothing(
    client: FlaskClient, amqp_url: str, amqp_names: AmqpNames, body: bytes, error: str
) -> None:
    response = client.post("/api/v1/alerts", data=body, content_type="application/json")
    assert response.status_code == 400
    assert error in response.get_json()["error"]
    # a good request afterwards: the service is up and only its alert is in the queue
    assert client.post("/api/v1/alerts", json=payload(alert())).status_code == 200
    assert len(drain(amqp_url, amqp_names.queue)) == 1


def test_unreachable_broker_gets_503_so_alertmanager_retries(amqp_names: AmqpNames) -> None:
    client = make_client(f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F", amqp_names)
    response = client.post("/api/v1/alerts", json=payload(alert()))
    assert response.status_code == 503
    assert "retry" in response.get_json()["error"]


def test_queue_deleted_behind_the_publishers_back_is_redeclared(
    client: FlaskClient, amqp_url: str, amqp_names: AmqpNames
) -> None:
    """An unroutable (mandatory) publish is not reported as success: the publisher reconnects,
    redeclares and publishes again."""
    assert client.post("/api/v1/alerts", json=payload(alert())).status_code == 200
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    connection.channel().queue_delete(amqp_names.queue)
    connection.close()
    assert client.post("/api/v1/alerts", json=payload(alert("127.0.1.9:22"))).status_code == 200
    messages = drain(amqp_url, amqp_names.queue)
    assert [json.loads(body)["alert"]["labels"]["instance"] for _, _, body in messages] == ["127.0.1.9:22"]


def test_concurrent_requests_each_thread_its_own_connection(
    client: FlaskClient, amqp_url: str, amqp_names: AmqpNames
) -> None:
    statuses: list[int] = []

    def post(thread: int) -> None:
        for i in range(5):
            body = payload(
                alert(f"127.0.2.{thread}:22", fingerprint=f"t{thread}-{i}"),
                alert(f"127.0.3.{thread}:22", fingerprint=f"u{thread}-{i}"),
            )
            statuses.append(client.post("/api/v1/alerts", json=body).status_code)

    threads = [threading.Thread(target=post, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [200] * 30
    messages = drain(amqp_url, amqp_names.queue)
    fingerprints = sorted(json.loads(body)["alert"]["fingerprint"] for _, _, body in messages)
    assert fingerprints == sorted(
        [f"t{t}-{i}" for t in range(6) for i in range(5)] + [f"u{t}-{i}" for t in range(6) for i in range(5)]
    )


def test_settings_are_read_at_start_not_per_request(
    amqp_url: str, amqp_names: AmqpNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker URL and prefix are the app's from its start: changing the environment or the Flask
    config afterwards (as the per-request merge of both used to pick up) changes nothing."""
    client = make_client(amqp_url, amqp_names)
    monkeypatch.setenv("OPTILAB_AMQP_URL", f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F")  # nothing listens
    monkeypatch.setenv("OPTILAB_AMQP_PREFIX", f"{amqp_names.prefix}-changed")
    monkeypatch.setenv("OPTILAB_ALERTS_DELIVERY", "direct")
    assert client.application.config.get("OPTILAB_AMQP_URL") is None  # the file's keys are not Flask settings
    client.application.config.update(OPTILAB_AMQP_URL="http://not-amqp", OPTILAB_ALERTS_DELIVERY="direct")
    response = client.post("/api/v1/alerts", json=payload(alert("127.0.1.7:22")))
    assert response.status_code == 200, response.get_json()
    messages = drain(amqp_url, amqp_names.queue)
    assert [json.loads(body)["alert"]["labels"]["instance"] for _, _, body in messages] == ["127.0.1.7:22"]

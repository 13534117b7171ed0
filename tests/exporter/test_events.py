"""The exporter's event publisher against the machine's real RabbitMQ (unique exchange and queue names).

pika's GeventConnection runs on gevent's hub, which works without monkey-patching as long as the
test waits with gevent (``gevent.sleep``) so the hub can run. Outages are simulated with a TCP relay
in front of the broker (the machine's RabbitMQ itself is never stopped).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.server
import gevent.socket
import pika
import pytest

from optilab.exporter.config import RabbitSettings, Secret
from optilab.exporter.events import EventPublisher, discovery_event, health_event, publish_discoveries
from optilab.exporter.health import Transition
from optilab.exporter.targets import HostLabels
from tests.fixtures.procs import free_port, wait_for
from tests.fixtures.rabbitmq import AmqpNames
from tests.fixtures.sshd import Sshd
from tests.support.exporter_proc import Exporter, inventory


def until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Let the hub run until ``check`` holds (bounded)."""
    for _ in range(int(seconds / 0.02)):
        if check():
            return True
        gevent.sleep(0.02)
    return check()


@pytest.fixture
def queue(amqp_url: str, amqp_names: AmqpNames) -> Iterator[Callable[[], list[tuple[str, Any, int]]]]:
    """Declare the exchange and a queue bound to ``#``; returns a drain() giving (key, body, mode)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.exchange_declare(amqp_names.exchange, exchange_type="topic", durable=True)
    channel.queue_declare(amqp_names.queue, durable=True)
    channel.queue_bind(amqp_names.queue, amqp_names.exchange, "#")

    def drain() -> list[tuple[str, Any, int]]:
        found = []
        for _ in range(1000):
            method, properties, body = channel.basic_get(amqp_names.queue, auto_ack=True)
            if method is None:
                break
            found.append((method.routing_key, json.loads(body), properties.delivery_mode))
        return found

    yield drain
    connection.close()


class Relay:
    """A TCP relay to the broker that the test can cut (dropping every connection) and restore."""

    def __init__(self, upstream_port: int = 5672) -> None:
        self.port = free_port()
        self.upstream = upstream_port
        self.server: gevent.server.StreamServer | None = None
        self.pipes: list[gevent.Greenlet] = []
        self.sockets: list[Any] = []

    def start(self) -> None:
        self.server = gevent.server.StreamServer(("127.0.0.1", self.port), self._handle)
        self.server.start()

    def cut(self) -> None:
        """Stop listening and reset every relayed connection, like a broker that went away."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for sock in self.sockets:
            sock.close()
        gevent.killall(self.pipes, timeout=2)
        self.sockets, self.pipes = [], []

    def _handle(self, client: Any, _address: Any) -> None:
        upstream = gevent.socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
        self.sockets += [client, upstream]
        pipes = [gevent.spawn(self._pipe, client, upstream), gevent.spawn(self._pipe, upstream, client)]
        self.pipes += pipes
        gevent.joinall(pipes)  # the server closes the client socket when this handler returns

    @staticmethod
    def _pipe(source: Any, sink: Any) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                sock.close()


def settings(url: str, names: AmqpNames, buffer: int = 100) -> RabbitSettings:
    return RabbitSettings(url=Secret(url), exchange=names.exchange, buffer=buffer)


LABELS = HostLabels(hostname="pc-05", ip="127.0.1.5", department="physics")


def test_health_and_discovery_events_arrive_persistent_and_confirmed(
    amqp_url: str, amqp_names: AmqpNames, queue: Callable[[], list[tuple[str, Any, int]]]
) -> None:
    publisher = EventPublisher(settings(amqp_url, amqp_names)).start()
    try:
        transition = Transition("127.0.1.5:22", "healthy", "degraded", "timeout", 1)
        assert publisher.publish("health", health_event(transition, LABELS, at="2026-01-01T00:00:00Z"))
        publisher.publish(
            "discovery",
            discovery_event("127.0.1.5:22", "pc-05", "127.0.1.5", "physics", "debian", "12", at="2026-01-01T00:00:01Z"),
        )
        assert until(lambda: publisher.published == 2)
    finally:
        publisher.close()
    received = queue()
    assert received == [
        (
            "health",
            {
                "type": "health",
                "version": 1,
                "instance": "127.0.1.5:22",
                "hostname": "pc-05",
                "ip": "127.0.1.5",
                "department": "physics",
                "from": "healthy",
                "to": "degraded",
                "reason": "timeout",
                "at": "2026-01-01T00:00:00Z",
            },
            2,
        ),
        (
            "discovery",
            {
                "type": "discovery",
                "version": 1,
                "instance": "127.0.1.5:22",
                "hostname": "pc-05",
                "ip": "127.0.1.5",
                "department": "physics",
                "os_type": "debian",
                "os_version": "12",
                "at": "2026-01-01T00:00:01Z",
            },
            2,
        ),
    ]
    assert publisher.dropped == {}


def test_broker_down_publish_never_blocks_and_overflow_is_counted(
    amqp_names: AmqpNames, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"amqp://guest:s3cret-broker-pw@127.0.0.1:{free_port()}/%2F"  # nothing listens there
    publisher = EventPublisher(settings(url, amqp_names, buffer=3), connect_timeout=0.5).start()
    with caplog.at_level(logging.DEBUG):
        accepted = [publisher.publish("health", {"type": "health", "n": n}) for n in range(10)]
        until(lambda: "retrying" in caplog.text, seconds=5)
        publisher.close(flush_timeout=0.2)
    assert accepted == [True] * 3 + [False] * 7
    assert publisher.dropped == {"full": 7, "shutdown": 3}
    assert publisher.published == 0
    assert "retrying" in caplog.text
    assert "s3cret-broker-pw" not in caplog.text


def test_reconnects_after_the_broker_went_away_and_delivers_the_backlog(
    amqp_url: str, amqp_names: AmqpNames, queue: Callable[[], list[tuple[str, Any, int]]]
) -> None:
    relay = Relay()
    relay.start()
    url = f"amqp://guest:guest@127.0.0.1:{relay.port}/%2F"
    publisher = EventPublisher(settings(url, amqp_names), connect_timeout=1.0, max_backoff=0.5).start()
    try:
        publisher.publish("health", {"type": "health", "n": 1})
        assert until(lambda: publisher.published == 1)
        relay.cut()
        assert until(lambda: not publisher.connected)
        for n in (2, 3, 4):
            assert publisher.publish("health", {"type": "health", "n": n})  # buffered, never blocking
        gevent.sleep(0.5)
        assert publisher.published == 1
        relay.start()
        assert until(lambda: publisher.published == 4, seconds=15)
    finally:
        publisher.close()
        relay.cut()
    assert [body["n"] for _, body, _ in queue()] == [1, 2, 3, 4]


def test_an_unroutable_event_is_counted_not_silently_lost(amqp_url: str, amqp_names: AmqpNames) -> None:
    publisher = EventPublisher(settings(amqp_url, amqp_names)).start()  # no queue bound to the exchange
    try:
        publisher.publish("health", {"type": "health"})
        assert until(lambda: publisher.dropped.get("unroutable") == 1)
    finally:
        publisher.close()
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        connection.channel().exchange_delete(amqp_names.exchange)
        connection.close()
    assert publisher.published == 0


def test_the_exporter_publishes_health_transitions_of_a_real_host(
    sshd: Sshd,
    exporter_factory: Callable[..., Exporter],
    amqp_url: str,
    amqp_names: AmqpNames,
    queue: Callable[[], list[tuple[str, Any, int]]],
) -> None:
    config = inventory(
        sshd, rabbitmq={"url": amqp_url, "exchange": amqp_names.exchange}, health={"degraded_interval": "0s"}
    )
    exporter = exporter_factory(config)
    path = f"/probe?target=127.0.0.1:{sshd.port}"
    assert exporter.samples(path, "optilab_probe_success") == [({}, 1.0)]
    sshd.stop()
    assert exporter.samples(path, "optilab_probe_error_info") == [({"reason": "refused"}, 1.0)]
    sshd.start()
    assert exporter.samples(path, "optilab_probe_success") == [({}, 1.0)]
    wait_for(
        lambda: exporter.metric("optilab_exporter_events_published_total") == 2,
        timeout=10,
        what="two confirmed health events",
    )
    events = [(key, body["from"], body["to"], body["reason"], body["instance"]) for key, body, _ in queue()]
    instance = f"127.0.0.1:{sshd.port}"
    assert events == [
        ("health", "healthy", "degraded", "refused", instance),
        ("health", "degraded", "healthy", None, instance),
    ]


def test_scan_publishes_discoveries_in_one_shot(
    amqp_url: str, amqp_names: AmqpNames, queue: Callable[[], list[tuple[str, Any, int]]]
) -> None:
    found = [
        discovery_event(f"127.0.1.{n}:22", f"pc-{n:02d}", f"127.0.1.{n}", "physics", "debian", "12") for n in (1, 2, 3)
    ]
    assert publish_discoveries(settings(amqp_url, amqp_names), found, flush_timeout=10) == (3, 0)
    assert [body for _, body, _ in queue()] == found


def test_close_counts_what_could_not_be_flushed(amqp_names: AmqpNames) -> None:
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    published, dropped = publish_discoveries(settings(url, amqp_names), [{"type": "discovery"}] * 2, flush_timeout=0.3)
    assert (published, dropped) == (0, 2)


def test_with_the_broker_down_scrapes_go_on_and_lost_events_are_counted(
    sshd: Sshd, exporter_factory: Callable[..., Exporter], amqp_names: AmqpNames
) -> None:
    dead_ports = [free_port(), free_port()]
    config = inventory(
        sshd,
        rabbitmq={
            "url": f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F",
            "exchange": amqp_names.exchange,
            "buffer": 1,
        },
        health={"degraded_interval": "0s", "offline_interval": "0s", "dead_interval": "0s"},
    )
    config["departments"]["physics"]["hosts"] += [f"127.0.0.1:{port}" for port in dead_ports]
    exporter = exporter_factory(config)
    for _ in range(6):  # each dead host: healthy -> degraded -> offline -> dead, 3 events each
        errors = exporter.samples("/probe?all=1", "optilab_probe_error_info")
        reasons = sorted(labels["reason"] for labels, _ in errors)
        assert reasons == ["refused", "refused"]
    assert exporter.metric("optilab_exporter_health_transitions_total") == 6
    assert exporter.metric("optilab_exporter_hosts", state="dead") == 2
    assert exporter.metric("optilab_exporter_hosts", state="healthy") == 1
    # with no broker the publisher takes nothing from the buffer: one event waits, five were dropped
    assert exporter.metric("optilab_exporter_events_dropped_total", reason="full") == 5
    assert exporter.metric("optilab_exporter_events_queued") == 1
    assert exporter.metric("optilab_exporter_events_published_total") == 0
    assert exporter.metric("optilab_exporter_events_connected") == 0

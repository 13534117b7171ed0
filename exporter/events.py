"""Health transitions and discovery results, published to RabbitMQ without ever slowing a scrape.

Scrapes only ``put_nowait`` into a bounded queue (:meth:`EventPublisher.publish` never blocks and
never fails); one publisher greenlet drains it over pika's ``GeventConnection`` (the adapter that
shares gevent's hub, so no thread and no blocking socket). Delivery is at-least-once from the
buffer on: a durable topic exchange, persistent JSON messages, publisher confirms, ``mandatory``
so an unroutable message is noticed, and a message whose confirm did not arrive is sent again
after a reconnect. When the broker is away, the publisher reconnects with jittered exponential
backoff while the queue fills; beyond its capacity, new events are dropped and counted
(``optilab_exporter_events_dropped_total``) — losing a health event is better than stalling a scrape.

Bodies are built by toolkit/contract.py (docs/interfaces.md: ``type`` and ``version`` always present).
pika is imported by the publisher when it first connects: an exporter without a ``rabbitmq`` section
never loads it (~2.5 MB of RSS).
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import gevent
import gevent.event
import gevent.queue

from optilab.exporter.config import RabbitSettings
from optilab.exporter.health import Transition
from optilab.exporter.targets import HostLabels
from optilab.toolkit.contract import discovery_body, health_body

if TYPE_CHECKING:
    from pika.adapters.gevent_connection import GeventConnection

log = logging.getLogger("optilab.exporter.events")


def health_event(transition: Transition, labels: HostLabels, at: str | None = None) -> dict[str, Any]:
    """The ``health`` body (toolkit/contract.py) for one transition of a host."""
    return health_body(
        transition.target,
        labels.hostname,
        labels.ip,
        labels.department,
        transition.before,
        transition.after,
        transition.reason,
        at,
    )


#: What ``optilab-exporter scan`` publishes for each host it found (routing key ``discovery``).
discovery_event = discovery_body


def publish_discoveries(
    settings: RabbitSettings, events: Iterable[dict[str, Any]], flush_timeout: float = 10.0
) -> tuple[int, int]:
    """One-shot publishing for ``optilab-exporter scan`` (a gevent-patched CLI run): queue every
    ``discovery_event``, wait up to ``flush_timeout`` for the broker's confirms, and return
    ``(published, dropped)``."""
    publisher = EventPublisher(settings, max_backoff=2.0).start()
    for body in events:
        publisher.publish("discovery", body)
    publisher.close(flush_timeout)
    return publisher.published, sum(publisher.dropped.values())


class _BrokenError(Exception):
    """The connection or channel went away; reconnect."""


class EventPublisher:
    def __init__(self, settings: RabbitSettings, connect_timeout: float = 5.0, max_backoff: float = 30.0) -> None:
        self.settings = settings
        self.connect_timeout, self.max_backoff = connect_timeout, max_backoff
        self._queue: gevent.queue.Queue[tuple[str, bytes]] = gevent.queue.Queue(maxsize=settings.buffer)
        self.published = 0
        self.dropped: Counter[str] = Counter()  # by reason: full, unroutable, nack, shutdown
        self.connected = False
        self._connection: GeventConnection | None = None
        self._channel: Any = None
        self._confirm: gevent.event.AsyncResult | None = None
        self._returned = False
        self._greenlet: gevent.Greenlet | None = None
        self._inflight: tuple[str, bytes] | None = None  # taken from the queue, not yet confirmed
        self._stopping = False

    # -- called from scrapes --------------------------------------------------------------------

    def publish(self, routing_key: str, body: dict[str, Any]) -> bool:
        """Queue one event; False (and counted) when the buffer is full. Never blocks."""
        try:
            self._queue.put_nowait((routing_key, json.dumps(body).encode()))
        except gevent.queue.Full:
            self.dropped["full"] += 1
            log.warning("event buffer full (%d); dropped a %s event", self.settings.buffer, routing_key)
            return False
        return True

    def pending(self) -> int:
        return self._queue.qsize()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> EventPublisher:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)
        return self

    def close(self, flush_timeout: float = 5.0) -> None:
        """Give queued events up to ``flush_timeout`` to go out, then stop; what is left is dropped."""
        for _ in range(int(flush_timeout / 0.05)):
            if self._queue.empty() and self._inflight is None:
                break
            gevent.sleep(0.05)
        self._stopping = True
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=2)
            self._greenlet = None
        self._disconnect()
        left = self._queue.qsize() + (self._inflight is not None)
        self._inflight = None
        if left:
            self.dropped["shutdown"] += left
            log.warning("stopped with %d unpublished event(s)", left)

    # -- the publisher greenlet -----------------------------------------------------------------

    def _run(self) -> None:
        import pika.exceptions

        backoff = 0.5
        while not self._stopping:
            try:
                channel = self._open()
                backoff = 0.5
                while not self._stopping:
                    if self._inflight is None:
                        try:
                            self._inflight = self._queue.get(timeout=0.5)
                        except gevent.queue.Empty:
                            pass
                    if not self.connected:
                        raise _BrokenError("connection closed")
                    if self._inflight is not None:
                        self._send(channel, *self._inflight)  # on failure it stays and is sent again
                        self._inflight = None
            except (_BrokenError, pika.exceptions.AMQPError, OSError, gevent.Timeout) as exc:
                self.connected = False
                self._disconnect()
                delay = backoff * (0.5 + random.random())
                log.warning(
                    "RabbitMQ publisher: %s; retrying in %.1fs (%d queued)", _describe(exc), delay, self._queue.qsize()
                )
                gevent.sleep(delay)
                backoff = min(self.max_backoff, backoff * 2)

    def _open(self) -> Any:
        """Connect, open a confirm-mode channel, declare the exchange; returns the channel."""
        import pika
        from pika.adapters.gevent_connection import GeventConnection

        opened = gevent.event.AsyncResult()
        parameters = pika.URLParameters(self.settings.url.reveal())
        parameters.socket_timeout = self.connect_timeout
        self._connection = GeventConnection(
            parameters,
            on_open_callback=opened.set,
            on_open_error_callback=lambda _c, exc: opened.set_exception(_BrokenError(_describe(exc))),
            on_close_callback=self._on_closed,
        )
        opened.get(timeout=self.connect_timeout)
        ready = gevent.event.AsyncResult()
        self._connection.channel(on_open_callback=ready.set)
        channel = self._channel = ready.get(timeout=self.connect_timeout)
        channel.add_on_close_callback(self._on_closed)
        channel.add_on_return_callback(self._on_return)
        declared = gevent.event.AsyncResult()
        channel.exchange_declare(self.settings.exchange, exchange_type="topic", durable=True, callback=declared.set)
        declared.get(timeout=self.connect_timeout)
        confirming = gevent.event.AsyncResult()
        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=confirming.set)
        confirming.get(timeout=self.connect_timeout)
        self.connected = True
        log.info("RabbitMQ publisher connected; exchange %s", self.settings.exchange)
        return channel

    def _send(self, channel: Any, routing_key: str, body: bytes) -> None:
        import pika

        self._confirm, self._returned = gevent.event.AsyncResult(), False
        try:
            channel.basic_publish(
                self.settings.exchange,
                routing_key,
                body,
                mandatory=True,
                properties=pika.BasicProperties(
                    content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent
                ),
            )
            acked = self._confirm.get(timeout=self.connect_timeout)
        finally:
            self._confirm = None
        if not acked:
            self.dropped["nack"] += 1
            log.error("broker refused (nack) a %s event", routing_key)
        elif self._returned:
            self.dropped["unroutable"] += 1
            log.error(
                "a %s event reached no queue (is the consumer's queue bound to %s?)",
                routing_key,
                self.settings.exchange,
            )
        else:
            self.published += 1

    # -- pika callbacks (run in the hub) --------------------------------------------------------

    def _on_confirm(self, frame: Any) -> None:
        import pika.spec

        if self._confirm is not None and not self._confirm.ready():
            self._confirm.set(isinstance(frame.method, pika.spec.Basic.Ack))

    def _on_return(self, _channel: Any, _method: Any, _properties: Any, _body: bytes) -> None:
        self._returned = True

    def _on_closed(self, what: Any, reason: Exception) -> None:
        if what is not self._connection and what is not self._channel:
            return  # a late callback from a connection already replaced
        self.connected = False
        if self._confirm is not None and not self._confirm.ready():
            self._confirm.set_exception(_BrokenError(_describe(reason)))

    def _disconnect(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and not (connection.is_closed or connection.is_closing):
            try:
                connection.close()
            except Exception as exc:  # already half-closed; nothing to save
                log.debug("closing RabbitMQ connection: %r", exc)


def _describe(exc: BaseException) -> str:
    """Exception text without the broker URL (which may carry a password)."""
    return f"{type(exc).__name__}: {exc}"[:200]

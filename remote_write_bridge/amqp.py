"""RabbitMQ side of OptiLab events: names, topology, and a confirming publisher.

The webhook (publisher) and the consumer both call :func:`declare` so either may start first
against an empty broker, and both agree on the queue arguments (RabbitMQ refuses a redeclare with
different ones). Event bodies are the JSON documents of docs/interfaces.md, built and validated
by toolkit/contract.py (``parse_event`` decides whether a body can ever be stored, so the consumer
can dead-letter the rest instead of retrying them forever).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from optilab.remote_write_bridge.outage import Outage, brief
from optilab.toolkit.contract import DEFAULT_AMQP_PREFIX

# Event bodies (building and validating them) are toolkit/contract.py's; this module moves them.

log = logging.getLogger("optilab.bridge.amqp")
# Shared by every Publisher of the process (one per webhook thread): one line per outage.
PUBLISHER_BROKER = Outage(log, "publisher: broker")

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"

# Errors after which a fresh connection may succeed (broker restarted, connection dropped).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    ConnectionError,
    OSError,
)


@dataclass(frozen=True)
class Topology:
    """Exchange and queue names; tests and parallel deployments use their own prefix."""

    exchange: str = f"{DEFAULT_AMQP_PREFIX}.events"
    queue: str = f"{DEFAULT_AMQP_PREFIX}.events"
    dead_exchange: str = f"{DEFAULT_AMQP_PREFIX}.dlx"
    dead_queue: str = f"{DEFAULT_AMQP_PREFIX}.dead"

    @classmethod
    def from_prefix(cls, prefix: str) -> Topology:
        return cls(f"{prefix}.events", f"{prefix}.events", f"{prefix}.dlx", f"{prefix}.dead")

    @classmethod
    def from_env(cls, environ: Mapping[str, Any] | None = None) -> Topology:
        """``OPTILAB_AMQP_PREFIX`` (default ``optilab``) names all four, as in docs/interfaces.md."""
        environ = os.environ if environ is None else environ
        return cls.from_prefix(str(environ.get("OPTILAB_AMQP_PREFIX") or DEFAULT_AMQP_PREFIX))


def amqp_url_from_env(environ: Mapping[str, Any] | None = None) -> str:
    environ = os.environ if environ is None else environ
    return str(environ.get("OPTILAB_AMQP_URL") or DEFAULT_URL)


def declare(channel: BlockingChannel, topology: Topology) -> None:
    """Durable topic exchange and queue (bound ``#``) that dead-letter into ``dead_queue``."""
    channel.exchange_declare(topology.dead_exchange, exchange_type="topic", durable=True)
    channel.queue_declare(topology.dead_queue, durable=True)
    channel.queue_bind(topology.dead_queue, topology.dead_exchange, routing_key="#")
    channel.exchange_declare(topology.exchange, exchange_type="topic", durable=True)
    channel.queue_declare(topology.queue, durable=True, arguments={"x-dead-letter-exchange": topology.dead_exchange})
    channel.queue_bind(topology.queue, topology.exchange, routing_key="#")


def quiet_pika() -> None:
    """pika logs every connection step, and each failed attempt as a traceback; OptiLab's callers
    log one line per outage instead (outage.py)."""
    logging.getLogger("pika").setLevel(logging.CRITICAL)


def connect(url: str, heartbeat: int | None = None) -> pika.BlockingConnection:
    """One bounded connection attempt; callers own the retry loop and its backoff."""
    quiet_pika()
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.blocked_connection_timeout = 30
    if heartbeat is not None:
        params.heartbeat = heartbeat
    return pika.BlockingConnection(params)


class PublishError(RuntimeError):
    """The broker did not confirm every message; the caller must not report success."""


class Publisher:
    """A confirming publisher over one BlockingConnection; use it from one thread only.

    Each ``basic_publish`` waits for the broker's confirm and is ``mandatory``, so a return without
    an exception means RabbitMQ has the message on disk in a queue. A dropped connection is
    reopened once per batch and the whole batch re-sent: duplicates are harmless because the
    consumer stores idempotently, losses are not.
    """

    def __init__(self, url: str, topology: Topology) -> None:
        self.url, self.topology = url, topology
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def _open(self) -> BlockingChannel:
        if self._channel is None or not self._channel.is_open:
            self.close()
            self._connection = connect(self.url)
            channel = self._connection.channel()
            declare(channel, self.topology)
            channel.confirm_delivery()
            self._channel = channel
        return self._channel

    def publish(self, messages: Iterable[tuple[str, bytes]], attempts: int = 2) -> int:
        """Publish ``(routing_key, body)`` pairs; returns how many, or raises :class:`PublishError`."""
        batch = list(messages)
        for attempt in range(1, attempts + 1):
            try:
                channel = self._open()
                for routing_key, body in batch:
                    channel.basic_publish(
                        self.topology.exchange,
                        routing_key,
                        body,
                        mandatory=True,
                        properties=pika.BasicProperties(
                            content_type="application/json",
                            delivery_mode=pika.DeliveryMode.Persistent,
                            message_id=uuid.uuid4().hex,
                            type=routing_key.split(".")[0],
                        ),
                    )
                PUBLISHER_BROKER.ok()
                return len(batch)
            except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                self.close()
                error: BaseException = exc
                log.warning("publish attempt %d/%d not confirmed: %s", attempt, attempts, brief(exc))
            except CONNECTION_ERRORS as exc:
                self.close()
                error = exc
                PUBLISHER_BROKER.failed(exc)  # one line when the broker goes, not one per attempt
        raise PublishError(f"broker did not confirm {len(batch)} message(s): {brief(error)}")

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except CONNECTION_ERRORS:
                pass  # already gone; nothing to release

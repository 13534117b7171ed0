"""RabbitMQ side of OptiLab events: names, topology, wire format, and a confirming publisher.

The webhook (publisher) and the consumer both call :func:`declare` so either may start first
against an empty broker, and both agree on the queue arguments (RabbitMQ refuses a redeclare with
different ones). Event bodies are the JSON documents of docs/interfaces.md; :func:`parse_event`
is the one place that decides whether a body can ever be stored, so the consumer can dead-letter
the rest instead of retrying them forever.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from remote_write_bridge.outage import Outage, brief

log = logging.getLogger(__name__)
# Shared by every Publisher of the process (one per webhook thread): one line per outage.
PUBLISHER_BROKER = Outage(log, "publisher: broker")

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
EVENT_VERSION = 1
ALERT_STATUSES = ("firing", "resolved")
HEALTH_STATES = ("healthy", "degraded", "offline", "dead")

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

    exchange: str = "optilab.events"
    queue: str = "optilab.events"
    dead_exchange: str = "optilab.dlx"
    dead_queue: str = "optilab.dead"

    @classmethod
    def from_prefix(cls, prefix: str) -> Topology:
        return cls(f"{prefix}.events", f"{prefix}.events", f"{prefix}.dlx", f"{prefix}.dead")

    @classmethod
    def from_env(cls, environ: Mapping[str, Any] | None = None) -> Topology:
        """``OPTILAB_AMQP_PREFIX`` (default ``optilab``) names all four, as in docs/interfaces.md."""
        environ = os.environ if environ is None else environ
        return cls.from_prefix(str(environ.get("OPTILAB_AMQP_PREFIX") or "optilab"))


def amqp_url_from_env(environ: Mapping[str, Any] | None = None) -> str:
    environ = os.environ if environ is None else environ
    return str(environ.get("OPTILAB_AMQP_URL") or DEFAULT_URL)


def usable_url(url: str) -> bool:
    """Whether pika can connect with ``url``; checked at start, as pika fails on it only at connect.
    Callers must not print the URL: it carries the broker password."""
    if not url.startswith(("amqp://", "amqps://")):
        return False
    try:
        pika.URLParameters(url)
    except (ValueError, IndexError):
        return False
    return True


def declare(channel: BlockingChannel, topology: Topology) -> None:
    """Durable topic exchange and queue (bound ``#``) that dead-letter into ``dead_queue``."""
    channel.exchange_declare(topology.dead_exchange, exchange_type="topic", durable=True)
    channel.queue_declare(topology.dead_queue, durable=True)
    channel.queue_bind(topology.dead_queue, topology.dead_exchange, routing_key="#")
    channel.exchange_declare(topology.exchange, exchange_type="topic", durable=True)
    channel.queue_declare(topology.queue, durable=True,
                          arguments={"x-dead-letter-exchange": topology.dead_exchange})
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


class InvalidEventError(ValueError):
    """A body that can never be stored, whatever the retries; the message says why."""


def alert_event(alert: dict[str, Any], receiver: str, external_url: str) -> tuple[str, bytes]:
    """Routing key and body for one Alertmanager alert (already validated)."""
    body = {"type": "alert", "version": EVENT_VERSION, "receiver": receiver,
            "externalURL": external_url, "alert": alert}
    return f"alert.{alert['status']}", json.dumps(body, separators=(",", ":")).encode()


def parse_time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidEventError(f"{field}: expected an ISO-8601 string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEventError(f"{field}: not an ISO-8601 time: {value[:64]!r}") from None
    if parsed.tzinfo is None:
        raise InvalidEventError(f"{field}: time without a time zone: {value[:64]!r}")
    return parsed


def _text(doc: Mapping[str, Any], field: str, prefix: str = "", required: bool = True) -> str | None:
    value = doc.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise InvalidEventError(f"{prefix}{field}: expected a non-empty string")
    return value


def _string_map(doc: Mapping[str, Any], field: str, prefix: str = "") -> dict[str, str]:
    value = doc.get(field, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidEventError(f"{prefix}{field}: expected an object of strings")
    return value


def check_alert(alert: Any, prefix: str = "alert.") -> dict[str, Any]:
    """Validate one Alertmanager v4 alert; the webhook answers 400 and the consumer dead-letters."""
    if not isinstance(alert, dict):
        raise InvalidEventError(f"{prefix[:-1]}: expected an object")
    status = _text(alert, "status", prefix)
    if status not in ALERT_STATUSES:
        raise InvalidEventError(f"{prefix}status: expected firing or resolved, got {status!r}")
    _text(alert, "fingerprint", prefix)
    labels = _string_map(alert, "labels", prefix)
    if not labels.get("alertname"):
        raise InvalidEventError(f"{prefix}labels.alertname: missing")
    _string_map(alert, "annotations", prefix)
    parse_time(alert.get("startsAt"), f"{prefix}startsAt")
    if status == "resolved":
        parse_time(alert.get("endsAt"), f"{prefix}endsAt")
    return alert


def parse_event(body: bytes) -> dict[str, Any]:
    """Decode and validate an event body (docs/interfaces.md), or raise :class:`InvalidEventError`."""
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEventError(f"body is not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise InvalidEventError("body: expected a JSON object")
    if event.get("version") != EVENT_VERSION:
        raise InvalidEventError(f"version: expected {EVENT_VERSION}, got {event.get('version')!r}")
    kind = event.get("type")
    if kind == "alert":
        check_alert(event.get("alert"))
    elif kind in ("health", "discovery"):
        _text(event, "instance")
        parse_time(event.get("at"), "at")
        for field in ("hostname", "ip", "department", "os_type", "os_version", "from", "reason"):
            _text(event, field, required=False)
        if kind == "health" and event.get("to") not in HEALTH_STATES:
            raise InvalidEventError(f"to: expected one of {'|'.join(HEALTH_STATES)}, got {event.get('to')!r}")
    else:
        raise InvalidEventError(f"type: unknown event type {kind!r}")
    return event


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
                        self.topology.exchange, routing_key, body, mandatory=True,
                        properties=pika.BasicProperties(
                            content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent,
                            message_id=uuid.uuid4().hex, type=routing_key.split(".")[0]))
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

"""Event consumer: RabbitMQ ``optilab.events`` → PostgreSQL (alerts, systems, status_history).

``optilab-bridge consume --dsn DSN --amqp URL [--workers N] [--prefix P]`` runs N worker threads,
each with its own BlockingConnection (pika is not thread-safe) and its own database connection.

Delivery rules, so that nothing is lost and nothing doubled:
- a message is acked only after its transaction committed; every write is idempotent (alerts by
  ``(fingerprint, starts_at)``, history rows by ``(system, time, state)``), so a redelivery after
  a crash between commit and ack changes nothing;
- a message that can never be stored (bad JSON, unknown type, missing field, value the schema
  refuses) is re-published to the dead-letter exchange with the reason in the
  ``x-optilab-error`` header, then acked; if that fails it is rejected (RabbitMQ dead-letters it
  with ``x-death``);
- a database outage nacks the message back to the queue, stops consuming (prefetched messages
  go back too) and retries the connection with backoff; a broker outage does the same on the
  broker side;
- SIGTERM/SIGINT: the in-flight message is finished, the rest are returned to the queue.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

import pika
import pika.exceptions
import psycopg
from pika.adapters.blocking_connection import BlockingChannel

from optilab.remote_write_bridge import event_store
from optilab.remote_write_bridge.amqp import (
    CONNECTION_ERRORS,
    Topology,
    amqp_url_from_env,
    connect,
    declare,
    quiet_pika,
)
from optilab.remote_write_bridge.config import session_settings
from optilab.remote_write_bridge.dberrors import classify
from optilab.remote_write_bridge.outage import Outage
from optilab.toolkit import flags
from optilab.toolkit.backends import DatabaseUnavailableError, dsn_problem, usable_amqp_url
from optilab.toolkit.contract import InvalidEventError, parse_event

log = logging.getLogger("optilab.bridge.consumer")

PREFETCH = 10
BACKOFF_START, BACKOFF_MAX = 0.5, 10.0
# Errors after which the same message may succeed on a fresh database connection.
DB_TRANSIENT = (psycopg.OperationalError, psycopg.InterfaceError)


class Worker:
    """One consuming thread: its own broker connection, database connection and backoff."""

    def __init__(
        self, name: str, dsn: str, url: str, topology: Topology, stop: threading.Event, prefetch: int = PREFETCH
    ) -> None:
        self.name, self.dsn, self.url, self.topology, self.stop = name, dsn, url, topology, stop
        self.prefetch = prefetch
        self._db: psycopg.Connection | None = None
        self.stored = self.dead_lettered = self.retried = 0
        self.broker, self.database = Outage(log, f"{name}: broker"), Outage(log, f"{name}: database")

    def run(self) -> None:
        """Consume until ``stop`` is set; every failure path waits (bounded backoff) and reconnects."""
        delay = BACKOFF_START
        while not self.stop.is_set():
            handled = self.stored + self.dead_lettered
            try:
                self._ensure_db()
                self._consume()
            except DatabaseUnavailableError as exc:
                self.database.failed(exc)  # one line per outage, not per backoff round
            except CONNECTION_ERRORS as exc:
                self.broker.failed(exc)
            except Exception:
                # A bug must not kill the worker silently: log it, back off, start over.
                log.exception("%s: unexpected error; retrying in %.1fs", self.name, delay)
                self._close_db()
            if self.stored + self.dead_lettered > handled:
                delay = BACKOFF_START  # that session worked: a new outage starts the backoff afresh
            if not self.stop.is_set():
                self.stop.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX)
        self._close_db()
        log.info(
            "%s: stopped (stored %d, dead-lettered %d, requeued %d)",
            self.name,
            self.stored,
            self.dead_lettered,
            self.retried,
        )

    def _ensure_db(self) -> None:
        if self._db is None or self._db.closed:
            try:
                # autocommit: each event's `transaction()` block is the whole transaction
                self._db = psycopg.connect(
                    self.dsn, connect_timeout=5, autocommit=True, application_name="optilab-consumer"
                )
                # bounded statements: a locked table makes the event go back to the queue in
                # seconds (nack, backoff, retry) instead of holding the worker indefinitely
                for name, value in session_settings().items():
                    self._db.execute("SELECT set_config(%s, %s, false)", (name, value))
            except DB_TRANSIENT as exc:
                raise DatabaseUnavailableError(" ".join(str(exc).split())) from exc

    def _close_db(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except DB_TRANSIENT:
                pass  # the server is gone already
            self._db = None

    def _consume(self) -> None:
        connection = connect(self.url)
        try:
            channel = connection.channel()
            declare(channel, self.topology)
            channel.basic_qos(prefetch_count=self.prefetch)
            self.broker.ok()
            dead_channel = connection.channel()
            dead_channel.confirm_delivery()
            for method, properties, body in channel.consume(self.topology.queue, inactivity_timeout=0.5):
                if method is not None:
                    self._handle(channel, dead_channel, method, properties, body)
                if self.stop.is_set():
                    break
            channel.cancel()  # unacked prefetched messages go back to the queue
        finally:
            if connection.is_open:
                try:
                    connection.close()
                except CONNECTION_ERRORS:
                    pass  # broker gone mid-close; its unacked messages are requeued by the broker

    def _handle(
        self,
        channel: BlockingChannel,
        dead_channel: BlockingChannel,
        method: pika.spec.Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        try:
            event = parse_event(body)
            self._store(event)
        except InvalidEventError as exc:
            self._dead_letter(channel, dead_channel, method, properties, body, str(exc))
            return
        except DatabaseUnavailableError:
            channel.basic_nack(method.delivery_tag, requeue=True)
            self.retried += 1
            raise
        channel.basic_ack(method.delivery_tag)
        self.stored += 1
        self.database.ok()

    def _store(self, event: dict[str, Any]) -> None:
        """One transaction per event; schema refusals are poison, connection losses are transient."""
        assert self._db is not None
        try:
            with self._db.transaction():
                event_store.store_event(self._db, event)
        except psycopg.Error as exc:
            # one classification for bridge and consumer (dberrors.py): a value the schema refuses
            # for good is poison; a lost connection, a lock or statement timeout, a schema not
            # migrated yet are transient, so the message is kept
            if classify(exc).transient:
                self._close_db()
                raise DatabaseUnavailableError(" ".join(str(exc).split())) from exc
            raise InvalidEventError(f"database refused the event: {exc.diag.message_primary or exc}") from exc

    def _dead_letter(
        self,
        channel: BlockingChannel,
        dead_channel: BlockingChannel,
        method: pika.spec.Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
        reason: str,
    ) -> None:
        log.error("%s: dead-lettering message %s: %s", self.name, properties.message_id, reason)
        headers = {
            **(properties.headers or {}),
            "x-optilab-error": reason[:500],
            "x-optilab-routing-key": method.routing_key,
        }
        try:
            dead_channel.basic_publish(
                self.topology.dead_exchange,
                method.routing_key,
                body,
                mandatory=True,
                properties=pika.BasicProperties(
                    content_type=properties.content_type,
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=properties.message_id,
                    type=properties.type,
                    headers=headers,
                ),
            )
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError):
            channel.basic_reject(method.delivery_tag, requeue=False)  # x-death carries "rejected"
        else:
            channel.basic_ack(method.delivery_tag)
        self.dead_lettered += 1


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="optilab-bridge consume", description="Store OptiLab events from RabbitMQ in PostgreSQL."
    )
    parser.add_argument("--dsn", required=True, help="PostgreSQL DSN (schema from optilab-migrate)")
    parser.add_argument("--amqp", default=None, help="AMQP URL (default $OPTILAB_AMQP_URL or local guest)")
    parser.add_argument(
        "--prefix", default=None, help="exchange/queue name prefix (default $OPTILAB_AMQP_PREFIX or 'optilab')"
    )
    parser.add_argument("--workers", type=int, default=2, help="consumer threads (default 2)")
    parser.add_argument("--prefetch", type=int, default=PREFETCH, help="unacked messages per worker")
    flags.add_log_flags(parser)
    flags.add_version(parser)
    args = parser.parse_args(argv)
    # read once here (flags over the environment) and checked together: one error lists every problem
    args.amqp = args.amqp or amqp_url_from_env()
    args.topology = Topology.from_prefix(args.prefix) if args.prefix else Topology.from_env()
    problems = []
    if problem := dsn_problem(args.dsn):  # the DSN itself is not shown (a password?)
        problems.append(f"dsn: {problem}")
    if not usable_amqp_url(args.amqp):  # else each worker would retry it forever; the URL is not shown
        problems.append("--amqp/OPTILAB_AMQP_URL: not an amqp:// or amqps:// URL")
    if not 1 <= args.workers <= 64:
        problems.append("--workers must be between 1 and 64")
    if not 1 <= args.prefetch <= 1000:
        problems.append("--prefetch must be between 1 and 1000")
    if problems:
        parser.error("; ".join(problems))
    return args


def main(argv: list[str]) -> int:
    """Run the workers until SIGTERM/SIGINT; exit 0 after every worker finished its message."""
    args = parse_args(argv)
    flags.setup_logging(args)
    quiet_pika()  # the workers log one line per outage instead of pika's tracebacks
    topology, url = args.topology, args.amqp
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    workers = [Worker(f"worker-{i}", args.dsn, url, topology, stop, args.prefetch) for i in range(args.workers)]
    threads = [threading.Thread(target=w.run, name=w.name) for w in workers]
    for thread in threads:
        thread.start()
    log.info("consuming %s with %d worker(s)", topology.queue, len(workers))
    while not stop.wait(1.0):
        if not any(thread.is_alive() for thread in threads):
            log.error("all workers died")
            return 1
    for thread in threads:
        thread.join(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

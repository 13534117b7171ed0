"""The event consumer as a subprocess, and what the tests publish to it and read back from the
database: shared by the consumer, end-to-end, database-role and timeout tests."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import psycopg
import pytest

from optilab.remote_write_bridge.amqp import Publisher, Topology
from optilab.toolkit.contract import EVENT_VERSION
from tests.fixtures.procs import Service, wait_for
from tests.fixtures.rabbitmq import AmqpNames

ConsumerFactory = Callable[..., Service]


@pytest.fixture
def start_consumer(tmp_path: Path) -> Iterator[ConsumerFactory]:
    """``start_consumer(dsn, url, names, workers=2)``: a consumer process, ready when it consumes."""
    started: list[Service] = []

    def start(dsn: str, url: str, names: AmqpNames, workers: int = 2) -> Service:
        service = Service(
            [
                sys.executable,
                "-m",
                "optilab.remote_write_bridge.consumer",
                "--dsn",
                dsn,
                "--amqp",
                url,
                "--prefix",
                names.prefix,
                "--workers",
                str(workers),
            ],
            tmp_path / f"consumer{len(started)}.log",
        )
        started.append(service)
        expected = consumers(url, names.queue) + workers
        return service.wait_ready(lambda: consumers(url, names.queue) >= expected)

    yield start
    for service in started:
        service.stop()


def consumers(url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.consumer_count
    except pika.exceptions.ChannelClosedByBroker:
        return 0  # not declared yet
    finally:
        if connection.is_open:
            connection.close()


def publish(url: str, names: AmqpNames, messages: list[tuple[str, bytes]]) -> None:
    publisher = Publisher(url, Topology.from_prefix(names.prefix))
    try:
        assert publisher.publish(messages) == len(messages)
    finally:
        publisher.close()


def queued(url: str, names: AmqpNames) -> int:
    """Messages ready in the queue (unacked ones are not counted)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return connection.channel().queue_declare(names.queue, passive=True).method.message_count
    finally:
        connection.close()


def finish(consumer: Service, url: str, names: AmqpNames, dsn: str) -> None:
    """Prove a one-worker consumer handled every message published so far, then stop it.

    A single worker stores in queue order, so once a sentinel published last is in the database,
    everything before it was handled (acked or dead-lettered). The sentinel row is removed again.
    """
    sentinel = "sentinel.invalid:0"
    publish(url, names, [event("discovery", instance=sentinel, at="2026-11-28T00:00:00Z")])
    wait_for(
        lambda: rows(dsn, "SELECT count(*) FROM systems WHERE instance = %s", (sentinel,)) == [(1,)],
        what="the sentinel stored after every earlier message",
    )
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM systems WHERE instance = %s", (sentinel,))
    consumer.signal(signal.SIGTERM)
    assert consumer.process.wait(30) == 0, consumer.log()
    assert queued(url, names) == 0


def event(kind: str, **fields: Any) -> tuple[str, bytes]:
    return kind, json.dumps({"type": kind, "version": EVENT_VERSION, **fields}).encode()


def rows(dsn: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def wait_rows(dsn: str, sql: str, expected: Any, timeout: float = 30) -> None:
    wait_for(lambda: rows(dsn, sql) == expected, timeout=timeout, what=f"{sql} == {expected!r}")

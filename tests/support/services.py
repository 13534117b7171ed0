"""Services as child processes for the tests that start them by their console scripts: the bridge, its
alert consumer (``optilab-bridge consume``), and what the tests post to the bridge's webhook."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.procs import Service, free_port, port_open
from tests.fixtures.rabbitmq import AmqpNames
from tests.support.consumer import consumers

BRIDGE = str(Path(sys.executable).parent / "optilab-bridge")
ServiceFactory = Callable[..., Service]


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """``services(name, argv, env, ready)``: child processes stopped after the test."""
    started: list[Service] = []

    def start(name: str, argv: list[str], env: dict[str, str], ready: Callable[[], bool]) -> Service:
        service = Service(argv, tmp_path / f"{name}.log", env=env)
        started.append(service)
        return service.wait_ready(ready, timeout=30)

    yield start
    for service in reversed(started):
        service.stop()


def start_bridge(services: Callable[..., Service], dsn: str, url: str, names: AmqpNames) -> str:
    port = free_port()
    env = {"OPTILAB_AMQP_URL": url, "OPTILAB_AMQP_PREFIX": names.prefix}
    services(
        "bridge", [BRIDGE, "--listen", f"127.0.0.1:{port}", "--dsn", dsn], env, lambda: port_open("127.0.0.1", port)
    )
    return f"http://127.0.0.1:{port}"


def start_bridge_consumer(
    services: Callable[..., Service], dsn: str, url: str, names: AmqpNames, workers: int = 2
) -> Service:
    return services(
        "consumer",
        [BRIDGE, "consume", "--dsn", dsn, "--amqp", url, "--prefix", names.prefix, "--workers", str(workers)],
        {},
        lambda: consumers(url, names.queue) >= workers,
    )


def full_log(service: Service) -> str:
    return service.log_path.read_text(errors="replace")


def post_alerts(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(  # noqa: S310 - loopback bridge
        url + "/api/v1/alerts",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback bridge
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def post_until_accepted(url: str, body: dict[str, Any], attempts: int = 100) -> int:
    """What Alertmanager does: retry on 5xx (bounded); returns the number of refusals seen."""
    for attempt in range(attempts):
        if post_alerts(url, body) == 200:
            return attempt
        time.sleep(0.2)
    raise AssertionError(f"webhook never accepted after {attempts} attempts")

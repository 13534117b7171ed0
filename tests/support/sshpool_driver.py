"""Drives one :class:`~exporter.sshpool.SshPool` scenario in a gevent-patched interpreter.

tests/exporter/test_sshpool.py runs ``python -m tests.support.sshpool_driver JSON`` (pytest's own process is
not patched, and paramiko's transports must be greenlets). The JSON names the scenario, sshd's
port, user, key and known_hosts; the driver prints ``RESTART`` when the test must restart sshd (and
waits for a line on stdin), then one ``RESULT {json}`` line.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402 - after the patch, on purpose
import socket  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import paramiko  # noqa: E402

from optilab.exporter.config import HealthSettings, HostEntry, PoolSettings, SshSettings  # noqa: E402
from optilab.exporter.health import HealthBook  # noqa: E402
from optilab.exporter.probe import Prober  # noqa: E402
from optilab.exporter.ssherror import SshError  # noqa: E402
from optilab.exporter.sshpool import SshPool  # noqa: E402
from optilab.exporter.targets import Target  # noqa: E402


class Driver:
    def __init__(self, args: dict[str, Any]) -> None:
        self.args = args
        ssh = SshSettings(
            user=args["user"],
            key_file=Path(args["key_file"]),
            known_hosts=Path(args["known_hosts"]),
            host_key_policy=args.get("policy", "strict"),
            connect_timeout=5,
            command_timeout=args.get("command_timeout", 10),
        )
        self.pool = SshPool(ssh, PoolSettings(**args.get("pool", {})))
        self.target = Target("127.0.0.1", args["port"])
        self.out: dict[str, Any] = {}

    def run(self, command: str = "echo ok", timeout: float = 10.0, host: Target | None = None) -> str:
        try:
            return self.pool.run(host or self.target, command, time.monotonic() + timeout)
        except SshError as exc:
            return "error:" + exc.reason

    def runs(self, count: int) -> list[Any]:
        """``count`` concurrent runs of ``echo ok``."""
        return [job.value for job in gevent.joinall([gevent.spawn(self.run) for _ in range(count)])]

    @staticmethod
    def restart_sshd() -> None:
        """Ask the test (our parent) to restart sshd; wait for its answer on stdin."""
        print("RESTART", flush=True)
        sys.stdin.readline()

    # -- scenarios --------------------------------------------------------------------------------

    def reuse(self) -> None:
        self.out["outputs"] = [self.run() for _ in range(20)]
        self.out["concurrent"] = self.runs(12)

    def concurrent_cold(self) -> None:
        self.out["outputs"] = self.runs(12)

    def reconnect(self) -> None:
        self.out["before"] = self.run()
        self.restart_sshd()
        self.out["after"] = self.run()

    def dropped(self) -> None:
        pool, target = self.pool, self.target
        self.out["before"] = [self.run(), pool.open_connections()]
        self.restart_sshd()  # kills the session under the pooled transport
        dead = pool._connections[target].transport
        for _ in range(100):  # bounded: paramiko notices the EOF within a socket timeout
            if not dead.is_active():
                break
            time.sleep(0.05)
        self.out["dead_still_pooled"] = [target in pool._connections, dead.is_active()]
        self.out["open_while_dead"] = pool.open_connections()
        self.out["after"] = [self.run(), pool.open_connections()]

    def recycle(self) -> None:
        self.pool.settings = PoolSettings(max_execs=3)
        self.out["outputs"] = [self.run() for _ in range(7)]

    def reaper(self) -> None:
        self.pool.settings = PoolSettings(idle_timeout=0.2)
        self.out["first"] = self.run()
        self.out["open_before"] = self.pool.open_connections()
        time.sleep(0.3)
        self.pool.reap()
        self.out["open_after"] = self.pool.open_connections()
        self.out["second"] = self.run()

    def hang(self) -> None:
        started = time.monotonic()
        self.out["hung"] = self.run("sleep 30", timeout=1.0)
        self.out["elapsed"] = time.monotonic() - started
        self.out["after"] = self.run()
        gevent.sleep(0.2)  # let the closed transport's greenlet finish
        self.out["transports_alive"] = sum(
            isinstance(t, paramiko.Transport) and t.is_alive() for t in threading.enumerate()
        )
        self.out["open"] = self.pool.open_connections()

    def probe_hang(self) -> None:
        prober = Prober(self.pool, HealthBook(HealthSettings()), script="sleep 30")  # the injectable command
        result = prober.probe(HostEntry(self.target, "physics"), time.monotonic() + 1.0)
        self.out["probe"] = [result.success, result.reason, result.state, result.duration < 30]

    def command_timeout(self) -> None:
        self.out["hung"] = self.run("sleep 30", timeout=25.0)
        self.out["after"] = self.run()

    def dial_cap(self) -> None:
        listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(6)]  # accept, never speak
        inflight, peak = [0], [0]
        connect = self.pool._connect_socket

        def counting(host: Target) -> Any:
            inflight[0] += 1
            peak[0] = max(peak[0], inflight[0])
            try:
                sock = connect(host)
                gevent.sleep(0.3)  # hold the slot a little, as a slow handshake would
                return sock
            finally:
                inflight[0] -= 1

        self.pool._connect_socket = counting  # type: ignore[method-assign]
        hosts = [Target("127.0.0.1", listener.getsockname()[1]) for listener in listeners]
        jobs = [gevent.spawn(self.run, "true", 1.5, host) for host in hosts]
        gevent.joinall(jobs)
        self.out["results"] = [job.value for job in jobs]
        self.out["peak"] = peak[0]

    def hostkey(self) -> None:
        self.out["result"] = self.run()

    def evict(self) -> None:
        other = Target("127.0.0.1", self.args["port2"])
        self.out["outputs"] = [self.run(host=host) for host in (self.target, other, self.target, other)]
        self.out["open"] = self.pool.open_connections()


def main(argv: list[str]) -> int:
    driver = Driver(json.loads(argv[0]))
    scenario: Callable[[], None] = getattr(driver, driver.args["scenario"])
    scenario()
    pool = driver.pool
    driver.out["stats"] = {
        "dials": dict(pool.stats.dials),
        "errors": dict(pool.stats.errors),
        "closed": dict(pool.stats.closed),
        "execs": pool.stats.execs,
    }
    pool.close()
    print("RESULT " + json.dumps(driver.out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

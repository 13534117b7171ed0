"""Start the demo's processes, wait until each answers, and stop every one of them on exit.

The demo runs half a dozen servers; a newcomer's Ctrl-C must leave nothing behind and a port that is
already taken must say so by name before anything starts. Each child gets its own session (so a
terminal Ctrl-C reaches only the demo, which then stops children in reverse order) and a log file.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class DemoError(RuntimeError):
    """A problem the user can act on; printed without a traceback."""


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out on ``host``; free until someone else binds it. The demo
    and bench import it from here; tests use tests/fixtures/procs.py's, which hands out ports below
    the kernel's ephemeral range, a slice per pytest-xdist worker, so a service a test restarts finds
    its port still free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def http_ready(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback demo URLs
                return 200 <= response.status < 300
        except OSError:
            return False

    return check


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path


@dataclass
class Supervisor:
    """Owns every child process of the demo."""

    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        ready: Callable[[], bool] | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        child = Child(name, process, log_path)
        self.children.append(child)
        if ready is not None:
            self._wait(child, ready, timeout)
        return child

    def run(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 60.0) -> None:
        """Run a one-shot step (migrations) to completion; its output goes to its log."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "wb") as log:
            result = subprocess.run(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                env={**os.environ, **(env or {})},
                check=False,
            )
        if result.returncode != 0:
            raise DemoError(f"{name} failed (exit {result.returncode}):\n{tail(log_path)}")

    def _wait(self, child: Child, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise DemoError(f"{child.name} exited with {child.process.returncode}:\n{tail(child.log_path)}")
            if ready():
                return
            time.sleep(0.1)
        raise DemoError(f"{child.name} did not become ready in {timeout:.0f}s:\n{tail(child.log_path)}")

    def check_alive(self) -> None:
        for child in self.children:
            if child.process.poll() is not None:
                raise DemoError(
                    f"{child.name} stopped unexpectedly (exit {child.process.returncode}):\n{tail(child.log_path)}"
                )

    def stop_all(self, timeout: float = 10.0) -> None:
        """SIGTERM in reverse start order, then SIGKILL whatever is left of each process group."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in reversed(self.children):
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(child.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if child.process.poll() is None:
                child.process.wait(5)
        self.children.clear()


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"

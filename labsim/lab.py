"""Run a simulated lab as a child process and steer it: the API tests, benchmarks and the demo use.

The lab needs gevent's monkey patching, which must not leak into a test runner or a demo supervisor,
so :meth:`Lab.start` runs ``python -m optilab.labsim`` in its own session and talks to it over the loopback
control API. Nothing here imports paramiko or gevent.

    with Lab.start(tmp_path / "lab", hosts=5, port=free_port()) as lab:
        lab.set_fault("127.0.1.3", "hang")
        ... lab.inventory ...
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class LabError(RuntimeError):
    """The lab did not start or refused a request; the message carries its log or answer."""


class Lab:
    """A running lab child process; ``stop()`` (or leaving the ``with`` block) ends it."""

    def __init__(self, process: subprocess.Popen[bytes], state_dir: Path, info: dict[str, Any], log_path: Path) -> None:
        self.process, self.state_dir, self.info, self.log_path = process, state_dir, info, log_path
        self.inventory = Path(info["inventory"])
        self.known_hosts = Path(info["known_hosts"])
        self.key_file = Path(info["key_file"])
        self.port: int = info["port"]
        self.control_url: str | None = info.get("control_url")
        self.hosts: list[dict[str, str]] = info["hosts"]

    @classmethod
    def start(
        cls,
        state_dir: Path,
        hosts: int = 30,
        departments: int = 3,
        port: int = 22,
        speed: float = 1.0,
        start_time: str | None = None,
        real: bool = False,
        extra_args: list[str] | None = None,
        timeout: float = 60.0,
    ) -> Lab:
        """Start the lab and wait until every host listens (``lab.json`` appears); raise LabError."""
        state_dir = Path(state_dir).resolve()
        state_dir.mkdir(parents=True, exist_ok=True)
        ready = state_dir / "lab.json"
        ready.unlink(missing_ok=True)
        argv = [
            sys.executable,
            "-m",
            "optilab.labsim",
            "--hosts",
            str(hosts),
            "--departments",
            str(departments),
            "--port",
            str(port),
            "--state-dir",
            str(state_dir),
            "--speed",
            str(speed),
            *(["--start", start_time] if start_time else []),
            *(["--real"] if real else []),
            *(extra_args or []),
        ]
        log_path = state_dir / "labsim.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                argv,
                stdout=subprocess.DEVNULL,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LabError(f"labsim exited with {process.returncode}:\n{_tail(log_path)}")
            if ready.exists():
                try:
                    return cls(process, state_dir, json.loads(ready.read_text()), log_path)
                except json.JSONDecodeError:
                    pass  # caught mid-write; the next look sees it whole
            time.sleep(0.05)
        _terminate(process)
        raise LabError(f"labsim did not start within {timeout:.0f}s:\n{_tail(log_path)}")

    def set_fault(self, host: str | list[str], mode: str, delay: float | None = None) -> dict[str, Any]:
        """Switch ``host`` (an IP, a list, or ``"all"``) to fault ``mode`` ("none" clears it)."""
        body: dict[str, Any] = {"hosts": host, "mode": mode}
        if delay is not None:
            body["delay"] = delay
        return self._request("POST", "/fault", body)

    def set_seat(self, host: str, state: str | None) -> dict[str, Any]:
        """Force host ``host``'s seat to ``state`` (in_use, idle, locked, free); None lets the day decide."""
        return self._request("POST", "/seat", {"host": host, "state": state})

    def status(self) -> list[dict[str, Any]]:
        """Every host's fault, uptime, users, sessions and exec counts, as the lab sees them."""
        return self._request("GET", "/hosts")

    def targets(self) -> list[str]:
        """``HOST:PORT`` of every host, in inventory order."""
        return [f"{h['ip']}:{self.port}" for h in self.hosts]

    def stop(self) -> int | None:
        return _terminate(self.process)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if self.control_url is None:
            raise LabError("this lab has no control API (real mode)")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - the lab's own loopback control URL
            self.control_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback control URL
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise LabError(f"{method} {path}: {exc.code} {exc.read().decode(errors='replace')}") from None


def _terminate(process: subprocess.Popen[bytes], timeout: float = 10.0) -> int | None:
    """SIGTERM, then SIGKILL the child's process group (real mode has sshd children) if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    return process.returncode


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return "(no log)"

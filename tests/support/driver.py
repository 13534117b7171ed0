"""Runs a driver: a gevent-patched Python process that plays one scenario and prints its result.

pytest's own process is not patched, so tests of the pool, the shell sessions and the bastions run
their scenario in a fresh interpreter. The protocol is lines on stdout: ``RESULT {json}`` ends it;
any other line is offered to ``answer``, and when ``answer`` returns True (it has done what the
line asked: restart sshd, kill a process…) the driver is told ``go`` on stdin.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.paths import REPO


def run_driver(argv: list[str], answer: Callable[[str], bool], cwd: Path = REPO) -> dict[str, Any]:
    """Run ``python ARGV`` and return the JSON of its ``RESULT`` line (bounded: 30 s after its output ends)."""
    process = subprocess.Popen(
        [sys.executable, *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        for line in process.stdout:  # bounded: the driver prints a few lines and exits
            if line.startswith("RESULT "):
                process.wait(30)
                result: dict[str, Any] = json.loads(line[len("RESULT ") :])
                return result
            if answer(line.strip()):
                process.stdin.write("go\n")
                process.stdin.flush()
        process.wait(30)
        raise AssertionError(f"driver failed: {process.stderr.read() if process.stderr else ''}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def shell_exchange(transport: Any, first: bytes, second: bytes, size: int = 200) -> str:
    """For driver programs: a long-lived ``/bin/sh`` over exec on a paramiko ``transport`` (as the
    collection's shell uses) is sent ``first``, answers, is sent ``second`` (which ends it with
    ``exit``) and read to its end; returns everything it printed."""
    shell = transport.open_session()
    shell.settimeout(5)
    shell.exec_command("/bin/sh")
    shell.sendall(first)
    answer = shell.recv(size)
    shell.sendall(second)
    while data := shell.recv(size):  # bounded: the shell exits after ``second``
        answer += data
    return answer.decode()

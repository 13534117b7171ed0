"""``SshError``: how the SSH layer (the pool, exporter/sshpool.py) reports a failed dial or exec.

The pool owns the error, but it lives in this module of its own because the pool's parts raise it
too: hostkeys.py, jump.py, shellsession.py and logincheck.py are imported by sshpool.py, so if the
class were defined there, each of them would have to import the pool back (an import cycle).
"""

from __future__ import annotations


class SshError(Exception):
    """A failed dial or exec; ``reason`` is one of docs/interfaces.md's probe error reasons."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail

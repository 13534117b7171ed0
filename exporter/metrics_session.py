"""Per-host families of the SSH transport, served with every ``/probe`` of that host.

* ``optilab_session_mode{mode}``: 1 for how the host is answered now (``shell``: a long-lived
  ``/bin/sh``; ``exec``: one exec per scrape), 0 for the other; absent before the first answer.
* ``optilab_login_check_success``, ``optilab_login_check_timestamp_seconds`` (Unix time the last
  fresh-login check ended) and ``optilab_login_check_duration_seconds``; absent before the first
  check (see ``exporter/logincheck.py``).
"""

from __future__ import annotations

from typing import Protocol

from optilab.exporter.family import Family, gauge
from optilab.exporter.logincheck import LoginResult
from optilab.exporter.targets import Target

MODES = ("shell", "exec")


class TransportView(Protocol):
    """What these families read from the runner (``SshPool``)."""

    def host_mode(self, target: Target) -> str | None: ...

    def login_result(self, target: Target) -> LoginResult | None: ...


def session_families(runner: object, target: Target) -> list[Family]:
    """The transport's families for ``target``; none for a runner that is not an ``SshPool`` (tests)."""
    if not hasattr(runner, "host_mode") or not hasattr(runner, "login_result"):
        return []
    view: TransportView = runner  # narrowed by the hasattr checks above
    families: list[Family] = []
    mode = view.host_mode(target)
    if mode is not None:
        family = Family(
            "optilab_session_mode",
            "gauge",
            "How the exporter reaches this host: 1 for the current mode (shell = one "
            "long-lived /bin/sh, exec = one exec per scrape).",
            ("mode",),
        )
        for name in MODES:
            family.add((name,), 1.0 if name == mode else 0.0)
        families.append(family)
    login = view.login_result(target)
    if login is not None:
        families += [
            gauge(
                "optilab_login_check_success",
                "1 if the last fresh SSH login (new connection, auth, exec, write in home) worked.",
                1.0 if login.success else 0.0,
            ),
            gauge(
                "optilab_login_check_timestamp_seconds", "Unix time the last fresh-login check ended.", login.timestamp
            ),
            gauge(
                "optilab_login_check_duration_seconds",
                "Wall time of the last fresh-login check (0 when a scrape's own new connection counted as the check).",
                login.duration,
            ),
        ]
    return families

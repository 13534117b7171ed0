"""API-key authentication: ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``.

Keys are compared as SHA-256 digests with `hmac.compare_digest` against every configured key (no
early exit), so neither a key's content nor its length leaks through timing. The presented key is
never stored or logged; the rest of the app only sees a short fingerprint of the matching key
(`client_id`), which also keys the rate limiter.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from typing import TypeVar

from flask import Flask, g, request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

F = TypeVar("F", bound=Callable[..., object])


def public(view: F) -> F:
    """Mark a view as reachable without a key (/health, /metrics)."""
    view.optilab_public = True  # type: ignore[attr-defined]
    return view


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


class KeyChecker:
    """Holds digests of the configured keys; answers which key (fingerprint) a request presented."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [_digest(key) for key in keys]

    def fingerprint(self, presented: str) -> str | None:
        candidate = _digest(presented)
        match = None
        for digest in self._digests:
            if hmac.compare_digest(candidate, digest):
                match = digest
        return "key:" + match.hex()[:12] if match is not None else None


def presented_key() -> str | None:
    """The key from ``X-API-Key``, else from a Bearer ``Authorization`` header."""
    key = request.headers.get("X-API-Key")
    if key:
        return key
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def client_id(checker: KeyChecker) -> str | None:
    """Fingerprint of the valid key this request carries, computed once per request."""
    if "optilab_client" not in g:
        key = presented_key()
        g.optilab_client = checker.fingerprint(key) if key else None
    return g.optilab_client


def install(app: Flask, checker: KeyChecker, enabled: bool, public_board: bool = False) -> None:
    """Require a valid key on every view not marked `public` (nor, with ``public_board``, a board data
    view: api/board.py); CORS preflights pass (they carry none)."""

    @app.before_request
    def require_key() -> None:
        if not enabled or request.method == "OPTIONS":
            return
        view = app.view_functions.get(request.endpoint or "")
        if view is not None and getattr(view, "optilab_public", False):
            return
        if view is not None and public_board and getattr(view, "optilab_board", False):
            return
        if client_id(checker) is None:
            raise Unauthorized(
                "missing or invalid API key (send X-API-Key or Authorization: Bearer)",
                www_authenticate=WWWAuthenticate("bearer", {"realm": "optilab"}),
            )

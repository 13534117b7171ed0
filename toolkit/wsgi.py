"""WSGI middleware: the lifecycle endpoints and basic auth of exporter-toolkit, for any app.

``/-/healthy`` answers 200 while the process serves; ``/-/ready`` asks the service's ``ready``
callable (e.g. "the database answers") and answers 200 or 503; ``POST /-/reload`` (only where a
``reload`` callable is given) re-reads the configuration and answers 200 or 500 with the error.
With ``basic_auth_users`` in the web config every path needs valid credentials (401 with
``WWW-Authenticate`` otherwise), as in exporter-toolkit; ``http_server_config.headers`` are added
to every answer.

Like exporter-toolkit, the web config file is re-read when it changes (checked at most once a
second): new users and headers apply to the next request, a renewed certificate to the next TLS
handshake. A broken new file is logged and the running web config kept; turning TLS on or off
needs a restart (the listening socket is plain or TLS from the start).
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable, Iterable
from typing import Any

from optilab.toolkit.webconfig import BasicAuth, WebConfig, WebConfigError, load_web_config, ssl_context

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class ToolkitMiddleware:
    def __init__(
        self,
        app: WsgiApp,
        web: WebConfig,
        name: str,
        ready: Callable[[], tuple[bool, str]] | None = None,
        reload: Callable[[], tuple[bool, str]] | None = None,
        context: ssl.SSLContext | None = None,
        recheck_s: float = 1.0,
        offload: Callable[..., Any] | None = None,
    ) -> None:
        self.app, self.web, self.name = app, web, name
        self._offload = offload
        self.auth = BasicAuth(web.users, offload=offload)
        self._ready, self._reload = ready, reload
        self._context, self._recheck_s = context, recheck_s
        self._checked, self._mtime = time.monotonic(), self._stat()

    def _stat(self) -> int | None:
        try:
            return os.stat(self.web.source).st_mtime_ns if self.web.source else None
        except OSError:
            return None

    def _refresh(self) -> None:
        """Re-read the web config file if it changed since it was last read."""
        now = time.monotonic()
        if not self.web.source or now - self._checked < self._recheck_s:
            return
        self._checked = now
        mtime = self._stat()
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            new = load_web_config(self.web.source)
            if (new.tls is None) != (self.web.tls is None):
                raise WebConfigError(f"{new.source}: tls_server_config: turning TLS on or off needs a restart")
            if new.tls is not None and self._context is not None:
                ssl_context(new.tls)  # validates the files before the live context is touched
                self._context.load_cert_chain(new.tls.cert_file, new.tls.key_file)
                if new.tls.client_ca_file is not None:
                    self._context.load_verify_locations(cafile=str(new.tls.client_ca_file))
        except WebConfigError as exc:
            log.error("web config not reloaded; keeping the running one:\n%s", exc)
            return
        self.web, self.auth = new, BasicAuth(new.users, offload=self._offload)
        log.info("web config reloaded from %s (%d basic auth users)", new.source, len(new.users))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        self._refresh()
        extra = list(self.web.headers)

        def respond(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return (
                start_response(status, [*headers, *extra], exc_info)
                if exc_info
                else start_response(status, [*headers, *extra])
            )

        if self.auth.enabled and self.auth.check(environ.get("HTTP_AUTHORIZATION")) is None:
            return self._text(
                respond, "401 Unauthorized", "Unauthorized\n", [("WWW-Authenticate", f'Basic realm="{self.name}"')]
            )
        path, method = environ.get("PATH_INFO", "/"), environ.get("REQUEST_METHOD", "GET")
        if path == "/-/healthy":
            return self._only(respond, method, ("GET", "HEAD"), lambda: (True, f"{self.name} is Healthy."))
        if path == "/-/ready":
            return self._only(
                respond, method, ("GET", "HEAD"), self._ready or (lambda: (True, "")), ok=f"{self.name} is Ready."
            )
        if path == "/-/reload" and self._reload is not None:
            return self._only(
                respond,
                method,
                ("POST", "PUT"),
                self._reload,
                ok="config reloaded",
                failure="500 Internal Server Error",
            )
        return self.app(environ, respond)

    def _only(
        self,
        respond: StartResponse,
        method: str,
        methods: tuple[str, ...],
        check: Callable[[], tuple[bool, str]],
        ok: str = "",
        failure: str = "503 Service Unavailable",
    ) -> Iterable[bytes]:
        if method not in methods:
            return self._text(
                respond, "405 Method Not Allowed", f"only {' or '.join(methods)}\n", [("Allow", ", ".join(methods))]
            )
        try:
            good, message = check()
        except Exception as exc:  # a broken check is the service's fault, reported, not raised
            log.exception("%s check failed", self.name)
            good, message = False, str(exc)
        if good:
            return self._text(respond, "200 OK", f"{ok or message}\n")
        return self._text(respond, failure, f"{message}\n")

    @staticmethod
    def _text(
        respond: StartResponse, status: str, body: str, headers: list[tuple[str, str]] | None = None
    ) -> list[bytes]:
        data = body.encode()
        respond(
            status,
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data))), *(headers or [])],
        )
        return [data]

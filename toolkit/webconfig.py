"""``--web.config.file``: exporter-toolkit's web configuration YAML, validated by a pure function.

Supported, as in exporter-toolkit (docs/interfaces.md has the table):

* ``tls_server_config``: ``cert_file``, ``key_file``, ``client_auth_type`` (``NoClientCert``,
  ``VerifyClientCertIfGiven``, ``RequireAndVerifyClientCert``; the default is the last when a
  ``client_ca_file`` is given), ``client_ca_file``, ``min_version``/``max_version`` (``TLS12``,
  ``TLS13``);
* ``http_server_config``: ``headers`` (added to every answer) and ``http2`` (accepted, no effect:
  the servers speak HTTP/1.1);
* ``basic_auth_users``: user name → bcrypt hash (never a plain password).

Everything else is an error naming the field, so a typo never silently leaves a service open. The
TLS files are loaded into an ``ssl.SSLContext`` at start, so a bad certificate fails there.
Verifying a password costs a bcrypt round (~50–250 ms by cost); :class:`BasicAuth` remembers the
SHA-256 of credentials that verified, so a scrape every 15 s pays it once, not every time.
"""

from __future__ import annotations

import base64
import hashlib
import re
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

_BCRYPT = re.compile(r"^\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}$")
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_UNSUPPORTED_AUTH = ("RequestClientCert", "RequireAnyClientCert")
TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version"}
_TLS_TOOLKIT_ONLY = {
    "cert",
    "key",
    "client_ca",
    "cipher_suites",
    "curve_preferences",
    "prefer_server_cipher_suites",
    "client_allowed_sans",
}
_TOP_KEYS = {"tls_server_config", "http_server_config", "basic_auth_users"}


class WebConfigError(ValueError):
    """The web config file is unusable; the message names the file and the field."""


@dataclass(frozen=True)
class TlsSettings:
    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = "TLS12"
    max_version: str | None = None


@dataclass(frozen=True)
class WebConfig:
    source: str = ""
    tls: TlsSettings | None = None
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


def _mapping(
    errors: list[str], source: str, value: Any, path: str, allowed: set[str], hints: Mapping[str, str] | None = None
) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.append(f"{source}: {path}: must be a mapping, got {type(value).__name__}")
        return {}
    for key in sorted(set(value) - allowed, key=str):
        hint = (hints or {}).get(key, f"unknown field (allowed: {', '.join(sorted(allowed))})")
        errors.append(f"{source}: {path}.{key}: {hint}" if path else f"{source}: {key}: {hint}")
    return value


def _file(errors: list[str], source: str, base: Path, raw: Mapping[str, Any], path: str) -> Path | None:
    value = raw.get(path.rsplit(".", 1)[-1])
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        errors.append(f"{source}: {path}: must be a file name, got {value!r}")
        return None
    resolved = (base / value).expanduser()
    if not resolved.is_file():
        errors.append(f"{source}: {path}: {resolved} does not exist or is not a file")
    return resolved


def _tls(errors: list[str], source: str, base: Path, raw: Any) -> TlsSettings | None:
    hints = {
        key: "not supported by OptiLab (Python's ssl module); use cert_file, key_file, client_ca_file"
        for key in _TLS_TOOLKIT_ONLY
    }
    section = _mapping(errors, source, raw, "tls_server_config", _TLS_KEYS, hints)
    if not section:
        return None
    cert = _file(errors, source, base, section, "tls_server_config.cert_file")
    key = _file(errors, source, base, section, "tls_server_config.key_file")
    for name in ("cert_file", "key_file"):
        if section.get(name) is None:
            errors.append(f"{source}: tls_server_config.{name}: required when tls_server_config is given")
    ca = _file(errors, source, base, section, "tls_server_config.client_ca_file")
    auth = section.get("client_auth_type", "RequireAndVerifyClientCert" if ca else "NoClientCert")
    if auth in _UNSUPPORTED_AUTH:
        errors.append(
            f"{source}: tls_server_config.client_auth_type: {auth} is not supported (Python's ssl "
            f"verifies every certificate it asks for); use VerifyClientCertIfGiven"
        )
    elif auth not in CLIENT_AUTH:
        errors.append(f"{source}: tls_server_config.client_auth_type: {auth!r} is not one of {', '.join(CLIENT_AUTH)}")
    elif auth != "NoClientCert" and ca is None:
        errors.append(f"{source}: tls_server_config.client_ca_file: required with client_auth_type {auth}")
    versions = {}
    for name in ("min_version", "max_version"):
        if name in section and section[name] not in TLS_VERSIONS:
            errors.append(
                f"{source}: tls_server_config.{name}: {section[name]!r} is not one of "
                f"{', '.join(TLS_VERSIONS)} (older versions are not offered)"
            )
        versions[name] = section.get(name)
    if cert is None or key is None:
        return None
    return TlsSettings(cert, key, str(auth), ca, versions["min_version"] or "TLS12", versions["max_version"])


def _users(errors: list[str], source: str, raw: Any) -> dict[str, bytes]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        errors.append(f"{source}: basic_auth_users: must be a mapping of user name to bcrypt hash")
        return {}
    users = {}
    for user, hashed in raw.items():
        if not isinstance(user, str) or not user or ":" in user:
            errors.append(f"{source}: basic_auth_users: {user!r} is not a user name (non-empty, no ':')")
        elif not isinstance(hashed, str) or not _BCRYPT.match(hashed):
            errors.append(
                f"{source}: basic_auth_users.{user}: not a bcrypt hash (make one with: "
                f"python3 -c 'import bcrypt,getpass; print(bcrypt.hashpw(getpass.getpass().encode(), "
                f"bcrypt.gensalt()).decode())')"
            )
        else:
            users[user] = hashed.encode()
    return users


def _headers(errors: list[str], source: str, raw: Any) -> tuple[tuple[str, str], ...]:
    section = _mapping(errors, source, raw, "http_server_config", {"headers", "http2"})
    if "http2" in section and not isinstance(section["http2"], bool):
        errors.append(f"{source}: http_server_config.http2: must be true or false")
    headers = section.get("headers") or {}
    if not isinstance(headers, dict):
        errors.append(f"{source}: http_server_config.headers: must be a mapping of header to value")
        return ()
    pairs = []
    for name, value in headers.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9-]+", name) or not isinstance(value, str):
            errors.append(f"{source}: http_server_config.headers.{name}: must be a header name with a string value")
        else:
            pairs.append((name, value))
    return tuple(pairs)


def parse_web_config(raw: Any, source: str, base: Path) -> WebConfig:
    """Validate the parsed YAML; raise :class:`WebConfigError` listing every problem at once."""
    errors: list[str] = []
    hints = {"rate_limit": "not supported by OptiLab (the API has its own --rate-limit)"}
    top = _mapping(errors, source, raw if raw is not None else {}, "", _TOP_KEYS, hints)
    config = WebConfig(
        source,
        _tls(errors, source, base, top.get("tls_server_config")),
        _users(errors, source, top.get("basic_auth_users")),
        _headers(errors, source, top.get("http_server_config")),
    )
    if errors:
        raise WebConfigError("\n".join(errors))
    return config


def load_web_config(path: str | Path | None) -> WebConfig:
    """The file's config (relative file names are relative to the file), or an open one for ``None``."""
    if path is None or str(path) == "":
        return WebConfig()
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise WebConfigError(f"{path}: cannot read the web config file: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_web_config(raw, str(path), path.parent)


def ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """A server context from the settings; a bad certificate, key or CA is a WebConfigError."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    if tls.max_version:
        context.maximum_version = TLS_VERSIONS[tls.max_version]
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (ssl.SSLError, OSError) as exc:
        raise WebConfigError(
            f"tls_server_config.cert_file/key_file: cannot load {tls.cert_file} with {tls.key_file}: {exc}"
        ) from None
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(tls.client_ca_file))
        except (ssl.SSLError, OSError) as exc:
            raise WebConfigError(f"tls_server_config.client_ca_file: cannot load {tls.client_ca_file}: {exc}") from None
    return context


class BasicAuth:
    """Checks ``Authorization: Basic`` headers against bcrypt hashes, remembering what verified."""

    _DUMMY = bcrypt.hashpw(b"optilab-unknown-user", bcrypt.gensalt(rounds=10))

    def __init__(
        self, users: Mapping[str, bytes], cache_size: int = 256, offload: Callable[..., Any] | None = None
    ) -> None:
        """``offload(func, *args)`` runs bcrypt elsewhere: the exporter passes gevent's threadpool, as
        a bcrypt round (50 ms and more) inside a greenlet would stall every other request."""
        self._users = dict(users)
        self._offload = offload
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._size = cache_size
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    def check(self, header: str | None) -> str | None:
        """The user name when ``header`` carries valid credentials, else ``None``."""
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "basic" or not token:
            return None
        try:
            user, sep, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if not sep:
            return None
        hashed = self._users.get(user)
        digest = hashlib.sha256(b"\0".join([user.encode(), password.encode(), hashed or b""])).digest()
        with self._lock:
            if digest in self._verified:
                self._verified.move_to_end(digest)
                return user
        # Unknown users pay a bcrypt round too, so timing does not tell which names exist.
        args = (password.encode(), hashed or self._DUMMY)
        ok = (self._offload(bcrypt.checkpw, args) if self._offload else bcrypt.checkpw(*args)) and hashed is not None
        if not ok:
            return None
        with self._lock:
            self._verified[digest] = None
            while len(self._verified) > self._size:
                self._verified.popitem(last=False)
        return user

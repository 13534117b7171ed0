"""The exporter's configuration: one YAML file read, validated and turned into frozen settings.

Validation is a pure function (:func:`parse_config`) from the parsed YAML to either a
:class:`Config` or a list of readable errors, each naming the file, the field and the reason
(``inventory.yml: departments.physics.subnets[0]: '127.0.1.300/24' is not a CIDR network``), so a
bad file stops the start — or, on reload, keeps the old configuration — with a message an admin can
act on. Unknown fields are errors too: a typo must not silently fall back to a default.

Secrets (the SSH password, the key passphrase, the broker URL's password) are wrapped in
:class:`Secret`, whose ``repr``/``str`` never show the value, so they cannot leak into logs.
The inventory (:class:`Inventory`) is the allow-list of targets: the exporter dials nothing else.
"""

from __future__ import annotations

import ipaddress
import os
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from optilab.exporter.collectors import Plan, by_name, default_enabled, make_plan
from optilab.exporter.targets import Target, TargetError, parse_target
from optilab.toolkit.backends import usable_amqp_url
from optilab.toolkit.contract import DEFAULT_EXCHANGE

#: Largest subnet one ``subnets`` entry may expand to (a /22): a typo like /8 must not create
#: sixteen million targets.
MAX_SUBNET_ADDRESSES = 1024

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_DEPARTMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


__all__ = [
    "Config",
    "ConfigError",
    "HostEntry",
    "Inventory",
    "JumpSettings",
    "Secret",
    "key_file_problems",
    "load_config",
    "parse_config",
]


class ConfigError(Exception):
    """A configuration that cannot be used; ``errors`` holds one readable line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class Secret:
    """A string that never prints itself (passwords, passphrases, broker credentials)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


SESSION_MODES = ("auto", "shell", "exec")


@dataclass(frozen=True)
class SessionSettings:
    """How a scrape reaches a host's shell (``ssh.session``; docs/exporter.md "Shell sessions").

    ``mode``: ``shell`` keeps one ``/bin/sh`` per host on a pooled channel, ``exec`` opens one exec
    channel per scrape, ``auto`` keeps a shell and falls back to exec where one cannot be kept.
    ``login_check_interval``: how often a fresh login (new connection, auth, exec) is tried; 0 = never.
    ``max_answer_bytes``: a larger answer is cut, counted and its session reset."""

    mode: str = "auto"
    login_check_interval: float = 300.0
    max_answer_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class JumpSettings:
    """A bastion (jump host) the exporter reaches lab machines through: ``ssh.jump`` or a department's
    ``jump``. Its login is its own (user, key, known_hosts); omitted fields default to ``ssh``'s."""

    target: Target
    user: str = "optilab"
    key_file: Path | None = None
    known_hosts: Path = Path("~/.ssh/known_hosts")
    passphrase: Secret | None = None
    retry_interval: float = 10.0  # after a failed bastion dial, hosts behind it fail fast this long

    def __str__(self) -> str:
        return str(self.target)


@dataclass(frozen=True)
class SshSettings:
    user: str = "optilab"
    port: int = 22
    key_file: Path | None = None
    known_hosts: Path = Path("~/.ssh/known_hosts")  # expanded by parse_config
    host_key_policy: str = "strict"  # "strict" | "accept-new"
    connect_timeout: float = 5.0
    command_timeout: float = 10.0
    password: Secret | None = None
    passphrase: Secret | None = None
    session: SessionSettings = SessionSettings()
    jump: JumpSettings | None = None  # every department's bastion unless it names its own


@dataclass(frozen=True)
class HealthSettings:
    """Failure counts that move a host down the states, and how long each state waits before the
    next real dial. A healthy host never waits: it is probed on every scrape (Prometheus's
    scrape_interval is the design's "healthy interval")."""

    degraded_after: int = 1
    offline_after: int = 3
    dead_after: int = 6
    degraded_interval: float = 600.0
    offline_interval: float = 3600.0
    dead_interval: float = 86400.0
    jitter: float = 0.1


@dataclass(frozen=True)
class PoolSettings:
    max_connections: int = 512
    max_concurrent_dials: int = 16
    channels_per_host: int = 4
    idle_timeout: float = 300.0
    max_age: float = 3600.0
    max_execs: int = 10000
    keepalive: float = 30.0


@dataclass(frozen=True)
class ProbeSettings:
    """``timeout`` caps every probe; a Prometheus scrape timeout header lowers it by ``offset``."""

    timeout: float = 10.0
    offset: float = 0.5
    concurrency: int = 64


@dataclass(frozen=True)
class RabbitSettings:
    url: Secret
    exchange: str = DEFAULT_EXCHANGE
    buffer: int = 1000


@dataclass(frozen=True)
class HostEntry:
    """One allowed target; ``hostname`` is the inventory's name for it (None for a bare address).

    ``os`` is informational (what ``scan`` learned, e.g. "Debian GNU/Linux 12 (bookworm)"): it names
    no label of the contract (``/sd`` stays department + hostname)."""

    target: Target
    department: str
    hostname: str | None = None
    os: str | None = None
    jump: JumpSettings | None = None  # the bastion this host is dialled through (None: directly)
    maintenance: bool = False  # set by the admin: the seat state is "maintenance" whatever the host says
    idle_minutes: float = 5.0  # the department's: a local session without input this long is "idle"


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class OpeningHours:
    """When a department's rooms are open, in its own time zone: per weekday (0 = Monday) a tuple of
    ``(start, end)`` minutes after local midnight (end up to 1440), plus whole closed dates."""

    timezone: str
    weekly: tuple[tuple[tuple[int, int], ...], ...]
    closed: frozenset[date] = frozenset()


@dataclass(frozen=True)
class DepartmentSettings:
    idle_minutes: float = 5.0
    opening_hours: OpeningHours | None = None  # None: open around the clock


@dataclass(frozen=True)
class Inventory:
    hosts: dict[str, HostEntry] = field(default_factory=dict)  # key: "HOST:PORT"
    session_modes: dict[str, str] = field(default_factory=dict)  # department → its ssh.session.mode
    jumps: dict[str, JumpSettings | None] = field(default_factory=dict)  # each department's bastion
    settings: dict[str, DepartmentSettings] = field(default_factory=dict)  # key: department name

    def lookup(self, target: Target) -> HostEntry | None:
        return self.hosts.get(str(target))

    def jump_for(self, target: Target) -> JumpSettings | None:
        """The bastion ``target`` is reached through (None: dialled directly, or not in the inventory)."""
        entry = self.hosts.get(str(target))
        return entry.jump if entry is not None else None

    def department(self, name: str) -> list[HostEntry]:
        return [entry for entry in self.hosts.values() if entry.department == name]

    @property
    def departments(self) -> list[str]:
        return sorted({entry.department for entry in self.hosts.values()})


@dataclass(frozen=True)
class CollectorSettings:
    """Which collectors run and with which flags (node_exporter's ``--[no-]collector.<name>`` and
    ``--collector.<name>.<flag>``): ``enabled`` collector names, ``options`` {collector: {flag: value}}."""

    enabled: frozenset[str] = field(default_factory=lambda: frozenset(c.name for c in default_enabled()))
    options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def plan(self) -> Plan:
        return make_plan(sorted(self.enabled), self.options)


@dataclass(frozen=True)
class Config:
    source: str
    ssh: SshSettings
    health: HealthSettings
    pool: PoolSettings
    probe: ProbeSettings
    rabbitmq: RabbitSettings | None
    inventory: Inventory
    collectors: CollectorSettings = field(default_factory=CollectorSettings)
    #: departments whose ``collectors:`` differ from the lab-wide ones
    department_collectors: Mapping[str, CollectorSettings] = field(default_factory=dict)

    def plan(self, department: str) -> Plan:
        """What a probe of a host of ``department`` runs (built once per distinct setting)."""
        return self.department_collectors.get(department, self.collectors).plan()


def parse_duration(value: Any) -> float | None:
    """Seconds from ``5s``/``1m``/``500ms``/``2h``/``1d`` or a plain number; None when malformed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    match = _DURATION.match(str(value))
    return float(match.group(1)) * _UNITS[match.group(2)] if match else None


class _Reader:
    """Walks the raw YAML, collecting errors as ``source: path: reason`` instead of raising."""

    def __init__(self, source: str, env: Mapping[str, str], read_text: Callable[[Path], str]) -> None:
        self.source, self.env, self.read_text = source, env, read_text
        self.errors: list[str] = []

    def error(self, path: str, reason: str) -> None:
        self.errors.append(f"{self.source}: {path}: {reason}")

    def section(self, raw: Mapping[str, Any], name: str, allowed: set[str], parent: str = "") -> dict[str, Any]:
        """The mapping ``raw[name]`` (``{}`` when absent); ``parent`` prefixes the path in errors."""
        value = raw.get(name, {})
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(parent + name, f"must be a mapping, got {type(value).__name__}")
            return {}
        for key in sorted(set(value) - allowed, key=str):
            self.error(f"{parent}{name}.{key}", f"unknown field (allowed: {', '.join(sorted(allowed))})")
        return value

    def duration(self, raw: Mapping[str, Any], path: str, key: str, default: float) -> float:
        if key not in raw:
            return default
        seconds = parse_duration(raw[key])
        if seconds is None:
            self.error(f"{path}.{key}", f"{raw[key]!r} is not a duration (examples: 500ms, 5s, 1m, 2h, 1d)")
            return default
        return seconds

    def integer(self, raw: Mapping[str, Any], path: str, key: str, default: int, low: int, high: int) -> int:
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.error(f"{path}.{key}", f"{value!r} is not an integer from {low} to {high}")
            return default
        return value

    def secret(self, raw: Mapping[str, Any], path: str, name: str) -> Secret | None:
        """A secret from ``<name>_env`` (variable name) or ``<name>_file`` (path); never inline."""
        env_key, file_key = f"{name}_env", f"{name}_file"
        if env_key in raw and file_key in raw:
            self.error(f"{path}.{env_key}", f"give either {env_key} or {file_key}, not both")
            return None
        if env_key in raw:
            variable = str(raw[env_key])
            if variable not in self.env:
                self.error(f"{path}.{env_key}", f"environment variable {variable} is not set")
                return None
            return Secret(self.env[variable])
        if file_key in raw:
            secret_path = Path(str(raw[file_key])).expanduser()
            try:
                return Secret(self.read_text(secret_path).rstrip("\n"))
            except OSError as exc:
                self.error(f"{path}.{file_key}", f"cannot read {secret_path}: {exc.strerror or exc}")
        return None


def _ssh(reader: _Reader, raw: Mapping[str, Any]) -> SshSettings:
    allowed = {
        "user",
        "port",
        "key_file",
        "known_hosts",
        "host_key_policy",
        "connect_timeout",
        "command_timeout",
        "password_env",
        "password_file",
        "passphrase_env",
        "passphrase_file",
        "session",
        "jump",
    }
    ssh = reader.section(raw, "ssh", allowed)
    defaults = SshSettings()
    policy = ssh.get("host_key_policy", defaults.host_key_policy)
    if policy not in ("strict", "accept-new"):
        reader.error("ssh.host_key_policy", f"{policy!r} is not one of strict, accept-new")
    user = ssh.get("user", defaults.user)
    if not isinstance(user, str) or not user:
        reader.error("ssh.user", f"{user!r} is not a user name")
    key_file = Path(str(ssh["key_file"])).expanduser() if ssh.get("key_file") else None
    password = reader.secret(ssh, "ssh", "password")
    if key_file is None and password is None:
        reader.error("ssh", "needs key_file or password_env/password_file to log in")
    settings = SshSettings(
        user=str(user),
        port=reader.integer(ssh, "ssh", "port", 22, 1, 65535),
        key_file=key_file,
        known_hosts=Path(str(ssh.get("known_hosts", defaults.known_hosts))).expanduser(),
        host_key_policy=str(policy),
        connect_timeout=reader.duration(ssh, "ssh", "connect_timeout", defaults.connect_timeout),
        command_timeout=reader.duration(ssh, "ssh", "command_timeout", defaults.command_timeout),
        password=password,
        passphrase=reader.secret(ssh, "ssh", "passphrase"),
        session=_session(reader, ssh),
    )
    if ssh.get("jump") is not None:
        settings = replace(settings, jump=_jump(reader, ssh["jump"], "ssh.jump", settings))
    return settings


def _jump(reader: _Reader, raw: Any, path: str, ssh: SshSettings) -> JumpSettings | None:
    """``{host: HOST[:PORT], user, key_file, known_hosts, passphrase_env|_file, retry_interval}``;
    user, key_file and known_hosts default to ``ssh``'s. Bastions log in with keys only."""
    if not isinstance(raw, dict):
        reader.error(
            path,
            f"must be a mapping with host (HOST[:PORT]) and optionally user, key_file, "
            f"known_hosts; got {type(raw).__name__}",
        )
        return None
    allowed = {"host", "user", "key_file", "known_hosts", "passphrase_env", "passphrase_file", "retry_interval"}
    for key in sorted(set(raw) - allowed, key=str):
        reader.error(f"{path}.{key}", f"unknown field (allowed: {', '.join(sorted(allowed))})")
    if not raw.get("host"):
        reader.error(f"{path}.host", "is required: the bastion's HOST[:PORT]")
        return None
    try:
        target = parse_target(str(raw["host"]), 22)
    except TargetError as exc:
        reader.error(f"{path}.host", f"{raw.get('host')!r} {exc}")
        return None
    user = raw.get("user", ssh.user)
    if not isinstance(user, str) or not user:
        reader.error(f"{path}.user", f"{user!r} is not a user name")
        return None
    key_file = Path(str(raw["key_file"])).expanduser() if raw.get("key_file") else ssh.key_file
    if key_file is None:
        reader.error(f"{path}.key_file", "a bastion logs in with a key: give key_file here or in ssh")
        return None
    passphrase = reader.secret(raw, path, "passphrase") if "key_file" in raw else ssh.passphrase
    return JumpSettings(
        target=target,
        user=user,
        key_file=key_file,
        passphrase=passphrase,
        known_hosts=Path(str(raw["known_hosts"])).expanduser() if raw.get("known_hosts") else ssh.known_hosts,
        retry_interval=reader.duration(raw, path, "retry_interval", JumpSettings.retry_interval),
    )


def _session(reader: _Reader, ssh: Mapping[str, Any]) -> SessionSettings:
    session = reader.section(ssh, "session", set(SessionSettings.__dataclass_fields__), "ssh.")
    defaults = SessionSettings()
    mode = session.get("mode", defaults.mode)
    if mode not in SESSION_MODES:
        reader.error("ssh.session.mode", f"{mode!r} is not one of {', '.join(SESSION_MODES)}")
        mode = defaults.mode
    return SessionSettings(
        mode=str(mode),
        login_check_interval=reader.duration(
            session, "ssh.session", "login_check_interval", defaults.login_check_interval
        ),
        max_answer_bytes=reader.integer(
            session, "ssh.session", "max_answer_bytes", defaults.max_answer_bytes, 4096, 2**31
        ),
    )


#: Integer fields and their allowed ranges; every other numeric settings field is a duration.
_INTEGERS: dict[str, tuple[int, int]] = {
    "degraded_after": (1, 1000),
    "offline_after": (1, 1000),
    "dead_after": (1, 1000),
    "max_connections": (1, 100000),
    "max_concurrent_dials": (1, 1000),
    "channels_per_host": (1, 10),
    "max_execs": (1, 10**9),
    "concurrency": (1, 10000),
}


def _numbers(reader: _Reader, raw: Mapping[str, Any], name: str, cls: type[Any]) -> Any:
    """A settings dataclass of integers and durations, each field defaulting to the class's own."""
    section = reader.section(raw, name, set(cls.__dataclass_fields__))
    defaults, values = cls(), dict[str, float]()
    for key in cls.__dataclass_fields__:
        default = getattr(defaults, key)
        if key in _INTEGERS:
            values[key] = reader.integer(section, name, key, default, *_INTEGERS[key])
        elif key == "jitter":
            jitter = section.get(key, default)
            if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter < 1:
                reader.error(f"{name}.{key}", f"{jitter!r} is not a fraction from 0 to below 1")
                jitter = default
            values[key] = float(jitter)
        else:
            values[key] = reader.duration(section, name, key, default)
    return cls(**values)


def _health(reader: _Reader, raw: Mapping[str, Any]) -> HealthSettings:
    settings: HealthSettings = _numbers(reader, raw, "health", HealthSettings)
    if not settings.degraded_after < settings.offline_after < settings.dead_after:
        reader.error("health", "needs degraded_after < offline_after < dead_after")
    return settings


def _rabbitmq(reader: _Reader, raw: Mapping[str, Any]) -> RabbitSettings | None:
    if raw.get("rabbitmq") is None:
        return None
    rabbit = reader.section(raw, "rabbitmq", {"url", "url_env", "url_file", "exchange", "buffer"})
    url = Secret(str(rabbit["url"])) if "url" in rabbit else reader.secret(rabbit, "rabbitmq", "url")
    if url is None:
        reader.error("rabbitmq", "needs url (or url_env/url_file when it carries a password)")
        return None
    if not usable_amqp_url(url.reveal()):  # else the publisher would stop at its first connect
        reader.error("rabbitmq.url", "not an amqp:// or amqps:// URL (the value is not shown: it may hold a password)")
        return None
    return RabbitSettings(
        url=url,
        exchange=str(rabbit.get("exchange", DEFAULT_EXCHANGE)),
        buffer=reader.integer(rabbit, "rabbitmq", "buffer", 1000, 1, 10**6),
    )


def _host_entry(reader: _Reader, item: Any, path: str, department: str, port: int) -> HostEntry | None:
    """``"HOST[:PORT]"`` or ``{target: "HOST[:PORT]", hostname: NAME, os: TEXT, maintenance: BOOL}``
    (``scan`` writes the first three)."""
    hostname = os_name = None
    maintenance = False
    if isinstance(item, dict):
        for key in sorted(set(item) - {"target", "hostname", "os", "maintenance"}, key=str):
            reader.error(f"{path}.{key}", "unknown field (allowed: hostname, maintenance, os, target)")
        maintenance = item.get("maintenance", False)
        if not isinstance(maintenance, bool):
            reader.error(f"{path}.maintenance", f"{maintenance!r} is not true or false")
            maintenance = False
        hostname = str(item["hostname"]) if item.get("hostname") else None
        if item.get("os") is not None and not isinstance(item["os"], str):
            reader.error(f"{path}.os", f"{item['os']!r} is not a string (the OS name, e.g. 'Debian GNU/Linux 12')")
        elif item.get("os"):
            os_name = item["os"]
        item = item.get("target")
    try:
        target = parse_target(str(item) if item is not None else "", port)
    except TargetError as exc:
        reader.error(path, f"{item!r} {exc}")
        return None
    if hostname is None and not target.is_address:
        hostname = target.host
    return HostEntry(target, department, hostname, os_name, maintenance=maintenance)


def _subnet(reader: _Reader, item: Any, path: str, department: str, port: int) -> list[HostEntry]:
    try:
        network = ipaddress.ip_network(str(item), strict=True)
    except ValueError as exc:
        reason = "has host bits set" if "host bits" in str(exc) else "is not a CIDR network"
        reader.error(path, f"{item!r} {reason}")
        return []
    if network.num_addresses > MAX_SUBNET_ADDRESSES + 2:
        reader.error(
            path,
            f"{item!r} has {network.num_addresses} addresses; at most "
            f"{MAX_SUBNET_ADDRESSES} per subnet (split it, e.g. into /22s)",
        )
        return []
    hosts = list(network.hosts()) or [network.network_address]
    return [HostEntry(Target(str(address), port), department) for address in hosts]


def _department_jump(reader: _Reader, body: Mapping[str, Any], base: str, ssh: SshSettings) -> JumpSettings | None:
    """A department's own bastion, ``jump: false`` for none (dialled directly), else ``ssh.jump``."""
    if "jump" not in body:
        return ssh.jump
    if body["jump"] is False:
        return None
    return _jump(reader, body["jump"], f"{base}.jump", ssh)


def _collector_settings(reader: _Reader, raw: Any, path: str, base: CollectorSettings) -> CollectorSettings:
    """A ``collectors:`` mapping over ``base``: ``enable``/``disable`` lists of collector names and, per
    collector, its node_exporter flags (``filesystem: {mount-points-exclude: REGEX}``)."""
    if raw is None:
        return base
    if not isinstance(raw, dict):
        reader.error(
            path, f"must be a mapping (enable, disable, <collector>: {{flag: value}}), got {type(raw).__name__}"
        )
        return base
    known = by_name()
    enabled = set(base.enabled)
    options = {name: dict(values) for name, values in base.options.items()}
    for key in ("enable", "disable"):
        names = raw.get(key) or []
        if not isinstance(names, list):
            reader.error(f"{path}.{key}", "must be a list of collector names")
            continue
        for index, name in enumerate(names):
            if name not in known:
                reader.error(
                    f"{path}.{key}[{index}]", f"unknown collector {name!r} (known: {', '.join(sorted(known))})"
                )
            elif key == "enable":
                enabled.add(name)
            else:
                enabled.discard(name)
    for name, flags in raw.items():
        if name in ("enable", "disable"):
            continue
        where = f"{path}.{name}"
        collector = known.get(name)
        if collector is None:
            reader.error(where, f"unknown collector (known: {', '.join(sorted(known))}; or enable, disable)")
            continue
        allowed = dict(collector.flags)
        if not isinstance(flags, dict) or not allowed:
            reader.error(where, f"flags of {name}: " + (", ".join(sorted(allowed)) if allowed else "it has none"))
            continue
        for flag, value in flags.items():
            if flag not in allowed:
                reader.error(f"{where}.{flag}", f"unknown flag (allowed: {', '.join(sorted(allowed))})")
            elif not isinstance(value, str):
                reader.error(f"{where}.{flag}", f"must be a string, got {type(value).__name__}")
            elif flag in collector.choices:
                if value not in collector.choices[flag]:
                    reader.error(
                        f"{where}.{flag}",
                        f"{value!r} is not one of {', '.join(repr(choice) for choice in collector.choices[flag])}",
                    )
                else:
                    options.setdefault(name, {})[flag] = value
            else:
                try:
                    re.compile(value)
                except re.error as exc:
                    reader.error(f"{where}.{flag}", f"not a regular expression: {exc}")
                else:
                    options.setdefault(name, {})[flag] = value
    return CollectorSettings(frozenset(enabled), options)


def _department_collectors(
    reader: _Reader, raw: Mapping[str, Any], base: CollectorSettings
) -> dict[str, CollectorSettings]:
    departments = raw.get("departments")
    if not isinstance(departments, dict):
        return {}
    return {
        name: _collector_settings(reader, body["collectors"], f"departments.{name}.collectors", base)
        for name, body in departments.items()
        if isinstance(body, dict) and "collectors" in body
    }


def _inventory(reader: _Reader, raw: Mapping[str, Any], ssh: SshSettings) -> Inventory:
    port = ssh.port
    departments = raw.get("departments")
    if not isinstance(departments, dict) or not departments:
        reader.error("departments", "must map at least one department name to its hosts/subnets")
        return Inventory()
    hosts: dict[str, HostEntry] = {}
    origin: dict[str, str] = {}
    session_modes: dict[str, str] = {}
    jumps: dict[str, JumpSettings | None] = {}
    settings: dict[str, DepartmentSettings] = {}
    for name, body in departments.items():
        base = f"departments.{name}"
        if not isinstance(name, str) or not _DEPARTMENT.match(name):
            reader.error(base, "department names are letters, digits, '.', '_' or '-' (max 63)")
            continue
        if not isinstance(body, dict):
            reader.error(base, "must be a mapping with hosts and/or subnets")
            continue
        allowed = {"hosts", "subnets", "session", "jump", "collectors", "idle_minutes", "opening_hours"}
        for key in sorted(set(body) - allowed, key=str):
            reader.error(f"{base}.{key}", f"unknown field (allowed: {', '.join(sorted(allowed))})")
        if body.get("session") is not None:
            session = reader.section(body, "session", {"mode"}, f"{base}.")
            if "mode" in session and session["mode"] not in SESSION_MODES:
                reader.error(f"{base}.session.mode", f"{session['mode']!r} is not one of {', '.join(SESSION_MODES)}")
            elif "mode" in session:
                session_modes[name] = str(session["mode"])
        jump = jumps[name] = _department_jump(reader, body, base, ssh)
        settings[name] = department_settings(reader, body, base)
        entries: list[tuple[str, HostEntry]] = []
        for kind, expand in (("hosts", _host_entry), ("subnets", _subnet)):
            items = body.get(kind) or []
            if not isinstance(items, list):
                reader.error(f"{base}.{kind}", "must be a list")
                continue
            for index, item in enumerate(items):
                path = f"{base}.{kind}[{index}]"
                found = expand(reader, item, path, name, port)
                for entry in found if isinstance(found, list) else [found] if found else []:
                    entries.append((path, replace(entry, jump=jump) if jump else entry))
        for path, entry in entries:
            entry = replace(entry, idle_minutes=settings[name].idle_minutes)
            key = str(entry.target)
            if key in hosts and hosts[key].department != name:
                reader.error(path, f"{key} is already in department {hosts[key].department} ({origin[key]})")
            elif key not in hosts or entry.hostname:
                hosts[key], origin[key] = entry, path
    return Inventory(hosts, session_modes, jumps, settings)


def department_settings(reader: _Reader, body: Mapping[str, Any], base: str) -> DepartmentSettings:
    """``idle_minutes`` (0.5..1440, default 5) and ``opening_hours`` of one department."""
    idle = body.get("idle_minutes", 5)
    if isinstance(idle, bool) or not isinstance(idle, int | float) or not 0.5 <= idle <= 1440:
        reader.error(f"{base}.idle_minutes", f"{idle!r} is not a number of minutes from 0.5 to 1440")
        idle = 5
    hours = body.get("opening_hours")
    return DepartmentSettings(
        float(idle), None if hours is None else _opening_hours(reader, hours, f"{base}.opening_hours")
    )


def _opening_hours(reader: _Reader, raw: Any, path: str) -> OpeningHours | None:
    """``{timezone: Europe/Berlin, mon-fri: "08:00-20:00", sat: ["10:00-12:00", "13:00-16:00"],
    closed: [2026-12-24, ...]}``; weekdays not named are closed all day."""
    if not isinstance(raw, dict):
        reader.error(path, "must be a mapping: timezone, weekdays (mon..sun, or ranges like mon-fri), closed")
        return None
    zone = raw.get("timezone")
    try:
        zoneinfo.ZoneInfo(str(zone))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        reader.error(f"{path}.timezone", f"{zone!r} is not an IANA time zone (e.g. Europe/Berlin, UTC)")
        return None
    weekly: list[list[tuple[int, int]]] = [[] for _ in DAYS]
    for key, value in raw.items():
        if key in ("timezone", "closed"):
            continue
        days = _day_range(str(key))
        if days is None:
            reader.error(f"{path}.{key}", "unknown field (allowed: timezone, closed, mon..sun or a range like mon-fri)")
            continue
        for index, span in enumerate(value if isinstance(value, list) else [value]):
            parsed = _span(span)
            if parsed is None:
                where = f"{path}.{key}" + (f"[{index}]" if isinstance(value, list) else "")
                reader.error(where, f"{span!r} is not a span like 08:00-20:00 (end after start, up to 24:00)")
                continue
            for day in days:
                weekly[day].append(parsed)
    closed: set[date] = set()
    for index, day in enumerate(raw.get("closed") or []):
        try:
            closed.add(day if isinstance(day, date) else date.fromisoformat(str(day)))
        except ValueError:
            reader.error(f"{path}.closed[{index}]", f"{day!r} is not a date like 2026-12-24")
    return OpeningHours(str(zone), tuple(tuple(sorted(spans)) for spans in weekly), frozenset(closed))


def _day_range(key: str) -> list[int] | None:
    first, _, last = key.partition("-")
    if first not in DAYS or (last and last not in DAYS):
        return None
    start, end = DAYS.index(first), DAYS.index(last or first)
    return list(range(start, end + 1)) if start <= end else [*range(start, 7), *range(0, end + 1)]


def _span(value: Any) -> tuple[int, int] | None:
    match = _SPAN.match(str(value))
    if not match:
        return None
    h1, m1, h2, m2 = map(int, match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    return (start, end) if m1 < 60 and m2 < 60 and 0 <= start < end <= 1440 else None


def parse_config(
    raw: Any, source: str, env: Mapping[str, str] | None = None, read_text: Callable[[Path], str] = Path.read_text
) -> Config:
    """Validate parsed YAML into a :class:`Config`; raise :class:`ConfigError` listing every problem."""
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: the file must be a YAML mapping (ssh, departments, ...)"])
    reader = _Reader(source, os.environ if env is None else env, read_text)
    allowed = {"ssh", "departments", "health", "pool", "probe", "rabbitmq", "collectors"}
    for key in sorted(set(raw) - allowed, key=str):
        reader.error(str(key), f"unknown field (allowed: {', '.join(sorted(allowed))})")
    ssh = _ssh(reader, raw)
    collectors = _collector_settings(reader, raw.get("collectors"), "collectors", CollectorSettings())
    config = Config(
        source,
        ssh,
        _health(reader, raw),
        _numbers(reader, raw, "pool", PoolSettings),
        _numbers(reader, raw, "probe", ProbeSettings),
        _rabbitmq(reader, raw),
        _inventory(reader, raw, ssh),
        collectors,
        _department_collectors(reader, raw, collectors),
    )
    if reader.errors:
        raise ConfigError(reader.errors)
    return config


def load_department_settings(path: str | Path) -> dict[str, DepartmentSettings]:
    """Only the departments' seat settings and opening hours of an inventory file (what the API needs:
    ``optilab-api --inventory FILE``); hosts, ssh and the rest are the exporter's business."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    departments = raw.get("departments") if isinstance(raw, dict) else None
    if not isinstance(departments, dict):
        raise ConfigError([f"{path}: departments: must map department names to their settings"])
    reader = _Reader(str(path), {}, Path.read_text)
    settings = {
        str(name): department_settings(reader, body, f"departments.{name}")
        for name, body in departments.items()
        if isinstance(body, dict)
    }
    if reader.errors:
        raise ConfigError(reader.errors)
    return settings


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the YAML file at ``path``; errors name the file as the admin wrote it."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    return parse_config(raw, str(path), env)


def key_file_problems(config: Config) -> list[str]:
    """Why ``ssh.key_file`` cannot log in anywhere (missing, unreadable, not a private key, wrong or
    missing passphrase), one line naming the field; empty when it loads or there is no key file.

    Not part of :func:`parse_config` (which reads no files but secrets): the exporter warns about
    these at start and refuses a reload with them (the running configuration stays)."""
    key_file = config.ssh.key_file
    if key_file is None:
        return []
    import paramiko  # only here: config stays importable without the SSH stack

    passphrase = config.ssh.passphrase.reveal().encode() if config.ssh.passphrase else None
    try:
        paramiko.PKey.from_path(key_file, passphrase)  # type: ignore[arg-type]  # paramiko takes bytes; its stub says str
        return []
    except OSError as exc:
        problem = f"is not readable ({exc.strerror or type(exc).__name__})"
    except (ValueError, TypeError, paramiko.SSHException) as exc:
        # an encrypted key without a passphrase: PasswordRequiredException or cryptography's TypeError
        encrypted = isinstance(exc, paramiko.PasswordRequiredException | TypeError) and passphrase is None
        problem = (
            "is encrypted and no passphrase_env/passphrase_file is given"
            if encrypted
            else f"is not a usable private key, or the passphrase is wrong ({type(exc).__name__})"
        )
    return [f"{config.source}: ssh.key_file: {key_file} {problem}; every login will fail"]

"""API configuration: one frozen dataclass, built and validated by pure functions.

Configuration comes from the command line and the environment; `load_config` turns both into an
`ApiConfig` or raises `ConfigError` naming the offending field, so a typo fails at start, not at the
first request. API keys are read here and nowhere else, and never appear in `repr()` or logs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict

from optilab.exporter.config import ConfigError as InventoryError
from optilab.exporter.config import OpeningHours, load_department_settings

DEFAULT_LISTEN = "127.0.0.1:9844"
MIN_KEY_LENGTH = 16
_RATE_LIMIT = re.compile(r"^\s*\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day)s?\s*$")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


@dataclass(frozen=True)
class ApiConfig:
    """Everything `create_app` needs. Keys are excluded from repr so a logged config leaks nothing."""

    dsn: str
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    auth_enabled: bool = True
    cors_origins: tuple[str, ...] = ()
    rate_limit: str = "600/minute"
    max_points: int = 1000
    pool_min_size: int = 1
    pool_max_size: int = 8
    pool_timeout_s: float = 5.0
    statement_timeout_ms: int = 10_000
    fresh_window_s: int = 600
    # department -> opening hours, from the exporter's inventory (--inventory); absent = open 24/7
    opening_hours: Mapping[str, OpeningHours] = field(default_factory=dict)
    # GET /board (and the board's data) without a key; it then shows no user names (it never does)
    public_board: bool = False


def parse_keys(text: str) -> tuple[str, ...]:
    """Keys separated by commas or newlines; blank entries and ``#`` comment lines are ignored."""
    keys: list[str] = []
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        keys.extend(part.strip() for part in line.split(",") if part.strip())
    for index, key in enumerate(keys):
        if len(key) < MIN_KEY_LENGTH:
            raise ConfigError(f"api_keys: key #{index + 1} is shorter than {MIN_KEY_LENGTH} characters")
    return tuple(dict.fromkeys(keys))


def _positive_int(name: str, value: object) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise ConfigError(f"{name}: expected a positive integer, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
    return number


def load_config(
    dsn: str,
    env: Mapping[str, str],
    *,
    keys_file: str | None = None,
    auth_enabled: bool = True,
    cors_origins: str | None = None,
    rate_limit: str | None = None,
    max_points: int | str | None = None,
    pool_max_size: int | str | None = None,
    inventory: str | None = None,
    public_board: bool = False,
) -> ApiConfig:
    """Build the config from explicit values, falling back to ``OPTILAB_API_*`` environment variables.

    Keys: ``OPTILAB_API_KEYS`` (comma separated) and/or a file (``keys_file`` or
    ``OPTILAB_API_KEYS_FILE``), one key per line. Authentication on without any key is refused:
    an API that silently accepts everyone is the failure this check exists to prevent.
    """
    if not dsn:
        raise ConfigError("dsn: a PostgreSQL DSN is required (--dsn or OPTILAB_DSN)")
    try:
        conninfo_to_dict(dsn)  # unparseable, it would be retried forever like an outage
    except ProgrammingError:  # the text is not repeated: it may hold a password
        raise ConfigError("dsn: not a libpq connection string or postgresql:// URL") from None
    key_text = env.get("OPTILAB_API_KEYS", "")
    keys_path = keys_file or env.get("OPTILAB_API_KEYS_FILE")
    if keys_path:
        try:
            key_text += "\n" + Path(keys_path).read_text()
        except OSError as exc:
            raise ConfigError(f"api_keys_file: cannot read {keys_path!r}: {exc.strerror}") from None
    keys = parse_keys(key_text)
    if auth_enabled and not keys:
        raise ConfigError("api_keys: no API key configured (set OPTILAB_API_KEYS or OPTILAB_API_KEYS_FILE)")
    origins_text = cors_origins if cors_origins is not None else env.get("OPTILAB_API_CORS_ORIGINS", "")
    origins = tuple(o.strip() for o in origins_text.split(",") if o.strip())
    limit = rate_limit if rate_limit is not None else env.get("OPTILAB_API_RATE_LIMIT", "600/minute")
    if limit and not all(_RATE_LIMIT.match(part) for part in limit.split(";")):
        raise ConfigError(f"rate_limit: expected e.g. '600/minute' (';' separates several), got {limit!r}")
    points = max_points if max_points is not None else env.get("OPTILAB_API_MAX_POINTS", "1000")
    pool = pool_max_size if pool_max_size is not None else env.get("OPTILAB_API_POOL_SIZE", "8")
    hours: dict[str, OpeningHours] = {}
    inventory_path = inventory or env.get("OPTILAB_API_INVENTORY")
    if inventory_path:
        try:
            settings = load_department_settings(inventory_path)
        except InventoryError as exc:
            raise ConfigError(f"inventory: {exc.errors[0]}") from None
        hours = {name: s.opening_hours for name, s in settings.items() if s.opening_hours is not None}
    return ApiConfig(
        opening_hours=hours,
        public_board=public_board,
        dsn=dsn,
        api_keys=keys,
        auth_enabled=auth_enabled,
        cors_origins=origins,
        rate_limit=limit,
        max_points=_positive_int("max_points", points),
        pool_max_size=_positive_int("pool_max_size", pool),
    )

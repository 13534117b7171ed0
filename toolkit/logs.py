"""Logging like a Prometheus component: ``--log.level`` and ``--log.format=logfmt|json``.

Every service calls :func:`setup` once; records go to stderr as ``ts=… level=… logger=… msg=…``
(logfmt, the default) or one JSON object per line. Exceptions are folded into the record (``exc=``)
so one event stays one line, as log shippers expect.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("logfmt", "json")


def parse_level(text: str) -> int:
    """``debug``, ``info``, ``warn``/``warning`` or ``error``, in any case; ValueError otherwise."""
    try:
        return LEVELS[text.strip().lower()]
    except KeyError:
        raise ValueError(f"{text!r} is not one of debug, info, warn, error") from None


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    fields = {
        "ts": _timestamp(record),
        "level": record.levelname.lower().replace("warning", "warn"),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    if record.exc_info:
        fields["exc"] = formatter.formatException(record.exc_info)
    return fields


def _logfmt_value(value: str) -> str:
    if value and not any(c in value for c in ' ="\\\n\t'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_logfmt_value(str(value))}" for key, value in _fields(record, self).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record, self), ensure_ascii=False)


def setup(level: int, fmt: str = "logfmt") -> None:
    """Replace the root logger's handlers with one stderr handler in ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)

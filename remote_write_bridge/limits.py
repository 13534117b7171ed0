"""Bounds on one series' labels, checked before the database sees them (pure).

PostgreSQL cannot index a row over ~2704 bytes (a third of a page, after trying to compress it):
``series (metric, labels)`` and ``systems (instance)`` are unique B-tree keys, so one series with a
3 KB incompressible label value made every write of its batch fail. Such a series is dropped and
counted (``optilab_bridge_samples_dropped_total{reason="label_limit"}``); the rest of the request is
stored. The defaults keep the largest key that passes well under the B-tree maximum (a test writes a
series at every limit). Like Prometheus' ``label_limit`` / ``label_name_length_limit`` /
``label_value_length_limit``, they count UTF-8 bytes.

A NUL character is valid UTF-8 (so protobuf accepts it) but no PostgreSQL text or jsonb value can
hold it: such a series is dropped as ``invalid_label``.
"""

from __future__ import annotations

from dataclasses import dataclass

LabelSet = tuple[tuple[str, str], ...]

LABEL_LIMIT = "label_limit"
INVALID_LABEL = "invalid_label"
IP_ADDRESS_CHARS = 45  # systems.ip_address is varchar(45)


@dataclass(frozen=True)
class LabelLimits:
    max_labels: int = 32  # label pairs per series, __name__ included
    max_name_bytes: int = 128  # one label name
    max_value_bytes: int = 1024  # one label value (instance is a unique key of systems)
    max_series_bytes: int = 2048  # all names and values of one series together


def check(labels: LabelSet, limits: LabelLimits) -> str | None:
    """The drop reason for ``labels`` (``label_limit`` / ``invalid_label``), or None when storable."""
    if len(labels) > limits.max_labels:
        return LABEL_LIMIT
    total = 0
    for name, value in labels:
        if "\x00" in name or "\x00" in value:
            return INVALID_LABEL
        name_bytes, value_bytes = _utf8_len(name), _utf8_len(value)
        if name_bytes > limits.max_name_bytes or value_bytes > limits.max_value_bytes:
            return LABEL_LIMIT
        total += name_bytes + value_bytes
    if total > limits.max_series_bytes:
        return LABEL_LIMIT
    return None


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))

"""Every collector the exporter knows, in one list; a department enables a subset (exporter/config.py).

One module per collector (``exporter/collectors/<name>.py``): a pure parser from text to data and a
builder from data to families, plus its :class:`~exporter.collectors.base.Collector` entry here.
"""

from __future__ import annotations

from exporter.collectors.base import Collector, CollectorOptions, Sources

COLLECTORS: list[Collector] = []


def by_name() -> dict[str, Collector]:
    return {collector.name: collector for collector in COLLECTORS}


def default_enabled() -> list[Collector]:
    return [collector for collector in COLLECTORS if collector.default_enabled]


__all__ = ["COLLECTORS", "Collector", "CollectorOptions", "Sources", "by_name", "default_enabled"]

"""Seat state (issue 15): the constant ``seats`` command, read in the same request as every collector.

The command's output is parsed by :mod:`exporter.parsers_seat` (pure, text → data → state). This
collector only fetches and validates it: the state of a machine also depends on the inventory
(``maintenance``, the department's ``idle_minutes``) and on whether the probe reached the host at
all (``offline``), so the probe builds ``optilab_seat_state`` and ``optilab_sessions``
(:func:`exporter.metrics.seat_families`), on failed probes too.
"""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.family import Family
from optilab.exporter.parsers_seat import SEATS_COMMAND, SeatReading, parse_seats

NAME = "seats"
SOURCE = "cmd:seats"


def reading(sources: Sources) -> SeatReading | None:
    """The seats command's answer, or None when it is missing or not its output."""
    text = sources.get(SOURCE)
    if text is None:
        return None
    try:
        return parse_seats(text)
    except ValueError:
        return None


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    """No families of its own (the probe builds them); fails, for ``node_scrape_collector_success``, when
    the command answered something that is not its output."""
    if SOURCE in sources:
        parse_seats(sources[SOURCE])
    return []


COLLECTOR = Collector(name=NAME, paths=(), commands=(("seats", SEATS_COMMAND),), collect=collect)

"""Seat state (issue 15): logind's session files, the constant ``seats`` command, ``who`` and ``date``,
all read in the same request as every collector.

The sources are parsed by :mod:`exporter.parsers_seat` (pure, text → data → state). ``who`` is the
lab collector's command and ``date`` the time collector's clock (its command and listing): declared
here under the same names with the same text, so the script runs each once for all three
(:func:`exporter.command.script_parts`). This collector only fetches and validates: the state of a
machine also depends on the inventory (``maintenance``, the department's ``idle_minutes``) and on
whether the probe reached the host at all (``offline``), so the probe builds ``optilab_seat_state``
and ``optilab_sessions`` (:func:`exporter.metrics.seat_families`), on failed probes too.
"""

from __future__ import annotations

from optilab.exporter.collectors import time as time_collector
from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, matching
from optilab.exporter.family import Family
from optilab.exporter.parsers_seat import (
    SEATS_COMMAND,
    SESSION_DIR,
    SESSION_FILES,
    WHO_COMMAND,
    SeatReading,
    parse_seats,
)

NAME = "seats"
SOURCE = "cmd:seats"
WHO = "cmd:who"
DATE = "cmd:date"


def _now(sources: Sources) -> float:
    """The target's clock from the time collector's ``date``; 0 (idle ages unknown) without it."""
    try:
        return time_collector.parse_clock(sources.get(DATE, ""))[0]
    except ValueError:
        return 0.0


def _read(sources: Sources) -> SeatReading:
    sessions = {name: text for name, text in matching(sources, SESSION_DIR).items() if "/" not in name}
    return parse_seats(sources[SOURCE], sessions, sources.get(WHO, ""), _now(sources))


def reading(sources: Sources) -> SeatReading | None:
    """The seats sources' reading, or None when the command is missing or did not print its output."""
    if SOURCE not in sources:
        return None
    try:
        return _read(sources)
    except ValueError:
        return None


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    """No families of its own (the probe builds them); fails, for ``node_scrape_collector_success``, when
    the command answered something that is not its output."""
    if SOURCE in sources:
        _read(sources)
    return []


COLLECTOR = Collector(
    name=NAME,
    paths=(SESSION_FILES,),
    commands=(("seats", SEATS_COMMAND), ("who", WHO_COMMAND), ("date", time_collector.CLOCK)),
    listings=(("clock", time_collector.CLOCK_LISTING),),
    collect=collect,
    volatile=True,  # a student's login must show at the next scrape
)

"""Find the series the database refuses for good, store the rest (pure: the write is injected).

When a write fails with a permanent error (``dberrors``), the request's series are halved and each
half written again, recursively, until the refusing series stand alone: k bad series among n cost
about 2·k·log2(n/k) extra writes, and every good series is stored. Writes are idempotent
(``ON CONFLICT``), so halves stored before a later failure are simply stored. A transient error
raised by ``write`` propagates: the caller answers 503 and Prometheus retries the whole request.

``budget`` bounds the writes one request may cost; parts still failing when it runs out are
reported as refused with the rest (counted, never silently lost).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


class RefusedError(Exception):
    """Raised by the injected ``write`` when the database refused the part for good."""


def isolate(items: Sequence[T], write: Callable[[Sequence[T]], None], budget: int) -> tuple[list[T], int]:
    """Store what can be stored of ``items`` (whose whole write already failed); returns the refused
    items and the number of writes spent."""
    refused: list[T] = []
    pending: list[Sequence[T]] = list(_halves(items)) if len(items) > 1 else []
    if len(items) == 1:
        refused.append(items[0])
    writes = 0
    while pending:
        part = pending.pop()
        if writes >= budget:
            refused.extend(part)
            continue
        writes += 1
        try:
            write(part)
        except RefusedError:
            if len(part) == 1:
                refused.append(part[0])
            else:
                pending.extend(_halves(part))
    return refused, writes


def _halves(items: Sequence[T]) -> tuple[Sequence[T], Sequence[T]]:
    middle = len(items) // 2
    return items[middle:], items[:middle]

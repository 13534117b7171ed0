"""Fast binary parameters for ``unnest()``: Python lists packed into PostgreSQL's binary array format.

psycopg's generic list dumper inspects every element (about 1 µs each); at 100,000 samples/s and
three arrays per sample that alone is a third of a core. The column types here are fixed, so the
elements are converted in one C call (``array``) and interleaved with their length words by strided
slice assignment — about 20 bytes of scratch per element. (One ``struct.pack`` with a format of two
codes per element did the same but compiled that format first: ~90 bytes per element, the largest
part of the bridge's peak memory for a big request; it stays the faster way for small arrays.)
Wrap a list in ``Int8Array`` / ``Float8Array`` /
``Int4Array`` and pass it as a ``%b`` parameter; ``None`` elements (SQL NULL) are supported for
the float arrays (usage columns a request did not carry). ``Int8Values`` / ``Float8Values`` are
compact ``array`` columns (8 bytes per element) for the samples of a batch, packed without a copy
into Python objects.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable
from itertools import chain, repeat

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

_HEADER = struct.Struct(">iiIii")  # ndim, has_null, element oid, dimension size, lower bound
_NULL = struct.pack(">i", -1)
# Below this many elements one struct.pack is faster (2000: 0.17 vs 0.40 ms) and its scratch small.
STRIDED_FROM = 8192


class _TypedArray(list):
    """A list tagged with its PostgreSQL element type."""

    code = "q"
    size = 8
    element_oid = 20


class Int8Array(_TypedArray):
    code, size, element_oid = "q", 8, 20


class Int4Array(_TypedArray):
    code, size, element_oid = "i", 4, 23


class Float8Array(_TypedArray):
    code, size, element_oid = "d", 8, 701


class _Values(array):
    """A compact ``array`` of machine numbers (8 bytes each, not a 32-byte object plus a pointer),
    for the long columns of a batch; no NULLs."""

    code, size, element_oid = "q", 8, 20

    def __new__(cls, values: Iterable[float] = ()) -> _Values:
        return super().__new__(cls, cls.code, values)


class Int8Values(_Values):
    code, size, element_oid = "q", 8, 20


class Float8Values(_Values):
    code, size, element_oid = "d", 8, 701


def pack(values: _TypedArray | _Values) -> bytes | bytearray:
    """PostgreSQL binary array of one dimension (the ``array_send`` format)."""
    count = len(values)
    nulls = not isinstance(values, array) and None in values
    if not nulls and count < STRIDED_FROM:
        body = struct.pack(f">{('i' + values.code) * count}", *chain.from_iterable(zip(repeat(values.size), values)))
        return _HEADER.pack(1, 0, values.element_oid, count, 1) + body
    if not nulls:
        data = array(values.code, values)
        if sys.byteorder == "little":
            data.byteswap()
        raw = data.tobytes()
        del data
        size, stride, start = values.size, values.size + 4, _HEADER.size
        out = bytearray(start + count * stride)
        out[:start] = _HEADER.pack(1, 0, values.element_oid, count, 1)
        for index, byte in enumerate(struct.pack(">i", size)):
            out[start + index :: stride] = bytes((byte,)) * count
        for index in range(size):
            out[start + 4 + index :: stride] = raw[index::size]
        return out
    parts = [_HEADER.pack(1, 1, values.element_oid, count, 1)]
    item = struct.Struct(f">i{values.code}")
    parts.extend(_NULL if value is None else item.pack(values.size, value) for value in values)
    return b"".join(parts)


def _dumper(cls: type[_TypedArray | _Values], array_oid: int) -> type[Dumper]:
    class ArrayDumper(Dumper):
        format = Format.BINARY
        oid = array_oid

        def dump(self, obj: _TypedArray | _Values) -> bytes | bytearray:
            return pack(obj)

    ArrayDumper.__name__ = f"{cls.__name__}Dumper"
    return ArrayDumper


def register(context: psycopg.Connection | None = None) -> None:
    """Register the dumpers globally (``None``) or on one connection."""
    adapters = context.adapters if context is not None else psycopg.adapters
    for cls, array_oid in (
        (Int8Array, 1016),
        (Int4Array, 1007),
        (Float8Array, 1022),
        (Int8Values, 1016),
        (Float8Values, 1022),
    ):
        adapters.register_dumper(cls, _dumper(cls, array_oid))

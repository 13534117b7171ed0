"""Remote write 1.0 on the wire: snappy block body → protobuf ``WriteRequest`` → validated series.

The message classes are built at import from a ``FileDescriptorProto`` written out here rather than
from protoc-generated code: the four messages are tiny and frozen by the 1.0 spec, generated
``*_pb2.py`` files are pinned to the protobuf runtime that generated them (gencode/runtime version
checks), and this keeps the build free of protoc. Decoding is still protobuf's own (upb) parser.

Everything here is pure (bytes in, data or ``RemoteWriteError`` out) so the HTTP layer stays thin.
"""

from __future__ import annotations

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _build_classes() -> tuple[type[message.Message], ...]:
    file = descriptor_pb2.FileDescriptorProto(
        name="optilab/remote_write_v1.proto", package="prometheus", syntax="proto3"
    )

    def add(name: str, fields: list[tuple[str, int, int, int, str]]) -> None:
        msg = file.message_type.add(name=name)
        for field_name, number, ftype, label, type_name in fields:
            added = msg.field.add(name=field_name, number=number, type=ftype, label=label)
            if type_name:
                added.type_name = type_name

    add(
        "Label",
        [("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, ""), ("value", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, "")],
    )
    add(
        "Sample",
        [("value", 1, _F.TYPE_DOUBLE, _F.LABEL_OPTIONAL, ""), ("timestamp", 2, _F.TYPE_INT64, _F.LABEL_OPTIONAL, "")],
    )
    add(
        "TimeSeries",
        [
            ("labels", 1, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, ".prometheus.Label"),
            ("samples", 2, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, ".prometheus.Sample"),
        ],
    )
    # field 3 (metadata) is left out on purpose: unknown fields are skipped by the parser
    add("WriteRequest", [("timeseries", 1, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, ".prometheus.TimeSeries")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return tuple(
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"prometheus.{name}"))
        for name in ("Label", "Sample", "TimeSeries", "WriteRequest")
    )


Label, Sample, TimeSeries, WriteRequest = _build_classes()

CONTENT_TYPE = "application/x-protobuf"


class RemoteWriteError(Exception):
    """A request that must be refused; ``status`` is the HTTP code (4xx: never retried)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_headers(content_type: str | None, content_encoding: str | None) -> None:
    """415 unless the body is snappy-compressed protobuf (remote write 1.0); 2.0 is not served."""
    mime, _, params = (content_type or "").partition(";")
    if mime.strip().lower() != CONTENT_TYPE:
        raise RemoteWriteError(415, f"unsupported Content-Type {content_type!r}, expected {CONTENT_TYPE}")
    proto = params.strip().lower()
    if proto and proto not in ("proto=prometheus.writerequest",):
        raise RemoteWriteError(
            415, f"unsupported remote-write message {params.strip()!r}; only 1.0 (prometheus.WriteRequest) is accepted"
        )
    if (content_encoding or "").strip().lower() != "snappy":
        raise RemoteWriteError(415, f"unsupported Content-Encoding {content_encoding!r}, expected snappy")


def snappy_length(body: bytes) -> int:
    """The uncompressed length from the varint preamble of a snappy block."""
    length = shift = 0
    for index, byte in enumerate(body[:5]):
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            return length
        shift += 7
        if index == 4:
            break
    raise RemoteWriteError(400, "bad snappy block: truncated or invalid length preamble")


def check_length(body: bytes, max_decompressed_bytes: int) -> int:
    """The decompressed size the snappy preamble declares; 413 when over the limit.

    Checked before decompressing: a 2.9 MB body inflating to 60 MiB once took the bridge to 1.76 GB.
    snappy refuses a block whose content does not match its declared length, so the declaration
    bounds what ``decode`` can allocate.
    """
    length = snappy_length(body)
    if length > max_decompressed_bytes:
        raise RemoteWriteError(
            413,
            f"body decompresses to {length} bytes, over the limit of "
            f"{max_decompressed_bytes} (send smaller batches: max_samples_per_send)",
        )
    return length


def decode(body: bytes, max_decompressed_bytes: int) -> message.Message:
    """Decompress and parse one request body; 400 with the reason when it is corrupt, 413 too large."""
    check_length(body, max_decompressed_bytes)
    try:
        raw = cramjam.snappy.decompress_raw(body)
    except Exception as exc:  # cramjam raises DecompressionError, a plain Exception subclass
        raise RemoteWriteError(400, f"bad snappy block (remote write uses the block format): {exc}") from None
    request = WriteRequest()
    try:
        request.ParseFromString(memoryview(raw))  # no bytes() copy of the decompressed body
    except message.DecodeError as exc:
        raise RemoteWriteError(400, f"bad protobuf WriteRequest: {exc}") from None
    return request


def validate_labels(labels: tuple[tuple[str, str], ...]) -> str:
    """Return the metric name; 400 unless names are non-empty, unique, sorted and __name__ is set.

    An empty value is allowed: in Prometheus' data model it means the label is absent.
    """
    previous = ""
    for name, _value in labels:
        if not name:
            raise RemoteWriteError(400, f"invalid labels {_shown(labels)}: empty label name")
        if name <= previous:
            problem = "duplicate" if name == previous else "unsorted"
            raise RemoteWriteError(400, f"invalid labels {_shown(labels)}: {problem} label name {name[:100]!r}")
        previous = name
    metric = dict(labels).get("__name__")
    if not metric:
        raise RemoteWriteError(400, f"invalid labels {_shown(labels)}: no __name__")
    return metric


def _shown(labels: tuple[tuple[str, str], ...], limit: int = 300) -> str:
    """The label set for an error message, cut short: a hostile one may hold megabytes."""
    text = repr(dict(labels))
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"

"""In-process unit tests of the pure remote-write protocol code (remote_write_bridge/protocol.py):
headers, the snappy length preamble, decoding, and label validation; no database, no server."""

from __future__ import annotations

import cramjam
import pytest

from optilab.remote_write_bridge.protocol import (
    RemoteWriteError,
    WriteRequest,
    check_headers,
    check_length,
    decode,
    snappy_length,
    validate_labels,
)


def body(*series: dict[str, str], value: float = 1.5, ts: int = 1_700_000_000_000) -> bytes:
    request = WriteRequest()
    for labels in series:
        one = request.timeseries.add()
        for name, text in sorted(labels.items()):
            one.labels.add(name=name, value=text)
        one.samples.add(value=value, timestamp=ts)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def status_of(call: object, *args: object) -> int:
    with pytest.raises(RemoteWriteError) as raised:
        call(*args)  # type: ignore[operator]
    return raised.value.status


def test_headers_of_remote_write_1_0_pass_and_others_are_415() -> None:
    check_headers("application/x-protobuf", "snappy")
    check_headers("Application/X-Protobuf; proto=prometheus.WriteRequest", " SNAPPY ")
    assert status_of(check_headers, "application/json", "snappy") == 415
    assert status_of(check_headers, "application/x-protobuf;proto=io.prometheus.write.v2.Request", "snappy") == 415
    assert status_of(check_headers, "application/x-protobuf", "gzip") == 415
    assert status_of(check_headers, None, None) == 415


def test_snappy_preamble_is_read_and_bounds_the_body() -> None:
    assert snappy_length(bytes([0x05])) == 5
    assert snappy_length(bytes([0x80, 0x01])) == 128
    assert status_of(snappy_length, b"") == 400
    assert status_of(snappy_length, bytes([0xFF] * 6)) == 400
    payload = body({"__name__": "node_load1", "instance": "127.0.1.5:22"})
    declared = check_length(payload, 10**6)
    assert declared == len(cramjam.snappy.decompress_raw(payload))
    assert status_of(check_length, payload, declared - 1) == 413


def test_decode_round_trips_and_corrupt_bodies_are_400() -> None:
    request = decode(body({"__name__": "node_load1", "instance": "127.0.1.5:22"}, value=0.25), 10**6)
    (series,) = request.timeseries
    assert [(label.name, label.value) for label in series.labels] == [
        ("__name__", "node_load1"),
        ("instance", "127.0.1.5:22"),
    ]
    assert [(s.value, s.timestamp) for s in series.samples] == [(0.25, 1_700_000_000_000)]
    assert status_of(decode, bytes([0x04]) + b"\xff\xff\xff\xff", 10**6) == 400  # not a snappy block
    garbage = bytes(cramjam.snappy.compress_raw(b"\xff" * 16))
    assert status_of(decode, garbage, 10**6) == 400  # snappy, but not a WriteRequest


def test_labels_must_be_named_sorted_unique_with_a_metric_name() -> None:
    assert validate_labels((("__name__", "up"), ("job", ""))) == "up"  # an empty value is an absent label
    for labels in (
        (("", "x"), ("__name__", "up")),
        (("__name__", "up"), ("b", "1"), ("a", "2")),
        (("__name__", "up"), ("a", "1"), ("a", "2")),
        (("job", "x"),),
    ):
        assert status_of(validate_labels, labels) == 400


def test_a_huge_label_set_is_cut_short_in_the_message() -> None:
    with pytest.raises(RemoteWriteError) as raised:
        validate_labels((("job", "x" * 100_000),))
    assert len(str(raised.value)) < 500 and "characters)" in str(raised.value)

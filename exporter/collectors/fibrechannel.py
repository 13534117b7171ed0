"""fibrechannel: ``node_fibrechannel_*`` per FC host adapter from /sys/class/fc_host/<host>/
(node_exporter's fibrechannel collector, procfs' rules: the 11 text attributes (an unreadable one is
"" here, an error upstream), ``0x`` dropped from the ids and names; a statistics counter reading all
ones (``0xffffffffffffffff``, unsupported) is not exported, a missing one counts 0).
"""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.collectors.sysattrs import devices, go_int
from optilab.exporter.family import Family

PREFIX = "/sys/class/fc_host/"
TEXTS = (
    "speed",
    "port_state",
    "port_type",
    "node_name",
    "port_id",
    "port_name",
    "fabric_name",
    "dev_loss_tmo",
    "symbolic_name",
    "supported_classes",
    "supported_speeds",
)
INFO_LABELS = (
    "fc_host",
    "speed",
    "port_state",
    "port_type",
    "port_id",
    "port_name",
    "fabric_name",
    "symbolic_name",
    "supported_classes",
    "supported_speeds",
    "dev_loss_tmo",
)
_MAX = (1 << 64) - 1
#: statistics/<file> -> (metric suffix, HELP), in upstream's order
COUNTERS = (
    ("dumped_frames", "dumped_frames_total", "Number of dumped frames"),
    ("error_frames", "error_frames_total", "Number of errors in frames"),
    ("invalid_crc_count", "invalid_crc_total", "Invalid Cyclic Redundancy Check count"),
    ("rx_frames", "rx_frames_total", "Number of frames received"),
    ("rx_words", "rx_words_total", "Number of words received by host port"),
    ("tx_frames", "tx_frames_total", "Number of frames transmitted by host port"),
    ("tx_words", "tx_words_total", "Number of words transmitted by host port"),
    ("seconds_since_last_reset", "seconds_since_last_reset_total", "Number of seconds since last host port reset"),
    ("invalid_tx_word_count", "invalid_tx_words_total", "Number of invalid words transmitted by host port"),
    ("link_failure_count", "link_failure_total", "Number of times the host port link has failed"),
    ("loss_of_sync_count", "loss_of_sync_total", "Number of failures on either bit or transmission word boundaries"),
    ("loss_of_signal_count", "loss_of_signal_total", "Number of times signal has been lost"),
    ("nos_count", "nos_total", "Number Not_Operational Primitive Sequence received by host port"),
    ("fcp_packet_aborts", "fcp_packet_aborts_total", "Number of aborted packets"),
)


def parse(sources: Sources) -> dict[str, tuple[dict[str, str], dict[str, int]]]:
    hosts = {}
    for host, files in devices(sources, PREFIX).items():
        texts = {}
        for name in TEXTS:
            value = files.get(name, "")  # an empty attribute is not sent: "" as upstream reads it
            texts[name] = (
                value[2:] if name in ("node_name", "port_id", "port_name", "fabric_name") and len(value) > 2 else value
            )
        counts = {}
        for file, _, _ in COUNTERS:
            text = files.get(f"statistics/{file}")
            if text is None:
                counts[file] = 0
                continue
            number = go_int(text)
            if number is None or number < 0:
                raise ValueError(f"{PREFIX}{host}/statistics/{file}: {text[:30]!r}")
            counts[file] = number
        hosts[host] = (texts, counts)
    return hosts


def build(hosts: dict[str, tuple[dict[str, str], dict[str, int]]]) -> list[Family]:
    info = Family(
        "node_fibrechannel_info",
        "gauge",
        "Non-numeric data from /sys/class/fc_host/<host>, value is always 1.",
        INFO_LABELS,
    )
    counters = [
        Family(f"node_fibrechannel_{suffix}", "counter", help_text, ("fc_host",)) for _, suffix, help_text in COUNTERS
    ]
    for host in sorted(hosts):
        texts, counts = hosts[host]
        info.add((host, *(texts[label] for label in INFO_LABELS[1:])), 1.0)
        for family, (file, _, _) in zip(counters, COUNTERS, strict=True):
            if counts[file] != _MAX:
                family.add((host,), counts[file])
    return [info, *counters]


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    hosts = parse(sources)
    return build(hosts) if hosts else []


COLLECTOR = Collector(
    "fibrechannel",
    tuple(PREFIX + "*/" + name for name in TEXTS) + tuple(PREFIX + "*/statistics/" + file for file, _, _ in COUNTERS),
    collect,
)

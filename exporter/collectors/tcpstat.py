"""node_exporter's tcpstat collector (off by default, as upstream): TCP sockets by state.

``node_tcp_connection_states{state}``: the number of IPv4 and IPv6 TCP sockets in each state, plus
``rx_queued_bytes`` and ``tx_queued_bytes``, the sums of their receive and send queues. node_exporter
asks the kernel over netlink (inet_diag); the same sockets are in /proc/net/tcp and tcp6, one line
each with its state and ``tx_queue:rx_queue``. One difference (docs/exporter.md): for a listening
socket inet_diag reports the accept backlog's limit as the send queue, which /proc/net/tcp does not
show (it prints 0), so ``tx_queued_bytes`` here lacks the listeners' backlog limits that
node_exporter adds in. To print the files the kernel walks its whole TCP hash table, however few
sockets there are (/proc/net/tcp6 with 2 sockets cost 1.3 ms of CPU per read on the test machine,
whose established-socket table has 262 144 buckets; bench/collector_cost.py): off by default.
"""

from __future__ import annotations

from collections import Counter

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, source
from optilab.exporter.family import Family

#: the kernel's TCP states (include/net/tcp_states.h) as node_exporter names them
STATES = {
    1: "established",
    2: "syn_sent",
    3: "syn_recv",
    4: "fin_wait1",
    5: "fin_wait2",
    6: "time_wait",
    7: "close",
    8: "close_wait",
    9: "last_ack",
    10: "listen",
    11: "closing",
}
FILES = ("/proc/net/tcp", "/proc/net/tcp6")
_EMPTY = "00000000:00000000"


def parse_tcp(text: str) -> tuple[Counter[str], int, int]:
    """/proc/net/tcp (or tcp6) -> (sockets by state name, receive queues' sum, send queues' sum)."""
    lines = text.split("\n")
    if lines[0].split()[:1] != ["sl"] or lines[0].split()[3:4] != ["st"]:  # tcp6 says remote_address
        raise ValueError(f"not a /proc/net/tcp header: {lines[0][:60]!r}")
    by_code: Counter[str] = Counter()  # a busy host has thousands of lines: states converted once each
    rx = tx = 0
    for line in lines[1:]:
        fields = line.split(None, 5)  # sl, local, remote, st, tx_queue:rx_queue: the rest is not needed
        if not fields:
            continue
        if len(fields) < 5 or ":" not in fields[4]:
            raise ValueError(f"malformed /proc/net/tcp line: {line[:80]!r}")
        by_code[fields[3]] += 1
        if fields[4] != _EMPTY:  # most sockets' queues are empty
            send, _, receive = fields[4].partition(":")
            tx += int(send, 16)
            rx += int(receive, 16)
    states: Counter[str] = Counter()
    for code, count in by_code.items():
        states[STATES.get(int(code, 16), "unknown")] += count
    return states, rx, tx


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    states: Counter[str] = Counter()
    rx = tx = 0
    for path in FILES:
        if path == FILES[0] or path in sources:  # tcp6 only where the kernel has IPv6, as upstream
            counted, received, sent = parse_tcp(source(sources, path))
            states.update(counted)
            rx, tx = rx + received, tx + sent
    values: dict[str, float] = {state: float(count) for state, count in states.items()}
    if states:  # node_exporter sums the queues per socket: no socket, no queue series
        values.update(rx_queued_bytes=float(rx), tx_queued_bytes=float(tx))
    family = Family("node_tcp_connection_states", "gauge", "Number of connection states.", ("state",))
    family.samples = [((state,), values[state]) for state in sorted(values)]
    return [family]


COLLECTOR = Collector(name="tcpstat", paths=FILES, collect=collect, default_enabled=False)

"""The series one simulated lab machine sends through the bridge: what both remote-write benchmarks
(bench/bridge_throughput.py, synthetic; bench/bridge_prometheus.py, through a real Prometheus) store."""

from __future__ import annotations

ALLOWED = ("node_load1", "node_load5", "node_load15", "optilab_probe_success", "optilab_probe_duration_seconds")
NET = ("node_network_receive_bytes_total", "node_network_transmit_bytes_total")


def host_series(host: int) -> list[tuple[tuple[tuple[str, str], ...], float]]:
    """(sorted labels, base value) of every stored series of one lab machine."""
    ip = f"127.0.{1 + host // 250}.{1 + host % 250}"
    common = {
        "instance": f"{ip}:22",
        "job": "node",
        "hostname": f"pc-{host:03d}",
        "ip": ip,
        "department": ("physics", "chemistry", "biology", "maths")[host % 4],
    }
    series = [
        ({"__name__": name, **common}, base)
        for name, base in (
            ("system_cpu_usage", 30.0),
            ("system_ram_usage", 55.0),
            ("system_disk_usage", 70.0),
            ("system_status", 1.0),
            ("optilab_logged_in_users", 1.0),
        )
    ]
    series += [({"__name__": name, **common}, 0.5) for name in ALLOWED]
    series += [({"__name__": name, "device": dev, **common}, 1e6) for name in NET for dev in ("eth0", "lo")]
    return [(tuple(sorted(labels.items())), base) for labels, base in series]

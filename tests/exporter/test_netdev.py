"""netdev on this machine against real node_exporter 1.5, in each of its netdev modes.

node_exporter reads netlink (default) or /proc/net/dev (``--no-collector.netdev.netlink``), with or
without ``--collector.netdev.enable-detailed-metrics``; the probe's own request for the netdev
collector (its plan's script, so with the files the flags switch on) is run here by ``sh``. Traffic
moves between the reads (node_exporter's own HTTP answers cross ``lo``), so each of our values must
lie between node_exporter's read just before and just after it; names, types, HELP and series sets
must be the same. (tests/exporter/test_parity.py compares the default mode through a real sshd as well.)
"""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from optilab.exporter.collectors import make_plan
from tests.support.node_exporter import needs_node_exporter, probe_here, running_node_exporter

MODES = {  # id -> (node_exporter's flags, the inventory's netdev flags)
    "netlink": ((), {}),
    "netlink-detailed": (("--collector.netdev.enable-detailed-metrics",), {"enable-detailed-metrics": "true"}),
    "procfs": (("--no-collector.netdev.netlink",), {"netlink": "false"}),
    "procfs-detailed": (
        ("--no-collector.netdev.netlink", "--collector.netdev.enable-detailed-metrics"),
        {"netlink": "false", "enable-detailed-metrics": "true"},
    ),
}


def ours(flags: dict[str, str]) -> str:
    return probe_here(make_plan(["netdev"], {"netdev": flags}))


def parse(text: str) -> dict[str, tuple[str, str, dict[str, float]]]:
    return {
        f.name: (f.type, f.documentation, {s.labels["device"]: s.value for s in f.samples})
        for f in text_string_to_metric_families(text)
        if f.name.startswith("node_network_")
    }


@needs_node_exporter
@pytest.mark.parametrize("mode", list(MODES))
def test_each_netdev_mode_matches_node_exporter_on_this_machine(mode: str) -> None:
    flags, options = MODES[mode]
    with running_node_exporter(
        "--collector.disable-defaults", "--collector.netdev", "--collector.netdev.device-exclude=", *flags
    ) as scrape:
        before, mine, after = parse(scrape()), parse(ours(options)), parse(scrape())
    assert sorted(mine) == sorted(before)
    assert ("node_network_receive_nohandler" in mine) is mode.startswith("netlink")
    assert ("node_network_receive_missed_errors" in mine) is (mode == "netlink-detailed")
    problems = []
    for name, (kind, help_text, values) in before.items():
        assert (mine[name][0], mine[name][1]) == (kind, help_text), name
        assert mine[name][2].keys() == values.keys(), name
        for device, low in values.items():
            high = after[name][2].get(device, low)
            if not min(low, high) <= mine[name][2][device] <= max(low, high):
                problems.append(f"{name}{{device={device}}}: ours {mine[name][2][device]}, theirs {low}..{high}")
    assert not problems, problems

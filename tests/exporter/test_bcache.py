"""bcache against real node_exporter 1.5 reading the same capture, and procfs' conversion of sizes.

This machine has no bcache device, so ``tests/data/sys/bcache`` is a hand-made /sys/fs/bcache: its
shapes (which files, where, in which format) are those of procfs' own test fixture
(prometheus/procfs ``testdata/fixtures.ttar``, ``sys/fs/bcache/deaddd54-…``: the cache set's six
files and ``internal/``, ``bdev0/{dirty_data,writeback_rate_debug,stats_total/*,stats_five_minute/*}``,
``cache0/{io_errors,metadata_written,written,priority_stats}``) and the kernel's
(drivers/md/bcache/sysfs.c: sizes through ``bch_hprint``, ``wb limit`` in newer writeback_rate_debug
files); the values are our own, chosen to exercise the conversion: ``.10`` fractions, negative
terms, every unit from k to P, and files an older kernel lacks (``cache_readaheads``). Two cache
sets: one with two backing devices, one with files missing (upstream counts them 0).

node_exporter reads the tree through ``--path.sysfs``; the probe's own script (from the plan, so with
the flag's extra glob) reads it with ``/sys/`` pointed at the tree. Values must be equal, not close.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from optilab.exporter.collectors import by_name, make_plan
from optilab.exporter.collectors.bcache import (
    dehumanize,
    dehumanize_signed,
    go_float,
    parse_priority_stats,
    parse_writeback_rate_debug,
)
from optilab.exporter.command import build_script, split_sources
from tests.support.node_exporter import needs_node_exporter, probe_here, scrape_once
from tests.support.paths import DATA

CAPTURE = DATA / "sys" / "bcache"
SET_A = "1b3c5e2a-7d41-4f08-9a6e-3c2f8b5d9e07"
SET_B = "5f0e9d8c-2b1a-4c3d-8e7f-6a5b4c3d2e1f"


def ours(root: Path, priority: bool = False) -> str:
    """The probe's answer for the bcache collector alone: its plan's script run by ``sh`` over ``root``.
    ``ValueError`` when the collector fails."""
    return probe_here(make_plan(["bcache"], {"bcache": {"priorityStats": "true"}} if priority else None), root)


def theirs(root: Path, priority: bool = False) -> tuple[str, bool]:
    """node_exporter's bcache families over ``root`` and whether its collector succeeded."""
    flags = ["--collector.disable-defaults", "--collector.bcache", f"--path.sysfs={root}/sys"]
    text = scrape_once(*flags, *(["--collector.bcache.priorityStats"] if priority else []))
    success = 'node_scrape_collector_success{collector="bcache"} 1' in text
    assert success or 'node_scrape_collector_success{collector="bcache"} 0' in text
    return text, success


def families(text: str) -> dict[str, tuple[str, str, dict[frozenset, float]]]:
    return {
        family.name: (
            family.type,
            family.documentation,
            {frozenset(s.labels.items()) | {("__name__", s.name)}: s.value for s in family.samples},
        )
        for family in text_string_to_metric_families(text)
        if family.name.startswith("node_bcache_")
    }


def assert_equal(mine: str, upstream: str) -> None:
    a, b = families(mine), families(upstream)
    assert sorted(a) == sorted(b)
    for name in b:
        assert a[name] == b[name], name  # type, HELP, label sets and exact values


@needs_node_exporter
@pytest.mark.parametrize("priority", [False, True], ids=["default", "priorityStats"])
def test_capture_matches_node_exporter(priority: bool) -> None:
    upstream, ok = theirs(CAPTURE, priority)
    assert ok
    mine = ours(CAPTURE, priority)
    assert_equal(mine, upstream)
    names = families(mine)
    assert len(names) == 26 + (2 if priority else 0)
    assert ("node_bcache_priority_stats_unused_percent" in names) is priority
    rate = names["node_bcache_writeback_rate"][2]
    assert rate[
        frozenset({("__name__", "node_bcache_writeback_rate"), ("uuid", SET_A), ("backing_device", "bdev0")})
    ] == int((2 + 3 / 10.24) * 2**20)


def _mutated(tmp_path: Path, relative: str, text: str | None) -> Path:
    root = tmp_path / "capture"
    shutil.copytree(CAPTURE, root)
    path = root / "sys" / "fs" / "bcache" / relative
    if text is None:
        path.unlink()
    else:
        path.write_text(text)
    return root


@needs_node_exporter
@pytest.mark.parametrize(
    ("relative", "text", "priority", "succeeds"),
    [
        (f"{SET_A}/bdev1/writeback_rate_debug", None, False, False),  # required per backing device: both fail
        (f"{SET_A}/cache0/priority_stats", None, True, False),  # required with the flag: both fail
        (f"{SET_A}/cache0/priority_stats", None, False, True),  # not read without it: both succeed
        (f"{SET_A}/bdev0/dirty_data", "1.9Q\n", False, True),  # a unit bch_hprint never prints multiplies by 0
        (f"{SET_A}/cache0/written", "12,5G\n", False, False),  # not a number: both fail
        (f"{SET_A}/bdev0/stats_total/cache_hits", "1e3\n", False, True),  # a plain float without a unit
        (f"{SET_A}/bdev0/writeback_rate_debug", "rate:\t\t1.1M/sec\nnext io:\t1.5ms\n", False, False),  # ParseInt fails
        (f"{SET_B}/bdev0/writeback_rate_debug", "rate:\t\t7.9k/sec\r\nchange:\t\t-0/sec\n", False, True),
        (f"{SET_B}/cache0/priority_stats", "Unused:\t\t-1%\n", True, False),  # ParseUint refuses a sign
    ],
)
def test_edge_cases_fail_or_succeed_as_upstream(
    tmp_path: Path, relative: str, text: str | None, priority: bool, succeeds: bool
) -> None:
    root = _mutated(tmp_path, relative, text)
    upstream, ok = theirs(root, priority)
    assert ok is succeeds
    if ok:
        assert_equal(ours(root, priority), upstream)
    else:
        with pytest.raises(ValueError):
            ours(root, priority)


# procfs' own TestDehumanizeTests cases (bcache/get_test.go), then bch_hprint's other shapes
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("542k", 555008),
        ("322M", 337641472),
        ("1.1k", 1124),
        ("1.9k", 1924),
        ("1.10k", 2024),
        ("0", 0),
        ("512", 512),
        ("1.5", 1),
        ("20.4G", int((20 + 4 / 10.24) * 2**30)),
        ("1.0E", 2**60),
        ("7?", 0),
        ("2.5e1", 25),
    ],
)
def test_dehumanize_as_procfs(text: str, value: int) -> None:
    assert dehumanize(text) == value


@pytest.mark.parametrize(
    "text", ["", "k", "1.k", ".5k", "1 k", "1_0", "-1", "-1.2k", "3Y", "nan", "inf", "1e400", "5µ"]
)
def test_dehumanize_rejects_what_procfs_rejects_or_go_cannot_convert(text: str) -> None:
    with pytest.raises(ValueError):
        dehumanize(text)


def test_signed_terms_and_go_floats() -> None:
    assert dehumanize_signed("-427.5k") == -int((427 + 5 / 10.24) * 1024)
    assert dehumanize_signed("790.0k") == 790 * 1024
    assert go_float("0x1p4") == 16.0 and go_float("+.5") == 0.5 and go_float("-Inf") == float("-inf")
    for bad in ("+nan", "0x10", "1__0", " 1"):
        with pytest.raises(ValueError):
            go_float(bad)


def test_writeback_rate_debug_and_priority_stats_parsers() -> None:
    text = (
        "rate:\t\t1.1M/sec\ndirty:\t\t20.4G\ntarget:\t\t20.4G\nproportional:\t427.5k\n"
        "integral:\t790.0k\nchange:\t\t321.5k/sec\nnext io:\t17ms\n"
    )
    assert parse_writeback_rate_debug(text) == {
        "rate": 1150976,
        "dirty": 21894266880,
        "target": 21894266880,
        "proportional": 437748,
        "integral": 808960,
        "change": 329204,
        "next_io": 17,
    }  # node_exporter 1.5's e2e fixture figures
    assert parse_writeback_rate_debug("") == dict.fromkeys(
        ("rate", "dirty", "target", "proportional", "integral", "change", "next_io"), 0
    )
    assert parse_priority_stats("Unused:\t\t99%\nMetadata:\t0%\nAverage:\t10473\n") == (99, 0)
    with pytest.raises(ValueError):
        parse_priority_stats("Metadata:\tsome%\n")


def test_a_host_without_bcache_costs_nothing_and_reads_no_priority_stats_by_default() -> None:
    collector = by_name()["bcache"]
    assert collector.collect({}, collector.options()) == []
    script = make_plan(["bcache"]).script
    assert script == build_script([collector]) and "priority_stats" not in script
    assert script.count("head ") == 1 and "$(" not in script and "`" not in script
    flagged = make_plan(["bcache"], {"bcache": {"priorityStats": "True"}}).script
    assert "/sys/fs/bcache/*-*/cache[0-9]*/priority_stats" in flagged
    assert make_plan(["bcache"], {"bcache": {"priorityStats": "false"}}).script == script
    # this machine has no /sys/fs/bcache: the globs match nothing and the collector has no series
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30).stdout
    sources, complete = split_sources(out, ())
    assert complete
    if not Path("/sys/fs/bcache").exists():
        assert not [path for path in sources if path.startswith("/sys/fs/bcache/")]
        assert collector.collect(sources, collector.options()) == []

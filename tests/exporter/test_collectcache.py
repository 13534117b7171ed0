"""The per-host collector cache (results keyed on source text) and the renderer's reuse of its text.

They may only ever save work: a collector must build from the sources it declares exactly what
it builds from the whole answer (else a memo keyed on those sources could serve stale families), a
changed file must be re-read and re-rendered, the rendered bytes must equal a fresh render's, and a
removed or hostile host cannot grow the cache without limit.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging

import pytest

from optilab.exporter.collectcache import CollectCache, declared_keys
from optilab.exporter.collectors import COLLECTORS, make_plan
from optilab.exporter.collectors.base import Collector
from optilab.exporter.config import HealthSettings, HostEntry, parse_target
from optilab.exporter.family import Exposition, Family, gauge, render
from optilab.exporter.health import HealthBook
from optilab.exporter.probe import Prober
from tests.exporter.test_collectors_sys import LAB_PC, SYS, read_sources
from tests.support.captures import answer, batch_sources, captured_sources

EXTRA = {"instance": "127.0.1.7:22", "department": "physics"}


def _captures() -> dict[str, dict[str, str]]:
    found = {"debian-v2": captured_sources("debian"), "lab-pc-sys": read_sources(SYS, LAB_PC)}
    found.update({f"{distro}-v1": batch_sources(distro) for distro in ("debian", "rocky", "alpine")})
    return found


CAPTURES = _captures()


def _collect(collector, sources):
    try:
        return True, collector.collect(sources, collector.options())
    except (ValueError, IndexError, KeyError, ZeroDivisionError) as exc:
        return False, type(exc).__name__


@pytest.mark.parametrize("capture", sorted(CAPTURES))
def test_every_collector_builds_the_same_from_its_declared_sources_alone(capture):
    """What the memo keys on is all a collector reads: the same result from its own sources only."""
    sources = CAPTURES[capture]
    checked = 0
    for collector in COLLECTORS:
        own = {key: sources[key] for key in declared_keys(collector, tuple(sources))}
        whole, alone = _collect(collector, sources), _collect(collector, own)
        assert whole == alone, f"{collector.name} reads a source it does not declare ({capture})"
        checked += bool(own)
    assert checked >= 5  # the capture fed several collectors, not none


def test_the_check_catches_a_collector_reading_what_it_does_not_declare():
    sneaky = Collector(
        name="sneaky",
        paths=("/proc/stat",),
        collect=lambda sources, options: [gauge("x", "X.", len(sources.get("/proc/meminfo", "")))],
    )
    sources = CAPTURES["debian-v2"]
    own = {key: sources[key] for key in declared_keys(sneaky, tuple(sources))}
    assert _collect(sneaky, sources) != _collect(sneaky, own)


def test_declared_keys_match_globs_and_commands_only():
    stat = next(c for c in COLLECTORS if c.name == "stat")
    filesystem = next(c for c in COLLECTORS if c.name == "filesystem")
    keys = ("/proc/stat", "/proc/stat2", "/proc/meminfo", "cmd:statfs", "cmd:who")
    assert declared_keys(stat, keys) == ("/proc/stat",)
    assert "cmd:statfs" in declared_keys(filesystem, keys) and "cmd:who" not in declared_keys(filesystem, keys)


class Answers:
    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)

    def run(self, target, command, deadline) -> str:
        return self.answers.pop(0)


PLAN = dataclasses.replace(
    make_plan(["cpu", "stat", "meminfo", "loadavg", "netdev", "filesystem", "uname", "os", "time", "lab"]), slow=None
)
ENTRY = HostEntry(parse_target("127.0.1.7", 22), "physics", "pc-07")


def _prober(*answers: str) -> Prober:
    ticks = itertools.count()
    return Prober(
        Answers(*answers),
        HealthBook(HealthSettings()),
        clock=lambda: 0.0,
        timer=lambda: next(ticks) * 0.0001,
        plans=lambda entry: PLAN,
    )


def _meminfo(sources: dict[str, str], free_kb: int) -> dict[str, str]:
    lines = [
        f"MemFree:        {free_kb} kB" if line.startswith("MemFree:") else line
        for line in sources["/proc/meminfo"].splitlines()
    ]
    return {**sources, "/proc/meminfo": "\n".join(lines) + "\n"}


def _family(families: list[Family], name: str) -> Family:
    return next(f for f in families if f.name == name)


def test_a_changed_file_is_read_and_rendered_again_an_unchanged_one_is_served():
    base = batch_sources("rocky")
    changed = _meminfo(base, 123)
    prober = _prober(*(answer(s, PLAN) for s in (base, base, changed)))
    texts, results, reused = [], [], []
    for _ in range(3):
        result = prober.probe(ENTRY, 1e9)
        exposition = Exposition(reuse=True)
        exposition.add(result.families, EXTRA)
        texts.append(exposition.render().decode())
        results.append(result.families)
        reused.append(exposition.reused)
        assert texts[-1] == render(result.families, EXTRA).decode()  # what a fresh render says
    assert _family(results[1], "node_load1") is _family(results[0], "node_load1")  # served again
    assert _family(results[2], "node_memory_MemFree_bytes") is not _family(results[1], "node_memory_MemFree_bytes")
    assert _family(results[2], "node_memory_MemFree_bytes").samples[0][1] == 123 * 1024
    assert f'node_memory_MemFree_bytes{{instance="127.0.1.7:22",department="physics"}} {123 * 1024}.0' in texts[2]
    assert texts[1].count("node_memory_MemFree_bytes{") == 1
    assert texts[1] != texts[2]
    assert prober.collect_cache.hits > 0 and reused[0] == 0 and reused[1] > 0


def test_options_are_part_of_the_key():
    cache = CollectCache()
    netdev = next(c for c in COLLECTORS if c.name == "netdev")
    sources = batch_sources("rocky")
    everything = netdev.options()
    no_lo = netdev.options({"device-exclude": "^lo$"})
    _, first, _ = cache.host("h", sources).collect(netdev, everything)
    _, second, hit = cache.host("h", sources).collect(netdev, no_lo)
    assert not hit and len(second[0].samples) < len(first[0].samples)


def test_failed_collector_is_remembered_as_failed_and_retried_on_new_text():
    cache = CollectCache()
    stat = next(c for c in COLLECTORS if c.name == "stat")
    broken = {"/proc/stat": "intr x\n"}
    assert cache.host("h", broken).collect(stat, stat.options())[:2] == (False, [])
    assert cache.host("h", broken).collect(stat, stat.options()) == (False, [], True)
    ok, families, hit = cache.host("h", batch_sources("rocky")).collect(stat, stat.options())
    assert ok and families and not hit


def test_reused_text_equals_a_fresh_render_and_follows_the_extra_labels():
    family = Family("x_total", "counter", "X.", ("dev",), [(("b%s",), 2e7), (('q"uote\\',), 3.0), (("c\n",), 4.5)])
    plain = Family("y", "gauge", "Y.", (), [((), float("nan"))])
    for extra in (EXTRA, {}, EXTRA, {"instance": "127.0.1.8:22", "department": "chemistry"}):
        for _ in range(2):  # rendered, then reused
            exposition = Exposition(reuse=True)
            exposition.add([family, plain], extra)
            assert exposition.render() == render([family, plain], extra)
    exposition = Exposition(reuse=True)
    exposition.add([family, plain], EXTRA)  # the text kept is the last extra labels' (chemistry)
    assert exposition.reused == 0 and exposition.rendered == 2
    exposition = Exposition(reuse=True)
    exposition.add([family, plain], EXTRA)
    # a lone label-less sample is rendered every time (that costs what looking up its kept text does)
    assert exposition.reused == 1 and exposition.rendered == 1 and plain.rendered is None
    family.samples.append((("d",), 1.0))  # the contract forbids it; the count still sees it
    exposition = Exposition(reuse=True)
    exposition.add([family], EXTRA)
    assert exposition.rendered == 1 and exposition.render() == render([family], EXTRA)


def test_removed_hosts_leave_the_cache():
    prober = _prober(*(answer(batch_sources(d), PLAN) for d in ("rocky", "debian")))
    other = HostEntry(parse_target("127.0.1.8", 22), "physics")
    for entry in (ENTRY, other):
        prober.probe(entry, 1e9)
    assert len(prober.collect_cache) == 2
    prober.forget_except({str(other.target)})
    assert len(prober.collect_cache) == 1


def test_hostile_hosts_cannot_grow_the_cache(caplog):
    caplog.set_level(logging.WARNING)
    cache = CollectCache(max_hosts=3, max_key_sets=4)
    stat = next(c for c in COLLECTORS if c.name == "stat")
    for number in range(20):  # a new host and a new set of file names every time
        sources = {"/proc/stat": f"ctxt {number}\n", f"/sys/class/net/eth{number}/mtu": "1500\n"}
        cache.host(f"h{number}", sources).collect(stat, stat.options())
    for number in range(20):  # one host whose file names change at every scrape
        cache.host("h19", {"/proc/stat": "ctxt 1\n", f"/x/{number}": "1\n"}).collect(stat, stat.options())
    assert len(cache) == 3
    assert len(cache._key_sets) <= 4
    assert all(len(entries) <= 1 for entries in cache._hosts.values())  # one entry per collector
    assert cache.evictions["hosts"] == 17 and cache.evictions["key_sets"] > 0
    warnings = [r.message for r in caplog.records if "logged once" in r.message]
    assert len(warnings) == 2  # hosts, key sets: once each


def test_a_result_above_the_series_bound_is_not_kept():
    cache = CollectCache(max_series=3)
    cpu = next(c for c in COLLECTORS if c.name == "cpu")
    sources = batch_sources("rocky")
    cache.host("h", sources).collect(cpu, cpu.options())
    assert cache.host("h", sources).collect(cpu, cpu.options())[2] is False
    assert cache.evictions["series"] == 2


def test_the_bounds_that_bit_are_exported():
    from optilab.exporter.selfmetrics import _memo_families

    prober = _prober(*(answer(batch_sources("rocky"), PLAN) for _ in range(2)))
    prober.collect_cache.max_hosts = 1
    prober.series_cap = 10
    for host in ("127.0.1.7", "127.0.1.8"):
        prober.probe(HostEntry(parse_target(host, 22), "physics"), 1e9)
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in _memo_families(prober) for s in f.samples}
    assert found[("optilab_exporter_series_cap_hits_total", ())] == 2
    assert found[("optilab_exporter_cache_evictions_total", (("bound", "hosts"), ("cache", "collect")))] == 1
    assert found[("optilab_exporter_cache_hosts", (("cache", "collect"),))] == 1

"""What each collector costs: CPU on the target per scrape, and exporter CPU per probe.

Target side: the collection script of one collector (plus the framing every script has) run by a
fresh ``sh`` on this machine, CPU summed over ``sh`` and everything it started (``RUSAGE_CHILDREN``),
minus an empty script's; the whole default plan likewise, next to node_exporter's own CPU per scrape
of this host in the same run (its /proc/PID/stat before and after N scrapes). A persistent shell (the
transport's long-lived ``sh``) saves the ``sh`` start, the "empty script" row. The collectors off by
default (interrupts, processes, tcpstat: issue item 5's extras) have their rows too, each on its own
script's answer.

Exporter side: each collector's ``collect`` on this machine's sources (split once), median of many
calls, and the renderer on the whole probe's families; then the per-probe total (split + every
collector + render), the figure the issue's ≤ 1 ms goal is about. "With the memos" is the probe's real
path on two answers of this machine read a second apart, alternating (exporter/collectcache.py and
family.Exposition's reuse): what changed between them is collected and rendered again, the rest is
served.

    python -m bench.collector_cost [--runs 200]

The machine is shared and noisy: medians of one run; compare rows of the same run, not across runs.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path

from bench.common import free_port, report
from optilab.exporter.collectcache import CollectCache
from optilab.exporter.collectors import by_name, make_plan
from optilab.exporter.collectors.base import Collector
from optilab.exporter.command import build_script, command_names, piped_name, split_sources
from optilab.exporter.family import Exposition, Family, render

NODE_EXPORTER = Path("/usr/bin/prometheus-node-exporter")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def target_ms(script: str, runs: int) -> float:
    """Median-of-batches CPU ms per run of ``script`` by a fresh sh (batches of 10 runs)."""
    batches = []
    for _ in range(max(1, runs // 10)):
        before = children_cpu()
        for _ in range(10):
            subprocess.run(["sh", "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        batches.append((children_cpu() - before) / 10 * 1000)
    return statistics.median(batches)


def exporter_us(collector: Collector, sources: dict[str, str], runs: int) -> float:
    options = collector.options()
    began = time.process_time()
    for _ in range(runs):
        try:
            collector.collect(sources, options)
        except ValueError:  # nothing for it on this machine: what finding that out costs
            pass
    return (time.process_time() - began) / runs * 1e6


def memo_us(collector: Collector, answers: list[dict[str, str]], runs: int) -> float:
    """CPU µs per ``collect`` through a :class:`CollectCache`, the answers' sources in turn."""
    cache, options = CollectCache(), collector.options()
    cache.host("h", answers[-1]).collect(collector, options)
    began = time.process_time()
    for run in range(runs):
        cache.host("h", answers[run % len(answers)]).collect(collector, options)
    return (time.process_time() - began) / runs * 1e6


def node_exporter_ms(scrapes: int) -> float | None:
    """node_exporter's own CPU per scrape of this host (upstream filters), from its /proc/PID/stat."""
    if not NODE_EXPORTER.exists():
        return None
    port = free_port()
    process = subprocess.Popen(
        [
            str(NODE_EXPORTER),
            "--collector.netdev.device-exclude=",
            "--collector.filesystem.mount-points-exclude=^/(dev|proc|run/credentials/.+|sys|"
            "var/lib/docker/.+|var/lib/containers/storage/.+)($|/)",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=5).read()
                break
            except OSError:
                time.sleep(0.05)
        for _ in range(5):
            urllib.request.urlopen(url, timeout=5).read()
        stat = Path(f"/proc/{process.pid}/stat")
        ticks = shutil.os.sysconf("SC_CLK_TCK")

        def cpu() -> float:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks

        before = cpu()
        for _ in range(scrapes):
            urllib.request.urlopen(url, timeout=5).read()
        return (cpu() - before) / scrapes * 1000
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    plan = make_plan()
    empty = build_script([])
    base = target_ms(empty, args.runs)
    full_script = plan.script
    full = target_ms(full_script, args.runs)
    slow = target_ms(plan.slow.script, max(20, args.runs // 5)) if plan.slow else None
    theirs = node_exporter_ms(max(20, args.runs // 4))
    output = subprocess.run(["sh", "-c", full_script], capture_output=True, text=True, check=True).stdout
    sources, complete = plan.split(output)
    assert complete
    time.sleep(1.0)
    second = subprocess.run(["sh", "-c", full_script], capture_output=True, text=True, check=True).stdout
    answers = [sources, plan.split(second)[0]]
    rows = []
    for collector in sorted(by_name().values(), key=lambda c: c.name):
        single = build_script([collector])
        cost = target_ms(single, args.runs) - base
        in_plan = any(planned.name == collector.name for planned, _ in plan.collectors)
        if collector.tier == "slow" or not in_plan:  # its sources are not in the default request's answer
            own = split_sources(
                subprocess.run(["sh", "-c", single], capture_output=True, text=True, check=True).stdout,
                command_names([collector]),
                piped_name([collector]),
            )[0]
        else:
            own = sources
        try:
            families = collector.collect(own, collector.options())
        except ValueError:
            families = []
        rows.append(
            {
                "collector": collector.name,
                "tier": collector.tier,
                "target_ms": round(cost, 2),
                "exporter_us": round(exporter_us(collector, own, args.runs), 1),
                "memo_us": round(memo_us(collector, answers if own is sources else [own], args.runs), 1),
                "series": sum(len(f.samples) for f in families),
            }
        )
    families: list[Family] = []
    for collector, options in plan.collectors:
        families += collector.collect(sources, options)
    times = []
    for _ in range(args.runs):
        began = time.process_time()
        split, _ = plan.split(output)
        built: list[Family] = []
        for collector, options in plan.collectors:
            built += collector.collect(split, options)
        render(built, {"instance": "127.0.1.1:22", "department": "physics"})
        times.append(time.process_time() - began)
    memo_times = []
    cache, texts = CollectCache(), [output, second]
    for run in range(args.runs + 2):  # the first two fill the memos
        began = time.process_time()
        split, _ = plan.split(texts[run % 2])
        view = cache.host("h", split)
        built = []
        for collector, options in plan.collectors:
            built += view.collect(collector, options)[1]
        exposition = Exposition(reuse=True)
        exposition.add(built, {"instance": "127.0.1.1:22", "department": "physics"})
        exposition.render()
        if run >= 2:
            memo_times.append(time.process_time() - began)
    render_times = []
    for _ in range(args.runs):
        began = time.process_time()
        render(families, {"instance": "127.0.1.1:22", "department": "physics"})
        render_times.append(time.process_time() - began)
    series = sum(len(f.samples) for f in families)
    print(f"target CPU per scrape (fresh sh; empty script {base:.2f} ms is the sh start a persistent shell saves):")
    print(
        f"  whole default plan: {full:.2f} ms  ({full - base:.2f} ms without the sh start)   "
        f"node_exporter's own scrape of this host: {theirs:.2f} ms"
        if theirs is not None
        else ""
    )
    if slow is not None:
        print(f"  slow tier (timex: perl adjtimex), once per interval: {slow:.2f} ms")
    print(f"{'collector':<14}{'tier':<6}{'target ms':>10}{'exporter µs':>13}{'with memo':>11}{'series':>8}")
    for row in rows:
        print(
            f"{row['collector']:<14}{row['tier']:<6}{row['target_ms']:>10.2f}{row['exporter_us']:>13.1f}"
            f"{row['memo_us']:>11.1f}{row['series']:>8}"
        )
    print(
        f"exporter per probe (split + {len(plan.collectors)} collectors + render, {series} series, with instance "
        f"and department labels): {statistics.median(times) * 1000:.3f} ms; render alone "
        f"{statistics.median(render_times) * 1000:.3f} ms; answer {len(output)} bytes"
    )
    print(
        f"exporter per probe with the memos (two answers a second apart, in turns): "
        f"{statistics.median(memo_times) * 1000:.3f} ms"
    )
    report(
        "collector_cost",
        "What each collector costs (target CPU per scrape, exporter CPU per probe)",
        [
            ("target CPU, whole default plan (fresh sh)", f"{full:.2f} ms"),
            ("target CPU, sh start (saved by a persistent shell)", f"{base:.2f} ms"),
            ("node_exporter's own CPU per scrape, same run", f"{theirs:.2f} ms" if theirs is not None else "n/a"),
            ("slow tier (timex), per refresh", f"{slow:.2f} ms" if slow is not None else "n/a"),
            ("exporter CPU per probe (split + collectors + render)", f"{statistics.median(times) * 1000:.3f} ms"),
            ("render alone", f"{statistics.median(render_times) * 1000:.3f} ms"),
            (
                "exporter CPU per probe with the memos (split + collectors + render)",
                f"{statistics.median(memo_times) * 1000:.3f} ms",
            ),
            ("series / answer bytes", f"{series} / {len(output)}"),
        ],
        {"collectors": rows},
    )


if __name__ == "__main__":
    main()

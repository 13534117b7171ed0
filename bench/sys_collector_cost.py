"""What the /sys, NFS and XFS collectors cost: on the target (CPU of ``sh -c <plan script>`` on this
machine, the default plan next to the same plan without them, in turns) and in the exporter (parse +
build per collector on the hand-made ``tests/data/sys/lab-pc`` tree, where all their hardware is).

    python -m bench.sys_collector_cost [--runs 100]

Local ``sh`` only (no SSH): the target's side of a scrape without sshd's share.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import time
from pathlib import Path

from optilab.exporter.collectors import by_name, make_plan
from optilab.exporter.command import build_script, command_names, piped_name, split_sources

COL_SYS = (
    "bonding",
    "cpufreq",
    "dmi",
    "edac",
    "fibrechannel",
    "hwmon",
    "infiniband",
    "ipvs",
    "mdadm",
    "netclass",
    "nfs",
    "nfsd",
    "nvme",
    "powersupplyclass",
    "rapl",
    "selinux",
    "tapestats",
    "thermal_zone",
    "xfs",
    "zfs",
)
LAB_PC = Path(__file__).resolve().parent.parent / "tests" / "data" / "sys" / "lab-pc"


def target_cpu_ms(script: str, runs: int) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(runs):
        subprocess.run(
            ["sh", "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/", timeout=30, check=False
        )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / runs * 1000


def capture_sources(names: list[str]) -> dict[str, str]:
    """The lab-pc tree read by the collectors' own script, every /sys and /proc pointed at it."""
    collectors = [by_name()[name] for name in names]
    script = build_script(collectors).replace("/sys/", f"{LAB_PC}/sys/").replace("/proc/", f"{LAB_PC}/proc/")
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, cwd="/", timeout=30).stdout
    return split_sources(out.replace(str(LAB_PC), ""), command_names(collectors), piped_name(collectors))[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    runs = parser.parse_args().runs
    full = make_plan()
    without = make_plan([c.name for c, _ in full.collectors if c.name not in COL_SYS])
    print(f"target CPU per run of the plan's script ({runs} runs each, in turns):")
    for turn in (1, 2):
        print(
            f"  turn {turn}: default plan {target_cpu_ms(full.script, runs):.2f} ms, "
            f"without the col-sys collectors {target_cpu_ms(without.script, runs):.2f} ms, "
            f"sh -c true {target_cpu_ms('true', runs):.2f} ms"
        )
    sources = capture_sources([name for name in COL_SYS if name != "selinux"])
    sources["/proc/filesystems"] = (LAB_PC / "proc" / "filesystems").read_text()
    print("exporter CPU per collect() on the lab-pc capture:")
    total = 0.0
    for name in COL_SYS:
        collector = by_name()[name]
        options = collector.options()
        start = time.process_time()
        for _ in range(300):
            families = collector.collect(sources, options)
        micros = (time.process_time() - start) / 300 * 1e6
        total += micros
        print(f"  {name:18s} {micros:7.1f} us  {sum(len(f.samples) for f in families):4d} series")
    print(f"  together {total / 1000:.2f} ms")
    plan = make_plan()
    out = subprocess.run(["sh", "-c", plan.script], capture_output=True, text=True, cwd="/", timeout=30).stdout
    live = plan.split(out)[0]
    start = time.process_time()
    for _ in range(300):
        for name in COL_SYS:
            collector = by_name()[name]
            collector.collect(live, collector.options())
    print(f"all of them on this machine's own answer: {(time.process_time() - start) / 300 * 1000:.2f} ms per scrape")


if __name__ == "__main__":
    main()

"""Whole-lab fan-out: the exporter's ``GET /probe`` over every host, cold and warm, against the floor.

Issue 8's targets on this 2-core box (targets on the same box): warm fan-out of 254 hosts within
1.3x of the paramiko+gevent floor measured in the same run, exporter CPU <= 2 ms per warm probe,
cold fan-out < 3 s, single warm probe < 15 ms median, exporter RSS < 200 MB with 254 connections.
The lab's own CPU is printed too: on one machine the targets' work competes with the exporter's.

    python -m bench.fanout [--hosts 254] [--rounds 5] [--cold 3] [--real]
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402 - after monkey patching, on purpose
import re  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.common import (  # noqa: E402
    Exporter,
    median,
    ms,
    peak_rss_mb,
    ratio,
    report,
    running_lab,
    tree_cpu_seconds,
    write_inventory,
)
from bench.sshfloor import Floor  # noqa: E402
from optilab.exporter.command import BATCH_SCRIPT  # noqa: E402


def successes(body: bytes) -> int:
    return len(re.findall(rb"^optilab_probe_success\{[^}]*\} 1(?:\.0)?$", body, re.MULTILINE))


def shed(body: bytes) -> int:
    """Hosts the exporter left out as its own overload (not counted against them)."""
    return len(re.findall(rb'^optilab_probe_error_info\{reason="overload"[^}]*\} 1', body, re.MULTILINE))


def measure_floor(lab, rounds: int, cold: int) -> dict[str, list[float]]:
    targets = [(h["ip"], lab.port) for h in lab.hosts]
    out: dict[str, list[float]] = {
        "cold": [],
        "cold_cpu": [],
        "warm": [],
        "warm_cpu": [],
        "lab_cpu": [],
        "lab_cold_cpu": [],
        "shell_warm": [],
        "shell_warm_cpu": [],
    }
    for repeat in range(cold):
        floor = Floor(targets, "optilab", lab.key_file, lab.known_hosts)
        lab0 = tree_cpu_seconds(lab.process.pid)
        wall, cpu, _ = floor.round(BATCH_SCRIPT)
        out["cold"].append(wall)
        out["cold_cpu"].append(cpu)
        out["lab_cold_cpu"].append(tree_cpu_seconds(lab.process.pid) - lab0)
        if repeat == cold - 1:
            for _ in range(rounds):
                lab0 = tree_cpu_seconds(lab.process.pid)
                wall, cpu, _ = floor.round(BATCH_SCRIPT)
                out["warm"].append(wall)
                out["warm_cpu"].append(cpu)
                out["lab_cpu"].append(tree_cpu_seconds(lab.process.pid) - lab0)
            floor.shell = True  # the exporter's own transport: one long-lived sh per host
            floor.round(BATCH_SCRIPT)  # starts the shells
            for _ in range(rounds):
                wall, cpu, _ = floor.round(BATCH_SCRIPT)
                out["shell_warm"].append(wall)
                out["shell_warm_cpu"].append(cpu)
        floor.close()
    return out


def fan_out(exporter: Exporter, lab, out: dict[str, list[float]], wall_key: str, cpu_key: str, lab_key: str) -> bytes:
    """One ``/probe?all=1``: its wall time, the exporter's and the lab's CPU appended under the keys."""
    cpu0, lab0 = exporter.cpu(), tree_cpu_seconds(lab.process.pid)
    wall, body = exporter.get("/probe?all=1")
    out[wall_key].append(wall)
    out[cpu_key].append(exporter.cpu() - cpu0)
    out[lab_key].append(tree_cpu_seconds(lab.process.pid) - lab0)
    return body


def measure_exporter(lab, rounds: int, cold: int, workdir: Path) -> dict[str, list[float]]:
    inventory = write_inventory(lab, workdir / "inventory.yaml", probe={"concurrency": len(lab.hosts)})
    out: dict[str, list[float]] = {
        k: []
        for k in (
            "cold",
            "cold_cpu",
            "warm",
            "warm_cpu",
            "lab_cpu",
            "single",
            "single_cpu",
            "rss",
            "bytes",
            "cold_ok",
            "lab_cold_cpu",
        )
    }
    one = f"/probe?target={lab.hosts[0]['ip']}:{lab.port}"
    for repeat in range(cold):
        exporter = Exporter(inventory, workdir / "exporter.log")
        try:
            body = fan_out(exporter, lab, out, "cold", "cold_cpu", "lab_cold_cpu")
            out["cold_ok"].append(successes(body))
            out["cold_shed"] = [shed(body)]
            if repeat < cold - 1:
                continue
            for _ in range(rounds):
                body = fan_out(exporter, lab, out, "warm", "warm_cpu", "lab_cpu")
                out["bytes"].append(len(body))
            cpu0 = exporter.cpu()
            for _ in range(50):
                wall, _ = exporter.get(one)
                out["single"].append(wall)
            out["single_cpu"].append((exporter.cpu() - cpu0) / 50)  # /proc counts 10 ms ticks
            out["rss"].append(exporter.peak_rss_mb())
            out["pooled"] = [exporter.metric("optilab_exporter_ssh_pooled_connections")]
            out["warm_ok"] = [successes(body)]  # the last warm round's
        finally:
            exporter.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=254)
    parser.add_argument("--rounds", type=int, default=5, help="warm rounds (median)")
    parser.add_argument("--cold", type=int, default=3, help="cold repeats (median)")
    parser.add_argument("--real", action="store_true", help="real-mode sshd hosts instead of simulated")
    args = parser.parse_args()
    kind = "real sshd" if args.real else "simulated"
    with (
        running_lab(args.hosts, departments=8, real=args.real) as lab,
        tempfile.TemporaryDirectory(prefix="optilab-fanout-") as tmp,
    ):
        floor = measure_floor(lab, args.rounds, args.cold)
        exp = measure_exporter(lab, args.rounds, args.cold, Path(tmp))
    n = args.hosts
    warm, floor_warm = median(exp["warm"]), median(floor["warm"])
    rows = [
        ("hosts", f"{n} ({kind}), {median(exp['bytes']) / 1e6:.1f} MB per fan-out response"),
        (
            "hosts answering: cold / warm",
            f"{min(exp['cold_ok'])} / {min(exp['warm_ok'])} (cold: {exp['cold_shed'][0]} shed as overload)",
        ),
        ("floor warm round (paramiko+gevent)", f"{ms(floor_warm)}  CPU {ms(median(floor['warm_cpu']))}"),
        ("floor cold round (dial 16 at a time)", f"{ms(median(floor['cold']))}  CPU {ms(median(floor['cold_cpu']))}"),
        ("exporter warm fan-out GET /probe?all=1", f"{ms(warm)}  CPU {ms(median(exp['warm_cpu']))}"),
        ("exporter cold fan-out", f"{ms(median(exp['cold']))}  CPU {ms(median(exp['cold_cpu']))}"),
        ("warm exporter / floor (target <= 1.3x)", ratio(warm, floor_warm)),
        ("exporter CPU per warm probe (target <= 2 ms)", ms(median(exp["warm_cpu"]) / n)),
        ("floor CPU per warm exec", ms(median(floor["warm_cpu"]) / n)),
        (
            "shell floor (one long-lived sh per host): round, CPU per answer",
            f"{ms(median(floor['shell_warm']))}, {ms(median(floor['shell_warm_cpu']) / n)}",
        ),
        (
            "lab CPU per warm round (targets' side): floor / exporter",
            f"{ms(median(floor['lab_cpu']))} / {ms(median(exp['lab_cpu']))}",
        ),
        (
            "lab CPU per cold round: floor / exporter",
            f"{ms(median(floor['lab_cold_cpu']))} / {ms(median(exp['lab_cold_cpu']))}",
        ),
        (
            "single warm probe median (target < 15 ms)",
            f"{ms(median(exp['single']))}  CPU {ms(median(exp['single_cpu']))}",
        ),
        (
            "exporter peak RSS (target < 200 MB)",
            f"{median(exp['rss']):.0f} MB, {median(exp['pooled']):.0f} pooled connections",
        ),
        ("bench process peak RSS (floor client)", f"{peak_rss_mb(__import__('os').getpid()):.0f} MB"),
    ]
    report(
        "fanout_real" if args.real else "fanout",
        f"Whole-lab fan-out, {n} {kind} hosts",
        rows,
        {"floor": floor, "exporter": exp},
    )


if __name__ == "__main__":
    main()

"""What keeps ``make bench`` running: it runs only modules that are benchmarks, and
bench/script_pieces.py cuts the collection script at its own section lines, so when the script's
layout changes (as when ``stat -f`` became head's piped stdin) the cut must follow it or the benchmark
stops running. Each piece runs here in a real ``sh`` and reads this machine's files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.run_all import plan
from bench.script_pieces import pieces
from optilab.exporter.command import BATCH_SCRIPT, STDIN


def run(script: str) -> str:
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60, check=False)
    return result.stdout


def test_every_piece_is_a_script_sh_can_parse() -> None:
    cut = pieces(BATCH_SCRIPT)
    assert cut["whole"] == BATCH_SCRIPT
    assert {"true", "paths", "head", "head with its piped stat -f"} <= set(cut)
    assert any(name.startswith("cmd:statfs") for name in cut) and any(name.startswith("cmd:date") for name in cut)
    for name, script in cut.items():
        checked = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True, timeout=30, check=False)
        assert checked.returncode == 0, (name, checked.stderr)


def test_head_alone_reads_the_files_and_the_piped_piece_adds_stat_f() -> None:
    cut = pieces(BATCH_SCRIPT)
    assert "==> /proc/stat <==" not in run(cut["paths"])  # the list of files only, nothing read
    alone, piped = run(cut["head"]), run(cut["head with its piped stat -f"])
    assert "==> /proc/stat <==" in alone and "==> /proc/stat <==" in piped
    assert f"==> {STDIN} <==" not in alone
    assert f"==> {STDIN} <==" in piped
    statfs = piped.split(f"==> {STDIN} <==", 1)[1]
    assert any(line.endswith(" /") for line in statfs.splitlines())  # stat -f of the root mount, at least


def test_make_bench_runs_every_benchmark_and_no_helper() -> None:
    bench = Path(__file__).resolve().parents[1] / "bench"
    runnable = {path.stem for path in bench.glob("*.py") if 'if __name__ == "__main__":' in path.read_text()}
    planned = {module for module, _ in plan(quick=False, only=None)}
    assert planned == runnable - {"run_all"}


def test_quick_runs_give_long_benchmarks_small_arguments_they_accept() -> None:
    from bench.run_all import QUICK

    quick = dict(plan(quick=True, only={"api_bench"}))
    assert quick["api_bench"] == QUICK["api_bench"] and dict(plan(quick=False, only={"api_bench"}))["api_bench"] == []
    for module, args in QUICK.items():
        usage = subprocess.run(
            [sys.executable, "-m", f"bench.{module}", "--help"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        assert all(flag in usage for flag in args if flag.startswith("--")), (module, args)

"""Where the target's CPU goes inside one scrape: BATCH_SCRIPT and its pieces in a long-lived ``sh``.

The transport's own protocol (exporter/shellsession.py: nonce line, function definition, the
constant call) is spoken to a local ``/bin/sh`` over pipes, as sshd would relay it, so each figure is
what the shell and its commands cost per call, without sshd or the exporter. CPU is the shell's
utime+stime+cutime+cstime from /proc/PID/stat (its commands are its reaped children) over ``--calls``
calls, median of ``--rounds`` rounds taken in turns:

* ``whole``: the default plan's script (``exporter.command.BATCH_SCRIPT``);
* ``paths``: its start up to the list of readable files (globs, glob groups, the builtin ``[ -r ]``
  loop that keeps what exists, the printed list) without ``head``;
* ``head``: the same plus ``head`` over those files; ``head with its piped stat -f``: as the script runs
  it, ``stat -f`` over the kept mount points as head's stdin;
* ``cmd:<name>``: one command section alone (header, command, status line);
* ``true``: the call's own cost (one fork for ``$(...)``);
* ``whole + slow-tier stand-in``: a pair of calls, the script and then another script with a listing
  part of its own (as a slow-tier refresh comes between two scrapes), through a session of one slot
  (what the transport had before: the next scrape re-sent the script and listed its files again) and
  of :data:`~exporter.shellsession.SLOTS`;
* ``who -u`` run unconditionally: what the ``who`` section costs a host where utmp exists (here it
  has none, so the section runs no process);
* ``udev``: diskstats' nine udev patterns over a 900-entry stand-in for a desktop's /run/udev/data
  (this machine has none), listed as the script does and, as before, one glob per pattern.

    python -m bench.script_pieces [--calls 200] [--rounds 5]

Pieces overlap nothing and miss nothing but noise: whole ≈ head + the commands.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import report  # noqa: E402
from optilab.exporter.collectors import by_name  # noqa: E402
from optilab.exporter.collectors.base import Collector  # noqa: E402
from optilab.exporter.collectors.diskstats import UDEV  # noqa: E402
from optilab.exporter.command import BATCH_SCRIPT, PIPED, build_script, script_listings  # noqa: E402
from optilab.exporter.shellsession import SLOTS, Definitions, setup_line, split_answer  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / TICK


def shell_ms(script: str, calls: int, other: str | None = None, slots: int = SLOTS) -> float:
    """CPU ms per call of ``script`` in a long-lived ``sh`` spoken to with the transport's protocol;
    with ``other``, per pair of calls (``script`` then ``other``, as a slow-tier refresh comes
    between two scrapes) through a session of ``slots`` slots."""
    nonce = secrets.token_hex(16)
    shell = subprocess.Popen(
        ["/bin/sh"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd="/"
    )
    assert shell.stdin is not None and shell.stdout is not None
    stdin, stdout = shell.stdin, shell.stdout.fileno()
    try:

        def read_until(done: Callable[[bytes], bool]) -> None:
            buffer = b""
            while not done(buffer):
                chunk = os.read(stdout, 1 << 20)
                if not chunk:
                    raise RuntimeError("the shell exited")
                buffer += chunk

        def ask(message: str) -> None:
            stdin.write(message.encode())
            stdin.flush()
            read_until(lambda buffer: buffer.endswith(b"\n") and split_answer(buffer, nonce) is not None)

        stdin.write(setup_line(nonce).encode())
        stdin.flush()
        read_until(lambda buffer: buffer.endswith(f"{nonce} ready\n".encode()))
        held = Definitions(slots)
        for _ in range(5):
            ask(held.request(script))
            if other is not None:
                ask(held.request(other))
        before = _cpu(shell.pid)
        for _ in range(calls):
            ask(held.request(script))
            if other is not None:
                ask(held.request(other))
        return (_cpu(shell.pid) - before) / calls * 1000
    finally:
        shell.stdin.close()
        shell.wait(timeout=30)


def pieces(script: str) -> dict[str, str]:
    """The script cut at its own section lines (exporter.command.build_script's layout)."""
    head_at = script.index("\n" + PIPED)  # the piped block: { stat -f ...; } | head -v ... /dev/null -
    first_command = script.index("\nprintf '\\n==> cmd:")
    block = script[head_at + 1 : first_command + 1]
    alone = block[block.index("| head -v ") + 2 :].replace(" /dev/null - ", " /dev/null ")  # head without stdin
    out = {
        "true": "true",
        "paths": script[: head_at + 1],
        "head": script[: head_at + 1] + alone,
        "head with its piped stat -f": script[: first_command + 1],
    }
    sections = script[first_command + 1 :].split("printf '\\n==> cmd:")[1:]
    listings = script_listings(by_name().values())
    for section in sections:
        name = section.split(" ", 1)[0]
        piece = "LC_ALL=C; export LC_ALL\nprintf '\\n==> cmd:" + section.replace("echo '@@end'\n", "")
        for listing, text in listings:  # a section that reads a listing gets it made first, as an exec does
            if f"$listed_{listing}" in piece:
                name += f" (with its {listing} listing, which a session makes once every 10 calls)"
                piece = f"l=\n{text}\nlisted_{listing}=$l\n" + piece
        out[f"cmd:{name}"] = piece
    out["who -u run unconditionally (what a host with utmp pays)"] = "who -u"
    out["whole"] = script
    return out


def udev_scripts(directory: Path) -> dict[str, str]:
    """diskstats' nine ``/run/udev/data/b<major>:*`` patterns over a stand-in for a desktop's udev
    database (``directory``: 900 entries, 10 of them block devices), listed the way the script does
    (one loop over the directory, exporter.command) and one glob per pattern, as before."""
    directory.mkdir(exist_ok=True)
    for index in range(900):
        name = (
            (f"c{index % 200}:{index}", f"n{index}", f"+input:input{index}")[index % 3]
            if index >= 10
            else f"b{('8:0', '8:1', '8:2', '259:0', '259:1', '259:2', '7:0', '7:1', '11:0', '253:0')[index]}"
        )
        (directory / name).write_text("E:ID_MODEL=x\n")
    prefix = UDEV.rpartition("/")[0]  # /run/udev/data
    patterns = [path.replace(prefix, str(directory)) for path in by_name()["diskstats"].paths if path.startswith(UDEV)]
    keep = 'l=; for f; do [ -r "$f" ] && l="$l$f\n"; done\n'
    looped = build_script([Collector("udev", tuple(patterns), lambda sources, options: [])])
    listing = looped[: looped.index("\nl=; ")] + "\n"
    return {
        "udev: one loop over the directory (as the script lists them)": listing + keep,
        "udev: one glob per pattern (before)": "set -- " + " ".join(patterns) + "\n" + keep,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    scripts = pieces(BATCH_SCRIPT)
    scratch = Path(tempfile.mkdtemp(prefix="optilab-udev-"))
    scripts.update(udev_scripts(scratch / "data"))
    # a slow-tier refresh between two scrapes: a stand-in with a listing part of its own and nothing to
    # run, so the pair's cost is the collection script's call plus what the session re-sends
    other = build_script([Collector("slow", ("/proc/loadavg",), lambda sources, options: [])])
    pairs = {
        "whole + slow-tier stand-in, one slot (before: the script re-sent, its files listed again)": 1,
        f"whole + slow-tier stand-in, {SLOTS} slots (each stays defined)": SLOTS,
    }
    figures: dict[str, list[float]] = {name: [] for name in [*scripts, *pairs]}
    for _ in range(args.rounds):
        for name, script in scripts.items():
            figures[name].append(shell_ms(script, args.calls))
        for name, slots in pairs.items():
            figures[name].append(shell_ms(BATCH_SCRIPT, args.calls, other, slots))
    shutil.rmtree(scratch)
    medians = {name: statistics.median(values) for name, values in figures.items()}
    rows = [(name, f"{value:.2f} ms") for name, value in medians.items()]
    rows.append(("head alone (head - paths)", f"{medians['head'] - medians['paths']:.2f} ms"))
    rows.append(("load average at the end", f"{os.getloadavg()[0]:.1f}"))
    report(
        "script_pieces",
        f"Target CPU per call in a long-lived sh, {args.calls} calls x {args.rounds} rounds",
        rows,
        {"medians_ms": medians, "rounds_ms": figures},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

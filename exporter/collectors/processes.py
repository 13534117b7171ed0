"""node_exporter's processes collector (off by default, as upstream): processes and threads by state.

``node_processes_{pids,threads,max_processes,max_threads}`` and ``node_processes_state{state}``,
``node_processes_threads_state{thread_state}``. node_exporter reads ``/proc/<pid>/stat`` of every
process and ``/proc/<pid>/task/<tid>/stat`` of every thread; a thread group's leader (``tid == pid``)
has the process's state and thread count, so every figure comes from the task files alone. They are
read by one constant command, ``grep -H ''``, which prints each line behind its file's path: the
files come and go with every process, so the shell would have to list them afresh at every call
(``set -- "$@" "$f"`` per file, quadratic in dash: exporter/command.py) before head read them; one
process that expands the glob itself does both. A comm (at most 15 bytes) may hold a newline or a
``)``; the parser takes a line that does not start with a task file's path as the previous file's
continuation and the state after the last ``)``, and a comm is too short to forge a path prefix
(``/proc/1/task/1/stat:`` is 20 bytes).
"""

from __future__ import annotations

import re
from collections import Counter

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, source
from optilab.exporter.family import Family, gauge

THREADS_MAX = "/proc/sys/kernel/threads-max"
PID_MAX = "/proc/sys/kernel/pid_max"
TASKS = "grep -H '' /proc/[0-9]*/task/[0-9]*/stat"
_TASK = re.compile(r"/proc/([0-9]+)/task/([0-9]+)/stat:")
#: the field after the state that is ``num_threads``: stat's 20th field, the state being its 3rd
_NUM_THREADS = 20 - 3


def parse_tasks(text: str) -> list[tuple[bool, str, int]]:
    """``grep -H ''`` over the task stat files -> (leads its thread group, state, num_threads) per task.
    A task that vanished while it was read (a short line) is left out, as node_exporter skips it."""
    records: list[tuple[bool, list[str]]] = []
    for line in text.split("\n"):
        found = _TASK.match(line)
        if found:
            records.append((found[1] == found[2], [line[found.end() :]]))
        elif records:
            records[-1][1].append(line)
    tasks = []
    for leader, lines in records:
        stat = lines[0] if len(lines) == 1 else "\n".join(lines)
        # the fields after the comm are single-space separated: split only as far as num_threads
        fields = stat[stat.rfind(")") + 2 :].split(" ", _NUM_THREADS + 1)
        if len(fields) > _NUM_THREADS + 1 and fields[_NUM_THREADS].isdigit():
            tasks.append((leader, fields[0], int(fields[_NUM_THREADS])))
    return tasks


def _by_state(name: str, help_text: str, label: str, counts: Counter[str]) -> Family:
    family = Family(name, "gauge", help_text, (label,))
    for state in sorted(counts):
        family.samples.append(((state,), float(counts[state])))
    return family


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    tasks = parse_tasks(source(sources, "cmd:processes"))
    if not tasks:
        raise ValueError("no task stat file could be read")
    leaders = [(state, threads) for leader, state, threads in tasks if leader]
    return [
        gauge("node_processes_threads", "Allocated threads in system", sum(threads for _, threads in leaders)),
        gauge("node_processes_max_threads", "Limit of threads in the system", int(source(sources, THREADS_MAX))),
        _by_state(
            "node_processes_state", "Number of processes in each state.", "state", Counter(s for s, _ in leaders)
        ),
        _by_state(
            "node_processes_threads_state",
            "Number of threads in each state.",
            "thread_state",
            Counter(state for _, state, _ in tasks),
        ),
        gauge("node_processes_pids", "Number of PIDs", len(leaders)),
        gauge("node_processes_max_processes", "Number of max PIDs limit", int(source(sources, PID_MAX))),
    ]


COLLECTOR = Collector(
    name="processes",
    paths=(THREADS_MAX, PID_MAX),
    commands=(("processes", TASKS),),
    collect=collect,
    default_enabled=False,
)

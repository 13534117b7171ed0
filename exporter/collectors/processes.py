"""node_exporter's processes collector (off by default, as upstream): processes and threads by state.

``node_processes_{pids,threads,max_processes,max_threads}`` and ``node_processes_state{state}``,
``node_processes_threads_state{thread_state}``. node_exporter reads ``/proc/<pid>/stat`` of every
process and ``/proc/<pid>/task/<tid>/stat`` of every thread; a thread group's leader (``tid == pid``)
has the process's state, so every figure comes from the task files alone. One constant command
reads them, ``grep -Ho '^.*) .'``: per file its path and the stat line up to the state letter (~50
bytes a task instead of ~300). The files come and go with every process, so the shell would have to
list them afresh at every call (``set -- "$@" "$f"`` per file, quadratic in dash: exporter/command.py)
before head read them; one process that expands the glob itself does both. ``node_processes_threads``
is the number of task files read; node_exporter adds up the leaders' ``num_threads``, the same count
but for threads that start or end while the files are read. A comm (at most 15 bytes) may hold a
newline or ``) X``: ``.*`` is greedy, so a file's last match holds the real state (nothing after it
has a ``)``), and a later match of the same path replaces an earlier one; no comm is long enough to
forge a path (``/proc/1/task/1/stat:`` is 20 bytes).
"""

from __future__ import annotations

import re
from collections import Counter

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources, source
from optilab.exporter.family import Family, gauge

THREADS_MAX = "/proc/sys/kernel/threads-max"
PID_MAX = "/proc/sys/kernel/pid_max"
TASKS = "grep -Ho '^.*) .' /proc/[0-9]*/task/[0-9]*/stat"
_TASK = re.compile(r"/proc/([0-9]+)/task/([0-9]+)/stat:")


def parse_tasks(text: str) -> dict[tuple[str, str], str]:
    """``grep -Ho '^.*) .'`` over the task stat files -> {(pid, tid): state letter}."""
    tasks: dict[tuple[str, str], str] = {}
    for line in text.split("\n"):
        found = _TASK.match(line)
        if found and line[-3:-1] == ") ":  # "... (comm) S": a match ends in ") " and the state letter
            tasks[(found[1], found[2])] = line[-1]
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
    leaders = Counter(state for (pid, tid), state in tasks.items() if pid == tid)
    return [
        gauge("node_processes_threads", "Allocated threads in system", len(tasks)),
        gauge("node_processes_max_threads", "Limit of threads in the system", int(source(sources, THREADS_MAX))),
        _by_state("node_processes_state", "Number of processes in each state.", "state", leaders),
        _by_state(
            "node_processes_threads_state", "Number of threads in each state.", "thread_state", Counter(tasks.values())
        ),
        gauge("node_processes_pids", "Number of PIDs", leaders.total()),
        gauge("node_processes_max_processes", "Number of max PIDs limit", int(source(sources, PID_MAX))),
    ]


COLLECTOR = Collector(
    name="processes",
    paths=(THREADS_MAX, PID_MAX),
    commands=(("processes", TASKS),),
    collect=collect,
    default_enabled=False,
)

"""Where the exporter's CPU goes in a warm fan-out: a cProfile of ``GET /probe`` by component.

Runs the exporter's own WSGI app in this process against a simulated lab (no HTTP transfer), warms
the pool, then profiles warm fan-outs and adds up each function's own time by the package it lives
in: paramiko, the exporter's renderer, answer splitting, collectors, lab and probe families, its
pool/probe/http code, gevent. Answers "what bounds the exporter's CPU per probe". The cyclic garbage
collector's share is timed separately (cProfile charges it to whatever function allocated when it
ran): a fan-out keeps ~50 000 samples alive until it renders them, and full collections walk them.
The profiler's clock is this process's CPU time (``time.process_time``), not wall time: the lab is
another process, and a wall clock would charge the waits for its answers to gevent's hub.
It ends with unprofiled fan-outs from which the collection work is taken away step by step
(:func:`without_work`): what the probe costs when no file changed, without the split, and without
rendering, so what a per-probe CPU goal leaves for the collection itself can be read off.

    python -m bench.profile_probe [--hosts 254] [--rounds 3] [--top 0] [--real]
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402 - after monkey patching, on purpose
import cProfile  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import pstats  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable, Iterable  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.common import median, ms, ratio, report, running_lab  # noqa: E402
from bench.sshfloor import cpu  # noqa: E402

BUCKETS = (
    ("paramiko + cryptography (SSH)", ("/paramiko/", "/cryptography/", "/nacl/")),
    ("prometheus_client (own /metrics, textfile parser)", ("/prometheus_client/",)),
    ("exporter rendering (family.py)", ("/exporter/family",)),
    ("exporter answer splitting (command.py)", ("/exporter/command",)),
    ("exporter collectors and parsers", ("/exporter/collectors/", "/exporter/parsers")),
    ("exporter lab/probe families (metrics.py)", ("/exporter/metrics",)),
    ("exporter pool, probe, http", ("/exporter/",)),
    ("gevent (scheduling, locks)", ("/gevent/", "threading.py")),
)


def timed_parts(run: Callable[[], object], hosts: int) -> tuple[dict[str, float], float]:
    """One unprofiled ``run`` with the probe's stages wrapped in ``time.process_time``: CPU seconds per
    probe by stage, and the whole run's per probe (the rest is transport, gevent and bookkeeping)."""
    from optilab.exporter import probe
    from optilab.exporter.collectors import Plan
    from optilab.exporter.family import Exposition

    stages = (("split", Plan, "split"), ("collectors", probe.Prober, "_collect"))
    stages += (("render (Exposition.add)", Exposition, "add"), ("render (chunks)", Exposition, "chunks"))
    spent: Counter[str] = Counter()
    originals = [(owner, attr, getattr(owner, attr)) for _name, owner, attr in stages]

    def timed(name: str, original: Callable[..., object]) -> Callable[..., object]:
        def wrapper(*args: object, **kwargs: object) -> object:
            began = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent[name] += time.process_time() - began

        return wrapper

    for (name, owner, attr), (_owner, _attr, original) in zip(stages, originals, strict=True):
        setattr(owner, attr, timed(name, original))
    try:
        cpu0 = cpu()
        run()
        whole = cpu() - cpu0
    finally:
        for owner, attr, original in originals:
            setattr(owner, attr, original)
    return {name: spent[name] / hosts for name, _owner, _attr in stages}, whole / hosts


def without_work(run: Callable[[], object], hosts: int, rounds: int) -> list[tuple[str, float]]:
    """CPU ms per probe of warm fan-outs with the collection work taken away step by step, to show what
    the issue's <= 1 ms per probe leaves for it: (1) every collector's result served as it was at the
    step's first round, so nothing is parsed and every family's text is reused (as if no file on any
    host changed), (2) the answer not split either, (3) nothing rendered: the SSH transport, gevent
    and the probe's own bookkeeping (health, its own families, seats, sessions) alone. The answers
    still travel from the hosts every round. Median of ``rounds`` rounds per step; the patches are
    undone afterwards."""
    from optilab.exporter import probe
    from optilab.exporter.collectors import Plan
    from optilab.exporter.family import Exposition

    originals = [(probe.Prober, "_collect"), (Plan, "split"), (Exposition, "add")]
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr in originals]
    kept: dict[tuple[str, int], tuple[list, dict, list]] = {}
    splits: dict[int, dict[str, str]] = {}

    def same_results(self: object, key: str, plan: Plan, sources: dict[str, str]) -> tuple[list, dict, list]:
        first = kept.get((key, id(plan)))
        if first is None:
            first = kept[(key, id(plan))] = saved[0][2](self, key, plan, sources)
        return list(first[0]), dict(first[1]), list(first[2])

    def same_split(self: Plan, output: str) -> tuple[dict[str, str], bool]:
        if id(self) not in splits:
            splits[id(self)] = saved[1][2](self, output)[0]
        return dict(splits[id(self)]), True

    def nothing_rendered(self: Exposition, families: Iterable[object], extra: object = None) -> None:
        for _family in families:  # the families are still produced, only not turned into text
            pass

    steps = (
        ("no file changed (results and text served again)", probe.Prober, "_collect", same_results),
        ("  and no split", Plan, "split", same_split),
        ("  and nothing rendered (transport, bookkeeping)", Exposition, "add", nothing_rendered),
    )
    rows = []
    try:
        for label, owner, attr, patch in steps:
            setattr(owner, attr, patch)
            run()  # the step's first round fills what it serves
            spent = []
            for _ in range(rounds):
                cpu0 = cpu()
                run()
                spent.append(cpu() - cpu0)
            rows.append((label, median(spent) / hosts))
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)
    return rows


def bucket(filename: str) -> str:
    return next((name for name, parts in BUCKETS if any(p in filename for p in parts)), "other (stdlib, ...)")


class GcTimer:
    """CPU time spent in the cyclic garbage collector, by generation (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.runs = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds[info["generation"]] += time.process_time() - self._started
            self.runs[info["generation"]] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=254)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--top", type=int, default=0, help="also list the N functions of most own time")
    parser.add_argument("--real", action="store_true", help="real-mode sshd hosts instead of simulated")
    args = parser.parse_args()
    from optilab.exporter.cli import GC_THRESHOLD
    from optilab.exporter.config import load_config
    from optilab.exporter.http import ExporterApp
    from optilab.exporter.runtime import Runtime

    gc.set_threshold(*GC_THRESHOLD)  # as exporter.cli.serve sets it for the exporter process
    with running_lab(args.hosts, departments=8, real=args.real) as lab:
        runtime = Runtime(str(lab.inventory), load_config(lab.inventory))
        app = ExporterApp(runtime)
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/probe", "QUERY_STRING": "all=1"}

        def fan_out() -> int:
            return sum(len(chunk) for chunk in app({**environ, "wsgi.input": io.BytesIO()}, lambda *a: None))

        fan_out()  # dial every host
        fan_out()  # CPU percent needs a previous snapshot
        prober = runtime.prober
        cache = prober.collect_cache
        without: list[float] = []  # rounds without the collector cache, alternating with those with it
        with_memos: list[float] = []
        collector = GcTimer()
        counts = (cache.hits, cache.misses)
        for _ in range(args.rounds):
            cache.enabled = False  # every collector runs, so every family is rendered again
            cpu0 = cpu()
            fan_out()
            without.append(cpu() - cpu0)
            cache.enabled = True
            fan_out()  # the memos catch up with what the round without them built
            counts = (cache.hits, cache.misses)
            gc.callbacks.append(collector)
            cpu0 = cpu()
            fan_out()
            with_memos.append(cpu() - cpu0)
            gc.callbacks.remove(collector)
        after = (cache.hits, cache.misses)
        stages, staged = timed_parts(fan_out, args.hosts)
        floors = without_work(fan_out, args.hosts, args.rounds)
        per_probe = [(b - a) / args.hosts for a, b in zip(counts, after, strict=True)]
        unprofiled = median(with_memos)
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        for _ in range(args.rounds):
            fan_out()
        profile.disable()
        runtime.close()
    totals: Counter[str] = Counter()
    others: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    for (filename, line, name), (_cc, _nc, tottime, _ct, _callers) in pstats.Stats(profile).stats.items():
        totals[bucket(filename)] += tottime
        functions[f"{'/'.join(Path(filename).parts[-2:])}:{line} {name}" if filename != "~" else name] += tottime
        if bucket(filename).startswith("other"):
            others[f"{Path(filename).name}:{line} {name}" if filename != "~" else name] += tottime
    whole = sum(totals.values())
    probes = args.hosts * args.rounds
    collecting = sum(collector.seconds) / args.rounds
    plain = median(without)
    rows = [
        (
            "warm fan-out CPU, unprofiled (median)",
            f"{ms(unprofiled)} per round, {unprofiled / args.hosts * 1e3:.2f} ms per probe",
        ),
        (
            "  the same without the collector cache",
            f"{ms(plain)} per round, {plain / args.hosts * 1e3:.2f} ms per probe; with / without "
            f"{ratio(unprofiled, plain)}",
        ),
        ("  collector results per probe: from cache / run", f"{per_probe[0]:.1f} / {per_probe[1]:.1f}"),
        (
            "  of which garbage collection (unprofiled)",
            f"{collecting / unprofiled * 100:4.1f} %  ~{ms(collecting / args.hosts)} per probe; "
            f"full collections per round {collector.runs[2] / args.rounds:.1f} "
            f"({ms(collector.seconds[2] / args.rounds)} per round)",
        ),
    ]
    rows.append(("by stage, one more round (process_time per stage)", f"{staged * 1e3:.2f} ms per probe"))
    rows += [(f"  {name}", f"{seconds * 1e3:.2f} ms per probe") for name, seconds in stages.items()]
    rest = staged - sum(stages.values())
    rows.append(("  the rest (transport, gevent, probe families, bookkeeping)", f"{rest * 1e3:.2f} ms per probe"))
    rows += [(f"without collection work: {label}", f"{seconds * 1e3:.2f} ms per probe") for label, seconds in floors]
    rows += [
        (name, f"{seconds / whole * 100:4.1f} %  ~{ms(unprofiled * seconds / whole / args.hosts)} per probe")
        for name, seconds in totals.most_common()
    ]
    rows += [(f"  other: {name[:60]}", f"{seconds / whole * 100:4.1f} %") for name, seconds in others.most_common(6)]
    per_probe = unprofiled / whole / args.hosts * 1e6  # microseconds of unprofiled CPU per profiled second
    rows += [
        (f"  top: {name[-60:]}", f"{seconds / whole * 100:4.1f} %  ~{seconds * per_probe:.0f} us per probe")
        for name, seconds in functions.most_common(args.top)
    ]
    report(
        "profile_probe",
        f"Exporter CPU by component, warm fan-out of {args.hosts} {'real-sshd' if args.real else 'simulated'} hosts "
        f"({probes} profiled probes)",
        rows,
    )


if __name__ == "__main__":
    main()

"""Overload shapes against the exporter (issue 11, items 2, 3 and 8): nothing may be blamed on the hosts.

Two shapes, against fault-free labsim hosts, so every host that ends up anything but healthy was
wrongly degraded:

1. **concurrent fan-outs**: ``rounds`` rounds of ``concurrent`` whole-lab ``GET /probe?all=1`` at once
   (scrape-timeout header 5 s), as issue 11 ran them (20 at once left 178 of 254 hosts in backoff,
   and 4 of 90 answered 500);
2. **slow readers**: ``readers`` clients ask for the whole lab at once and read the answer slowly
   (64 KiB every 0.1 s, each for at most ``read_seconds``), while single-target probes of every host
   go on as Prometheus would send them (issue 11: 50 slow readers left all 254 in backoff).

Prints and returns ``{"5xx": ..., "shed_503": ..., "hosts_wrongly_degraded": ..., "late_answers": ...,
"exporter_peak_rss_mb": ..., ...}``; ``5xx`` counts 5xx answers other than the 503 of an openly shed
request. Bounded in count and time, loopback only. The machine is shared and noisy: wall times are
one run's medians; the counts are what matters.

    python -m bench.fault_exporter [--quick]
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import Exporter, report, running_lab, write_inventory

HEADER = 5.0  # X-Prometheus-Scrape-Timeout-Seconds of every request
SUCCESS = re.compile(rb"^optilab_probe_success\{[^}]*\} 1(?:\.0)?$", re.MULTILINE)  # fan-out series
ONE_SUCCESS = re.compile(rb"^optilab_probe_success 1(?:\.0)?$", re.MULTILINE)  # a single-target answer
SHAPES = {  # full / quick
    False: {"hosts": 254, "rounds": 3, "concurrent": 20, "readers": 50, "read_seconds": 15.0},
    True: {"hosts": 64, "rounds": 1, "concurrent": 5, "readers": 8, "read_seconds": 3.0},
}


def fetch(url: str, timeout: float = 60.0) -> tuple[int, float, bytes]:
    """(status, wall seconds, body) of one GET with the scrape-timeout header."""
    request = urllib.request.Request(url, headers={"X-Prometheus-Scrape-Timeout-Seconds": str(HEADER)})  # noqa: S310
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            body, status = response.read(), response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    except OSError:
        body, status = b"", 0  # no answer at all
    return status, time.perf_counter() - started, body


def slow_read(url: str, seconds: float) -> dict[str, Any]:
    """Ask for the whole lab, read 64 KiB every 0.1 s for at most ``seconds``, then hang up."""
    host, port = url[7:].rsplit(":", 1)
    started, received, head = time.perf_counter(), 0, b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(
            f"GET /probe?all=1 HTTP/1.1\r\nHost: bench\r\nX-Prometheus-Scrape-Timeout-Seconds: {HEADER}\r\n"
            f"Connection: close\r\n\r\n".encode()
        )
        end = started + seconds
        while time.perf_counter() < end:
            chunk = sock.recv(65536)
            if not chunk:
                break
            if len(head) < 64:
                head += chunk[:64]
            received += len(chunk)
            time.sleep(0.1)
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return {"status": status, "bytes": received}


def exporter_state(exporter: Exporter) -> dict[str, Any]:
    _, body = exporter.get("/metrics")
    text = body.decode()

    def values(name: str, label: str) -> dict[str, float]:
        found = re.findall(rf'^{name}\{{{label}="([^"]*)"\}} (\S+)$', text, re.MULTILINE)
        return {key: float(value) for key, value in found}

    def fan_out_seconds(field: str) -> float:
        found = re.search(
            rf'^optilab_exporter_scrape_duration_seconds_{field}\{{kind="all"\}} (\S+)$', text, re.MULTILINE
        )
        return float(found.group(1)) if found else 0.0

    return {
        "hosts": values("optilab_exporter_hosts", "state"),
        "fan_out_server": (fan_out_seconds("sum"), fan_out_seconds("count")),
        "probes": values("optilab_exporter_probes_total", "result"),
        "shed": exporter.metric("optilab_exporter_requests_shed_total"),
        "shared": values("optilab_exporter_probes_shared_total", "kind"),
    }


def concurrent_fan_outs(exporter: Exporter, hosts: int, rounds: int, concurrent: int) -> dict[str, Any]:
    answers = []
    with ThreadPoolExecutor(concurrent) as pool:
        for _ in range(rounds):
            answers += list(pool.map(lambda _: fetch(exporter.url + "/probe?all=1"), range(concurrent)))
            time.sleep(1.0)
    ok = [a for a in answers if a[0] == 200]
    return {
        "requests": len(answers),
        "statuses": _count(a[0] for a in answers),
        "complete": sum(1 for a in ok if len(SUCCESS.findall(a[2])) == hosts),
        "late": sum(1 for a in answers if a[1] > HEADER),
        "wall_median_s": round(statistics.median(a[1] for a in ok), 3) if ok else None,
        "wall_max_s": round(max(a[1] for a in answers), 3),
    }


def slow_readers(exporter: Exporter, targets: list[str], readers: int, seconds: float) -> dict[str, Any]:
    with ThreadPoolExecutor(readers + 4) as pool:
        jobs = [pool.submit(slow_read, exporter.url, seconds) for _ in range(readers)]
        time.sleep(0.5)
        singles, end = [], time.perf_counter() + seconds
        while time.perf_counter() < end and len(singles) < 20 * len(targets):  # bounded both ways
            batch = list(pool.map(lambda t: fetch(f"{exporter.url}/probe?target={t}"), targets[:4]))
            singles += batch
            targets = targets[4:] + targets[:4]
        read = [job.result(timeout=seconds + 60) for job in jobs]
    return {
        "readers": readers,
        "reader_statuses": _count(r["status"] for r in read),
        "reader_mb_median": round(
            statistics.median([r["bytes"] for r in read if r["status"] == 200] or [0]) / 1e6, 2
        ),  # of the readers answered 200
        "single_probes": len(singles),
        "single_statuses": _count(s[0] for s in singles),
        "single_failed": sum(1 for s in singles if s[0] == 200 and not ONE_SUCCESS.search(s[2])),
        "single_late": sum(1 for s in singles if s[1] > HEADER),
        "single_wall_median_s": round(statistics.median(s[1] for s in singles), 4) if singles else None,
    }


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[str(value)] = out.get(str(value), 0) + 1
    return out


def _fivexx(statuses: dict[str, int]) -> int:
    return sum(n for code, n in statuses.items() if code.startswith("5") and code != "503")


def run_exporter_shapes(quick: bool) -> dict[str, Any]:
    """Run both shapes against a fresh lab and exporter; print and return the figures."""
    shape = SHAPES[quick]
    with (
        running_lab(shape["hosts"], departments=8) as lab,
        tempfile.TemporaryDirectory(prefix="optilab-fault-exporter-") as tmp,
    ):
        inventory = write_inventory(lab, Path(tmp) / "inventory.yaml")
        exporter = Exporter(inventory, Path(tmp) / "exporter.log")
        try:
            fetch(exporter.url + "/probe?all=1")  # cold: dial every host once
            cold = exporter_state(exporter)["fan_out_server"]
            fan = concurrent_fan_outs(exporter, shape["hosts"], shape["rounds"], shape["concurrent"])
            after_fan = exporter_state(exporter)
            total, count = (after - before for after, before in zip(after_fan["fan_out_server"], cold, strict=True))
            fan["server_mean_s"] = round(total / count, 3) if count else None  # handler time, before the write
            slow = slow_readers(exporter, lab.targets(), shape["readers"], shape["read_seconds"])
            state = exporter_state(exporter)
            rss = exporter.peak_rss_mb()
        finally:
            exporter.stop()
    degraded = int(sum(n for s, n in state["hosts"].items() if s != "healthy"))
    result = {
        "5xx": _fivexx(fan["statuses"]) + _fivexx(slow["reader_statuses"]) + _fivexx(slow["single_statuses"]),
        "shed_503": int(state["shed"]),
        "hosts_wrongly_degraded": degraded,
        "hosts_degraded_after_fan_outs": int(sum(n for s, n in after_fan["hosts"].items() if s != "healthy")),
        "late_answers": fan["late"] + slow["single_late"],
        "exporter_peak_rss_mb": round(rss, 1),
        "hosts": shape["hosts"],
        "fan_outs": fan,
        "slow_readers": slow,
        "probe_results": state["probes"],
        "shared": state["shared"],
        "quick": quick,
    }
    rows = [
        ("hosts (simulated, fault-free)", str(shape["hosts"])),
        (
            f"fan-outs: {shape['rounds']} rounds x {shape['concurrent']} at once",
            f"statuses {fan['statuses']}, "
            f"{fan['complete']} complete, client median {fan['wall_median_s']} s, max {fan['wall_max_s']} s, "
            f"server mean {fan['server_mean_s']} s",
        ),
        (
            f"slow readers: {shape['readers']} x {shape['read_seconds']:.0f} s",
            f"statuses {slow['reader_statuses']}, {slow['reader_mb_median']} MB read by each answered (median)",
        ),
        (
            "single probes meanwhile",
            f"{slow['single_probes']}: statuses {slow['single_statuses']}, "
            f"{slow['single_failed']} failed, {slow['single_late']} late, median {slow['single_wall_median_s']} s",
        ),
        ("5xx (other than shed 503)", str(result["5xx"])),
        ("shed 503", str(result["shed_503"])),
        (
            "hosts wrongly degraded (after fan-outs / at the end)",
            f"{result['hosts_degraded_after_fan_outs']} / {degraded}",
        ),
        ("answers later than the scrape timeout", str(result["late_answers"])),
        ("probe results", str(state["probes"])),
        ("collections / answers shared", str(state["shared"])),
        ("exporter peak RSS", f"{rss:.0f} MB"),
    ]
    report(
        "fault_exporter_quick" if quick else "fault_exporter",
        f"Exporter under overload, {shape['hosts']} fault-free simulated hosts",
        rows,
        {"result": result},
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller, faster version")
    run_exporter_shapes(parser.parse_args().quick)


if __name__ == "__main__":
    main()

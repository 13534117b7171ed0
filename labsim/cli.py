"""``optilab-labsim``: run a simulated (or real-sshd) lab until Ctrl-C, SIGTERM or ``--duration``.

It prints the exporter inventory (YAML) on stdout, writes it with the login key, known_hosts and
``lab.json`` (control URL, host list) into ``--state-dir``, and serves the control API on loopback.
gevent's monkey patching must precede every import of paramiko or socket users, hence its place here.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402 - after monkey patching, on purpose
import calendar  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402

from optilab.labsim.faults import parse_fault  # noqa: E402
from optilab.labsim.model import SimClock  # noqa: E402
from optilab.toolkit import flags  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="optilab-labsim",
        description="Run a simulated (or real-sshd) lab on loopback until Ctrl-C, SIGTERM or --duration.",
    )
    parser.add_argument("--hosts", type=int, default=30, help="number of hosts, 1..254 (default 30)")
    parser.add_argument("--departments", type=int, default=3, help="departments (default 3)")
    parser.add_argument("--port", type=int, default=22, help="SSH port on every host address (default 22)")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path("var/labsim"),
        help="keys, known_hosts, inventory.yaml, lab.json (default var/labsim)",
    )
    parser.add_argument("--user", default="optilab", help="login user the hosts accept")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    parser.add_argument("--start", help="simulated start time, UTC: epoch seconds or YYYY-MM-DDTHH:MM")
    parser.add_argument("--duration", type=float, help="stop after this many real seconds")
    parser.add_argument("--control", default="127.0.0.1:0", help="control API HOST:PORT (port 0 = free)")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="IP=MODE",
        help="initial fault, e.g. 127.0.1.5=hang or 127.0.1.6=slow:1.5 (repeatable)",
    )
    parser.add_argument(
        "--real", action="store_true", help="real mode: Debian sshd processes running the real commands of this machine"
    )
    flags.add_log_flags(parser, default="warn")
    flags.add_version(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be 1..65535, got {args.port}")
    host, _, port = args.control.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        parser.error(f"--control must be HOST:PORT (port 0 = free), got {args.control!r}")
    if args.speed <= 0:
        parser.error(f"--speed must be positive, got {args.speed}")
    return args


def parse_start(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M")))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    flags.setup_logging(args)
    stop = gevent.event.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stop.set)
    control_host, _, control_port = args.control.rpartition(":")
    try:
        faults = [(ip, parse_fault(mode)) for ip, _, mode in (f.partition("=") for f in args.fault)]
        if args.real:
            return _run_real(args, stop)
        from optilab.labsim.control import serve
        from optilab.labsim.runtime import LabRuntime

        lab = LabRuntime(
            args.state_dir,
            args.hosts,
            args.departments,
            args.port,
            args.user,
            SimClock(parse_start(args.start), args.speed),
        )
        inventory = lab.start()
        for ip, fault in faults:
            lab.set_fault(ip, fault)
        control = serve(lab, control_host, int(control_port))
    except (ValueError, KeyError, OSError) as exc:
        print(f"optilab-labsim: {exc}", file=sys.stderr)
        return 2
    url = f"http://{control_host}:{control.server_port}"
    (lab.state_dir / "lab.json").write_text(lab.describe(url))
    sys.stdout.write(inventory.read_text())
    sys.stdout.flush()
    print(f"# {len(lab.hosts)} hosts on port {args.port}; control API {url}", file=sys.stderr)
    try:
        stop.wait(args.duration)
    finally:
        control.stop(timeout=1)
        lab.stop()
    return 0


def _run_real(args: argparse.Namespace, stop: gevent.event.Event) -> int:
    from optilab.labsim.real import RealLab

    lab = RealLab(args.state_dir, args.hosts, args.departments, args.port, args.user)
    try:
        inventory = lab.start()
        (lab.state_dir / "lab.json").write_text(lab.describe())
        sys.stdout.write(inventory.read_text())
        sys.stdout.flush()
        print(f"# real mode: {len(lab.processes)} sshd processes, {args.hosts} hosts", file=sys.stderr)
        stop.wait(args.duration)
    finally:
        lab.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

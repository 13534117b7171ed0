"""``make demo``: a whole monitored lab on this machine, on loopback, stopped cleanly by Ctrl-C.

Order matters and follows the data: the simulated lab, the database and its schema, the bridge and
the consumer that store, the exporter that reads the lab, Prometheus and Alertmanager that scrape and
route, and the API that answers. ``--verify`` waits until the API shows usage history and an alert
that came through rules → Alertmanager → bridge → database, then exits (the suite runs that).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from optilab.demo import configs
from optilab.demo.database import Database, open_database
from optilab.demo.supervisor import DemoError, Supervisor, free_port, http_ready, port_is_free
from optilab.toolkit import flags

REPO = configs.REPO
DEFAULT_PORTS = configs.Ports(exporter=9842, bridge=9843, api=9844, prometheus=9090, alertmanager=9093)
LAB_PORT = 2222
DYING_AFTER_S = 8.0
PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


def default_state_dir() -> Path:
    """var/demo in a git checkout (make demo); under the user's state directory when installed."""
    if (REPO / "setup.cfg").exists() and (REPO / "alert_rules").is_dir():
        return REPO / "var" / "demo"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "optilab" / "demo"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="optilab-demo", description="A whole monitored lab on this machine, on loopback; Ctrl-C stops it all."
    )
    parser.add_argument("--hosts", type=int, default=30, help="simulated lab machines (default 30)")
    parser.add_argument(
        "--ports",
        choices=("default", "auto"),
        default="default",
        help="'default': 9842-9844, Prometheus 9090, Alertmanager 9093, lab SSH 2222; 'auto': free ports",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=default_state_dir(),
        help="logs, keys, database and configs of the demo (default: var/demo in a checkout, "
        "else $XDG_STATE_HOME/optilab/demo, i.e. ~/.local/state/optilab/demo)",
    )
    parser.add_argument(
        "--events",
        choices=("auto", "rabbitmq", "direct"),
        default="auto",
        help="alert/health events through RabbitMQ, or straight into the database "
        "(auto: RabbitMQ when it answers on 127.0.0.1:5672)",
    )
    parser.add_argument(
        "--verify", action="store_true", help="exit 0 once the API shows usage history and an alert (1 on time-out)"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="--verify gives up after this (s)")
    flags.add_version(parser)
    args = parser.parse_args(argv)
    if not 3 <= args.hosts <= 254:  # three departments, one machine of which dies; one /24 of addresses
        parser.error(f"--hosts must be 3..254 (three departments, 127.0.1.1-254), got {args.hosts}")
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    supervisor = Supervisor(args.state_dir / "logs")
    database: Database | None = None
    lab = None
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        ports, lab_port = choose_ports(args.ports)
        check_binaries()
        lab, database, api_key, events = start_all(args, supervisor, ports, lab_port)
        print_table(ports, api_key, database, events, lab)
        if args.verify:
            return verify(supervisor, ports, api_key, args.timeout)
        print("Running. Ctrl-C stops every process the demo started.\n", flush=True)
        while True:
            supervisor.check_alive()
            time.sleep(1)
    except DemoError as exc:
        print(f"\noptilab demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
        return 0
    finally:
        supervisor.stop_all()
        if lab is not None:
            lab.stop()
        if database is not None:
            database.stop()
        print(f"Stopped. Logs are in {supervisor.log_dir}", flush=True)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def choose_ports(mode: str) -> tuple[configs.Ports, int]:
    """The demo's ports; a taken default port is named before anything starts."""
    if mode == "auto":
        return configs.Ports(*(free_port() for _ in range(5))), free_port("127.0.1.1")
    wanted = {
        **{f"{name} (127.0.0.1)": port for name, port in DEFAULT_PORTS.__dict__.items()},
        "lab SSH (127.0.1.x)": LAB_PORT,
    }
    taken = [
        f"{port} for {name}"
        for name, port in wanted.items()
        if not port_is_free("127.0.1.1" if "lab" in name else "127.0.0.1", port)
    ]
    if taken:
        raise DemoError(
            "port already in use: "
            + ", ".join(taken)
            + ".\nStop what holds it, or run `make demo DEMO_ARGS=--ports=auto` for free ports."
        )
    return DEFAULT_PORTS, LAB_PORT


def check_binaries() -> None:
    missing = [path for path in (PROMETHEUS, ALERTMANAGER) if not Path(path).exists()]
    if missing:
        raise DemoError(
            "missing " + ", ".join(missing) + ": install the Debian packages prometheus and "
            "prometheus-alertmanager (as root: scripts/install-system-deps.sh)"
        )


def script(name: str) -> str:
    """A console script of this installation (the venv's bin next to the running Python)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            raise DemoError(f"{name} is not installed: run `make demo` from the repository")
        return found
    return str(path)


def rabbitmq_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            return True
    except OSError:
        return False


def start_all(
    args: argparse.Namespace, sup: Supervisor, ports: configs.Ports, lab_port: int
) -> tuple[Any, Database, str, str]:
    from optilab.labsim.lab import Lab  # the lab runs as its own gevent process; importing it here is cheap

    state = args.state_dir
    step("lab simulator", f"{args.hosts} SSH machines on 127.0.1.1-{args.hosts} port {lab_port}")
    lab = Lab.start(state / "lab", hosts=args.hosts, departments=3, port=lab_port)
    try:
        database = open_database(state)
        step("database", database.description)
        sup.run("migrate", [script("optilab-migrate"), "--dsn", database.dsn])
        prefix = "optilab-demo"
        amqp_env = {"OPTILAB_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/%2F", "OPTILAB_AMQP_PREFIX": prefix}
        if args.events == "rabbitmq" or (args.events == "auto" and rabbitmq_answers()):
            events = f"through RabbitMQ (127.0.0.1:5672, exchange {prefix}.events)"
            step("consumer", events)
            sup.start("consumer", [script("optilab-bridge"), "consume", "--dsn", database.dsn], env=amqp_env)
            bridge_env = amqp_env
        else:
            why = "as asked" if args.events == "direct" else "no RabbitMQ answers on 127.0.0.1:5672, so"
            events = (
                f"straight to the database: {why} the bridge stores webhook alerts itself "
                "(health events stay in the exporter's log and metrics)"
            )
            bridge_env = {"OPTILAB_ALERTS_DELIVERY": "direct"}
        step("bridge", f"remote write + Alertmanager webhook on 127.0.0.1:{ports.bridge}")
        sup.start(
            "bridge",
            [script("optilab-bridge"), "--listen", f"127.0.0.1:{ports.bridge}", "--dsn", database.dsn],
            env=bridge_env,
            ready=http_ready(f"http://127.0.0.1:{ports.bridge}/health"),
        )
        inventory = exporter_inventory(
            lab.inventory, state / "inventory.yml", f"{prefix}.events" if "RabbitMQ" in events else None
        )
        step("exporter", f"{len(lab.targets())} targets from {inventory}")
        sup.start(
            "exporter",
            [script("optilab-exporter"), "--config", str(inventory), "--listen", f"127.0.0.1:{ports.exporter}"],
            ready=http_ready(f"http://127.0.0.1:{ports.exporter}/sd"),
        )
        start_prometheus_and_alertmanager(sup, ports, state)
        api_key = secrets.token_urlsafe(18)
        step("API", f"127.0.0.1:{ports.api}")
        sup.start(
            "api",
            [script("optilab-api"), "--listen", f"127.0.0.1:{ports.api}", "--dsn", database.dsn],
            env={"OPTILAB_API_KEYS": api_key},
            ready=http_ready(f"http://127.0.0.1:{ports.api}/health"),
        )
        dying = lab.targets()[-1].rsplit(":", 1)[0]
        step("a dying machine", f"{dying} stops answering in {DYING_AFTER_S:.0f}s")
        schedule_fault(lab, dying, DYING_AFTER_S)
        return lab, database, api_key, events
    except BaseException:
        lab.stop()
        raise


def step(what: str, detail: str) -> None:
    print(f"  starting {what:<16} {detail}", flush=True)


def exporter_inventory(lab_inventory: Path, out: Path, exchange: str | None) -> Path:
    """The lab's inventory with demo health intervals and, when RabbitMQ answers, event publishing."""
    inventory = yaml.safe_load(lab_inventory.read_text())
    inventory["health"] = {"degraded_interval": "5s", "offline_interval": "10s", "dead_interval": "30s"}
    if exchange is not None:
        inventory["rabbitmq"] = {"url": "amqp://guest:guest@127.0.0.1:5672/%2F", "exchange": exchange}
    return configs.write_yaml(out, inventory)


def start_prometheus_and_alertmanager(sup: Supervisor, ports: configs.Ports, state: Path) -> None:
    am_config = configs.write_yaml(state / "alertmanager" / "alertmanager.yml", configs.alertmanager_config(ports))
    step("Alertmanager", f"127.0.0.1:{ports.alertmanager} with deploy/alertmanager/alertmanager.yml")
    sup.start(
        "alertmanager",
        [
            ALERTMANAGER,
            f"--config.file={am_config}",
            f"--web.listen-address=127.0.0.1:{ports.alertmanager}",
            f"--storage.path={state / 'alertmanager' / 'data'}",
            "--cluster.listen-address=",
        ],
        ready=http_ready(f"http://127.0.0.1:{ports.alertmanager}/-/ready"),
    )
    rules = configs.demo_rules(state / "prometheus" / "rules")
    prom_config = configs.write_yaml(state / "prometheus" / "prometheus.yml", configs.prometheus_config(ports, rules))
    step("Prometheus", f"127.0.0.1:{ports.prometheus} with deploy/prometheus/prometheus.yml")
    sup.start(
        "prometheus",
        [
            PROMETHEUS,
            f"--config.file={prom_config}",
            f"--web.listen-address=127.0.0.1:{ports.prometheus}",
            f"--storage.tsdb.path={state / 'prometheus' / 'tsdb'}",
        ],
        ready=http_ready(f"http://127.0.0.1:{ports.prometheus}/-/ready"),
    )


def schedule_fault(lab: Any, host: str, delay: float) -> None:
    """Switch ``host`` to refusing connections after ``delay`` seconds, from a daemon timer."""
    import threading

    timer = threading.Timer(delay, lambda: lab.set_fault(host, "refuse"))
    timer.daemon = True
    timer.start()


def print_table(ports: configs.Ports, api_key: str, database: Database, events: str, lab: Any) -> None:
    rows = [
        ("exporter", f"http://127.0.0.1:{ports.exporter}/", "probe one machine: /probe?target=" + lab.targets()[0]),
        ("Prometheus", f"http://127.0.0.1:{ports.prometheus}/", "try: avg by (department) (system_cpu_usage)"),
        ("Alertmanager", f"http://127.0.0.1:{ports.alertmanager}/", "the dying machine's alert shows up here"),
        ("API", f"http://127.0.0.1:{ports.api}/", f"API key: {api_key}"),
        ("bridge", f"http://127.0.0.1:{ports.bridge}/health", "storage mode and newest sample"),
    ]
    print("\nOptiLab demo is up:\n")
    for name, url, hint in rows:
        print(f"  {name:<13} {url:<28} {hint}")
    print(f"\n  database      {database.description}")
    print(f"  alert events  {events}")
    print("  demo timings  " + "; ".join(configs.DEMO_CHANGES))
    print("\nTry:")
    print(f"  curl -s -H 'X-API-Key: {api_key}' http://127.0.0.1:{ports.api}/departments")
    print(f"  curl -s 'http://127.0.0.1:{ports.prometheus}/api/v1/query?query=system_status==0'\n", flush=True)


def api_get(ports: configs.Ports, api_key: str, path: str) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{ports.api}{path}", headers={"X-API-Key": api_key})
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback API
        return json.load(response)


def demo_state(ports: configs.Ports, api_key: str) -> tuple[int, int, int]:
    """(systems known, systems with at least two usage points, host-down alerts stored) as the API shows them."""
    systems = api_get(ports, api_key, "/systems?limit=200")["items"]
    with_history = 0
    for system in systems[:5]:
        points = api_get(ports, api_key, f"/systems/{system['id']}/metrics?start=-10m")["points"]
        with_history += len(points) >= 2
    # the demo's story: the machine that stops answering pages through rules → Alertmanager → bridge
    alerts = api_get(ports, api_key, "/alerts?alertname=OptiLabHostDown")["total"]
    return len(systems), with_history, alerts


def verify(sup: Supervisor, ports: configs.Ports, api_key: str, timeout: float) -> int:
    """Poll the API until systems have usage history and an alert arrived; bounded by ``timeout``."""
    started = time.monotonic()
    seen = (0, 0, 0)
    while time.monotonic() - started < timeout:
        sup.check_alive()
        try:
            seen = demo_state(ports, api_key)
        except OSError:
            pass
        systems, with_history, alerts = seen
        if systems and with_history and alerts:
            print(
                f"verified after {time.monotonic() - started:.0f}s: {systems} systems, usage history on "
                f"{with_history} of the first 5, {alerts} OptiLabHostDown alert(s) in the database",
                flush=True,
            )
            return 0
        time.sleep(2)
    print(
        f"verification failed after {timeout:.0f}s: systems={seen[0]} with history={seen[1]} alerts={seen[2]}",
        file=sys.stderr,
    )
    return 1

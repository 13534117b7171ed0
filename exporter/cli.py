"""``optilab-exporter``: flags, the subcommands' dispatch, and the serving lifecycle.

The process starts in exporter/__main__.py, which patches gevent before this module (and with it
paramiko and pika) is imported; the wiring of the running exporter is exporter/runtime.py.
Test processes import the pure modules (config, health, http with a fake runtime) unpatched and
run the real exporter as a subprocess.

``optilab-exporter scan ...`` is dispatched to ``exporter.scan.main`` (subnet discovery),
``optilab-exporter authorized-key ...`` to ``exporter.authkey.main`` (the monitoring key's line).
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys

import gevent
import prometheus_client
from gevent.pywsgi import WSGIServer

from optilab.exporter import authkey
from optilab.exporter.config import Config, ConfigError, key_file_problems, load_config
from optilab.exporter.http import ExporterApp
from optilab.exporter.runtime import Runtime
from optilab.toolkit import flags, resources, selfmetrics
from optilab.toolkit.wsgi import ToolkitMiddleware

DEFAULT_LISTEN = "127.0.0.1:9842"
#: the exporter process's garbage-collector thresholds (bench/profile_probe.py sets the same)
GC_THRESHOLD = (50_000, 20, 100)


EPILOG = """commands:
  optilab-exporter scan CIDR [...]   discover lab machines and write an inventory
                                     (optilab-exporter scan --help)
  optilab-exporter write-configs DIR write the shipped Prometheus, Alertmanager, Grafana and
                                     systemd files and alert rules into DIR

endpoints: /probe?target=HOST:PORT, /probe?department=NAME, /probe?all=1, /sd, /metrics,
/-/healthy, /-/ready, POST /-/reload (also SIGHUP)"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.web, args.ssl_context = flags.web_config(parser, args)
    return args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optilab-exporter",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Prometheus exporter for Linux lab machines over SSH (no agent on them).",
    )
    parser.add_argument("--config", required=True, help="inventory YAML (see docs/exporter.md)")
    flags.add_web_flags(parser, DEFAULT_LISTEN)
    flags.add_log_flags(parser)
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    parser.add_argument(
        "--web.max-requests",
        dest="max_requests",
        type=int,
        default=40,
        metavar="N",
        help="/probe requests in flight before new ones are answered 503 (0: no limit; default 40, as node_exporter)",
    )
    flags.add_version(parser)
    return parser


def preflight(config: Config) -> list[str]:
    """Problems the file itself cannot show: a key the exporter cannot read, a strict policy
    without a known_hosts file (every dial would be refused with reason ``hostkey``)."""
    ssh, warnings = config.ssh, key_file_problems(config)
    if ssh.host_key_policy == "strict" and not ssh.known_hosts.exists():
        warnings.append(
            f"{config.source}: ssh.known_hosts: {ssh.known_hosts} does not exist and the policy "
            f"is strict: every host will be refused (fill it with ssh-keyscan, or use accept-new)"
        )
    return warnings


def main(argv: list[str] | None = None) -> int:
    """The command line; called by exporter/__main__.py once gevent has patched the process."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["scan"]:  # discovery lives in its own module (imported here: tqdm is for it alone)
        from optilab.exporter import scan

        return scan.main(argv[1:])
    if argv[:1] == ["authorized-key"]:  # the monitoring key's restricted authorized_keys line
        return authkey.main(argv[1:])
    if argv[:1] == ["write-configs"]:
        return resources.main(argv[1:], prog="optilab-exporter write-configs")
    return serve(parse_args(argv))


def serve(args: argparse.Namespace) -> int:
    flags.setup_logging(args)
    logging.getLogger("paramiko").setLevel(max(logging.WARNING, args.log_level))
    # pika logs every failed reconnect as a multi-line ERROR; the publisher logs one line per attempt
    logging.getLogger("pika").setLevel(logging.DEBUG if args.log_level <= logging.DEBUG else logging.CRITICAL)
    prometheus_client.disable_created_metrics()  # *_created series only add noise to /metrics
    # young collections ~70x rarer, full ones 10x: a warm fan-out keeps ~100 000 young objects (answers,
    # memo entries) alive until it renders, and at the default 700 each young collection walked the
    # same survivors again: -10..-18 % of the exporter's CPU per probe (bench/README.md, gc tuning)
    gc.set_threshold(GC_THRESHOLD[0], GC_THRESHOLD[1], GC_THRESHOLD[2])
    log = logging.getLogger("optilab.exporter")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"optilab-exporter: {exc}", file=sys.stderr)
        return 2
    for warning in preflight(config):
        log.warning("%s", warning)
    if args.check:
        print(f"{args.config}: OK, {len(config.inventory.hosts)} targets")
        return 0
    runtime = Runtime(args.config, config)
    app = ExporterApp(runtime, max_requests=max(0, args.max_requests))
    selfmetrics.register(app.registry, "exporter")

    def reload_now() -> tuple[bool, str]:
        failures = runtime.reloads["failure"]
        runtime.reload()
        if runtime.reloads["failure"] != failures:
            return False, "config reload failed; the running config is kept (the log says why)"
        return True, "config reloaded"

    # bcrypt in gevent's threadpool: a round inside a greenlet would stall every scrape meanwhile
    wrapped = ToolkitMiddleware(
        app,
        args.web,
        "OptiLab exporter",
        reload=reload_now,
        context=args.ssl_context,
        offload=gevent.get_hub().threadpool.apply,
    )
    listen = args.listen
    server = WSGIServer(
        listen, wrapped, log=None, error_log=log, **({"ssl_context": args.ssl_context} if args.ssl_context else {})
    )
    gevent.signal_handler(signal.SIGHUP, runtime.reload)
    gevent.signal_handler(signal.SIGTERM, server.stop)
    gevent.signal_handler(signal.SIGINT, server.stop)
    try:
        server.start()
    except OSError as exc:
        print(f"optilab-exporter: cannot listen on {listen[0]}:{listen[1]}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    host, port = server.address[:2]
    log.info(
        "listening on %s://%s:%d/ with %d targets (%s)",
        args.web.scheme,
        host,
        port,
        len(config.inventory.hosts),
        args.config,
    )
    try:
        server.serve_forever()
    finally:
        runtime.close()
    return 0

"""``optilab-exporter``: wiring (config → pool → health → prober → events → HTTP) and lifecycle.

gevent must patch the standard library before paramiko, pika or anything that imports ``socket``
or ``threading`` is loaded: paramiko's transports are threads that must become greenlets, or their
reads fail with "This operation would block forever". So this module imports only the standard
library's argparse at the top; :func:`main` patches first and imports the rest afterwards. Test
processes import the pure modules (config, health, http with a fake runtime) unpatched and run the
real exporter as a subprocess.

``optilab-exporter scan ...`` is dispatched to ``exporter.scan.main`` (subnet discovery).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from prometheus_client.core import Metric

    from exporter.config import Config
    from exporter.health import Transition
    from exporter.metrics import HostLabels

DEFAULT_LISTEN = "127.0.0.1:9842"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="optilab-exporter",
        description="Prometheus exporter for Linux lab machines over SSH (no agent). "
                    "Subcommand: 'optilab-exporter scan CIDR ...' discovers hosts.")
    parser.add_argument("--config", required=True, help="inventory YAML (see docs/exporter.md)")
    parser.add_argument("--listen", default=DEFAULT_LISTEN,
                        help=f"HOST:PORT to serve on (default {DEFAULT_LISTEN})")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    return parser.parse_args(argv)


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen {text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


class Runtime:
    """The running exporter: current config, SSH pool, health book, prober, event publisher.

    The config file is re-read when its mtime changes (checked on /probe and /sd, and on SIGHUP);
    a broken new file is logged and the running config kept.
    """

    def __init__(self, path: str, config: Config, script: str | None = None) -> None:
        from exporter.health import HealthBook
        from exporter.probe import Prober
        from exporter.sshpool import SshPool

        self.path, self.config = path, config
        self._mtime = self._stat()
        self.pool = SshPool(config.ssh, config.pool)
        self.pool.start_reaper()
        self.health = HealthBook(config.health)
        self.prober = Prober(self.pool, self.health, script=script, on_transition=self._on_transition,
                             plans=lambda entry: self.config.plan(entry.department))
        self.events = self._publisher(config)
        self.reloads: dict[str, int] = {"success": 0, "failure": 0}

    def maybe_reload(self) -> None:
        if self._stat() != self._mtime:
            self.reload()

    def reload(self) -> None:
        import logging

        from exporter.config import ConfigError, load_config
        from exporter.sshpool import SshPool

        log = logging.getLogger("exporter.reload")
        self._mtime = self._stat()
        try:
            new = load_config(self.path)
        except ConfigError as exc:
            self.reloads["failure"] += 1
            log.error("config reload failed; keeping the running config:\n%s", exc)
            return
        if (new.ssh, new.pool) != (self.config.ssh, self.config.pool):
            old_pool, self.pool = self.pool, SshPool(new.ssh, new.pool)
            self.pool.start_reaper()
            self.prober.runner = self.pool
            old_pool.close()
        if new.rabbitmq != self.config.rabbitmq:
            if self.events is not None:
                self.events.close(flush_timeout=1.0)
            self.events = self._publisher(new)
        self.health.settings = new.health
        self.prober.forget_except(set(new.inventory.hosts))
        self.config = new
        self.reloads["success"] += 1
        log.info("config reloaded: %d targets in %d departments", len(new.inventory.hosts),
                 len(new.inventory.departments))

    def self_metrics(self) -> Iterable[Metric]:
        from exporter.selfmetrics import runtime_families

        return runtime_families(self)

    def close(self) -> None:
        self.pool.close()
        if self.events is not None:
            self.events.close()

    def _on_transition(self, transition: Transition, labels: HostLabels) -> None:
        if self.events is not None:
            from exporter.events import health_event

            self.events.publish("health", health_event(transition, labels))

    def _publisher(self, config: Config) -> Any:
        if config.rabbitmq is None:
            return None
        from exporter.events import EventPublisher

        return EventPublisher(config.rabbitmq).start()

    def _stat(self) -> float | None:
        import os

        try:
            return os.stat(self.path).st_mtime_ns
        except OSError:
            return None


def preflight(config: Config) -> list[str]:
    """Problems the file itself cannot show: a key the exporter cannot read, a strict policy
    without a known_hosts file (every dial would be refused with reason ``hostkey``)."""
    import os

    ssh, warnings = config.ssh, []
    if ssh.key_file is not None and not os.access(ssh.key_file, os.R_OK):
        warnings.append(f"{config.source}: ssh.key_file: {ssh.key_file} is not readable; every login will fail")
    if ssh.host_key_policy == "strict" and not ssh.known_hosts.exists():
        warnings.append(f"{config.source}: ssh.known_hosts: {ssh.known_hosts} does not exist and the policy "
                        f"is strict: every host will be refused (fill it with ssh-keyscan, or use accept-new)")
    return warnings


def main(argv: list[str] | None = None) -> int:
    from gevent import monkey

    monkey.patch_all()  # first, before paramiko/pika/socket users are imported (see module docstring)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["scan"]:
        from exporter import scan  # discovery lives in its own module

        return scan.main(argv[1:])
    return serve(parse_args(argv))


def serve(args: argparse.Namespace) -> int:
    import gc
    import logging
    import signal

    import gevent
    import prometheus_client
    from gevent.pywsgi import WSGIServer

    from exporter.config import ConfigError, load_config
    from exporter.http import ExporterApp

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("paramiko").setLevel(max(logging.WARNING, logging.getLevelName(args.log_level)))
    # pika logs every failed reconnect as a multi-line ERROR; the publisher logs one line per attempt
    logging.getLogger("pika").setLevel(logging.DEBUG if args.log_level == "DEBUG" else logging.CRITICAL)
    prometheus_client.disable_created_metrics()  # *_created series only add noise to /metrics
    gc.set_threshold(700, 10, 100)  # full collections 10x rarer: a fan-out's live samples made them ~25 % of its CPU
    log = logging.getLogger("exporter")
    try:
        config = load_config(args.config)
        listen = parse_listen(args.listen)
    except (ConfigError, ValueError) as exc:
        print(f"optilab-exporter: {exc}", file=sys.stderr)
        return 2
    for warning in preflight(config):
        log.warning("%s", warning)
    if args.check:
        print(f"{args.config}: OK, {len(config.inventory.hosts)} targets")
        return 0
    runtime = Runtime(args.config, config)
    server = WSGIServer(listen, ExporterApp(runtime), log=None, error_log=log)
    gevent.signal_handler(signal.SIGHUP, runtime.reload)
    gevent.signal_handler(signal.SIGTERM, server.stop)
    gevent.signal_handler(signal.SIGINT, server.stop)
    try:
        server.start()
    except OSError as exc:
        print(f"optilab-exporter: cannot listen on {args.listen}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    log.info("listening on http://%s:%d/ with %d targets (%s)", *listen, len(config.inventory.hosts),
             args.config)
    try:
        server.serve_forever()
    finally:
        runtime.close()
    return 0

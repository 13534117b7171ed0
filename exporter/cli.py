"""``optilab-exporter``: wiring (config → pool → health → prober → events → HTTP) and lifecycle.

gevent must patch the standard library before paramiko, pika or anything that imports ``socket``
or ``threading`` is loaded: paramiko's transports are threads that must become greenlets, or their
reads fail with "This operation would block forever". So this module imports only the standard
library's argparse at the top; :func:`main` patches first and imports the rest afterwards. Test
processes import the pure modules (config, health, http with a fake runtime) unpatched and run the
real exporter as a subprocess.

``optilab-exporter scan ...`` is dispatched to ``exporter.scan.main`` (subnet discovery),
``optilab-exporter authorized-key ...`` to ``exporter.authkey.main`` (the monitoring key's line).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from prometheus_client.core import Metric

    from exporter.config import Config, JumpSettings, Target
    from exporter.health import Transition
    from exporter.metrics import HostLabels

DEFAULT_LISTEN = "127.0.0.1:9842"


EPILOG = """commands:
  optilab-exporter scan CIDR [...]   discover lab machines and write an inventory
                                     (optilab-exporter scan --help)
  optilab-exporter write-configs DIR write the shipped Prometheus, Alertmanager, Grafana and
                                     systemd files and alert rules into DIR

endpoints: /probe?target=HOST:PORT, /probe?department=NAME, /probe?all=1, /sd, /metrics,
/-/healthy, /-/ready, POST /-/reload (also SIGHUP)"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    from toolkit import flags

    parser = build_parser()
    args = parser.parse_args(argv)
    args.web, args.ssl_context = flags.web_config(parser, args)
    return args


def build_parser() -> argparse.ArgumentParser:
    from toolkit import flags

    parser = argparse.ArgumentParser(
        prog="optilab-exporter", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Prometheus exporter for Linux lab machines over SSH (no agent on them).")
    parser.add_argument("--config", required=True, help="inventory YAML (see docs/exporter.md)")
    flags.add_web_flags(parser, DEFAULT_LISTEN)
    flags.add_log_flags(parser)
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    parser.add_argument("--web.max-requests", dest="max_requests", type=int, default=40, metavar="N",
                        help="/probe requests in flight before new ones are answered 503 (0: no limit; "
                             "default 40, as node_exporter)")
    flags.add_version(parser)
    return parser


class Runtime:
    """The running exporter: current config, SSH pool, health book, prober, event publisher.

    The config file is re-read when its mtime (or the key file's) changes (checked on /probe and
    /sd, and on SIGHUP); a broken new file, or one whose key file cannot be loaded, is logged and the
    running config kept.
    """

    def __init__(self, path: str, config: Config, script: str | None = None) -> None:
        from exporter.health import HealthBook
        from exporter.overload import LoopMonitor
        from exporter.probe import Prober
        from exporter.sshpool import SshPool

        self.path, self.config = path, config
        self._mtime = self._stat()
        self.monitor = LoopMonitor().start()
        self.pool = SshPool(config.ssh, config.pool, route=self._route, health=config.health)
        self.pool.monitor = self.monitor
        self.pool.start_reaper()
        self.pool.enable_login_checks()
        self.pool.set_inventory(config.inventory)
        self.health = HealthBook(config.health)
        self.prober = Prober(self.pool, self.health, script=script, on_transition=self._on_transition,
                             plans=lambda entry: self.config.plan(entry.department))
        self.events = self._publisher(config)
        self.reloads: dict[str, int] = {"success": 0, "failure": 0}
        self.last_reload_ok = True

    def maybe_reload(self) -> None:
        if self._stat() != self._mtime:
            self.reload()

    def reload(self) -> None:
        import logging

        from exporter.config import ConfigError, key_file_problems, load_config
        from exporter.sshpool import SshPool

        log = logging.getLogger("exporter.reload")
        key_changed = self._mtime[1:] != self._stat()[1:]
        self._mtime = self._stat()
        try:
            new = load_config(self.path)
            if key_file_problems(new):  # as at start; on reload a working config is there to keep
                raise ConfigError(key_file_problems(new))
        except ConfigError as exc:
            self.reloads["failure"] += 1
            self.last_reload_ok = False
            log.error("config reload failed, keeping the running config: %s", "; ".join(exc.errors))
            return
        ssh_changed = new.ssh != self.config.ssh or key_changed
        if ssh_changed or new.pool != self.config.pool:
            old_pool, self.pool = self.pool, SshPool(new.ssh, new.pool, route=self._route, health=new.health)
            self.pool.monitor = self.monitor
            self.pool.start_reaper()
            self.pool.enable_login_checks()
            self.prober.runner = self.pool
            old_pool.close()
        if ssh_changed:  # what failed under the old SSH settings is no evidence under the new ones
            cleared = self.health.retry_now(new.inventory.hosts)
            if cleared:
                log.info("ssh settings changed: %d hosts in backoff are dialled at their next probe", len(cleared))
        if new.rabbitmq != self.config.rabbitmq:
            if self.events is not None:
                self.events.close(flush_timeout=1.0)
            self.events = self._publisher(new)
        self.health.settings = new.health
        self.pool.jumps.health.settings = new.health  # bastions count failures with the same thresholds
        self.prober.forget_except(set(new.inventory.hosts))
        self.pool.set_inventory(new.inventory)
        self.config = new
        self.reloads["success"] += 1
        self.last_reload_ok = True
        self._mtime = self._stat()  # the new config's key file from now on
        log.info("config reloaded: %d targets in %d departments", len(new.inventory.hosts),
                 len(new.inventory.departments))

    def _route(self, target: Target) -> JumpSettings | None:
        """The bastion of ``target`` in the current inventory (a department's own, or ssh.jump)."""
        return self.config.inventory.jump_for(target)

    def self_metrics(self) -> Iterable[Metric]:
        from exporter.selfmetrics import runtime_families

        return runtime_families(self)

    def close(self) -> None:
        self.monitor.stop()
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

    def _stat(self) -> tuple[int | None, ...]:
        """Modification times of the config file and of its key file (a fixed key reloads too)."""
        import os

        stamps = []
        for path in (self.path, self.config.ssh.key_file):
            try:
                stamps.append(os.stat(path).st_mtime_ns if path is not None else None)
            except OSError:
                stamps.append(None)
        return tuple(stamps)


def preflight(config: Config) -> list[str]:
    """Problems the file itself cannot show: a key the exporter cannot read, a strict policy
    without a known_hosts file (every dial would be refused with reason ``hostkey``)."""
    from exporter.config import key_file_problems

    ssh, warnings = config.ssh, key_file_problems(config)
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
    if argv[:1] == ["authorized-key"]:
        from exporter import authkey  # the monitoring key's restricted authorized_keys line

        return authkey.main(argv[1:])
    if argv[:1] == ["write-configs"]:
        from toolkit import resources

        return resources.main(argv[1:], prog="optilab-exporter write-configs")
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
    from toolkit import flags, selfmetrics
    from toolkit.wsgi import ToolkitMiddleware

    flags.setup_logging(args)
    logging.getLogger("paramiko").setLevel(max(logging.WARNING, args.log_level))
    # pika logs every failed reconnect as a multi-line ERROR; the publisher logs one line per attempt
    logging.getLogger("pika").setLevel(logging.DEBUG if args.log_level <= logging.DEBUG else logging.CRITICAL)
    prometheus_client.disable_created_metrics()  # *_created series only add noise to /metrics
    gc.set_threshold(700, 10, 100)  # full collections 10x rarer: a fan-out's live samples made them ~25 % of its CPU
    log = logging.getLogger("exporter")
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
    wrapped = ToolkitMiddleware(app, args.web, "OptiLab exporter", reload=reload_now, context=args.ssl_context,
                                offload=gevent.get_hub().threadpool.apply)
    listen = args.listen
    server = WSGIServer(listen, wrapped, log=None, error_log=log,
                        **({"ssl_context": args.ssl_context} if args.ssl_context else {}))
    gevent.signal_handler(signal.SIGHUP, runtime.reload)
    gevent.signal_handler(signal.SIGTERM, server.stop)
    gevent.signal_handler(signal.SIGINT, server.stop)
    try:
        server.start()
    except OSError as exc:
        print(f"optilab-exporter: cannot listen on {listen[0]}:{listen[1]}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    host, port = server.address[:2]
    log.info("listening on %s://%s:%d/ with %d targets (%s)", args.web.scheme, host, port,
             len(config.inventory.hosts), args.config)
    try:
        server.serve_forever()
    finally:
        runtime.close()
    return 0

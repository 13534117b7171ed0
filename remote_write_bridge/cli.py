"""optilab-bridge: receive Prometheus remote write and Alertmanager webhooks, store them in PostgreSQL.

``optilab-bridge [flags]`` serves remote write and the webhook with waitress;
``optilab-bridge consume [flags]`` runs the RabbitMQ event consumer (remote_write_bridge/consumer.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import waitress

from optilab.remote_write_bridge import state
from optilab.remote_write_bridge.app import create_app
from optilab.remote_write_bridge.config import ConfigError, load
from optilab.remote_write_bridge.webhook import broker_warning
from optilab.toolkit import flags
from optilab.toolkit.wsgi import ToolkitMiddleware

DEFAULT_LISTEN = "127.0.0.1:9843"
EPILOG = """commands:
  optilab-bridge consume --dsn DSN [...]   store alert, discovery and health events from RabbitMQ
                                           (optilab-bridge consume --help)

endpoints: POST /api/v1/write (remote write), POST /api/v1/alerts (Alertmanager webhook),
/health, /metrics, /-/healthy, /-/ready

TLS: waitress does not speak TLS; --web.config.file takes basic_auth_users, and a reverse proxy
(nginx, Caddy, stunnel) terminates TLS in front of the bridge when Prometheus is on another host.
Without RabbitMQ, set OPTILAB_ALERTS_DELIVERY=direct: the webhook stores alerts itself."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optilab-bridge",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Receive Prometheus remote write and Alertmanager webhooks "
        "and store them in PostgreSQL/TimescaleDB.",
    )
    parser.add_argument("--dsn", required=True, help="PostgreSQL connection string (schema applied by optilab-migrate)")
    parser.add_argument("--config", type=Path, help="YAML file (remote_write: and webhook sections)")
    parser.add_argument("--threads", type=int, default=8, help="waitress worker threads, 1..256 (default 8)")
    flags.add_web_flags(parser, DEFAULT_LISTEN, tls=False)
    flags.add_log_flags(parser)
    flags.add_version(parser)
    return parser


def serve(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 1 <= args.threads <= 256:
        parser.error(f"--threads must be 1..256, got {args.threads}")  # waitress with 0 would answer nothing
    web, _ = flags.web_config(parser, args, tls=False)
    flags.setup_logging(args)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" is expected under load
    logging.getLogger("pika").setLevel(logging.CRITICAL)  # one line per broker failure is logged instead
    try:
        config = load(args.config, args.dsn)
    except ConfigError as exc:
        print(f"optilab-bridge: configuration error: {exc}", file=sys.stderr)
        return 2

    app = create_app(config, start=False)
    bridge = state.of(app)
    log = logging.getLogger("optilab.bridge")
    warning = broker_warning(bridge.alerts)
    if warning:
        log.warning("%s", warning)
    bridge.start()

    def ready() -> tuple[bool, str]:
        return (True, "") if bridge.store.ping() else (False, "the database does not answer")

    wrapped = ToolkitMiddleware(app.wsgi_app, web, "OptiLab bridge", ready=ready)
    app.wsgi_app = wrapped  # type: ignore[method-assign]
    host, port = args.listen
    log.info("listening on http://%s:%d", host, port)
    try:
        waitress.serve(
            app,
            host=host,
            port=port,
            threads=args.threads,
            ident="optilab-bridge",
            max_request_body_size=2 * config.max_body_bytes,
            channel_timeout=60,
        )
    finally:
        bridge.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "consume":
        from optilab.remote_write_bridge.consumer import main as consume

        return consume(argv[1:])
    return serve(argv)


if __name__ == "__main__":
    sys.exit(main())

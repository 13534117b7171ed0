"""optilab-api: the lab's JSON API (systems, departments, alerts) from PostgreSQL, served by waitress.

Port 0 asks the kernel for a free port; the address actually bound is logged ("listening on ...")
so tests and the demo can find it. SIGTERM and SIGINT close the server and the pool cleanly.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import Sequence

import waitress

from optilab.api.app import close_app, create_app
from optilab.api.config import DEFAULT_LISTEN, ConfigError, load_config
from optilab.api.db import DatabaseUnavailableError
from optilab.toolkit import flags
from optilab.toolkit.wsgi import ToolkitMiddleware

log = logging.getLogger("optilab.api")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optilab-api",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The lab's JSON API (systems, departments, alerts) from OptiLab's PostgreSQL database.",
        epilog="endpoints: / (index), /systems, /departments, /alerts, /openapi.json (API key); /health, "
        "/metrics,\n/-/healthy, /-/ready (no key).\n\nTLS: waitress does not speak TLS; put a reverse "
        "proxy in front (README, 'TLS').\nbasic_auth_users from --web.config.file guard every path; "
        "send the API key as X-API-Key then.",
    )
    parser.add_argument(
        "--dsn", default=os.environ.get("OPTILAB_DSN", ""), help="PostgreSQL DSN (default $OPTILAB_DSN)"
    )
    parser.add_argument(
        "--keys-file",
        help="file with one API key per line (or $OPTILAB_API_KEYS_FILE); keys can also come from $OPTILAB_API_KEYS",
    )
    parser.add_argument(
        "--no-auth", action="store_true", help="serve without API keys (refused unless --listen is a loopback address)"
    )
    parser.add_argument("--cors-origins", help="comma-separated allowed origins ($OPTILAB_API_CORS_ORIGINS)")
    parser.add_argument(
        "--rate-limit", help="per key or address, e.g. '600/minute'; '' disables ($OPTILAB_API_RATE_LIMIT)"
    )
    parser.add_argument("--max-points", help="most buckets one series answer may hold (default 1000)")
    parser.add_argument(
        "--inventory",
        help="the exporter's inventory file: departments' opening hours for the reports ($OPTILAB_API_INVENTORY)",
    )
    parser.add_argument(
        "--public-board", action="store_true", help="serve /board and its data without a key (it shows no user names)"
    )
    parser.add_argument("--threads", type=int, default=8, help="waitress worker threads, 1..256 (default 8)")
    flags.add_web_flags(parser, DEFAULT_LISTEN, tls=False)
    flags.add_log_flags(parser)
    flags.add_version(parser)
    return parser


def _is_loopback(host: str) -> bool:
    """Whether ``host`` (a literal address or ``localhost``) can only be reached from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name that may resolve anywhere


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 1 <= args.threads <= 256:
        parser.error(f"--threads must be 1..256, got {args.threads}")
    web, _ = flags.web_config(parser, args, tls=False)
    flags.setup_logging(args)
    host, port = args.listen
    try:
        config = load_config(
            args.dsn,
            os.environ,
            keys_file=args.keys_file,
            auth_enabled=not args.no_auth,
            cors_origins=args.cors_origins,
            rate_limit=args.rate_limit,
            max_points=args.max_points,
            pool_max_size=args.threads,
            inventory=args.inventory,
            public_board=args.public_board,
        )
    except ConfigError as exc:
        print(f"optilab-api: {exc}", file=sys.stderr)
        return 2
    if args.no_auth and not _is_loopback(host):
        print(f"optilab-api: --no-auth is only allowed on a loopback address, not {host}", file=sys.stderr)
        return 2
    if not config.auth_enabled:
        log.warning("authentication disabled (--no-auth): every client can read the lab's data")
    app = create_app(config)
    database = app.extensions["optilab"].db

    def ready() -> tuple[bool, str]:
        try:
            database.fetch_one("SELECT 1 AS ok")
        except DatabaseUnavailableError as exc:
            return False, f"the database does not answer: {exc}"
        return True, ""

    app.wsgi_app = ToolkitMiddleware(app.wsgi_app, web, "OptiLab API", ready=ready)  # type: ignore[method-assign]
    server = waitress.create_server(app, host=host, port=port, threads=args.threads, ident="optilab-api")

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: shutting down", signum)
        server.close()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "listening on http://%s:%d (%d API keys, rate limit %r)",
        *server.socket.getsockname()[:2],
        len(config.api_keys),
        config.rate_limit or "off",
    )
    try:
        server.run()
    except OSError:
        pass  # the socket was closed by stop()
    finally:
        close_app(app)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``optilab-bridge``: serve remote write (and the Alertmanager webhook) with waitress, or
``optilab-bridge consume …`` to run the RabbitMQ event consumer (remote_write_bridge/consumer.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from remote_write_bridge.config import ConfigError, load

DEFAULT_LISTEN = "127.0.0.1:9843"


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--listen must be HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def serve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="optilab-bridge", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=parse_listen, default=parse_listen(DEFAULT_LISTEN),
                        help=f"HOST:PORT to listen on (default {DEFAULT_LISTEN})")
    parser.add_argument("--dsn", required=True,
                        help="PostgreSQL connection string (schema applied by optilab-migrate)")
    parser.add_argument("--config", type=Path, help="YAML file (remote_write: and webhook sections)")
    parser.add_argument("--threads", type=int, default=8, help="waitress worker threads (default 8)")
    args = parser.parse_args(argv)
    if not 1 <= args.threads <= 256:
        parser.error(f"--threads must be 1..256, got {args.threads}")  # waitress with 0 would answer nothing
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" is expected under load
    try:
        config = load(args.config, args.dsn)
    except ConfigError as exc:
        print(f"optilab-bridge: configuration error: {exc}", file=sys.stderr)
        return 2

    import waitress

    from remote_write_bridge.app import create_app
    from remote_write_bridge.webhook import check_settings

    app = create_app(config, start=False)
    with app.app_context():
        problem = check_settings()
    if problem:
        print(f"optilab-bridge: configuration error: {problem}", file=sys.stderr)
        return 2
    app.extensions["optilab_bridge"].start()
    host, port = args.listen
    logging.getLogger("optilab.bridge").info("listening on %s:%d", host, port)
    try:
        waitress.serve(app, host=host, port=port, threads=args.threads, ident="optilab-bridge",
                       max_request_body_size=2 * config.max_body_bytes, channel_timeout=60)
    finally:
        app.extensions["optilab_bridge"].stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "consume":
        from remote_write_bridge.consumer import main as consume

        return consume(argv[1:])
    return serve(argv)


if __name__ == "__main__":
    sys.exit(main())

"""The exporter's entry (``optilab-exporter`` and ``python -m optilab.exporter``): gevent patches the standard
library first, before paramiko's threads and pika's sockets are imported, so that every other module
can import at its top. Nothing else belongs here."""

from gevent import monkey

monkey.patch_all()

from optilab.exporter.cli import main  # noqa: E402 - after the patch, on purpose

if __name__ == "__main__":
    raise SystemExit(main())

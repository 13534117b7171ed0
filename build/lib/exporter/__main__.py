"""``python -m exporter`` runs the same entry point as ``optilab-exporter``.

:func:`exporter.cli.main` calls ``gevent.monkey.patch_all()`` before anything that uses sockets or
threads (paramiko, pika) is imported; nothing else may be imported ahead of it here.
"""

import sys

from exporter.cli import main

sys.exit(main())

"""The installed OptiLab version, for ``--version`` and ``optilab_build_info``."""

from __future__ import annotations

import platform
from importlib import metadata

DISTRIBUTION = "optilab"


def version() -> str:
    """The distribution's version, or ``0+unknown`` when run from a checkout that is not installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"


def version_text(prog: str) -> str:
    """What ``PROG --version`` prints, in the shape of Prometheus tools' first line."""
    return f"{prog}, version {version()} (python {platform.python_version()})"

"""What every Prometheus component exports about itself: ``optilab_build_info`` and ``process_*``.

Each service keeps its own registry (tests run several apps in one process); :func:`register`
adds prometheus_client's process and platform collectors and the build-info gauge to it.
"""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from optilab.toolkit.version import version


def register(registry: CollectorRegistry, component: str) -> None:
    """Add ``process_*``, ``python_info`` and ``optilab_build_info{component,version,pythonversion}``."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    info = Gauge(
        "optilab_build_info",
        "A metric with a constant '1' value labelled by OptiLab's version, "
        "the component and the Python version it runs on.",
        ["component", "version", "pythonversion"],
        registry=registry,
    )
    info.labels(component, version(), platform.python_version()).set(1)

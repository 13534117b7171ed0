"""The running exporter's wiring: config → SSH pool → health book → prober → event publisher.

:class:`Runtime` is the composition root: the one place that builds these parts from a
:class:`~exporter.config.Config` and swaps them when the config file changes. The HTTP app
(exporter/http.py) reaches them only through it; the entry (exporter/__main__.py) patches gevent
before this module is imported.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from prometheus_client.core import Metric

from optilab.exporter.config import Config, ConfigError, JumpSettings, key_file_problems, load_config
from optilab.exporter.events import EventPublisher, health_event
from optilab.exporter.health import HealthBook, Transition
from optilab.exporter.overload import LoopMonitor
from optilab.exporter.probe import Prober
from optilab.exporter.selfmetrics import runtime_families
from optilab.exporter.sshpool import SshPool
from optilab.exporter.targets import HostLabels, Target

log = logging.getLogger("optilab.exporter.runtime")


class Runtime:
    """The running exporter: current config, SSH pool, health book, prober, event publisher.

    The config file is re-read when its mtime (or the key file's) changes (checked on /probe and
    /sd, and on SIGHUP); a broken new file, or one whose key file cannot be loaded, is logged and the
    running config kept.
    """

    def __init__(self, path: str, config: Config, script: str | None = None) -> None:
        self.path, self.config = path, config
        self._mtime = self._stat()
        self.monitor: LoopMonitor = LoopMonitor().start()
        self.pool: SshPool = SshPool.serving(config.ssh, config.pool, self._route, config.health, self.monitor)
        self.pool.set_inventory(config.inventory)
        self.health: HealthBook = HealthBook(config.health)
        self.prober: Prober = Prober(
            self.pool,
            self.health,
            script=script,
            on_transition=self._on_transition,
            plans=lambda entry: self.config.plan(entry.department),
        )
        self.events: EventPublisher | None = self._publisher(config)
        self.reloads: dict[str, int] = {"success": 0, "failure": 0}
        self.last_reload_ok = True

    def maybe_reload(self) -> None:
        if self._stat() != self._mtime:
            self.reload()

    def reload(self) -> None:
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
            old_pool, self.pool = self.pool, self.pool.successor(new.ssh, new.pool, new.health)
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
        log.info(
            "config reloaded: %d targets in %d departments", len(new.inventory.hosts), len(new.inventory.departments)
        )

    def _route(self, target: Target) -> JumpSettings | None:
        """The bastion of ``target`` in the current inventory (a department's own, or ssh.jump)."""
        return self.config.inventory.jump_for(target)

    def self_metrics(self) -> Iterable[Metric]:
        return runtime_families(self)

    def close(self) -> None:
        self.monitor.stop()
        self.pool.close()
        if self.events is not None:
            self.events.close()

    def _on_transition(self, transition: Transition, labels: HostLabels) -> None:
        if self.events is not None:
            self.events.publish("health", health_event(transition, labels))

    @staticmethod
    def _publisher(config: Config) -> EventPublisher | None:
        return None if config.rabbitmq is None else EventPublisher(config.rabbitmq).start()

    def _stat(self) -> tuple[int | None, ...]:
        """Modification times of the config file and of its key file (a fixed key reloads too)."""
        stamps = []
        for path in (self.path, self.config.ssh.key_file):
            try:
                stamps.append(os.stat(path).st_mtime_ns if path is not None else None)
            except OSError:
                stamps.append(None)
        return tuple(stamps)

"""Health state and OS of lab machines from remote write, for sites without RabbitMQ events.

``store_facts`` runs after a request's usage and status are stored (the systems rows exist then;
a machine seen for the first time gets its facts on the next request). A changed health state is
recorded exactly as a health event from the exporter would be (event_store.store_health: one
``status_history`` row, the newest of which is ``systems.health_state``), so both paths agree and
either may run; an unchanged state costs one read per request. OS name and version update in
place only when they differ. Everything here is idempotent: a retried request changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from optilab.remote_write_bridge import event_store
from optilab.remote_write_bridge.mapping import Batch

_CURRENT = """
SELECT s.instance, s.health_state,
       (SELECT max(h.timestamp) FROM status_history h WHERE h.system_id = s.id AND h.health_state IS NOT NULL)
  FROM systems s WHERE s.instance = ANY(%s)
"""
_SET_OS = """
UPDATE systems sy SET os_type = v.os_type, os_version = COALESCE(v.os_version, sy.os_version)
  FROM unnest(%s::text[], %s::text[], %s::text[]) AS v(instance, os_type, os_version)
 WHERE sy.instance = v.instance
   AND (sy.os_type IS DISTINCT FROM v.os_type OR sy.os_version IS DISTINCT FROM COALESCE(v.os_version, sy.os_version))
"""


def store_facts(pool: Any, batch: Batch) -> int:
    """Write the batch's health and OS facts in one transaction; returns how many systems changed."""
    if not batch.health and not batch.os:
        return 0
    changed = 0
    with pool.connection() as conn, conn.transaction():
        if batch.health:
            current = {row[0]: row[1:] for row in conn.execute(_CURRENT, (list(batch.health),)).fetchall()}
            for instance, (ms, state) in sorted(batch.health.items()):
                known, newest = current.get(instance, (state, None))
                at_time = datetime.fromtimestamp(ms / 1000, UTC)
                if known != state and (newest is None or at_time > newest):  # a late old sample is no change
                    at = at_time.isoformat()
                    event_store.store_health(
                        conn, {"instance": instance, "to": state, "at": at, "reason": "remote_write"}
                    )
                    changed += 1
        if batch.os:
            instances = sorted(batch.os)
            changed += conn.execute(
                _SET_OS, (instances, [batch.os[i][0] for i in instances], [batch.os[i][1] for i in instances])
            ).rowcount
    return changed

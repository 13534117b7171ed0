"""Is a database error worth a retry? Every PostgreSQL SQLSTATE class is either transient or permanent.

Transient (HTTP 503, Prometheus retries and keeps the data meanwhile): the database, the network or
the deployment is at fault, and the same request succeeds once that is fixed — a lost connection, a
deadlock, a full disk, a statement or lock timeout, a missing table or privilege, a corrupted index.

Permanent (the offending series is dropped and counted, the rest of the request is stored): the
*data* cannot be stored, so a retry can never succeed and would block Prometheus' queue for good —
a value out of range, a text PostgreSQL cannot hold, an index row over the B-tree maximum.

psycopg's own class hierarchy does not answer this: ``ProgramLimitExceeded`` ("index row size
exceeds btree maximum") is an ``OperationalError``, like a dropped connection. The SQLSTATE does.
Codes outside PostgreSQL's classes (extensions such as TimescaleDB) count as transient: a 503 loses
nothing, and the log names the code.
"""

from __future__ import annotations

from typing import NamedTuple

import psycopg
from psycopg_pool import PoolTimeout

# SQLSTATE class (first two characters) → what it means for the data. PostgreSQL's errcodes.txt.
TRANSIENT_CLASSES = {
    "03": "SQL statement not yet complete",
    "08": "connection exception",
    "0B": "invalid transaction initiation",
    "0F": "locator exception",
    "0L": "invalid grantor",
    "0P": "invalid role specification",
    "0Z": "diagnostics exception",
    "24": "invalid cursor state",
    "25": "invalid transaction state (e.g. read-only standby after a failover)",
    "26": "invalid SQL statement name (a prepared statement vanished)",
    "28": "invalid authorization specification",
    "2B": "dependent privilege descriptors still exist",
    "2D": "invalid transaction termination",
    "34": "invalid cursor name",
    "3B": "savepoint exception",
    "3D": "invalid catalog name (database missing)",
    "3F": "invalid schema name",
    "40": "transaction rollback (serialization failure, deadlock)",
    "42": "syntax error or access rule violation (schema not migrated, privileges)",
    "53": "insufficient resources (disk full, out of memory, too many connections)",
    "55": "object not in prerequisite state (lock not available)",
    "57": "operator intervention (statement timeout, query canceled, shutdown)",
    "58": "system error (I/O)",
    "72": "snapshot failure",
    "F0": "configuration file error",
    "HV": "foreign data wrapper error",
    "XX": "internal error (data or index corrupted: an operator must act; the data waits)",
}
PERMANENT_CLASSES = {
    "09": "triggered action exception",
    "0A": "feature not supported (e.g. an upsert into a compressed chunk)",
    "10": "XQuery error",
    "20": "case not found",
    "21": "cardinality violation",
    "22": "data exception (out of range, bad text, untranslatable character)",
    "23": "integrity constraint violation",
    "27": "triggered data change violation",
    "2F": "SQL routine exception",
    "38": "external routine exception",
    "39": "external routine invocation exception",
    "44": "WITH CHECK OPTION violation",
    "54": "program limit exceeded (index row size exceeds the B-tree maximum)",
    "P0": "PL/pgSQL error (a trigger refused the row)",
}
# Raised by psycopg itself, without a SQLSTATE: it refused a value before sending it (a NUL in a text).
_PERMANENT_CLIENT_SIDE = (psycopg.DataError, psycopg.IntegrityError, psycopg.NotSupportedError)


class Verdict(NamedTuple):
    transient: bool
    reason: str  # "SQLSTATE ClassName: first line of the message", safe to log (no parameters)


def classify(exc: BaseException) -> Verdict:
    """Transient or permanent, for any error the store can raise (psycopg, the pool)."""
    if isinstance(exc, PoolTimeout):
        return Verdict(True, f"no connection within the pool timeout: {_first_line(exc)}")
    sqlstate = getattr(exc, "sqlstate", None)
    reason = f"{sqlstate or 'client'} {type(exc).__name__}: {_first_line(exc)}"
    if sqlstate:
        return Verdict(sqlstate[:2] not in PERMANENT_CLASSES, reason)
    return Verdict(not isinstance(exc, _PERMANENT_CLIENT_SIDE), reason)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__

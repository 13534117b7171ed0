"""``/alerts``: alerts stored from Alertmanager, filtered by state, severity, department and time.

A time range selects the alerts that were active at some moment inside it: started before its end
and not resolved before its start. ``state=active`` means Alertmanager's ``firing``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from psycopg import sql

from optilab.api import params
from optilab.api.context import state

bp = Blueprint("alerts", __name__)

STATES = {"active": "firing", "resolved": "resolved"}
COLUMNS = sql.SQL("""id, system_id, fingerprint, alertname, alert_type, severity, status, department,
    instance, message, labels, annotations, starts_at, ends_at, updated_at""")


def _filters(args: dict[str, str]) -> tuple[sql.Composable, dict[str, Any]]:
    clauses: list[sql.Composable] = [sql.SQL("TRUE")]
    values: dict[str, Any] = {}
    if (wanted := params.choice(args, "state", ("active", "resolved", "all"), "all")) != "all":
        clauses.append(sql.SQL("status = %(status)s"))
        values["status"] = STATES[wanted]
    for name in ("severity", "department", "alertname"):
        if (value := params.text(args, name)) is not None:
            clauses.append(sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)))
            values[name] = value
    if args.get("start") or args.get("end"):
        now = state().clock()
        start = params.timestamp(args["start"], "start", now) if args.get("start") else params.EARLIEST
        end = params.timestamp(args["end"], "end", now) if args.get("end") else params.LATEST
        if start >= end:
            raise params.bad("start", "must be before end")
        clauses.append(
            sql.SQL("starts_at < %(end)s AND (status = 'firing' OR ends_at IS NULL OR ends_at >= %(start)s)")
        )
        values.update(start=start, end=end)
    return sql.SQL(" AND ").join(clauses), values


@bp.get("/alerts")
@params.accepts("state", "severity", "department", "alertname", "start", "end", "limit", "offset")
def list_alerts() -> dict[str, Any]:
    """Newest first, paginated; ``total`` counts every match."""
    args = request.args.to_dict()
    where, values = _filters(args)
    limit, offset = params.pagination(args)
    return state().db.page(
        sql.SQL("SELECT count(*) AS n FROM alerts WHERE {}").format(where),
        sql.SQL(
            "SELECT {} FROM alerts WHERE {} ORDER BY starts_at DESC NULLS LAST, id DESC "
            "LIMIT %(limit)s OFFSET %(offset)s"
        ).format(COLUMNS, where),
        values,
        limit,
        offset,
    )

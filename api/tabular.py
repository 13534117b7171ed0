"""JSON or CSV for the report endpoints: ``?format=csv`` or ``Accept: text/csv`` picks CSV.

A report is a list of flat rows (dicts) plus, for JSON, the envelope around them. CSV gets the rows
only, one header line of the row keys; nested values are flattened as ``parent.child`` columns, so a
spreadsheet opens every report without a converter. The standard library's csv module quotes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from flask import Response, request

from optilab.api import params

FORMATS = ("json", "csv")


def wants_csv() -> bool:
    """``format=csv`` wins; else an Accept header that prefers text/csv over JSON."""
    chosen = params.choice(request.args, "format", FORMATS, None)
    if chosen is not None:
        return chosen == "csv"
    accept = request.accept_mimetypes
    return accept.quality("text/csv") > accept.quality("application/json")


def flatten(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return "" if value is None else value


def csv_response(rows: Iterable[Mapping[str, Any]], filename: str) -> Response:
    flat = [flatten(row) for row in rows]
    columns: list[str] = []
    for row in flat:
        columns += [key for key in row if key not in columns]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in flat:
        writer.writerow([_cell(row.get(column)) for column in columns])
    response = Response(out.getvalue(), content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    response.vary.add("Accept")
    return response


def respond(body: dict[str, Any], rows_key: str, filename: str) -> Response | dict[str, Any]:
    """The JSON body as it is, or its ``rows_key`` list as CSV."""
    return csv_response(body[rows_key], filename) if wants_csv() else body

"""Property-based tests from the API's own OpenAPI document (schemathesis through the WSGI app).

For every operation schemathesis generates valid and invalid parameters; whatever it sends, the API
must not answer 5xx and every answer must match the documented schema for its status code. The
number of examples is bounded so the run stays well under a minute.

The schema is the document the app serves (`api.openapi.document()`, checked equal below) and is
loaded at import time: schemathesis' fixture-based loader does not work with this pytest version,
so the app (which needs the seeded database fixture) is handed to each call instead.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from optilab.api import openapi
from tests.support import api_lab as lab_fixtures
from tests.support.api_lab import AUTH

api_lab, api_app, client = lab_fixtures.api_lab, lab_fixtures.api_app, lab_fixtures.client

schema = schemathesis.openapi.from_dict(openapi.document())


def test_served_document_is_the_tested_one(client) -> None:
    assert client.get("/openapi.json", headers=AUTH).get_json() == openapi.document()


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_api_matches_its_openapi_document(case: schemathesis.Case, api_app) -> None:
    case.call_and_validate(app=api_app, headers=AUTH, checks=[not_a_server_error, response_schema_conformance])

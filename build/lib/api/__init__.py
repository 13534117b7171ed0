"""OptiLab's read-only JSON API over the lab's history (``optilab-api``; docs/api.md).

Layout: `app` builds the Flask app from an `config.ApiConfig`; `systems`, `departments`, `alerts` and
`ops` are the blueprints; `params` parses query strings, `series` decides which table answers a time
series; `db` (pool), `auth` (keys), `errors` (JSON errors), `instrument` (own metrics) and
`openapi` (the contract document) are the cross-cutting parts; `cli` serves it under waitress;
`seed` generates lab history for tests, the benchmark and the demo.
"""

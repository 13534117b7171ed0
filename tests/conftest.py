"""Shared fixtures live in tests/fixtures/, one module per real peer (sshd, PostgreSQL, Prometheus...)."""

pytest_plugins = [
    "tests.fixtures.sshd",
    "tests.fixtures.postgres",
    "tests.fixtures.prometheus",
    "tests.fixtures.rabbitmq",
    "tests.fixtures.timescaledb",  # timescaledb_dsn (module scope)
    "tests.support.consumer",  # start_consumer
    "tests.support.exporter_proc",  # exporter_factory
    "tests.support.services",  # services
    "tests.support.remote_write",  # bridge_factory, scrape_target
]

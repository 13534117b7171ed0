"""Shared fixtures live in tests/fixtures/, one module per real peer (sshd, PostgreSQL, Prometheus...)."""

pytest_plugins = [
    "tests.fixtures.sshd",
    "tests.fixtures.postgres",
    "tests.fixtures.prometheus",
    "tests.fixtures.rabbitmq",
    "tests.support.consumer",  # start_consumer
]

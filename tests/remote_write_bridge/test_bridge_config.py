"""Bridge configuration and command line: readable errors that name the field, and the
``consume`` subcommand reaching the event consumer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from optilab.remote_write_bridge.config import DEFAULT_ALLOW_LIST, ConfigError, load, validate

BRIDGE = str(Path(sys.executable).with_name("optilab-bridge"))


def test_defaults_and_overrides() -> None:
    config = validate(
        {"remote_write": {"allow_list": ["node_load1"], "pool_max": 4}, "OPTILAB_AMQP_URL": "x"}, dsn="dbname=x"
    )
    assert (config.allow_list, config.pool_max, config.dsn) == (frozenset({"node_load1"}), 4, "dbname=x")
    assert config.sections == {"OPTILAB_AMQP_URL": "x"}
    assert validate(None).allow_list == frozenset(DEFAULT_ALLOW_LIST)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"remote_write": {"pool_maxx": 3}}, "remote_write.pool_maxx: unknown field"),
        ({"remote_write": {"pool_max": "8"}}, "remote_write.pool_max: expected int"),
        ({"remote_write": {"pool_timeout": True}}, "remote_write.pool_timeout: expected int or float"),
        ({"remote_write": {"allow_list": ["node_load1", ""]}}, "remote_write.allow_list"),
        ({"remote_write": {"max_body_bytes": 0}}, "remote_write.max_body_bytes: must be at least 1"),
        ({"remote_write": {"pool_min": 9}}, "pool_min (9) exceeds pool_max (8)"),
        ({"remote_write": ["x"]}, "remote_write: must be a mapping"),
    ],
)
def test_errors_name_the_field(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(raw)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yml"
    path.write_text("remote_write: [unclosed")
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load(path, "")
    path.write_text("remote_write:\n  retention_days: 0\n")
    done = subprocess.run(
        [BRIDGE, "--dsn", "dbname=x", "--config", str(path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and "remote_write.retention_days" in done.stderr


def test_listen_must_be_host_port() -> None:
    done = subprocess.run(
        [BRIDGE, "--dsn", "dbname=x", "--listen", "nowhere"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and "HOST:PORT" in done.stderr


def test_consume_subcommand_reaches_the_consumer() -> None:
    done = subprocess.run([BRIDGE, "consume", "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "--amqp" in done.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["--dsn", "postgresql://u:secret pw@h/x", "--listen", "127.0.0.1:1"],
        ["consume", "--dsn", "postgresql://u:secret pw@h/x"],
    ],
)
def test_unparseable_dsn_exits_at_once_without_echoing_it(argv: list[str]) -> None:
    """A DSN libpq cannot parse fails at start (not a retry loop), and its text (a password?) is not shown."""
    done = subprocess.run([BRIDGE, *argv], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "dsn: not a libpq connection string" in done.stderr
    assert "secret" not in done.stderr and "Traceback" not in done.stderr


def test_consume_refuses_an_unusable_amqp_url_without_echoing_it() -> None:
    done = subprocess.run(
        [BRIDGE, "consume", "--dsn", "dbname=x", "--amqp", "amqp://u:secretpw@h:abc/"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "not an amqp:// or amqps:// URL" in done.stderr
    assert "secretpw" not in done.stderr and "Traceback" not in done.stderr


def test_bridge_refuses_an_unusable_amqp_url_for_its_webhook_at_start() -> None:
    env = {**os.environ, "OPTILAB_AMQP_URL": "amqp://u:secretpw@h:abc/"}
    env.pop("OPTILAB_ALERTS_DELIVERY", None)
    done = subprocess.run(
        [BRIDGE, "--dsn", "dbname=x", "--listen", "127.0.0.1:1"], capture_output=True, text=True, timeout=30, env=env
    )
    assert done.returncode == 2
    assert "OPTILAB_AMQP_URL: not an amqp:// or amqps:// URL" in done.stderr
    assert "secretpw" not in done.stderr and "Traceback" not in done.stderr


def test_every_problem_is_listed_not_only_the_first() -> None:
    with pytest.raises(ConfigError) as raised:
        validate({"remote_write": {"pool_maxx": 3, "max_body_bytes": 0, "pool_timeout": True}}, dsn="=x")
    assert [error.split(":")[0] for error in raised.value.errors] == [
        "dsn",
        "remote_write.pool_maxx",
        "remote_write.pool_timeout",
        "remote_write.max_body_bytes",
    ]


def test_webhook_settings_are_read_once_from_file_over_environment(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yml"
    path.write_text("OPTILAB_AMQP_PREFIX: fromfile\n")
    config = load(path, "", {"OPTILAB_AMQP_PREFIX": "fromenv", "OPTILAB_AMQP_URL": "amqp://u:p@127.0.0.1:5/%2F"})
    assert config.alerts is not None
    assert (config.alerts.delivery, config.alerts.topology.exchange) == ("rabbitmq", "fromfile.events")
    assert config.alerts.amqp_url == "amqp://u:p@127.0.0.1:5/%2F"
    with pytest.raises(ConfigError) as raised:
        load(path, "", {"OPTILAB_ALERTS_DELIVERY": "pigeon", "OPTILAB_AMQP_URL": "http://x"})
    assert raised.value.errors == [
        "OPTILAB_ALERTS_DELIVERY: expected rabbitmq or direct, got 'pigeon'",
        "OPTILAB_AMQP_URL: not an amqp:// or amqps:// URL",
    ]
    assert load(None, "", {"OPTILAB_ALERTS_DELIVERY": "direct", "OPTILAB_AMQP_URL": "http://x"}).alerts


def test_load_lists_file_and_webhook_problems_together(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yml"
    path.write_text("remote_write:\n  retention_days: 0\n  pool_maxx: 1\nOPTILAB_ALERTS_DELIVERY: pigeon\n")
    with pytest.raises(ConfigError) as raised:
        load(path, "=x", {"OPTILAB_AMQP_URL": "http://x"})
    assert [error.split(":")[0] for error in raised.value.errors] == [
        "dsn",
        "remote_write.pool_maxx",
        "remote_write.retention_days",
        "OPTILAB_ALERTS_DELIVERY",
        "OPTILAB_AMQP_URL",
    ]


def test_consume_lists_every_bad_setting_at_once_without_echoing_secrets() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTILAB_")}
    done = subprocess.run(
        [
            BRIDGE,
            "consume",
            "--dsn",
            "postgresql://u:secret pw@127.0.0.1/x",
            "--amqp",
            "amqp://u:secretpw@127.0.0.1:abc/",
            "--workers",
            "0",
            "--prefetch",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert done.returncode == 2
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("optilab-bridge consume: error: dsn: not a libpq connection string")
    for problem in (
        "--amqp/OPTILAB_AMQP_URL: not an amqp:// or amqps:// URL",
        "--workers must be between 1 and 64",
        "--prefetch must be between 1 and 1000",
    ):
        assert problem in error
    assert "secret" not in done.stderr and "Traceback" not in done.stderr

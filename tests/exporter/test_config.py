"""Config validation: a pure function whose errors name the file, the field and the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from optilab.exporter.config import (
    ConfigError,
    Target,
    TargetError,
    load_config,
    parse_config,
    parse_duration,
    parse_target,
)

GOOD = {
    "ssh": {
        "user": "optilab",
        "port": 22,
        "key_file": "/keys/id_ed25519",
        "known_hosts": "/keys/known_hosts",
        "host_key_policy": "strict",
        "connect_timeout": "5s",
        "command_timeout": "1m",
    },
    "departments": {
        "physics": {"hosts": ["pc-01.lab", "127.0.0.1:2222"], "subnets": ["127.0.1.0/28"]},
        "chemistry": {"hosts": [{"target": "127.0.2.7", "hostname": "chem-07", "os": "Rocky Linux 9.4 (Blue Onyx)"}]},
    },
}


def errors_of(raw: Any, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "inventory.yml", env=env or {})
    return info.value.errors


def with_(path: str, value: Any) -> dict[str, Any]:
    """A deep copy of GOOD with one dotted field replaced."""
    raw = yaml.safe_load(yaml.safe_dump(GOOD))
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return raw


def test_the_issue_example_parses_into_settings_and_targets() -> None:
    config = parse_config(GOOD, "inventory.yml", env={})
    assert config.ssh.connect_timeout == 5 and config.ssh.command_timeout == 60
    assert config.ssh.key_file == Path("/keys/id_ed25519")
    hosts = config.inventory.hosts
    assert len(hosts) == 2 + 14 + 1  # a /28 expands to its 14 host addresses
    assert hosts["pc-01.lab:22"].hostname == "pc-01.lab" and hosts["pc-01.lab:22"].department == "physics"
    assert hosts["127.0.0.1:2222"].hostname is None
    assert "127.0.1.1:22" in hosts and "127.0.1.14:22" in hosts
    assert "127.0.1.0:22" not in hosts and "127.0.1.15:22" not in hosts
    assert hosts["127.0.2.7:22"].hostname == "chem-07"
    assert hosts["127.0.2.7:22"].os == "Rocky Linux 9.4 (Blue Onyx)"
    assert hosts["pc-01.lab:22"].os is None
    assert config.inventory.departments == ["chemistry", "physics"]
    assert config.rabbitmq is None


def test_a_bad_cidr_names_file_field_and_reason() -> None:
    errors = errors_of(with_("departments.physics.subnets", ["127.0.1.300/24"]))
    assert errors == ["inventory.yml: departments.physics.subnets[0]: '127.0.1.300/24' is not a CIDR network"]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("ssh.host_key_policy", "yes", "ssh.host_key_policy: 'yes' is not one of strict, accept-new"),
        ("ssh.connect_timeout", "5 parsecs", "ssh.connect_timeout: '5 parsecs' is not a duration"),
        ("ssh.port", 70000, "ssh.port: 70000 is not an integer from 1 to 65535"),
        ("ssh.colour", "blue", "ssh.colour: unknown field"),
        ("departments.physics.subnets", ["127.0.0.0/16"], "'127.0.0.0/16' has 65536 addresses; at most 1024"),
        ("departments.physics.subnets", ["127.0.1.5/24"], "'127.0.1.5/24' has host bits set"),
        ("departments.physics.hosts", ["pc 01"], "departments.physics.hosts[0]: 'pc 01' is not a host name"),
        ("departments.physics.hosts", ["127.0.0.1:0"], "has an invalid port '0'"),
        ("departments.chemistry.hosts", ["pc-01.lab"], "pc-01.lab:22 is already in department "),
        (
            "departments.chemistry.hosts",
            [{"target": "127.0.2.7", "os": 12}],
            "departments.chemistry.hosts[0].os: 12 is not a string",
        ),
        (
            "departments.chemistry.hosts",
            [{"target": "127.0.2.7", "distro": "x"}],
            "departments.chemistry.hosts[0].distro: unknown field (allowed: hostname, maintenance, os, target)",
        ),
        ("health.jitter", 2, "health.jitter: 2 is not a fraction"),
        ("health.offline_after", 9, "needs degraded_after < offline_after < dead_after"),
        ("pool.max_concurrent_dials", 0, "pool.max_concurrent_dials: 0 is not an integer from 1 to 1000"),
    ],
)
def test_each_mistake_is_reported_with_its_field(field: str, value: Any, expected: str) -> None:
    errors = errors_of(with_(field, value))
    assert any(expected in error for error in errors), errors
    assert all(error.startswith("inventory.yml: ") for error in errors)


def test_all_mistakes_are_reported_at_once() -> None:
    raw = with_("ssh.port", "ssh")
    raw["departments"]["physics"]["subnets"] = ["nonsense"]
    raw["extra"] = 1
    assert len(errors_of(raw)) == 3


def test_an_empty_inventory_is_an_error() -> None:
    assert errors_of({"ssh": GOOD["ssh"]}) == [
        "inventory.yml: departments: must map at least one department name to its hosts/subnets"
    ]


def test_secrets_come_from_env_or_file_and_never_print(tmp_path: Path) -> None:
    (tmp_path / "pass").write_text("file-secret-42\n")
    raw = with_("ssh.password_env", "LAB_PW")
    raw["ssh"]["passphrase_file"] = str(tmp_path / "pass")
    config = parse_config(raw, "inventory.yml", env={"LAB_PW": "env-secret-17"})
    assert config.ssh.password is not None and config.ssh.password.reveal() == "env-secret-17"
    assert config.ssh.passphrase is not None and config.ssh.passphrase.reveal() == "file-secret-42"
    shown = repr(config) + str(config.ssh)
    assert "env-secret-17" not in shown and "file-secret-42" not in shown
    assert errors_of(raw, env={}) == ["inventory.yml: ssh.password_env: environment variable LAB_PW is not set"]


def test_a_broker_url_is_a_secret_too() -> None:
    raw = with_("rabbitmq", {"url": "amqp://u:broker-pw@127.0.0.1:5672/%2F", "exchange": "x"})
    config = parse_config(raw, "inventory.yml", env={})
    assert config.rabbitmq is not None and "broker-pw" not in repr(config)


def test_an_unusable_broker_url_names_the_field_not_the_value() -> None:
    raw = with_("rabbitmq", {"url": "amqp://u:broker-pw@127.0.0.1:notaport/"})
    errors = errors_of(raw)
    assert len(errors) == 1 and "rabbitmq.url: not an amqp:// or amqps:// URL" in errors[0]
    assert "broker-pw" not in errors[0]


def test_load_config_reports_yaml_errors_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "lab.yml"
    path.write_text("ssh: [unclosed\n")
    with pytest.raises(ConfigError, match=r"lab\.yml: not valid YAML"):
        load_config(path)
    path.write_text(yaml.safe_dump(with_("ssh.user", "")))
    with pytest.raises(ConfigError, match=r"lab\.yml: ssh\.user: '' is not a user name"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "seconds"), [("5s", 5), ("1m", 60), ("500ms", 0.5), ("2h", 7200), ("1d", 86400), (3, 3), ("1.5s", 1.5)]
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5 parsecs", "-1", "s", True])
def test_bad_durations(text: Any) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.1.5", Target("127.0.1.5", 22)),
        ("127.0.1.5:2222", Target("127.0.1.5", 2222)),
        ("PC-01.Lab", Target("pc-01.lab", 22)),
        ("[::1]:2200", Target("::1", 2200)),
        ("::1", Target("::1", 22)),
    ],
)
def test_targets_normalise_to_host_and_port(text: str, expected: Target) -> None:
    assert parse_target(text, 22) == expected
    assert str(parse_target(str(expected), 22)) == str(expected)


@pytest.mark.parametrize("text", ["", "a b", "127.0.0.1:", "127.0.0.1:x", "[::1", "127.0.0.1:65536", "x;rm -rf"])
def test_bad_targets(text: str) -> None:
    with pytest.raises(TargetError):
        parse_target(text, 22)


def test_session_settings_default_to_auto_and_their_errors_name_the_field() -> None:
    config = parse_config(GOOD, "inventory.yml", env={})
    assert (config.ssh.session.mode, config.ssh.session.login_check_interval) == ("auto", 300.0)
    raw = with_("ssh.session", {"mode": "exec", "login_check_interval": "1m", "max_answer_bytes": 65536})
    session = parse_config(raw, "inventory.yml", env={}).ssh.session
    assert (session.mode, session.login_check_interval, session.max_answer_bytes) == ("exec", 60.0, 65536)
    assert errors_of(
        with_("ssh.session", {"mode": "pty", "max_answer_bytes": 10, "login_check_interval": "often", "colour": 1})
    ) == [
        "inventory.yml: ssh.session.colour: unknown field (allowed: login_check_interval, max_answer_bytes, mode)",
        "inventory.yml: ssh.session.mode: 'pty' is not one of auto, shell, exec",
        "inventory.yml: ssh.session.login_check_interval: 'often' is not a duration (examples: 500ms, 5s, 1m, 2h, 1d)",
        "inventory.yml: ssh.session.max_answer_bytes: 10 is not an integer from 4096 to 2147483648",
    ]
    assert errors_of(with_("ssh.session", "shell")) == ["inventory.yml: ssh.session: must be a mapping, got str"]


def test_a_department_may_choose_its_own_session_mode() -> None:
    config = parse_config(with_("departments.chemistry.session", {"mode": "exec"}), "inventory.yml", env={})
    assert config.inventory.session_modes == {"chemistry": "exec"}
    assert errors_of(with_("departments.chemistry.session", {"mode": "telnet", "max_answer_bytes": 1})) == [
        "inventory.yml: departments.chemistry.session.max_answer_bytes: unknown field (allowed: mode)",
        "inventory.yml: departments.chemistry.session.mode: 'telnet' is not one of auto, shell, exec",
    ]


# --- collectors: node_exporter's flags, lab-wide and per department ---------------------------------

COLLECTOR_BASE = {
    "ssh": {"user": "optilab", "key_file": "/nonexistent/key"},
    "departments": {"physics": {"hosts": ["127.0.1.1"]}, "chemistry": {"hosts": ["127.0.1.2"]}},
}


def test_collectors_default_to_node_exporters_defaults_and_departments_override():
    from optilab.exporter.collectors import default_enabled

    raw = {
        **COLLECTOR_BASE,
        "collectors": {"disable": ["arp"], "filesystem": {"mount-points-exclude": "^/boot"}},
        "departments": {
            "physics": {
                "hosts": ["127.0.1.1"],
                "collectors": {"enable": ["arp"], "netdev": {"device-exclude": "^lo$"}},
            },
            "chemistry": {"hosts": ["127.0.1.2"]},
        },
    }
    config = parse_config(raw, "lab.yml", env={})
    chemistry, physics = config.plan("chemistry"), config.plan("physics")
    assert "arp" not in chemistry.names and "arp" in physics.names
    options = {collector.name: dict(opts.values) for collector, opts in physics.collectors if opts.values}
    assert options == {"filesystem": {"mount-points-exclude": "^/boot"}, "netdev": {"device-exclude": "^lo$"}}
    plain = parse_config(COLLECTOR_BASE, "lab.yml", env={}).plan("physics")
    assert set(plain.names) | {c.name for c, _ in plain.slow.collectors} == {c.name for c in default_enabled()}
    assert chemistry.script != plain.script and "/proc/net/arp" not in chemistry.script


def test_a_boolean_flag_switches_on_the_paths_upstream_reads_only_with_it():
    raw = {
        **COLLECTOR_BASE,
        "departments": {
            "physics": {"hosts": ["127.0.1.1"], "collectors": {"bcache": {"priorityStats": "true"}}},
            "chemistry": {"hosts": ["127.0.1.2"]},
        },
    }
    config = parse_config(raw, "lab.yml", env={})
    assert "priority_stats" in config.plan("physics").script
    assert "priority_stats" not in config.plan("chemistry").script
    assert "/sys/fs/bcache/*-*/cache[0-9]*/written" in config.plan("chemistry").script


@pytest.mark.parametrize(
    ("collectors", "message"),
    [
        ("all", "collectors: must be a mapping (enable, disable, <collector>: {flag: value}), got str"),
        ({"disable": ["nope"]}, "collectors.disable[0]: unknown collector 'nope' (known: arp, "),
        ({"enable": "arp"}, "collectors.enable: must be a list of collector names"),
        (
            {"netdev": {"device-exclud": "x"}},
            "collectors.netdev.device-exclud: unknown flag (allowed: device-exclude, "
            "device-include, enable-detailed-metrics, netlink)",
        ),
        ({"netdev": {"netlink": "no"}}, "collectors.netdev.netlink: 'no' is not one of '1', 't'"),
        ({"vmstat": {"fields": "("}}, "collectors.vmstat.fields: not a regular expression: missing )"),
        ({"vmstat": {"fields": 3}}, "collectors.vmstat.fields: must be a string, got int"),
        (
            {"textfile": {"directory": "/tmp"}},
            "collectors.textfile.directory: '/tmp' is not one of '/var/lib/prometheus/node-exporter'",
        ),
        ({"cpu": {"x": "y"}}, "collectors.cpu: flags of cpu: it has none"),
        ({"bcache": {"priorityStats": "yes"}}, "collectors.bcache.priorityStats: 'yes' is not one of '1', 't'"),
        ({"rapl": {"enable-zone-label": "on"}}, "collectors.rapl.enable-zone-label: 'on' is not one of '1', 't'"),
    ],
)
def test_collector_settings_errors_name_the_field(collectors, message):
    raw = {**COLLECTOR_BASE, "departments": {"physics": {"hosts": ["127.0.1.1"], "collectors": collectors}}}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, "lab.yml", env={})
    assert any(error.startswith(f"lab.yml: departments.physics.{message}") for error in caught.value.errors), (
        caught.value.errors
    )

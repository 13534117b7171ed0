"""``ssh.jump`` and ``departments.NAME.jump``: which hosts go through which bastion, and errors that
name the field (exporter/config.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from optilab.exporter.config import ConfigError, JumpSettings, parse_config
from optilab.exporter.targets import Target

BASE: dict[str, Any] = {
    "ssh": {"user": "optilab", "key_file": "/keys/lab", "known_hosts": "/keys/lab_known_hosts"},
    "departments": {"physics": {"hosts": ["127.0.1.1"]}, "chemistry": {"hosts": ["127.0.2.1"]}},
}


def parse(ssh_jump: Any = None, **departments: Any) -> Any:
    raw = {"ssh": dict(BASE["ssh"]), "departments": {k: dict(v) for k, v in BASE["departments"].items()}}
    if ssh_jump is not None:
        raw["ssh"]["jump"] = ssh_jump
    for name, jump in departments.items():
        raw["departments"][name]["jump"] = jump
    return parse_config(raw, "inventory.yml", env={"JUMP_PASS": "hunter2"})


def errors(ssh_jump: Any = None, **departments: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(ssh_jump, **departments)
    return info.value.errors


def test_the_global_jump_has_its_own_login_and_defaults_to_ssh_s() -> None:
    config = parse(
        {
            "host": "127.0.0.1:2200",
            "user": "jump",
            "key_file": "/keys/jump",
            "known_hosts": "/keys/jump_known_hosts",
            "retry_interval": "30s",
        }
    )
    jump = config.ssh.jump
    assert jump == JumpSettings(
        Target("127.0.0.1", 2200), "jump", Path("/keys/jump"), Path("/keys/jump_known_hosts"), None, 30.0
    )
    assert config.inventory.jump_for(Target("127.0.1.1", 22)) == jump
    assert config.inventory.jump_for(Target("127.0.2.1", 22)) == jump
    assert config.inventory.jump_for(Target("127.0.9.9", 22)) is None  # not in the inventory: nothing
    minimal = parse({"host": "127.0.0.1"}).ssh.jump
    assert (minimal.target, minimal.user, minimal.key_file, minimal.known_hosts) == (
        Target("127.0.0.1", 22),
        "optilab",
        Path("/keys/lab"),
        Path("/keys/lab_known_hosts"),
    )


def test_a_department_names_its_own_bastion_or_none() -> None:
    config = parse(
        {"host": "127.0.0.1:2200"},
        chemistry={"host": "127.0.0.2", "passphrase_env": "JUMP_PASS", "key_file": "/keys/chem"},
        physics=False,
    )
    chemistry = config.inventory.jump_for(Target("127.0.2.1", 22))
    assert chemistry is not None and chemistry.target == Target("127.0.0.2", 22)
    assert chemistry.passphrase is not None and "hunter2" not in repr(chemistry)
    assert config.inventory.jump_for(Target("127.0.1.1", 22)) is None  # jump: false = dialled directly
    assert config.inventory.jumps == {"physics": None, "chemistry": chemistry}


@pytest.mark.parametrize(
    ("jump", "message"),
    [
        ("127.0.0.1:2200", "inventory.yml: ssh.jump: must be a mapping with host"),
        ({"user": "x"}, "inventory.yml: ssh.jump.host: is required: the bastion's HOST[:PORT]"),
        ({"host": "127.0.0.1:99999"}, "inventory.yml: ssh.jump.host: '127.0.0.1:99999' has an invalid port"),
        ({"host": "127.0.0.1", "port": 22}, "inventory.yml: ssh.jump.port: unknown field"),
        ({"host": "127.0.0.1", "user": ""}, "inventory.yml: ssh.jump.user: '' is not a user name"),
        ({"host": "127.0.0.1", "retry_interval": "soon"}, "inventory.yml: ssh.jump.retry_interval: 'soon' is not"),
        (
            {"host": "127.0.0.1", "key_file": "/k", "passphrase_env": "NOPE"},
            "inventory.yml: ssh.jump.passphrase_env: environment variable NOPE is not set",
        ),
    ],
)
def test_a_bad_global_jump_names_the_field(jump: Any, message: str) -> None:
    assert any(error.startswith(message) for error in errors(jump)), errors(jump)


def test_a_bad_department_jump_names_the_department() -> None:
    found = errors(None, physics={"host": "bad host"})
    assert found == ["inventory.yml: departments.physics.jump.host: 'bad host' is not a host name or IP address"]

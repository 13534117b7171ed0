"""The one ``ensure_user`` (labsim.real), used by the sshd fixture and the lab's real mode.

Each test works on a throwaway account with a unique name (parallel runs never share one) and deletes
it afterwards; the suite runs as root, as the sshd fixture needs anyway.
"""

from __future__ import annotations

import pwd
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from optilab.labsim.real import ensure_user


def password_field(name: str) -> str:
    for line in Path("/etc/shadow").read_text().splitlines():
        user, _, rest = line.partition(":")
        if user == name:
            return rest.split(":")[0]
    raise KeyError(name)


@pytest.fixture
def name() -> Iterator[str]:
    name = f"optl-{uuid.uuid4().hex[:10]}"
    yield name
    subprocess.run(["userdel", "--remove", name], capture_output=True, check=False)


def test_creates_an_unlocked_account_with_sh_and_a_home(name: str) -> None:
    home = ensure_user(name)
    entry = pwd.getpwnam(name)
    assert (entry.pw_shell, Path(entry.pw_dir)) == ("/bin/sh", home)
    assert home.is_dir()
    assert password_field(name) == "*"  # no password, but not the locked "!" sshd refuses
    assert ensure_user(name) == home  # idempotent


def test_unlocks_only_a_locked_account(name: str) -> None:
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True, capture_output=True)
    assert password_field(name).startswith("!")  # useradd's default: locked
    ensure_user(name)
    assert password_field(name) == "*"
    subprocess.run(["usermod", "-p", "x-not-a-hash", name], check=True, capture_output=True)
    ensure_user(name)
    assert password_field(name) == "x-not-a-hash"  # an unlocked account keeps its password field


def test_parallel_callers_all_get_the_account(name: str) -> None:
    with ThreadPoolExecutor(6) as workers:  # six useradd/usermod racing for the /etc/passwd lock
        homes = list(workers.map(lambda _: ensure_user(name), range(6)))
    assert len(set(homes)) == 1 and homes[0].is_dir()
    assert password_field(name) == "*"

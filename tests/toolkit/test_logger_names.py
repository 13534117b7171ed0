"""One logger hierarchy: every logger a service module names is ``optilab.<service>.<module>``.

``<service>`` is the package (``exporter``, ``api``, ``labsim``, ``timescale``, ``toolkit``, ``demo``),
except ``remote_write_bridge``, whose loggers are ``optilab.bridge.*`` (the process is
``optilab-bridge``); a ``cli`` module may log as its service's root (``optilab.exporter``). So an
operator filters one service with one prefix. Third-party loggers (paramiko, pika, waitress) keep
their names: the services only set their levels. Read from the source (AST), so a logger created
in a function counts too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import REPO

PACKAGES = ("exporter", "remote_write_bridge", "api", "toolkit", "timescale", "labsim", "demo")
SERVICE = {"remote_write_bridge": "bridge"}
THIRD_PARTY = frozenset({"paramiko", "pika", "waitress"})


def logger_names(source: str, module: str) -> Iterator[tuple[int, str | None]]:
    """(line, name) of each ``logging.getLogger(...)`` call; ``__name__`` is resolved to ``module``;
    None for an argument that is neither a string literal nor ``__name__``; root loggers skipped."""
    for node in ast.walk(ast.parse(source)):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "getLogger"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "logging"
        ):
            continue
        if not node.args:
            continue  # the root logger (toolkit/logs.py installs the handler there)
        arg = node.args[0]
        if isinstance(arg, ast.Name) and arg.id == "__name__":
            yield node.lineno, module
        elif isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            yield node.lineno, arg.value
        else:
            yield node.lineno, None


def expected(module: str) -> set[str]:
    """The names a module may log under (``module`` as installed: ``optilab.exporter.sshpool``)."""
    _, package, *rest = module.split(".")
    root = f"optilab.{SERVICE.get(package, package)}"
    names = {".".join([root, *rest])}
    if rest and rest[-1] == "cli":
        names.add(root)
    return names


def problems(path: Path) -> list[str]:
    relative = path.relative_to(REPO).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    module = ".".join(["optilab", *parts])
    found = []
    for line, name in logger_names(path.read_text(encoding="utf-8"), module):
        if name is not None and name.split(".")[0] in THIRD_PARTY:
            continue
        if name not in expected(module):
            found.append(f"{relative}.py:{line}: logger {name!r}, expected one of {sorted(expected(module))}")
    return found


def test_the_rule_itself() -> None:
    assert expected("optilab.exporter.sshpool") == {"optilab.exporter.sshpool"}
    assert expected("optilab.remote_write_bridge.store") == {"optilab.bridge.store"}
    assert expected("optilab.api.cli") == {"optilab.api.cli", "optilab.api"}
    source = (
        'import logging\nlog = logging.getLogger("optilab.consumer")\nroot = logging.getLogger()\n'
        "def f(x):\n    return logging.getLogger(__name__), logging.getLogger(x)\n"
    )
    assert list(logger_names(source, "optilab.remote_write_bridge.consumer")) == [
        (2, "optilab.consumer"),
        (5, "optilab.remote_write_bridge.consumer"),
        (5, None),
    ]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_logger_is_under_its_service(package: str) -> None:
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"no sources under {package}/"
    assert [problem for path in files for problem in problems(path)] == []

"""The wheel is all an installation needs: built here, installed into a fresh venv outside the
checkout, every console script answers --version and --help, write-configs writes configs that
promtool and amtool accept, and the demo verifies a whole pipeline from there (state under $HOME)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.paths import REPO

SCRIPTS = ("optilab-exporter", "optilab-bridge", "optilab-migrate", "optilab-api", "optilab-labsim", "optilab-demo")


def run(argv: list[str], cwd: Path, timeout: float = 300, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, f"{argv}: {result.stdout[-2000:]}{result.stderr[-3000:]}"
    return result.stdout + result.stderr


@pytest.mark.slow
def test_the_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path, empty_dsn: str) -> None:
    # a clean copy: a build/ left in the checkout by an earlier build could smuggle stale files in
    source = tmp_path / "source"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "var", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "node_modules"
        ),
    )
    build = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(source)], tmp_path
    )
    assert "is absent from the `packages` configuration" not in build
    wheel = next((tmp_path / "dist").glob("optilab-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in (
        "optilab/timescale/migrations/0001_core.sql",
        "optilab/toolkit/shipped/alert_rules/optilab.yml",
        "optilab/toolkit/shipped/deploy/prometheus/prometheus.yml",
        "optilab/toolkit/shipped/deploy/alertmanager/alertmanager.yml",
        "optilab/toolkit/shipped/deploy/systemd/optilab-exporter.service",
        "optilab/toolkit/shipped/grafana/dashboards/optilab-overview.json",
        "optilab/toolkit/shipped/grafana/provisioning/datasources/optilab.yml",
    ):
        assert shipped in names, shipped
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    # one namespace in site-packages: no generic top-level names (exporter, api, demo...) to collide with
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"optilab"}
    assert "optilab/exporter/collectors/netclass.py" in names and "optilab/api/static/board/board.js" in names
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], tmp_path, timeout=600)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        key: value for key, value in os.environ.items() if key not in ("OPTILAB_DSN", "PYTHONPATH", "XDG_STATE_HOME")
    }
    env["HOME"] = str(home)
    for script in SCRIPTS:
        assert run([str(venv / "bin" / script), "--version"], home, env=env).startswith(f"{script}, version 0.1.0")
        assert "usage:" in run([str(venv / "bin" / script), "--help"], home, env=env)
    bridge_help = run([str(venv / "bin" / "optilab-bridge"), "--help"], home, env=env)
    assert "optilab-bridge consume" in bridge_help and ":func:" not in bridge_help and "``" not in bridge_help
    configs = home / "etc"
    run([str(venv / "bin" / "optilab-exporter"), "write-configs", str(configs)], home, env=env)
    checked = run(["promtool", "check", "config", str(configs / "prometheus" / "prometheus.yml")], home)
    assert "SUCCESS: 1 rule files found" in checked
    run(["promtool", "test", "rules", str(configs / "alert_rules" / "tests" / "optilab_test.yml")], home)
    run(["amtool", "check-config", str(configs / "alertmanager" / "alertmanager.yml")], home)
    demo = [str(venv / "bin" / "optilab-demo"), "--ports", "auto", "--hosts", "12", "--verify", "--timeout", "150"]
    output = run(demo, home, timeout=400, env={**env, "OPTILAB_DSN": empty_dsn})
    assert "verified" in output.lower()
    assert (home / ".local" / "state" / "optilab" / "demo" / "logs").is_dir()

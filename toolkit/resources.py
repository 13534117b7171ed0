"""The files an installed OptiLab needs besides code, and ``write-configs`` that writes them out.

The repository keeps them in alert_rules/, grafana/ and deploy/; the wheel installs them as the
packages ``toolkit.shipped.*`` (setup.cfg's ``package_dir``), read here with importlib.resources
relative to this package, so a later move of ``toolkit`` under another namespace keeps working.
From a checkout that is not installed, the folders are found next to the package.

``optilab-exporter write-configs DIR`` lays them out as DIR/prometheus/, DIR/alert_rules/,
DIR/alertmanager/, DIR/grafana/ and DIR/systemd/, with the Prometheus ``rule_files`` glob pointing
at DIR/alert_rules/ and every ``runbook_url`` on ``--runbook-base``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

RUNBOOK_BASE = "https://optilab.example/docs/alerts.md"
#: Shipped folder → where write-configs puts it.
LAYOUT = {
    "alert_rules": "alert_rules",
    "deploy/prometheus": "prometheus",
    "deploy/alertmanager": "alertmanager",
    "deploy/systemd": "systemd",
    "grafana": "grafana",
}
_PACKAGE = __name__.rsplit(".", 1)[0] + ".shipped"


def shipped(folder: str) -> Traversable:
    """``alert_rules``, ``grafana``, ``deploy`` or a subfolder (``deploy/prometheus``)."""
    top, _, rest = folder.partition("/")
    try:
        root: Traversable = resources.files(f"{_PACKAGE}.{top}")
        if not root.is_dir():
            raise ModuleNotFoundError(folder)
    except ModuleNotFoundError:
        root = Path(__file__).resolve().parent.parent / top  # a checkout: the repository's folder
    return root.joinpath(rest) if rest else root


def _walk(node: Traversable, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name.startswith(("_", ".")):
            continue  # __init__.py, __pycache__
        if child.is_dir():
            yield from _walk(child, f"{prefix}{child.name}/")
        elif child.name.endswith((".yml", ".json", ".service")):
            yield prefix + child.name, child


def rendered(runbook_base: str = RUNBOOK_BASE) -> dict[str, str]:
    """Relative output path → file content, adapted to the write-configs layout."""
    files = {}
    for folder, target in LAYOUT.items():
        for name, node in _walk(shipped(folder)):
            text = node.read_text()
            if folder == "deploy/prometheus":
                text = text.replace("../../alert_rules/*.yml", "../alert_rules/*.yml")
            if folder == "alert_rules":
                text = text.replace(f"{RUNBOOK_BASE}#", f"{runbook_base.rstrip('#')}#")
            files[f"{target}/{name}"] = text
    return files


def write(directory: Path, runbook_base: str = RUNBOOK_BASE, force: bool = False) -> list[Path]:
    """Write every file under ``directory``; an existing different file is kept unless ``force``."""
    files = rendered(runbook_base)
    clashes = [
        name for name, text in files.items() if (directory / name).exists() and (directory / name).read_text() != text
    ]
    if clashes and not force:
        raise FileExistsError(
            f"{len(clashes)} files differ from the shipped ones and are kept "
            f"(first: {directory / clashes[0]}); --force overwrites them"
        )
    written = []
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str], prog: str = "optilab-exporter write-configs") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Write the Prometheus and Alertmanager examples, alert rules, Grafana "
        "dashboards and provisioning, and systemd units this OptiLab ships into DIR.",
    )
    parser.add_argument("directory", type=Path, metavar="DIR", help="output folder (created if missing)")
    parser.add_argument(
        "--runbook-base",
        default=RUNBOOK_BASE,
        metavar="URL",
        help=f"absolute URL of the runbooks (docs/alerts.md) for runbook_url (default {RUNBOOK_BASE}, a placeholder)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite files that differ from the shipped ones")
    args = parser.parse_args(argv)
    if not args.runbook_base.startswith(("https://", "http://")):
        parser.error(f"--runbook-base must be an absolute http(s) URL, got {args.runbook_base!r}")
    try:
        written = write(args.directory.resolve(), args.runbook_base, args.force)
    except (FileExistsError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0

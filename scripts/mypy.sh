#!/usr/bin/env bash
# mypy over the packages by the names they install under (optilab.exporter, optilab.api, ...).
# setup.cfg maps optilab.<package> to the top-level folders (package_dir), which mypy cannot read,
# so a folder of symlinks under var/ gives it the same layout. Usage: scripts/mypy.sh [MYPY]
set -euo pipefail
cd "$(dirname "$0")/.."
mypy=${1:-.venv/bin/mypy}
packages=(exporter remote_write_bridge api toolkit timescale labsim demo)
rm -rf var/mypy-src && mkdir -p var/mypy-src/optilab
for package in "${packages[@]}"; do ln -s "../../../$package" "var/mypy-src/optilab/$package"; done
args=()
for package in "${packages[@]}"; do args+=(-p "optilab.$package"); done
MYPYPATH=var/mypy-src exec "$mypy" "${args[@]}"

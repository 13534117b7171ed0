#!/usr/bin/env bash
# Install the Debian packages OptiLab runs against (real peers, never mocks): sshd, Prometheus,
# Alertmanager, node_exporter. Only what is missing; as root only, otherwise say what to install.
set -euo pipefail
declare -A need=(
  [/usr/sbin/sshd]=openssh-server
  [/usr/bin/prometheus]=prometheus
  [/usr/bin/promtool]=prometheus
  [/usr/bin/prometheus-alertmanager]=prometheus-alertmanager
  [/usr/bin/amtool]=prometheus-alertmanager
  [/usr/bin/prometheus-node-exporter]=prometheus-node-exporter
  [/usr/bin/systemd-analyze]=systemd  # tests/deploy/test_deploy.py verifies the units in deploy/systemd
  [/usr/bin/chromium]=chromium  # tests/api/test_board.py: the lab board in a real headless browser
  [/usr/bin/chromedriver]=chromium-driver
)
missing=()
for bin in "${!need[@]}"; do
  [ -x "$bin" ] || missing+=("${need[$bin]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  echo "OptiLab needs these Debian packages: ${missing[*]}" >&2
  echo "Install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing Debian packages: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postinst may start the packaged daemons on their public defaults; OptiLab runs its own
# instances on loopback, so stop these if they came up.
for svc in prometheus prometheus-alertmanager prometheus-node-exporter ssh; do
  pkill -x "$svc" 2>/dev/null || true
done

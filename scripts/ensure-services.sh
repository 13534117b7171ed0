#!/usr/bin/env bash
# Start the machine services the test suite talks to (PostgreSQL, RabbitMQ) when they are not up.
set -euo pipefail
up() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
wait_up() { for _ in $(seq 1 60); do up "$1" && return 0; sleep 1; done; echo "port $1 did not open" >&2; return 1; }
if ! up 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  wait_up 5432
fi
if ! up 5672; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached
  wait_up 5672
fi

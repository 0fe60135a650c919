#!/usr/bin/env bash
# Starts one sitefleet node in the background, with an embedded etcd, and
# adds a demo site. "scripts/demo.sh stop" stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${SITEFLEET_DEMO_DIR:-/tmp/sitefleet-demo}
# sitefleet refuses SITEFLEET_* variables it does not know: this one is
# the script's own.
unset SITEFLEET_DEMO_DIR
PIDFILE="$DATA/node.pid"
export SITEFLEET_DATA_DIR="$DATA"

if [ "${1:-}" = stop ]; then
  if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    # The first signal drains the node (shutdown.drain); the second stops
    # it at once: nothing balances traffic to a demo.
    kill -TERM "$(cat "$PIDFILE")"
    sleep 0.2
    kill -TERM "$(cat "$PIDFILE")" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "the demo node (pid $(cat "$PIDFILE")) is still stopping; see $DATA/node.log" >&2
      exit 1
    fi
    rm -f "$PIDFILE"
    echo "demo node stopped"
  else
    echo "no demo node is running"
  fi
  exit 0
fi

command -v go >/dev/null 2>&1 || { echo "Go 1.26 or newer is required: https://go.dev/doc/install" >&2; exit 1; }
scripts/need-nginx.sh
make --no-print-directory build
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  echo "a demo node is already running (pid $(cat "$PIDFILE")); 'make demo-stop' stops it"
else
  mkdir -p "$DATA"
  nohup bin/sitefleet node --data-dir "$DATA" >"$DATA/node.log" 2>&1 &
  echo $! >"$PIDFILE"
fi
for _ in $(seq 1 300); do
  if curl -fsS http://127.0.0.1:7070/readyz >/dev/null 2>&1; then break; fi
  if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "the node exited; its log ($DATA/node.log) ends with:" >&2
    tail -n 20 "$DATA/node.log" >&2
    exit 1
  fi
  sleep 0.1
done
bin/sitefleet site get demo.localhost >/dev/null 2>&1 || bin/sitefleet site add demo.localhost --alias www.demo.localhost
for _ in $(seq 1 100); do
  curl -fsS -H 'Host: demo.localhost' http://127.0.0.1:8080/ >/dev/null 2>&1 && break
  sleep 0.1
done
cat <<MSG

sitefleet is running (data in $DATA, log in $DATA/node.log) and serves demo.localhost:

    curl -H 'Host: demo.localhost' http://127.0.0.1:8080/
    SITEFLEET_DATA_DIR=$DATA bin/sitefleet status
    SITEFLEET_DATA_DIR=$DATA bin/sitefleet site add another.localhost

Deploy a directory of your own to it:

    SITEFLEET_DATA_DIR=$DATA bin/sitefleet app upload ./public --app demo --version 1
    SITEFLEET_DATA_DIR=$DATA bin/sitefleet deploy demo.localhost demo@1 --wait 10s

Stop it with: make demo-stop
MSG

#!/usr/bin/env bash
# Stops what docker/local-up.sh started (SIGTERM, so running scripts can finish).
set -uo pipefail
cd "$(dirname "$0")/.."
quiet=${1:-}
for pidfile in .local/pids/*.pid; do
  [[ -e $pidfile ]] || continue
  pid=$(cat "$pidfile")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    [[ $quiet ]] || echo "stopped $(basename "$pidfile" .pid) ($pid)"
  fi
  rm -f "$pidfile"
done

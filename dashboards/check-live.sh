#!/usr/bin/env bash
# Checks dashboards and alert rules for real. It:
#  - runs promtool on the rules and their unit tests;
#  - starts producer, consumer and scheduler (own database and RabbitMQ vhost) and a real
#    Prometheus scraping them every second, on 127.0.0.1;
#  - makes a short load: runs that succeed and fail on two queues, bad requests, a task on
#    a per-second schedule;
#  - runs every dashboard query on that Prometheus (each must parse and return data) and
#    checks that every alert rule evaluates without error.
# Installs Prometheus (Debian package) when absent. Leaves nothing behind.
# Usage: dashboards/check-live.sh   (after `cargo build --bins`)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  say "Prometheus: installing (apt-get install prometheus)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

say "promtool: rules and their unit tests"
promtool check rules dashboards/alerts.yaml
promtool test rules dashboards/tests/alerts.test.yaml
rules=$(grep -c '^      - alert:' dashboards/alerts.yaml)

say "dashboards: offline checks"
python3 dashboards/check.py dashboards/*.json

bin=$root/target/${PROFILE:-debug}
for b in runfleet-producer runfleet-consumer runfleet-scheduler; do
  [[ -x $bin/$b ]] || { echo "error: $bin/$b is not built: run cargo build --bins" >&2; exit 1; }
done

id=$(date +%s)$$
db=rf_obs_$id
vhost=rf-obs-$id
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql postgres://postgres@127.0.0.1:5432/postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  as_root rabbitmqctl -q delete_vhost "$vhost" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

psql postgres://postgres@127.0.0.1:5432/postgres -qc "CREATE DATABASE $db"
as_root rabbitmqctl -q add_vhost "$vhost" >/dev/null
as_root rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null

export RUNFLEET_DATABASE__URL=postgres://postgres@127.0.0.1:5432/$db
export RUNFLEET_AMQP__URL=amqp://guest:guest@127.0.0.1:5672/$vhost
export RUNFLEET_LOG__FORMAT=json RUNFLEET_LOG__LEVEL=warn
export RUNFLEET_PRODUCER__QUEUES=default,reports RUNFLEET_CONSUMER__QUEUES=default,reports
export RUNFLEET_PRODUCER__QUEUE_STATS_INTERVAL_MS=500
"$bin/runfleet-producer" migrate >/dev/null

api=$(free_port); consumer=$(free_port); scheduler=$(free_port); prom=$(free_port)
start() { # name port command...
  local name=$1 port=$2; shift 2
  RUNFLEET_HTTP__LISTEN=127.0.0.1:$port "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 150); do
    curl -sf "http://127.0.0.1:$port/ready" >/dev/null && return 0
    sleep 0.2
  done
  tail -20 "$work/$name.log" >&2
  echo "error: $name not ready on 127.0.0.1:$port" >&2
  exit 1
}
token=rfb_$(python3 -c 'import secrets; print(secrets.token_hex(32))')
RUNFLEET_AUTH__BOOTSTRAP_TOKEN=$token start producer "$api" "$bin/runfleet-producer"
RUNFLEET_CONSUMER__WORK_DIR=$work/consumer RUNFLEET_VENV__CACHE_DIR=$work/venvs \
  RUNFLEET_CONSUMER__SLOTS=4 start consumer "$consumer" "$bin/runfleet-consumer"
RUNFLEET_SCHEDULER__MAX_IDLE_MS=500 start scheduler "$scheduler" "$bin/runfleet-scheduler"

cat >"$work/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [$root/dashboards/alerts.yaml]
scrape_configs:
  - job_name: runfleet-producer
    static_configs: [{targets: ['127.0.0.1:$api']}]
  - job_name: runfleet-consumer
    static_configs: [{targets: ['127.0.0.1:$consumer']}]
  - job_name: runfleet-scheduler
    static_configs: [{targets: ['127.0.0.1:$scheduler']}]
EOF
promtool check config "$work/prometheus.yml" >/dev/null
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom" >"$work/prometheus.log" 2>&1 &
pids+=($!)
P=http://127.0.0.1:$prom
for _ in $(seq 100); do curl -sf "$P/-/ready" >/dev/null && break; sleep 0.2; done

say "load: runs on two queues, failures, bad requests, a per-second schedule"
A=http://127.0.0.1:$api
auth=(-H "authorization: Bearer $token")
post() { curl -s -o /dev/null -w '%{http_code}' -X POST "$A$1" "${auth[@]}" -H 'content-type: application/json' -d "$2"; }
[[ $(post /scripts '{"name":"ok.py","content":"import time\ntime.sleep(0.05)\nprint(\"ok\")\n"}') == 201 ]]
[[ $(post /scripts '{"name":"fails.py","content":"import sys\nsys.exit(3)\n"}') == 201 ]]
for i in $(seq 30); do [[ $(post /runs '{"script":"ok.py"}') == 202 ]]; done
for i in $(seq 6); do [[ $(post /runs '{"script":"fails.py"}') == 202 ]]; done
for i in $(seq 6); do [[ $(post /runs '{"script":"ok.py","queue":"reports"}') == 202 ]]; done
[[ $(post /runs '{"script":"nope.py"}') == 422 ]]
[[ $(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "$A/no/such/route") == 404 ]]
[[ $(curl -s -o /dev/null -w '%{http_code}' "$A/runs") == 401 ]]
[[ $(post /tasks '{"name":"tick","script":"ok.py"}') == 201 ]]
[[ $(post /schedules '{"task":"tick","cron":"* * * * * *"}') == 201 ]]

# Until every run is final and the schedule has fired a few times.
for _ in $(seq 300); do
  left=$(curl -s "${auth[@]}" "$A/runs?status=queued&limit=100" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["runs"]))')
  running=$(curl -s "${auth[@]}" "$A/runs?status=running&limit=100" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["runs"]))')
  [[ $left -eq 0 && $running -eq 0 ]] && break
  sleep 0.2
done
# rate() needs two samples after the load in every series: wait for a few more scrapes.
sleep 4
until curl -s --data-urlencode 'query=min(count_over_time(up[1m])) >= 5' "$P/api/v1/query" | grep -q '"value"'; do sleep 0.5; done
curl -s --data-urlencode 'query=up' "$P/api/v1/query" | python3 -c '
import json, sys
for r in json.load(sys.stdin)["data"]["result"]:
    print("   scrape", r["metric"]["job"], "up =", r["value"][1])'

say "dashboards and rules against the live Prometheus"
python3 dashboards/check.py --prom "$P" --require-data --rules "$rules" dashboards/*.json
say "observability check passed"

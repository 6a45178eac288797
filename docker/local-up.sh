#!/usr/bin/env bash
# One command to a running local fleet: makes sure PostgreSQL and RabbitMQ run (installing
# them on a fresh Debian machine), builds, migrates, starts producer, consumer and
# scheduler, registers examples/scripts/fetch_rss.py, submits a run against an RSS file
# served on 127.0.0.1, and prints its result. The fleet keeps running; stop it with
# docker/local-down.sh. Logs are in .local/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

command -v cargo >/dev/null || {
  echo "error: no Rust toolchain: install it with rustup (https://rustup.rs), then run this again" >&2
  exit 1
}
docker/ensure-services.sh

export RUNFLEET_DATABASE__URL=${RUNFLEET_DATABASE__URL:-postgres://postgres@127.0.0.1:5432/runfleet}
export RUNFLEET_AMQP__URL=${RUNFLEET_AMQP__URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
export RUNFLEET_LOG__FORMAT=${RUNFLEET_LOG__FORMAT:-pretty}
profile=${PROFILE:-debug}
api_port=${RUNFLEET_API_PORT:-8080}
feed_port=${RUNFLEET_FEED_PORT:-8765}
export RUNFLEET_URL=http://127.0.0.1:$api_port

say "building ($profile)"
if [[ $profile == release ]]; then cargo build --release --bins; else cargo build --bins; fi
bin=$root/target/$profile

mkdir -p .local/logs .local/pids .local/work .local/out
# The API's bootstrap admin token, made once and kept in .local/ (mode 600); the CLI uses
# it through RUNFLEET_TOKEN.
token_file=.local/bootstrap-token
if [[ ! -s $token_file ]]; then
  (umask 077; python3 -c 'import secrets; print("rfb_" + secrets.token_hex(32))' >"$token_file")
fi
export RUNFLEET_TOKEN
RUNFLEET_TOKEN=$(cat "$token_file")
# The key that encrypts script secrets (producer and consumer share it).
keys_file=.local/secret-keys
if [[ ! -s $keys_file ]]; then
  (umask 077; python3 -c 'import secrets; print("local:" + secrets.token_hex(32))' >"$keys_file")
fi
export RUNFLEET_SECRETS__KEYS
RUNFLEET_SECRETS__KEYS=$(cat "$keys_file")
"$root/docker/local-down.sh" --quiet || true

say "database"
db=${RUNFLEET_DATABASE__URL##*/}
db=${db%%\?*}
admin=${RUNFLEET_DATABASE__URL%/*}/postgres
if ! psql "$admin" -Atc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
  psql "$admin" -qc "CREATE DATABASE \"$db\""
fi
"$bin/runfleet-producer" migrate

start() { # name port command...
  local name=$1 port=$2; shift 2
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "error: port $port is taken; free it or set RUNFLEET_API_PORT" >&2; exit 1
  fi
  nohup "$@" >".local/logs/$name.log" 2>&1 &
  echo $! >".local/pids/$name.pid"
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/ready" >/dev/null && { say "$name ready on 127.0.0.1:$port"; return; }
    kill -0 "$(cat ".local/pids/$name.pid")" 2>/dev/null || { tail -5 ".local/logs/$name.log" >&2; echo "error: $name exited" >&2; exit 1; }
    sleep 0.2
  done
  tail -5 ".local/logs/$name.log" >&2; echo "error: $name not ready after 20 s" >&2; exit 1
}
RUNFLEET_HTTP__LISTEN=127.0.0.1:$api_port RUNFLEET_AUTH__BOOTSTRAP_TOKEN=$RUNFLEET_TOKEN \
  start producer "$api_port" "$bin/runfleet-producer"
RUNFLEET_HTTP__LISTEN=127.0.0.1:9091 RUNFLEET_CONSUMER__WORK_DIR=$root/.local/work \
  RUNFLEET_VENV__CACHE_DIR=${RUNFLEET_VENV__CACHE_DIR:-$root/.local/venvs} \
  RUNFLEET_VENV__UV=${RUNFLEET_VENV__UV:-$root/.venv-tools/bin/uv} \
  start consumer 9091 "$bin/runfleet-consumer"
RUNFLEET_HTTP__LISTEN=127.0.0.1:9092 start scheduler 9092 "$bin/runfleet-scheduler"

say "serving examples/feeds on 127.0.0.1:$feed_port"
nohup python3 -m http.server "$feed_port" --bind 127.0.0.1 --directory examples/feeds \
  >.local/logs/feed.log 2>&1 &
echo $! >.local/pids/feed.pid
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$feed_port/sample.rss" >/dev/null && break; sleep 0.1; done

say "registering examples/scripts/fetch_rss.py"
"$bin/runfleet" scripts push examples/scripts/fetch_rss.py
say "submitting a run and waiting for its result"
"$bin/runfleet" run fetch_rss.py --param "url=http://127.0.0.1:$feed_port/sample.rss" \
  --param limit=5 --param "out-dir=$root/.local/out" --wait

cat >&2 <<MSG

runfleet is running: API $RUNFLEET_URL (docs: $RUNFLEET_URL/docs), consumer :9091, scheduler :9092
Web console: $RUNFLEET_URL/ui/ (sign in with a token, e.g. the bootstrap one below)
The bootstrap admin token is in .local/bootstrap-token:
  export RUNFLEET_URL=$RUNFLEET_URL RUNFLEET_TOKEN=\$(cat .local/bootstrap-token)
  $bin/runfleet tokens create --name me --role operator
  curl -s -X POST $RUNFLEET_URL/runs/runs -H "Authorization: Bearer \$RUNFLEET_TOKEN" -H 'Content-Type: application/json' \\
    -d '{"script_name":"fetch_rss.py","parameters":{"url":"http://127.0.0.1:$feed_port/sample.rss","limit":5}}'
  $bin/runfleet runs list
Logs: .local/logs/   Stop: docker/local-down.sh
MSG

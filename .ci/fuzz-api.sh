#!/usr/bin/env bash
# Fuzzes the API with schemathesis (PyPI, pinned, in .venv-fuzz/): every operation of
# /openapi.json of a running producer, authenticated as admin, with generated valid and
# invalid inputs. Fails on any 5xx and on any answer that does not match the documented
# schema (status code, content type, body). Own database and RabbitMQ vhost, removed at
# the end. The run event stream is left out: with no consumer here a run stays queued, so
# its stream never ends (tests/tests/live.rs covers it, errors included).
# Usage: .ci/fuzz-api.sh [max examples per operation, default 40]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
examples=${1:-40}
venv=.venv-fuzz
tool="schemathesis==4.32.5"
if [[ ! -f $venv/.tools ]] || [[ $(cat $venv/.tools) != "$tool" ]]; then
  say "installing $tool into $venv"
  python3 -m venv $venv
  $venv/bin/pip install -q --disable-pip-version-check "$tool"
  echo "$tool" >$venv/.tools
fi
bin=$root/target/${PROFILE:-debug}
[[ -x $bin/runfleet-producer ]] || { echo "error: run cargo build --bins first" >&2; exit 1; }

id=$(date +%s)$$
db=rf_fuzz_$id
vhost=rf-fuzz-$id
work=$(mktemp -d)
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  psql postgres://postgres@127.0.0.1:5432/postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  as_root rabbitmqctl -q delete_vhost "$vhost" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql postgres://postgres@127.0.0.1:5432/postgres -qc "CREATE DATABASE $db"
as_root rabbitmqctl -q add_vhost "$vhost" >/dev/null
as_root rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
token=rfb_$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export RUNFLEET_DATABASE__URL=postgres://postgres@127.0.0.1:5432/$db
export RUNFLEET_AMQP__URL=amqp://guest:guest@127.0.0.1:5672/$vhost
export RUNFLEET_LOG__LEVEL=warn RUNFLEET_HTTP__LISTEN=127.0.0.1:$port
export RUNFLEET_AUTH__BOOTSTRAP_TOKEN=$token
"$bin/runfleet-producer" migrate >/dev/null
"$bin/runfleet-producer" >"$work/producer.log" 2>&1 &
pid=$!
A=http://127.0.0.1:$port
for _ in $(seq 100); do curl -sf "$A/ready" >/dev/null && break; sleep 0.2; done
# Something to find: a script, a task and a schedule.
curl -sf -X POST "$A/scripts" -H "authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"name":"hello.py","content":"print(1)\n"}' >/dev/null
curl -sf -X POST "$A/tasks" -H "authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"name":"hello","script":"hello.py"}' >/dev/null

say "schemathesis: every operation, $examples examples each"
$venv/bin/schemathesis run "$A/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$examples" --seed 1 \
  --exclude-path '/runs/{id}/events' \
  --report junit --report-dir "$work/report" \
  --no-color 2>&1 | tee "$work/st.log" | tail -60
rc=${PIPESTATUS[0]}
if grep -q '"level":"ERROR"\|panicked' "$work/producer.log"; then
  echo "error: the producer logged errors or panicked during the fuzz run:" >&2
  grep '"level":"ERROR"\|panicked' "$work/producer.log" | head -20 >&2
  exit 1
fi
exit "$rc"

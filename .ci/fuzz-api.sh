#!/usr/bin/env bash
# Fuzzes the API with schemathesis (PyPI, pinned, in .venv-fuzz/): every operation of
# /openapi.json of a running producer, authenticated as admin, with generated valid and
# invalid inputs, over the coverage, fuzzing and stateful phases (the stateful phase
# follows the document's links from each create to the operations on what it created).
# Fails on any 5xx, on any answer that does not match the documented schema (status code,
# content type, body), on a schema-violating request the API accepts, and on any warning
# schemathesis gives (links it cannot use, operations whose generated data is mostly
# refused, operations it never reaches with real ids). Own database and RabbitMQ vhost,
# removed at the end. The run event stream is left out: with no consumer here a run stays queued, so
# its stream never ends (tests/tests/live.rs covers it, errors included).
# Usage: .ci/fuzz-api.sh [max examples per operation, default 40] [more schemathesis run options]
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
export RUNFLEET_SECRETS__KEYS=k1:$(python3 -c 'import secrets; print(secrets.token_hex(32))')
"$bin/runfleet-producer" migrate >/dev/null
"$bin/runfleet-producer" >"$work/producer.log" 2>&1 &
pid=$!
A=http://127.0.0.1:$port
for _ in $(seq 100); do curl -sf "$A/ready" >/dev/null && break; sleep 0.2; done
# Something to find: a script, a task, a schedule, a run and a secret. Their names and ids
# go into the config below, so generated requests reach real resources about half the time.
post() { curl -sf -X POST "$A$1" -H "authorization: Bearer $token" -H 'content-type: application/json' -d "$2"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
post /scripts '{"name":"hello.py","content":"print(1)\n"}' >/dev/null
post /tasks '{"name":"hello","script":"hello.py"}' >/dev/null
# "0" is the first name the coverage phase makes from the name pattern: with a script and a
# task of that name, its valid cases reach a real one instead of all being unknown names.
post /scripts '{"name":"0","language":"shell","content":"exit 0\n"}' >/dev/null
post /tasks '{"name":"0","script":"0"}' >/dev/null
schedule=$(post /schedules '{"task":"hello","cron":"0 3 * * *"}' | field id)
run=$(post /runs '{"script":"hello.py"}' | field id)
post /secrets '{"name":"fuzz-secret","value":"x"}' >/dev/null
# Each delete gets resources of its own, so the first delete does not leave every later
# request on the shared ones a 404.
doomed_schedules= doomed_tasks= doomed_secrets=
for i in $(seq 60); do
  post /tasks "{\"name\":\"doomed-$i\",\"script\":\"hello.py\"}" >/dev/null
  post /secrets "{\"name\":\"doomed-$i\",\"value\":\"x\"}" >/dev/null
  id=$(post /schedules '{"task":"hello","cron":"0 3 * * *"}' | field id)
  doomed_schedules+="\"$id\", " doomed_tasks+="\"doomed-$i\", " doomed_secrets+="\"doomed-$i\", "
done
sed -e "s/@RUN@/$run/" -e "s/@SCHEDULE@/$schedule/" -e "s/@DOOMED_SCHEDULES@/${doomed_schedules%, }/" \
  -e "s/@DOOMED_TASKS@/${doomed_tasks%, }/" -e "s/@DOOMED_SECRETS@/${doomed_secrets%, }/" \
  .ci/schemathesis.toml >"$work/schemathesis.toml"

say "schemathesis: every operation, $examples examples each"
SCHEMATHESIS_HOOKS=$root/.ci/fuzz_hooks.py $venv/bin/schemathesis --config-file "$work/schemathesis.toml" run "$A/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection \
  --phases coverage,fuzzing,stateful \
  --max-examples "$examples" --seed 1 \
  --exclude-path '/runs/{id}/events' \
  --report junit --report-dir "$work/report" "${@:2}" \
  --no-color 2>&1 | tee "$root/target/fuzz-api.log" | tail -60
rc=${PIPESTATUS[0]}
# schemathesis exits 0 on warnings and skips the stateful phase on a bad link: both fail here.
if ! grep -q 'Stateful (in' "$root/target/fuzz-api.log"; then
  echo "error: the stateful phase did not run" >&2; rc=1
fi
if grep -q '^Warnings:\|Invalid OpenAPI Links\|Schema validation mismatch' "$root/target/fuzz-api.log"; then
  echo "error: schemathesis warned: the schema and the API disagree" >&2
  sed -n '/= WARNINGS =/,/= SUMMARY =/p' "$root/target/fuzz-api.log" >&2
  rc=1
fi
if grep -q '"level":"ERROR"\|panicked' "$work/producer.log"; then
  echo "error: the producer logged errors or panicked during the fuzz run:" >&2
  grep '"level":"ERROR"\|panicked' "$work/producer.log" | head -20 >&2
  exit 1
fi
exit "$rc"

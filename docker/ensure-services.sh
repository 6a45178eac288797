#!/usr/bin/env bash
# Makes sure PostgreSQL and RabbitMQ answer on 127.0.0.1 (5432, 5672): uses them when they
# run, starts them when installed, installs them from Debian's packages when absent.
# Used by `.ci/run` and `docker/local-up.sh`. Needs root (or sudo) only to install/start.
set -euo pipefail

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # port seconds name
  for _ in $(seq $(($2 * 5))); do port_open "$1" && return 0; sleep 0.2; done
  echo "error: $3 did not open 127.0.0.1:$1 within $2 s" >&2; return 1
}
apt_updated=0
apt_install() {
  if [[ $apt_updated -eq 0 ]]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_postgres() {
  if port_open 5432; then say "PostgreSQL: running on 127.0.0.1:5432"; return; fi
  local fresh=0
  if ! command -v pg_ctlcluster >/dev/null; then
    say "PostgreSQL: installing (apt-get install postgresql)"
    apt_install postgresql postgresql-client
    fresh=1
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  if [[ $fresh -eq 1 ]]; then
    # A new local-only install: let local tools connect as postgres over 127.0.0.1
    # without a password, as the README's defaults expect. Never do this on a shared host.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  say "PostgreSQL: starting cluster $version/main"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port 5432 30 PostgreSQL
}

ensure_rabbitmq() {
  if port_open 5672; then say "RabbitMQ: running on 127.0.0.1:5672"; return; fi
  if ! command -v rabbitmq-server >/dev/null; then
    say "RabbitMQ: installing (apt-get install rabbitmq-server)"
    apt_install rabbitmq-server
  fi
  say "RabbitMQ: starting"
  as_root rabbitmq-server -detached || true
  wait_port 5672 60 RabbitMQ
}

ensure_python() {
  if ! command -v python3 >/dev/null; then
    say "Python 3: installing"
    apt_install python3 python3-venv
  fi
  # The venv cache's pip fallback needs `python3 -m venv` with ensurepip (Debian: python3-venv).
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    say "python3-venv: installing"
    apt_install python3-venv
  fi
}

# uv, the venv cache's fast installer, from PyPI into .venv-tools/ (no system changes).
ensure_uv() {
  local root
  root=$(cd "$(dirname "$0")/.." && pwd)
  if [[ ! -x $root/.venv-tools/bin/uv ]]; then
    say "uv: installing into .venv-tools (pip install uv==0.13.9)"
    python3 -m venv "$root/.venv-tools"
    "$root/.venv-tools/bin/pip" install -q --disable-pip-version-check uv==0.13.9
  fi
}

ensure_postgres
ensure_rabbitmq
ensure_python
ensure_uv

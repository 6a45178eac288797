#!/usr/bin/env bash
# The web console's end-to-end tests in headless Chromium: installs Debian's chromium and
# this folder's npm packages (playwright-core, pinned in package-lock.json) when absent,
# then runs the console-e2e binary, which starts an isolated fleet, seeds it and runs
# `node --test console.test.mjs` against it. Screenshots land in target/ui-screenshots/.
# Usage: tests/ui/run.sh   (after `cargo build --workspace --bins`)
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v chromium >/dev/null || missing+=(chromium fonts-dejavu-core)
command -v node >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
  say "installing ${missing[*]} (apt-get)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# A clean install every time: one small package, about a second.
say "npm ci in tests/ui (playwright-core, as locked)"
(cd tests/ui && npm ci --no-audit --no-fund --loglevel=error)
bin=target/${PROFILE:-debug}/console-e2e
[[ -x $bin ]] || { echo "error: $bin is not built: run cargo build --workspace --bins" >&2; exit 1; }
CHROMIUM=$(command -v chromium) "$bin"

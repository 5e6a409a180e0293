#!/usr/bin/env bash
# End-to-end test of the tenant dashboard in headless Chromium (tests/browser/) against a
# real `landlord all` (API + worker + edge), PostgreSQL, Pebble and pebble-challtestsrv.
#
#   scripts/test-browser.sh
#
# Uses $DATABASE_URL's server (else scripts/test-postgres.sh) for a throwaway database, and
# the Pebble + challtestsrv of `eval "$(scripts/test-acme.sh start)"` when LANDLORD_TEST_*
# are set (as in `just test`); otherwise it starts them itself and stops them at the end.
# With the Knot of `eval "$(scripts/test-dns.sh start)"` (LANDLORD_TEST_DNS_UPDATE_SERVER and
# _TSIG set, as in `just test`), the platform runs with DNS-01 and a platform domain, so the
# dashboard shows domains' delegated-DCV records and sites' platform hostnames (checked then).
# Installs Debian's chromium when missing. Screenshots and the landlord log go to
# target/browser/. Exit status: node's (non-zero when a test failed), or 1 on setup errors.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="$root/target/browser"
log() { echo "test-browser: $*" >&2; }

# Test-only secrets, as in crates/landlord/tests/support/mod.rs.
master_key="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
admin_token="browser-admin"
target="edge.platform.test"

landlord_pid=""
node_pid=""
db_name=""
admin_url=""
acme_started=""

# Running = exists and is not a zombie (kill -0 succeeds on an unreaped child).
running() { grep -Eqs '^State:[[:space:]]+[^Z[:space:]]' "/proc/$1/status"; }

# shellcheck disable=SC2317  # stop_pid and cleanup run from the EXIT trap
# Our own children only, by PID: TERM, then KILL after 5 s.
stop_pid() {
  local pid="$1"
  [ -n "$pid" ] || return 0
  if running "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do running "$pid" || break; sleep 0.1; done
    running "$pid" && kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  return 0
}

# shellcheck disable=SC2317
cleanup() {
  local status=$?
  set +e
  stop_pid "$node_pid"
  stop_pid "$landlord_pid"
  if [ -n "$db_name" ]; then
    PGOPTIONS='--client-min-messages=warning' psql "$admin_url" -qAt -v ON_ERROR_STOP=1 \
      -c "DROP DATABASE IF EXISTS \"$db_name\" WITH (FORCE)" >/dev/null ||
      log "could not drop database $db_name"
  fi
  [ -z "$acme_started" ] || scripts/test-acme.sh stop
  if [ "$status" -ne 0 ] && [ -n "$landlord_pid" ] && [ -s "$out/landlord.log" ]; then
    log "failed (exit $status); last lines of $out/landlord.log:"
    tail -n 40 "$out/landlord.log" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

mkdir -p "$out"
rm -f "$out"/*.png "$out"/*.log

# --- Tools -------------------------------------------------------------------------------

chromium_bin="${LANDLORD_BROWSER_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium_bin" ]; then
  log "installing Debian's chromium"
  as_root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >&2
fi
for tool in node npm psql curl python3; do
  command -v "$tool" >/dev/null || { log "$tool is required"; exit 1; }
done

# playwright-core only (drives the system Chromium; never `playwright install`).
if [ -f tests/browser/package-lock.json ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error) >&2
else
  (cd tests/browser && npm install --no-audit --no-fund --loglevel=error) >&2
fi

# `just test` runs this after nextest, which has just built target/debug/landlord: build it
# here only when it is missing (LANDLORD_BIN tests another binary). The dashboard is embedded
# at build time (include_str!), so say so when the sources are newer than the binary.
landlord="${LANDLORD_BIN:-$root/target/debug/landlord}"
if [ ! -x "$landlord" ] && [ -z "${LANDLORD_BIN:-}" ]; then
  log "building $landlord"
  cargo build -p landlord >&2
fi
[ -x "$landlord" ] || { log "$landlord is not executable"; exit 1; }
newer="$(find static migrations crates/*/src crates/*/Cargo.toml Cargo.toml Cargo.lock \
  -type f -newer "$landlord" -print -quit 2>/dev/null || true)"
[ -z "$newer" ] || log "warning: $newer is newer than $landlord; testing the last build (cargo build -p landlord to refresh)"

# --- PostgreSQL: a fresh database on the test server -------------------------------------

if [ -z "${DATABASE_URL:-}" ]; then
  DATABASE_URL="$(scripts/test-postgres.sh)"
fi
admin_url="$DATABASE_URL"
base="${DATABASE_URL%%\?*}"
query=""
[ "$base" = "$DATABASE_URL" ] || query="?${DATABASE_URL#*\?}"
db_name="landlord_browser_$$"
export PGOPTIONS='--client-min-messages=warning'  # no NOTICE for IF EXISTS
psql "$admin_url" -qAt -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$db_name\" WITH (FORCE)" >/dev/null
psql "$admin_url" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$db_name\"" >/dev/null
db_url="${base%/*}/$db_name$query"

# --- Pebble + challtestsrv ---------------------------------------------------------------

if [ -z "${LANDLORD_TEST_ACME_DIRECTORY:-}" ] || [ -z "${LANDLORD_TEST_CHALLTESTSRV:-}" ]; then
  log "LANDLORD_TEST_* not set: starting Pebble and challtestsrv (scripts/test-acme.sh)"
  acme_started=1
  eval "$(scripts/test-acme.sh start)"
fi

# --- landlord all ------------------------------------------------------------------------

read -r api_port https_port < <(python3 - <<'EOF'
import socket
held = [socket.socket() for _ in range(2)]
for s in held:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in held))
EOF
)
api="http://127.0.0.1:$api_port"

# The environment of the Rust e2e harness (crates/landlord/tests/support/mod.rs), nothing else.
landlord_env=(
  PATH="$PATH"
  NO_COLOR=1
  RUST_LOG="${RUST_LOG:-info,landlord_worker=debug}"
  DATABASE_URL="$db_url"
  LANDLORD_MASTER_KEY="$master_key"
  LANDLORD_ADMIN_TOKEN="$admin_token"
  LANDLORD_CNAME_TARGET="$target"
  LANDLORD_EDGE_IPS=127.0.0.1
  LANDLORD_EXTRA_SUFFIXES=test
  LANDLORD_DNS_SERVERS="$LANDLORD_TEST_DNS_SERVER"
  LANDLORD_ACME_DIRECTORY="$LANDLORD_TEST_ACME_DIRECTORY"
  LANDLORD_ACME_CA_ROOTS="$LANDLORD_TEST_ACME_CA_ROOTS"
  LANDLORD_HTTP_ADDR="127.0.0.1:$LANDLORD_TEST_HTTP01_PORT"
  LANDLORD_HTTPS_ADDR="127.0.0.1:$https_port"
  LANDLORD_API_ADDR="127.0.0.1:$api_port"
  LANDLORD_WORKER_LEASE_SECONDS=5
)

# DNS-01 on scripts/test-dns.sh's Knot, when it runs: for the API to render `dcv_delegation`
# and `platform_hostname` (the test certifies nothing through it).
acme_dns_zone=""
platform_domain=""
if [ -n "${LANDLORD_TEST_DNS_UPDATE_SERVER:-}" ] && [ -n "${LANDLORD_TEST_DNS_UPDATE_TSIG:-}" ]; then
  acme_dns_zone="acme-dns.test"
  platform_domain="sites.platform.test"
  landlord_env+=(
    LANDLORD_DNS_UPDATE_SERVER="$LANDLORD_TEST_DNS_UPDATE_SERVER"
    LANDLORD_DNS_UPDATE_TSIG="$LANDLORD_TEST_DNS_UPDATE_TSIG"
    LANDLORD_ACME_DNS_ZONE="$acme_dns_zone"
    LANDLORD_PLATFORM_DOMAIN="$platform_domain"
  )
else
  log "LANDLORD_TEST_DNS_UPDATE_* not set (scripts/test-dns.sh): no DNS-01, so no delegated-DCV record or platform hostname to check"
fi

env -i "${landlord_env[@]}" "$landlord" migrate >"$out/migrate.log" 2>&1 || { cat "$out/migrate.log" >&2; exit 1; }
# Started directly (not through a function, whose subshell would be the PID we kill):
# env execs landlord, so $! is landlord itself.
env -i "${landlord_env[@]}" "$landlord" all --no-migrate >"$out/landlord.log" 2>&1 &
landlord_pid=$!

deadline=$((SECONDS + 30))
until curl -fsS "$api/healthz" >/dev/null 2>&1; do
  if ! running "$landlord_pid"; then
    log "landlord all exited before answering /healthz"
    exit 1
  fi
  [ $SECONDS -lt $deadline ] || { log "landlord all did not answer /healthz within 30 s"; exit 1; }
  sleep 0.1
done
log "landlord all on $api (edge: http 127.0.0.1:$LANDLORD_TEST_HTTP01_PORT, https 127.0.0.1:$https_port), database $db_name"

tenant="$(curl -fsS -X POST "$api/v1/tenants" \
  -H "Authorization: Bearer $admin_token" -H 'Content-Type: application/json' \
  -d '{"name":"browser test"}')"
api_key="$(node -e 'process.stdout.write(JSON.parse(process.argv[1]).api_key)' "$tenant")"

# --- The test ----------------------------------------------------------------------------

log "screenshots and logs go to $out"
# In the background and waited for, so that a TERM to this script runs the cleanup at once.
(
  cd tests/browser
  exec env \
    LANDLORD_BROWSER_API_URL="$api" \
    LANDLORD_BROWSER_API_KEY="$api_key" \
    LANDLORD_BROWSER_CHALLTESTSRV="$LANDLORD_TEST_CHALLTESTSRV" \
    LANDLORD_BROWSER_EDGE_HTTPS="127.0.0.1:$https_port" \
    LANDLORD_BROWSER_ARTIFACTS="$out" \
    LANDLORD_BROWSER_CHROMIUM="$chromium_bin" \
    LANDLORD_BROWSER_ACME_DNS_ZONE="$acme_dns_zone" \
    LANDLORD_BROWSER_PLATFORM_DOMAIN="$platform_domain" \
    timeout --kill-after=10 600 node --test --test-reporter=spec dashboard.test.mjs
) &
node_pid=$!
status=0
wait "$node_pid" || status=$?
node_pid=""
if ! running "$landlord_pid"; then
  log "landlord all died during the test"
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"

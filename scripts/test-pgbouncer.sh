#!/usr/bin/env bash
# PgBouncer in front of the test PostgreSQL, on a free loopback port, for the tests that
# run the API and workers behind a connection pooler. Session pooling: Debian bookworm's
# PgBouncer is 1.18, which cannot carry named prepared statements (sqlx's) in transaction
# mode; 1.21+ can, with `max_prepared_statements` (see the README). LISTEN, session-level
# locks and migrations go through LANDLORD_DIRECT_DATABASE_URL in both modes.
#   eval "$(scripts/test-pgbouncer.sh start)"   # exports LANDLORD_TEST_PGBOUNCER_URL (stdout only)
#   scripts/test-pgbouncer.sh stop
# Every database name is passed through to $DATABASE_URL's server (its user, trust auth),
# so a test's own database is reachable as LANDLORD_TEST_PGBOUNCER_URL/<its name>.
# Installs Debian's `pgbouncer` when missing (its own service is not started). State and
# the log live in target/test-pgbouncer/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/target/test-pgbouncer"
# As root PgBouncer runs as postgres, which must read its configuration: a checkout postgres
# cannot enter keeps the state under /tmp instead (the same path for start and stop).
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$root" 2>/dev/null; then
  dir="/tmp/landlord-$(printf '%s' "$dir" | md5sum | cut -c1-16)"
fi

log() { echo "test-pgbouncer: $*" >&2; }

running() { grep -Eqs '^State:[[:space:]]+[^Z[:space:]]' "/proc/$1/status"; }

stop() {
  local pid
  [ -f "$dir/pgbouncer.pid" ] || return 0
  pid="$(cat "$dir/pgbouncer.pid")"
  if [ -n "$pid" ] && running "$pid" && grep -qa pgbouncer "/proc/$pid/cmdline" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 30); do running "$pid" || break; sleep 0.1; done
    if running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$dir/pgbouncer.pid"
}

start() {
  stop
  if [ ! -x /usr/sbin/pgbouncer ]; then
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    log "installing pgbouncer"
    "${sudo[@]}" apt-get update -qq >&2
    local ours=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
      "${sudo[@]}" chmod +x /usr/sbin/policy-rc.d
      ours=1
    fi
    local status=0
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq pgbouncer >&2 || status=$?
    [ -z "$ours" ] || "${sudo[@]}" rm -f /usr/sbin/policy-rc.d
    [ "$status" -eq 0 ] || exit "$status"
  fi
  local server="${DATABASE_URL:-$("$root/scripts/test-postgres.sh")}"
  # postgres://user@host:port/db
  local rest="${server#*://}" user host port
  user="${rest%%@*}"; rest="${rest#*@}"
  host="${rest%%:*}"; rest="${rest#*:}"
  port="${rest%%/*}"
  local listen
  listen="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  rm -rf "$dir"
  mkdir -p "$dir"
  cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=$host port=$port user=$user

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $listen
unix_socket_dir =
auth_type = any
pool_mode = session
max_client_conn = 1000
default_pool_size = 20
; sqlx sends it at start-up; PgBouncer would refuse the connection otherwise.
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
  local run=()
  if [ "$(id -u)" = 0 ]; then
    run=(runuser -u postgres --)
    chown -R postgres: "$dir"
  fi
  "${run[@]}" /usr/sbin/pgbouncer -d "$dir/pgbouncer.ini" >&2
  local deadline=$((SECONDS + 20))
  until python3 -c "import socket; socket.create_connection(('127.0.0.1', $listen), 1)" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      log "PgBouncer did not start; its log:"
      tail -n 20 "$dir/pgbouncer.log" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
  log "PgBouncer (session pooling) on 127.0.0.1:$listen in front of $host:$port"
  printf 'export LANDLORD_TEST_PGBOUNCER_URL=%q\n' "postgres://$user@127.0.0.1:$listen"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# PgBouncer in front of the test PostgreSQL, on a free loopback port, in *transaction*
# pooling with a small server pool, for the tests that run the API, workers and edge behind
# a connection pooler. sqlx names its prepared statements, which transaction pooling can
# carry only from PgBouncer 1.21 on (`max_prepared_statements`): Debian's `pgbouncer` is
# used when it is that recent (trixie and later); on bookworm (1.18) Debian trixie's source
# package of PgBouncer is fetched from the Debian mirror apt uses and built once (about 20 s,
# with libevent-dev) into ~/.cache/landlord-tests. LISTEN, session-level locks and
# migrations go through LANDLORD_DIRECT_DATABASE_URL.
#   eval "$(scripts/test-pgbouncer.sh start)"   # exports LANDLORD_TEST_PGBOUNCER_URL (stdout only)
#   scripts/test-pgbouncer.sh stop
# LANDLORD_TEST_PGBOUNCER=/path/to/pgbouncer (1.21 or later) skips the search.
# Every database name is passed through to $DATABASE_URL's server (its user, trust auth),
# so a test's own database is reachable as LANDLORD_TEST_PGBOUNCER_URL/<its name>.
# State and the log live in target/test-pgbouncer/.
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

sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)

# Debian packages, without starting any service they bring.
apt_install() {
  "${sudo[@]}" apt-get update -qq >&2
  local ours=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${sudo[@]}" chmod +x /usr/sbin/policy-rc.d
    ours=1
  fi
  local status=0
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@" >&2 || status=$?
  [ -z "$ours" ] || "${sudo[@]}" rm -f /usr/sbin/policy-rc.d
  return "$status"
}

# True when the PgBouncer at $1 is 1.21 or later.
recent_enough() {
  local v
  v="$("$1" --version 2>/dev/null | sed -n 's/^PgBouncer \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')"
  [ -n "$v" ] && set -- $v && { [ "$1" -gt 1 ] || { [ "$1" -eq 1 ] && [ "$2" -ge 21 ]; }; }
}

# Builds Debian trixie's PgBouncer source package once; prints the binary's path.
build_pgbouncer() {
  local cache="${XDG_CACHE_HOME:-$HOME/.cache}/landlord-tests/pgbouncer"
  local built
  built="$cache/pgbouncer-src/pgbouncer"
  if [ -x "$built" ] && recent_enough "$built"; then echo "$built"; return; fi
  log "Debian's PgBouncer here is older than 1.21: building Debian trixie's source package once"
  pkg-config --exists libevent 2>/dev/null || apt_install libevent-dev pkg-config make
  command -v dpkg-source >/dev/null || apt_install dpkg-dev
  rm -rf "$cache"
  mkdir -p "$cache"/apt/{lists/partial,cache/archives/partial}
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
    >"$cache/apt/sources.list"
  local apt=(-o "Dir::Etc::SourceList=$cache/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache=$cache/apt/cache"
    -o APT::Sandbox::User=root)
  apt-get "${apt[@]}" update -qq >&2
  (cd "$cache" && apt-get "${apt[@]}" source --download-only pgbouncer >&2)
  # apt checked the files against the signed index; dpkg-source applies Debian's patches.
  local src="$cache/pgbouncer-src"
  dpkg-source -x "$(ls "$cache"/pgbouncer_*.dsc | head -n 1)" "$src" >&2
  (cd "$src" && ./configure --without-cares --without-openssl >"$cache/build.log" 2>&1 \
    && make -j"$(nproc)" >>"$cache/build.log" 2>&1) || {
    log "building PgBouncer failed; the end of $cache/build.log:"
    tail -n 20 "$cache/build.log" >&2
    exit 1
  }
  echo "$src/pgbouncer"
}

# A PgBouncer that carries prepared statements in transaction pooling.
find_pgbouncer() {
  if [ -n "${LANDLORD_TEST_PGBOUNCER:-}" ]; then echo "$LANDLORD_TEST_PGBOUNCER"; return; fi
  if [ ! -x /usr/sbin/pgbouncer ]; then
    log "installing pgbouncer"
    apt_install pgbouncer
  fi
  if recent_enough /usr/sbin/pgbouncer; then echo /usr/sbin/pgbouncer; return; fi
  build_pgbouncer
}

start() {
  stop
  local binary
  binary="$(find_pgbouncer)"
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
  # Copied in: the cache may sit in a home the postgres user cannot enter.
  cp "$binary" "$dir/pgbouncer"
  cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=$host port=$port user=$user

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $listen
unix_socket_dir =
auth_type = any
pool_mode = transaction
; sqlx's named prepared statements, tracked per client and re-prepared on whichever server
; connection a transaction lands on (PgBouncer 1.21+).
max_prepared_statements = 200
max_client_conn = 1000
; Few server connections for many clients, so transactions really change connections.
default_pool_size = 4
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
  "${run[@]}" "$dir/pgbouncer" -d "$dir/pgbouncer.ini" >&2
  local deadline=$((SECONDS + 20))
  until python3 -c "import socket; socket.create_connection(('127.0.0.1', $listen), 1)" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      log "PgBouncer did not start; its log:"
      tail -n 20 "$dir/pgbouncer.log" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
  log "$("$dir/pgbouncer" --version | head -n 1) (transaction pooling) on 127.0.0.1:$listen in front of $host:$port"
  printf 'export LANDLORD_TEST_PGBOUNCER_URL=%q\n' "postgres://$user@127.0.0.1:$listen"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

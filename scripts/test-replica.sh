#!/usr/bin/env bash
# Test replication bed: a real PostgreSQL primary and a real hot standby streaming from it,
# both on loopback ports, for end-to-end tests of edges reading a replica in another region.
#   eval "$(scripts/test-replica.sh start)"   # exports LANDLORD_TEST_REPLICA_* (stdout only)
#   scripts/test-replica.sh stop              # stops both (fast shutdown)
#   scripts/test-replica.sh standby-stop      # stops only the standby ("the region is away")
#   scripts/test-replica.sh standby-start     # starts it again (same port, same data)
#   scripts/test-replica.sh promote           # promotes the standby (failover)
#   scripts/test-replica.sh primary-kill      # immediate shutdown of the primary (a crash)
#   scripts/test-replica.sh remove            # stop both and delete the state directory
# The standby replays LANDLORD_TEST_REPLICA_DELAY behind the primary (recovery_min_apply_delay,
# default 3s), like a distant region: a commit on the primary shows on the standby only then.
# WAL still streams at once; only its replay waits. Exports:
#   LANDLORD_TEST_REPLICA_PRIMARY_URL   postgres://postgres@127.0.0.1:PORT/postgres
#   LANDLORD_TEST_REPLICA_STANDBY_URL   postgres://postgres@127.0.0.1:PORT/postgres
#   LANDLORD_TEST_REPLICA_SCRIPT        this script's absolute path (for the sub-commands)
# Both clusters use trust auth for user postgres. State (data dirs primary/ and standby/,
# ports) and logs (primary.log, standby.log) live in target/test-replica/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
self="$root/scripts/$(basename "${BASH_SOURCE[0]}")"
# LANDLORD_TEST_REPLICA_DIR: another state directory, for a bed of a test's own (a
# failover test promotes its standby, which a shared bed must not see).
dir="${LANDLORD_TEST_REPLICA_DIR:-$root/target/test-replica}"
# As root the servers run as postgres, which must reach the state directory: a checkout
# postgres cannot enter (a private mktemp -d, a home directory) keeps it under /tmp instead,
# at a path derived from the intended one (the same for every sub-command).
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$root" 2>/dev/null; then
  dir="/tmp/landlord-$(printf '%s' "$dir" | md5sum | cut -c1-16)"
fi
primary="$dir/primary"
standby="$dir/standby"
delay="${LANDLORD_TEST_REPLICA_DELAY:-3s}"

log() { echo "test-replica: $*" >&2; }
die() { log "$*"; exit 1; }

# As root, the servers (and initdb, which refuses root) run as the postgres user.
run=()
[ "$(id -u)" != 0 ] || run=(runuser -u postgres --)

# PostgreSQL binaries: the newest /usr/lib/postgresql/*/bin (or where initdb on PATH lives),
# installed from Debian when there is none.
find_bin() {
  local d
  for d in $(command -v initdb >/dev/null && dirname "$(readlink -f "$(command -v initdb)")") \
           $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/pg_basebackup" ] && [ -x "$d/psql" ]; then
      bin="$d"
      return 0
    fi
  done
  return 1
}
bin=""
need_bin() {
  [ -z "$bin" ] || return 0
  find_bin && return 0
  log "installing PostgreSQL (apt-get install postgresql)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
  else sudo apt-get update -qq >&2 && sudo apt-get install -y -qq postgresql >&2; fi
  find_bin || die "no initdb/pg_ctl/pg_basebackup/psql under /usr/lib/postgresql/*/bin after installing"
}

# Runs a PostgreSQL program as the server's user, from a directory that user can read.
pg() { (cd "$dir" && "${run[@]}" "$@"); }

# Scalar query result (empty when the server does not answer).
q() { "$bin/psql" -X -qAt -d "postgres://postgres@127.0.0.1:$1/postgres?connect_timeout=2" -c "$2" 2>/dev/null || true; }

free_ports() {
  python3 - <<'EOF'
import socket
held, ports = [], []
while len(ports) < 2:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); held.append(s); ports.append(s.getsockname()[1])
print(*ports)
EOF
}

load_ports() {
  [ -f "$dir/ports" ] || die "no $dir/ports: run '$self start' first"
  read -r primary_port standby_port <"$dir/ports"
}

is_running() { [ -f "$1/PG_VERSION" ] && pg "$bin/pg_ctl" -D "$1" status >/dev/null 2>&1; }

# Stops one cluster: fast shutdown, then immediate, then the recorded postmaster (only if its
# command line still names this data directory) by signal.
stop_cluster() {
  local data="$1" name="$2" pid
  [ -f "$data/PG_VERSION" ] || return 0
  is_running "$data" || return 0
  pg "$bin/pg_ctl" -D "$data" -m fast -w -t 30 stop >&2 ||
    pg "$bin/pg_ctl" -D "$data" -m immediate -w -t 10 stop >&2 || true
  if [ -f "$data/postmaster.pid" ]; then
    pid="$(head -1 "$data/postmaster.pid")"
    if [ -n "$pid" ] && grep -qaF "$data" "/proc/$pid/cmdline" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 50); do [ -e "/proc/$pid" ] || break; sleep 0.1; done
    fi
  fi
  ! is_running "$data" || die "could not stop the $name (data in $data)"
  log "$name stopped"
}

# Waits (deadline in seconds) until a query on PORT answers EXPECTED.
wait_for() {
  local port="$1" sql="$2" want="$3" what="$4" logf="$5" deadline=$((SECONDS + $6))
  until [ "$(q "$port" "$sql")" = "$want" ]; do
    if [ $SECONDS -ge $deadline ]; then
      log "timed out waiting for $what; the end of $logf follows"
      tail -n 30 "$logf" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
}

streaming_sql="select count(*) from pg_stat_replication where application_name = 'test_replica_standby' and state = 'streaming'"

wait_streaming() {
  wait_for "$primary_port" "$streaming_sql" 1 "the standby to stream from the primary" "$dir/standby.log" "${1:-30}"
}

start_cluster() {
  local data="$1" name="$2"
  pg "$bin/pg_ctl" -D "$data" -l "$dir/$name.log" -w -t 60 start >&2 || {
    log "the $name did not start; the end of $dir/$name.log follows"
    tail -n 30 "$dir/$name.log" >&2 || true
    exit 1
  }
}

stop() {
  [ -d "$dir" ] || return 0
  need_bin
  stop_cluster "$standby" standby
  stop_cluster "$primary" primary
}

start() {
  need_bin
  stop
  rm -rf "$dir" || die "could not remove $dir"
  mkdir -p "$dir"
  [ ${#run[@]} -eq 0 ] || chown -R postgres: "$dir"
  # A start that fails half-way stops what it launched.
  trap 'rc=$?; if [ $rc -ne 0 ]; then log "start failed; stopping what it launched"; stop || true; fi' EXIT
  local primary_port standby_port
  read -r primary_port standby_port < <(free_ports) || true
  [ -n "${standby_port:-}" ] || die "could not pick free ports (python3)"
  echo "$primary_port $standby_port" >"$dir/ports"

  pg "$bin/initdb" -D "$primary" -U postgres --auth=trust -E UTF8 --no-instructions >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    die "initdb failed"
  }
  # Settings in postgresql.conf are copied to the standby by pg_basebackup; the standby's own
  # lines are appended after (the last line wins).
  cat >>"$primary/postgresql.conf" <<EOF

# test-replica.sh
listen_addresses = '127.0.0.1'
port = $primary_port
unix_socket_directories = ''
max_connections = 300
fsync = off
wal_level = replica
max_wal_senders = 10
wal_keep_size = '512MB'
hot_standby = on
cluster_name = 'test_replica_primary'
EOF
  echo "host replication postgres 127.0.0.1/32 trust" >>"$primary/pg_hba.conf"
  start_cluster "$primary" primary

  pg "$bin/pg_basebackup" -R -X stream -D "$standby" -h 127.0.0.1 -p "$primary_port" -U postgres \
    >"$dir/basebackup.log" 2>&1 || {
    cat "$dir/basebackup.log" >&2
    die "pg_basebackup failed"
  }
  cat >>"$standby/postgresql.conf" <<EOF

# test-replica.sh: the standby
port = $standby_port
cluster_name = 'test_replica_standby'
recovery_min_apply_delay = '$delay'
hot_standby_feedback = on
EOF
  start_cluster "$standby" standby

  wait_for "$standby_port" "select pg_is_in_recovery()" t "the standby to accept connections in recovery" "$dir/standby.log" 30
  wait_streaming 30
  trap - EXIT
  log "primary on 127.0.0.1:$primary_port, standby on 127.0.0.1:$standby_port replaying $delay behind (logs in $dir)"
  printf 'export %s=%q\n' \
    LANDLORD_TEST_REPLICA_PRIMARY_URL "postgres://postgres@127.0.0.1:$primary_port/postgres" \
    LANDLORD_TEST_REPLICA_STANDBY_URL "postgres://postgres@127.0.0.1:$standby_port/postgres" \
    LANDLORD_TEST_REPLICA_SCRIPT "$self"
}

standby_stop() {
  need_bin
  [ -f "$standby/PG_VERSION" ] || die "no standby in $standby: run '$self start' first"
  stop_cluster "$standby" standby
}

standby_start() {
  need_bin
  local primary_port standby_port
  load_ports
  [ -f "$standby/PG_VERSION" ] || die "no standby in $standby: run '$self start' first"
  is_running "$standby" || start_cluster "$standby" standby
  wait_for "$standby_port" "select 1" 1 "the standby to accept connections" "$dir/standby.log" 60
  # Still a standby (not promoted): also wait until it streams again, when the primary is up.
  if [ -f "$standby/standby.signal" ] && is_running "$primary"; then wait_streaming 60; fi
  log "standby up on 127.0.0.1:$standby_port"
}

# The primary dies (immediate shutdown: no checkpoint, as a crash would leave it).
primary_kill() {
  need_bin
  [ -f "$primary/PG_VERSION" ] || die "no primary in $primary: run '$self start' first"
  is_running "$primary" || return 0
  pg "$bin/pg_ctl" -D "$primary" -m immediate -w -t 30 stop >&2 || die "could not stop the primary"
  log "primary killed (immediate shutdown)"
}

promote() {
  need_bin
  local primary_port standby_port
  load_ports
  is_running "$standby" || die "the standby is not running (run '$self standby-start')"
  if [ "$(q "$standby_port" "select pg_is_in_recovery()")" = t ]; then
    pg "$bin/pg_ctl" -D "$standby" -w -t 60 promote >&2 || {
      tail -n 30 "$dir/standby.log" >&2 || true
      die "pg_ctl promote failed"
    }
  fi
  wait_for "$standby_port" "select pg_is_in_recovery()" f "the standby to leave recovery" "$dir/standby.log" 60
  log "standby on 127.0.0.1:$standby_port promoted (now a primary)"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  standby-stop) standby_stop ;;
  standby-start) standby_start ;;
  promote) promote ;;
  primary-kill) primary_kill ;;
  remove) stop; rm -rf "$dir" ;;
  *) echo "usage: $0 start|stop|standby-stop|standby-start|promote|primary-kill|remove" >&2; exit 2 ;;
esac

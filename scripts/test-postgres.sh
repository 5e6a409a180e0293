#!/usr/bin/env bash
# Prints a DATABASE_URL for the test suite, starting a PostgreSQL if none is found:
#   1. $DATABASE_URL when set;
#   2. the server on 127.0.0.1:5432 (user postgres, trust auth) when it answers;
#   3. otherwise a throwaway cluster under target/test-postgres, on a free port.
# The test databases themselves are created per test by #[sqlx::test].
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${DATABASE_URL:-}" ]; then
  echo "$DATABASE_URL"
  exit 0
fi

default_url="postgres://postgres@127.0.0.1:5432/postgres"
if command -v psql >/dev/null && psql "$default_url" -qAtc 'select 1' >/dev/null 2>&1; then
  echo "$default_url"
  exit 0
fi

bin=""
for d in $(command -v initdb >/dev/null && dirname "$(readlink -f "$(command -v initdb)")") \
         $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then bin="$d"; break; fi
done
if [ -z "$bin" ]; then
  echo "test-postgres: installing PostgreSQL (apt-get install postgresql)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
  else sudo apt-get update -qq >&2 && sudo apt-get install -y -qq postgresql >&2; fi
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V -r | head -1)
fi

dir="$PWD/target/test-postgres"
data="$dir/data"
run=()
if [ "$(id -u)" = 0 ]; then run=(runuser -u postgres --); fi
mkdir -p "$dir"
if [ ! -f "$data/PG_VERSION" ]; then
  mkdir -p "$data"
  [ ${#run[@]} -eq 0 ] || chown -R postgres: "$dir"
  "${run[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-instructions >&2
fi
if "${run[@]}" "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  port=$(sed -n 4p "$data/postmaster.pid")
else
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "${run[@]}" "$bin/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='' -c max_connections=300 -c fsync=off" start >&2
fi
echo "postgres://postgres@127.0.0.1:$port/postgres"

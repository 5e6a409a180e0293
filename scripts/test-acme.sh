#!/usr/bin/env bash
# Test ACME environment: Pebble (test CA) + pebble-challtestsrv (DNS mock) on loopback.
#   eval "$(scripts/test-acme.sh start)"   # exports LANDLORD_TEST_* (stdout only)
#   scripts/test-acme.sh stop              # stops what the last start launched
# State, certificates, logs and PID files live in target/test-acme/. See /work/shared/TESTENV.md.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/target/test-acme"

log() { echo "test-acme: $*" >&2; }

# Root on CI; elsewhere go through sudo. apt output goes to stderr: stdout is for exports only.
install_pkgs() {
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  log "installing $*"
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@" >&2
}

# Running = exists and not a zombie: our daemons are orphans once start returns, and
# whoever inherits them may not reap promptly, so kill -0 alone would wait for nothing.
running() { grep -Eqs '^State:[[:space:]]+[^Z[:space:]]' "/proc/$1/status"; }

# Only kill a recorded PID if it still is one of ours (PIDs get reused).
stop() {
  local f pid
  for f in "$dir"/*.pid; do
    [ -e "$f" ] || continue
    pid="$(cat "$f")"
    if [ -n "$pid" ] && running "$pid" && grep -qa pebble "/proc/$pid/cmdline" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 30); do running "$pid" || break; sleep 0.1; done
      if running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$f"
  done
}

# All ports in one go, every socket held open until all are chosen, so none repeat.
# The DNS port must be free for UDP as well as TCP (challtestsrv serves both).
free_ports() {
  python3 - <<'EOF'
import socket
held, ports = [], []
def tcp():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); held.append(s); return s.getsockname()[1]
for _ in range(100):  # DNS port: TCP from the kernel, then check UDP on the same number
    p = tcp()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); held.append(u); ports.append(p); break
    except OSError:
        u.close()
else:
    raise SystemExit("no port free for both TCP and UDP")
ports += [tcp() for _ in range(5)]
print(*ports)
EOF
}

start() {
  stop  # idempotent: a previous run's processes go first
  if [ ! -x /usr/bin/pebble ] || [ ! -x /usr/bin/pebble-challtestsrv ]; then install_pkgs pebble; fi
  local missing=()
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  [ ${#missing[@]} -eq 0 ] || install_pkgs "${missing[@]}"

  mkdir -p "$dir"
  rm -f "$dir"/*.pem "$dir"/*.key "$dir"/*.csr "$dir"/*.srl "$dir"/ext.cnf "$dir"/*.log
  # Throwaway CA for Pebble's own HTTPS API (exactly as in TESTENV.md), fresh every start.
  # Chained with && (not set -e): errexit is ignored in a subshell tested by ||.
  (
    cd "$dir" &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 30 -subj "/CN=pebble api test CA" &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem -out api.csr -subj "/CN=localhost" &&
    printf "subjectAltName=DNS:localhost,IP:127.0.0.1\n" > ext.cnf &&
    openssl x509 -req -in api.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem -days 30 -extfile ext.cnf
  ) >"$dir/openssl.log" 2>&1 || { cat "$dir/openssl.log" >&2; exit 1; }

  local dns_port acme_port mgmt_port cts_port http_port tls_port
  read -r dns_port acme_port mgmt_port cts_port http_port tls_port < <(free_ports)

  # Absolute paths: Pebble resolves them against its working directory otherwise.
  cat >"$dir/pebble.json" <<EOF
{"pebble":{"listenAddress":"127.0.0.1:$acme_port","managementListenAddress":"127.0.0.1:$mgmt_port",
"certificate":"$dir/cert.pem","privateKey":"$dir/key.pem","httpPort":$http_port,"tlsPort":$tls_port,
"ocspResponderURL":"","externalAccountBindingRequired":false}}
EOF

  # No default answers: otherwise every unknown name resolves and DNS checks pass vacuously.
  # stdin/stdout closed to the caller, or "$(... start)" would wait for these to exit.
  pebble-challtestsrv -defaultIPv4 "" -defaultIPv6 "" -dns01 "127.0.0.1:$dns_port" \
    -http01 "" -https01 "" -tlsalpn01 "" -management "127.0.0.1:$cts_port" \
    </dev/null >"$dir/challtestsrv.log" 2>&1 &
  echo $! >"$dir/challtestsrv.pid"

  # NONCEREJECT is only passed on when the caller set it: Pebble's default (5 %) stays otherwise.
  local penv=(PEBBLE_VA_NOSLEEP=1)
  [ -z "${PEBBLE_WFE_NONCEREJECT:-}" ] || penv+=("PEBBLE_WFE_NONCEREJECT=$PEBBLE_WFE_NONCEREJECT")
  env "${penv[@]}" pebble -config "$dir/pebble.json" -dnsserver "127.0.0.1:$dns_port" \
    </dev/null >"$dir/pebble.log" 2>&1 &
  echo $! >"$dir/pebble.pid"

  local deadline=$((SECONDS + 30))
  until curl -fsS --cacert "$dir/ca.pem" "https://127.0.0.1:$acme_port/dir" >/dev/null 2>&1 &&
        curl -fsS -XPOST -d '{"host":"probe.test"}' "http://127.0.0.1:$cts_port/clear-a" >/dev/null 2>&1; do
    # Give up at the deadline, or at once if either daemon has already died.
    if [ $SECONDS -ge $deadline ] || ! running "$(cat "$dir/pebble.pid")" ||
       ! running "$(cat "$dir/challtestsrv.pid")"; then
      log "Pebble/challtestsrv did not come up (30 s deadline or exited); logs follow"
      tail -n +1 "$dir/pebble.log" "$dir/challtestsrv.log" >&2
      stop
      exit 1
    fi
    sleep 0.2
  done

  # Pebble makes a new root at every start: fetch this run's one.
  curl -fsS --cacert "$dir/ca.pem" -o "$dir/pebble-root.pem" "https://127.0.0.1:$mgmt_port/roots/0"
  log "Pebble on 127.0.0.1:$acme_port, challtestsrv DNS on 127.0.0.1:$dns_port (logs in $dir)"

  # %q: safe to eval even if the checkout path has spaces.
  printf 'export %s=%q\n' \
    LANDLORD_TEST_ACME_DIRECTORY "https://127.0.0.1:$acme_port/dir" \
    LANDLORD_TEST_ACME_CA_ROOTS "$dir/ca.pem" \
    LANDLORD_TEST_PEBBLE_ROOT "$dir/pebble-root.pem" \
    LANDLORD_TEST_PEBBLE_MGMT "https://127.0.0.1:$mgmt_port" \
    LANDLORD_TEST_DNS_SERVER "127.0.0.1:$dns_port" \
    LANDLORD_TEST_CHALLTESTSRV "http://127.0.0.1:$cts_port" \
    LANDLORD_TEST_HTTP01_PORT "$http_port"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

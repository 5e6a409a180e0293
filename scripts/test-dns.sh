#!/usr/bin/env bash
# Test DNS bed for DNS-01: a real authoritative server (Knot) that accepts TSIG-signed
# RFC 2136 updates, and a real recursive resolver (Unbound) in front of it, both on
# loopback ports with a TSIG key made per start. See ../shared/TESTENV.md.
#   eval "$(scripts/test-dns.sh start)"   # exports LANDLORD_TEST_DNS_* (stdout only)
#   scripts/test-dns.sh stop              # stops what the last start launched
# With LANDLORD_TEST_DNS_SERVER set (pebble-challtestsrv, from `scripts/test-acme.sh start`),
# Unbound forwards `customer.test` (the tests' customer names) to it, and a second Pebble
# validates through Unbound: DNS-01 follows `_acme-challenge.<name>` from challtestsrv into
# the challenge zone on Knot (LANDLORD_TEST_DNS01_* exports).
# Zones (SOA + NS only at start):
#   acme-dns.test         delegated challenge records (LANDLORD_ACME_DNS_ZONE); updates allowed
#   sites.platform.test   a platform domain (LANDLORD_PLATFORM_DOMAIN); updates allowed
#   cust-dns.test         a customer's zone: updates refused (no ACL for the key)
# State, configs and logs live in target/test-dns/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/target/test-dns"
zones=(acme-dns.test sites.platform.test cust-dns.test)
updatable=(acme-dns.test sites.platform.test)

log() { echo "test-dns: $*" >&2; }

install_pkgs() {
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  log "installing $*"
  "${sudo[@]}" apt-get update -qq >&2
  # The packages' own services must not start (they would take port 53): a policy-rc.d
  # for the install, unless the machine has one (then it is left as it is).
  local ours=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${sudo[@]}" chmod +x /usr/sbin/policy-rc.d
    ours=1
  fi
  local status=0
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@" >&2 || status=$?
  [ -z "$ours" ] || "${sudo[@]}" rm -f /usr/sbin/policy-rc.d
  [ "$status" -eq 0 ] || exit "$status"
}

running() { grep -Eqs '^State:[[:space:]]+[^Z[:space:]]' "/proc/$1/status"; }

stop() {
  local f pid
  for f in "$dir"/*.pid; do
    [ -e "$f" ] || continue
    pid="$(cat "$f")"
    if [ -n "$pid" ] && running "$pid" && grep -Eqa 'knotd|unbound|pebble' "/proc/$pid/cmdline" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 30); do running "$pid" || break; sleep 0.1; done
      if running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$f"
  done
}

# Five ports free for both TCP and UDP (DNS serves both), held until all are chosen.
free_ports() {
  python3 - <<'EOF'
import socket
held, ports = [], []
while len(ports) < 5:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); held += [t, u]; ports.append(p)
    except OSError:
        t.close(); u.close()
print(*ports)
EOF
}

start() {
  stop
  local missing=()
  [ -x /usr/sbin/knotd ] || missing+=(knot)
  command -v kdig >/dev/null || missing+=(knot-dnsutils)
  [ -x /usr/sbin/unbound ] || missing+=(unbound)
  [ ${#missing[@]} -eq 0 ] || install_pkgs "${missing[@]}"

  rm -rf "$dir"
  mkdir -p "$dir/knot" "$dir/unbound"
  local knot_port unbound_port acme_port mgmt_port http_port secret key_name="landlord-test"
  read -r knot_port unbound_port acme_port mgmt_port http_port < <(free_ports)
  secret="$(head -c 32 /dev/urandom | base64)"

  {
    printf 'server:\n    listen: 127.0.0.1@%s\n    rundir: "%s/knot"\n' "$knot_port" "$dir"
    printf 'database:\n    storage: "%s/knot"\n' "$dir"
    printf 'log:\n  - target: stderr\n    any: info\n'
    printf 'key:\n  - id: %s\n    algorithm: hmac-sha256\n    secret: %s\n' "$key_name" "$secret"
    printf 'acl:\n  - id: landlord-update\n    key: %s\n    action: update\n' "$key_name"
    printf 'template:\n  - id: default\n    storage: "%s/knot"\n    zonefile-sync: -1\n    journal-content: all\n' "$dir"
    printf 'zone:\n'
    local z
    for z in "${zones[@]}"; do
      printf '  - domain: %s\n    file: "%s.zone"\n' "$z" "$z"
      if printf '%s\n' "${updatable[@]}" | grep -qx "$z"; then printf '    acl: landlord-update\n'; fi
    done
  } >"$dir/knot.conf"
  for z in "${zones[@]}"; do
    cat >"$dir/knot/$z.zone" <<EOF
\$ORIGIN $z.
\$TTL 5
@ SOA ns1.$z. hostmaster.$z. 1 3600 900 604800 5
@ NS ns1.$z.
ns1 A 127.0.0.1
EOF
  done
  knotd -c "$dir/knot.conf" </dev/null >"$dir/knot.log" 2>&1 &
  echo $! >"$dir/knotd.pid"

  {
    printf 'server:\n  interface: 127.0.0.1\n  port: %s\n  do-daemonize: no\n  username: ""\n  chroot: ""\n' "$unbound_port"
    printf '  directory: "%s/unbound"\n  pidfile: ""\n  use-syslog: no\n  logfile: ""\n' "$dir"
    printf '  access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n  module-config: "iterator"\n'
    printf '  cache-max-ttl: 0\n  cache-max-negative-ttl: 0\n  local-zone: "test." nodefault\n'
    printf '  do-ip6: no\n  auto-trust-anchor-file: ""\n'
    for z in "${zones[@]}"; do
      printf 'stub-zone:\n  name: "%s"\n  stub-addr: 127.0.0.1@%s\n' "$z" "$knot_port"
    done
    if [ -n "${LANDLORD_TEST_DNS_SERVER:-}" ]; then
      printf 'forward-zone:\n  name: "customer.test"\n  forward-addr: %s@%s\n' \
        "${LANDLORD_TEST_DNS_SERVER%:*}" "${LANDLORD_TEST_DNS_SERVER##*:}"
    fi
  } >"$dir/unbound.conf"
  unbound -d -c "$dir/unbound.conf" </dev/null >"$dir/unbound.log" 2>&1 &
  echo $! >"$dir/unbound.pid"

  local deadline=$((SECONDS + 20))
  until kdig +short +time=1 +retry=0 "@127.0.0.1" -p "$knot_port" SOA acme-dns.test 2>/dev/null | grep -q hostmaster &&
        kdig +short +time=1 +retry=0 "@127.0.0.1" -p "$unbound_port" SOA sites.platform.test 2>/dev/null | grep -q hostmaster; do
    if [ $SECONDS -ge $deadline ] || ! running "$(cat "$dir/knotd.pid")" || ! running "$(cat "$dir/unbound.pid")"; then
      log "Knot/Unbound did not come up (20 s deadline or exited); logs follow"
      tail -n 30 "$dir/knot.log" "$dir/unbound.log" >&2
      stop
      exit 1
    fi
    sleep 0.2
  done
  log "Knot on 127.0.0.1:$knot_port (TSIG key $key_name), Unbound on 127.0.0.1:$unbound_port (logs in $dir)"
  [ -z "${LANDLORD_TEST_DNS_SERVER:-}" ] || start_pebble
  printf 'export %s=%q\n' \
    LANDLORD_TEST_DNS_UPDATE_SERVER "127.0.0.1:$knot_port" \
    LANDLORD_TEST_DNS_UPDATE_TSIG "$key_name:hmac-sha256:$secret" \
    LANDLORD_TEST_DNS_RESOLVER "127.0.0.1:$unbound_port"
}

# A Pebble whose validation authority resolves through Unbound (for DNS-01), with a
# throwaway CA for its own HTTPS API. Uses the ports and $dir of start().
start_pebble() {
  (
    cd "$dir" &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout api-ca.key -out api-ca.pem -days 30 -subj "/CN=pebble dns-01 api test CA" &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout api.key -out api.csr -subj "/CN=localhost" &&
    printf "subjectAltName=DNS:localhost,IP:127.0.0.1\n" > ext.cnf &&
    openssl x509 -req -in api.csr -CA api-ca.pem -CAkey api-ca.key -CAcreateserial -out api.pem -days 30 -extfile ext.cnf
  ) >"$dir/openssl.log" 2>&1 || { cat "$dir/openssl.log" >&2; stop; exit 1; }
  printf '{"pebble":{"listenAddress":"127.0.0.1:%s","managementListenAddress":"127.0.0.1:%s","certificate":"%s","privateKey":"%s","httpPort":%s,"tlsPort":%s,"ocspResponderURL":"","externalAccountBindingRequired":false}}\n' \
    "$acme_port" "$mgmt_port" "$dir/api.pem" "$dir/api.key" "$http_port" "$http_port" >"$dir/pebble.json"
  PEBBLE_VA_NOSLEEP=1 pebble -config "$dir/pebble.json" -dnsserver "127.0.0.1:$unbound_port" \
    </dev/null >"$dir/pebble.log" 2>&1 &
  echo $! >"$dir/pebble.pid"
  local deadline=$((SECONDS + 30))
  until curl -fsS --cacert "$dir/api-ca.pem" "https://127.0.0.1:$acme_port/dir" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ] || ! running "$(cat "$dir/pebble.pid")"; then
      log "the DNS-01 Pebble did not come up; its log follows"
      tail -n 30 "$dir/pebble.log" >&2
      stop
      exit 1
    fi
    sleep 0.2
  done
  curl -fsS --cacert "$dir/api-ca.pem" -o "$dir/pebble-root.pem" "https://127.0.0.1:$mgmt_port/roots/0"
  log "DNS-01 Pebble on 127.0.0.1:$acme_port, resolving through Unbound"
  printf 'export %s=%q\n' \
    LANDLORD_TEST_DNS01_ACME_DIRECTORY "https://127.0.0.1:$acme_port/dir" \
    LANDLORD_TEST_DNS01_ACME_CA_ROOTS "$dir/api-ca.pem" \
    LANDLORD_TEST_DNS01_PEBBLE_ROOT "$dir/pebble-root.pem"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

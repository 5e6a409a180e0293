#!/usr/bin/env bash
# Test DNS bed for DNS-01: a real authoritative server (Knot) that accepts TSIG-signed
# RFC 2136 updates, and a real recursive resolver (Unbound) in front of it, both on
# loopback ports with a TSIG key made per start. See ../shared/TESTENV.md.
#   eval "$(scripts/test-dns.sh start)"   # exports LANDLORD_TEST_DNS_* (stdout only)
#   scripts/test-dns.sh stop              # stops what the last start launched
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
    if [ -n "$pid" ] && running "$pid" && grep -Eqa 'knotd|unbound' "/proc/$pid/cmdline" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 30); do running "$pid" || break; sleep 0.1; done
      if running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$f"
  done
}

# Two ports free for both TCP and UDP (DNS serves both), held until both are chosen.
free_ports() {
  python3 - <<'EOF'
import socket
held, ports = [], []
while len(ports) < 2:
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
  local knot_port unbound_port secret key_name="landlord-test"
  read -r knot_port unbound_port < <(free_ports)
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
  printf 'export %s=%q\n' \
    LANDLORD_TEST_DNS_UPDATE_SERVER "127.0.0.1:$knot_port" \
    LANDLORD_TEST_DNS_UPDATE_TSIG "$key_name:hmac-sha256:$secret" \
    LANDLORD_TEST_DNS_RESOLVER "127.0.0.1:$unbound_port"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

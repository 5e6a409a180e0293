#!/bin/bash
# Knot and Unbound in one container: either one exiting stops the container (with that
# one's status), and SIGTERM (`docker stop`) stops both at once. bash, not sh: dash has no
# `wait -n`, and a shell that is PID 1 ignores SIGTERM unless it traps it.
set -e
mkdir -p /var/lib/landlord-dns
cp -n /etc/landlord-dns/zones/*.zone /var/lib/landlord-dns/
knotd -c /etc/landlord-dns/knot.conf &
unbound -d -c /etc/landlord-dns/unbound.conf &
set +e
trap 'kill -TERM $(jobs -p) 2>/dev/null' TERM INT
wait -n
status=$?
kill -TERM $(jobs -p) 2>/dev/null
wait
exit "$status"

#!/bin/sh
# Knot and Unbound in one container; either one exiting stops the container.
set -e
mkdir -p /var/lib/landlord-dns
cp -n /etc/landlord-dns/zones/*.zone /var/lib/landlord-dns/
knotd -c /etc/landlord-dns/knot.conf &
unbound -d -c /etc/landlord-dns/unbound.conf &
wait -n 2>/dev/null || wait

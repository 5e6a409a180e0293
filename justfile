# Landlord: `just dev` runs the platform locally, `just test` runs every test.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# The whole platform on this machine: private PostgreSQL under ./.landlord, demo tenant.
dev *ARGS:
    cargo run -p landlord -- dev {{ARGS}}

# Every test: unit, API, CLI and end-to-end against real PostgreSQL, Pebble,
# pebble-challtestsrv, Knot + Unbound for DNS-01, a streaming standby of its own and
# PgBouncer (found, installed or started by the scripts).
test:
    #!/usr/bin/env bash
    set -euo pipefail
    export DATABASE_URL="$(scripts/test-postgres.sh)"
    echo "test database server: ${DATABASE_URL}"
    eval "$(scripts/test-acme.sh start)"
    trap 'scripts/test-acme.sh stop; scripts/test-dns.sh stop; scripts/test-replica.sh stop; scripts/test-pgbouncer.sh stop' EXIT
    eval "$(scripts/test-dns.sh start)"
    eval "$(scripts/test-replica.sh start)"
    eval "$(scripts/test-pgbouncer.sh start)"
    if cargo nextest --version >/dev/null 2>&1; then
      cargo nextest run --workspace --no-fail-fast
    else
      cargo test --workspace --no-fail-fast
    fi
    # The REST API against its own OpenAPI document (schemathesis: fresh database, own API process).
    scripts/test-schemathesis.sh
    # The dashboard in headless Chromium against a real `landlord all` (tests/browser/).
    scripts/test-browser.sh

# Formatting and lints, as CI would want them.
check:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Build the release binary.
build:
    cargo build --release -p landlord

# Issuance benchmark against Pebble: N domains REST → active, compared with a sequential lego loop.
bench-issuance N="100":
    python3 scripts/bench-issuance.py --domains {{N}} --command-label "just bench-issuance {{N}}"

# Replica benchmark: change → edge latency through a streaming standby vs the primary, and
# the standby's replay lag during an issuance burst (500 domains: Pebble stalls near 800
# here). Results: BENCHMARKS.md.
bench-replica CHANGES="100" DOMAINS="500":
    python3 scripts/bench-replica.py --changes {{CHANGES}} --domains {{DOMAINS}} --command-label "just bench-replica {{CHANGES}} {{DOMAINS}}"

# Edge benchmark: `landlord edge` vs nginx on one pinned core (CPU per handshake/request,
# latency, memory with 10k/100k domains). Results: target/bench/edge-results.md.
bench *ARGS:
    python3 scripts/bench-edge.py --command-label "just bench {{ARGS}}" {{ARGS}}

# Attack benchmark: a legitimate client's p50/p99 and success against `landlord edge` and
# nginx (its usual limits) under idle-connection, bogus-SNI, random-path and challenge floods
# from 127.0.0.2, then testssl.sh against the edge. Results: target/bench/attack-results.md.
attack *ARGS:
    python3 scripts/attack.py --command-label "just attack {{ARGS}}" {{ARGS}}

# Soak: 24 domains with 4-minute certificates, two workers SIGKILLed at random, two edges,
# continuous handshakes; fails on any expired or refused handshake or double renewal.
# Not part of `just test` (10 minutes). Results: target/soak/soak-results.md.
soak MINUTES="10" *ARGS:
    python3 scripts/soak.py --minutes {{MINUTES}} --command-label "just soak {{MINUTES}} {{ARGS}}" {{ARGS}}

# Compose test (not in `just test`: builds images): docker-compose.yml up, driven from the host to an HTTPS page, down -v.
compose-test *ARGS:
    python3 scripts/compose-test.py --command-label "just compose-test {{ARGS}}" {{ARGS}}

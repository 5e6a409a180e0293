#!/usr/bin/env bash
# Property-based tests of the REST API against its own OpenAPI document (schemathesis):
# builds `landlord`, starts `landlord api` on a free port against a fresh database,
# creates a tenant, runs every schemathesis check and phase (examples, coverage, fuzzing,
# stateful), then stops the API and drops the database. Exits non-zero on any failure:
# a 5xx, a response that does not match the document, or an ERROR/panic in the API log.
#
# Authentication follows the document's security schemes: operations marked `api_key`
# get `Authorization: Bearer <tenant key>`, `POST /v1/tenants` (`admin_token`) gets the
# admin token, so tenant creation is tested too.
#
# Environment: DATABASE_URL (a server to create the database on; default: whatever
# scripts/test-postgres.sh finds or starts), ST_MAX_EXAMPLES (default 50), ST_SEED
# (default random, the seed is printed; under CI=true a fixed seed, so a red run can be
# replayed), ST_ARGS (extra `st run` arguments).
set -euo pipefail
cd "$(dirname "$0")/.."

max_examples="${ST_MAX_EXAMPLES:-50}"
admin_token="st-admin"

for tool in python3 curl psql; do
  command -v "$tool" >/dev/null || { echo "test-schemathesis: $tool is required" >&2; exit 1; }
done
# The configuration below (per-scheme auth, dictionaries, SSE streams, warnings) needs 4.32+.
schemathesis_ok() {
  python3 -c 'import sys; from importlib.metadata import version
v = tuple(int(x) for x in version("schemathesis").split(".")[:2]); sys.exit(v < (4, 32))' 2>/dev/null
}
if ! python3 -c 'import schemathesis' 2>/dev/null; then
  echo "test-schemathesis: installing schemathesis (pip)" >&2
  python3 -m pip install --quiet schemathesis
elif ! schemathesis_ok; then
  echo "test-schemathesis: upgrading schemathesis to 4.32 or later (pip)" >&2
  python3 -m pip install --quiet --upgrade 'schemathesis>=4.32'
fi
schemathesis_ok || { echo "test-schemathesis: schemathesis 4.32 or later is required" >&2; exit 1; }
st=(python3 -m schemathesis.cli)
echo "test-schemathesis: $("${st[@]}" --version)"

cargo build --quiet -p landlord
bin="${CARGO_TARGET_DIR:-target}/debug/landlord"

server_url="$(scripts/test-postgres.sh)"
db="landlord_st_$$"
db_url="$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$server_url" "$db")"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:${port}"
work="$(mktemp -d)"
api_pid=""

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local status=$?
  if [ -n "$api_pid" ]; then
    kill "$api_pid" 2>/dev/null || true
    wait "$api_pid" 2>/dev/null || true
  fi
  psql "$server_url" -qXc "DROP DATABASE IF EXISTS ${db} WITH (FORCE)" >/dev/null 2>&1 ||
    echo "test-schemathesis: could not drop database ${db}" >&2
  if [ "$status" -ne 0 ] && [ -s "$work/api.log" ]; then
    echo "test-schemathesis: last lines of the API log:" >&2
    tail -n 20 "$work/api.log" >&2
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql "$server_url" -qXc "CREATE DATABASE ${db}" >/dev/null

# The request rate is off (it has API tests of its own): every generated case reaches its handler.
DATABASE_URL="$db_url" \
LANDLORD_MASTER_KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= \
LANDLORD_ADMIN_TOKEN="$admin_token" \
LANDLORD_CNAME_TARGET=edge.platform.test \
LANDLORD_EXTRA_SUFFIXES=test \
LANDLORD_API_ADDR="127.0.0.1:${port}" \
LANDLORD_TENANT_API_RATE=off \
NO_COLOR=1 \
  "$bin" api >"$work/api.log" 2>&1 &
api_pid=$!

for _ in $(seq 1 120); do
  if curl -fsS "$base/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$api_pid" 2>/dev/null; then
    echo "test-schemathesis: the API exited during start-up" >&2
    exit 1
  fi
  sleep 0.5
done
curl -fsS "$base/healthz" >/dev/null

api_key="$(curl -fsS -X POST "$base/v1/tenants" \
  -H "Authorization: Bearer ${admin_token}" -H 'Content-Type: application/json' \
  -d '{"name":"st"}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')"

# Credentials are read from the environment by the config file (never written to disk).
cat >"$work/schemathesis.toml" <<'EOF'
# Per security scheme of the OpenAPI document.
[auth.openapi.api_key]
bearer = "${ST_API_KEY}"

[auth.openapi.admin_token]
bearer = "${ST_ADMIN_TOKEN}"

# Suspending a tenant is checked by the API and end-to-end tests; here it would suspend the
# one tenant every other generated case uses (they would all answer 403).
[[operations]]
include-path = "/v1/admin/tenants/{id}/suspend"
enabled = false

# GET /v1/events is an endless Server-Sent Events stream: read its first event (`ready`,
# sent at once) and hang up.
[[operations]]
include-path = "/v1/events"
max-stream-events = 1

# Random strings are rarely valid hostnames, so half of the generated ones come from this
# list (ASCII, Unicode, punycode, trailing dot, surrounding spaces, deep names): POST
# /v1/domains then succeeds often enough for the stateful phase to follow its links.
[dictionaries.hostnames]
values = [
  "status.example.com", "www.example.org", "a.b.c.example.co.uk", "bücher.example.de",
  "xn--bcher-kva.example.net", "STATUS.Example.COM", "trailing-dot.example.com.",
  " padded.example.com ", "1-2-3.example.io", "münchen.example", "日本.example.jp",
]

[dictionaries.file-paths]
values = [
  "index.html", "css/site.css", "/leading-slash.html", "a/b/c/d/e.txt", "ünïcode.html",
  "with space.html", "data.json", "no-extension", ".well-known/security.txt",
]

[parameters]
"body.hostname" = { dictionary = "hostnames", probability = 0.5 }
"path.path" = { dictionary = "file-paths", probability = 0.5 }

# Hostnames (IDNA, the Public Suffix List, this platform's own domain) and file paths
# (byte lengths, dot segments) have rules a JSON Schema cannot state exactly, and so has
# an operator's reason (no control characters, not only whitespace), and so has a deploy's
# body (random bytes are rarely a tar archive), a site named by id (a random one is
# nobody's: 422) and a canonical hostname (one of the site's domains); the document states
# what it can and describes the rest. A schema-valid value may therefore still be refused
# with 422 (documented) on these operations; 409/413 depend on state.
[[operations]]
include-operation-id = ["create_domain", "put_file", "delete_file", "admin_block_hostname", "admin_unblock_hostname", "admin_unsuspend_tenant", "create_deployment", "update_domain", "update_site"]
checks.positive_data_acceptance.expected-statuses = ["2xx", 401, 403, 404, 409, 413, 422]

# Warnings that mean this set-up or the document is wrong fail the run.
[warnings]
fail-on = ["missing_auth", "base_url_mismatch", "missing_deserializer", "unused_openapi_auth", "unsupported_regex", "method_not_allowed", "unresolvable_reference", "unmatched_filter", "dictionary_mismatch"]

# The same for POST /v1/domains, minus the warnings about most generated hostnames being
# refused (validation_mismatch, low_valid_rate, missing_test_data): expected, see above.
[[operations]]
include-operation-id = "create_domain"
warnings = { display = ["missing_auth", "base_url_mismatch", "missing_deserializer", "unused_openapi_auth", "unsupported_regex", "method_not_allowed", "unresolvable_reference", "unmatched_filter", "dictionary_mismatch"], fail-on = ["missing_auth", "base_url_mismatch", "missing_deserializer", "unused_openapi_auth", "unsupported_regex", "method_not_allowed", "unresolvable_reference", "unmatched_filter", "dictionary_mismatch"] }
EOF

extra_args=()
if [ -z "${ST_SEED:-}" ] && [ "${CI:-}" = "true" ]; then ST_SEED=20261202; fi
if [ -n "${ST_SEED:-}" ]; then extra_args+=(--seed "$ST_SEED"); fi
if [ -n "${ST_ARGS:-}" ]; then read -ra more <<<"$ST_ARGS" && extra_args+=("${more[@]}"); fi

status=0
(
  cd "$work"
  ST_API_KEY="$api_key" ST_ADMIN_TOKEN="$admin_token" \
    "${st[@]}" --config-file "$work/schemathesis.toml" --no-color run "$base/openapi.json" \
    --checks all \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "$max_examples" \
    --request-timeout 10 \
    --generation-database none \
    "${extra_args[@]}"
) || status=$?

if grep -Eq ' ERROR |panicked' "$work/api.log"; then
  echo "test-schemathesis: the API logged errors:" >&2
  grep -E ' ERROR |panicked' "$work/api.log" | head -n 20 >&2
  status=1
fi
if [ "$status" -eq 0 ]; then
  echo "test-schemathesis: passed"
else
  echo "test-schemathesis: FAILED (exit ${status})" >&2
fi
exit "$status"

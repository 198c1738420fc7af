#!/usr/bin/env bash
# Property-based API fuzzing (`just fuzz-api`, and CI): schemathesis generates requests
# from docs/openapi.yaml — valid ones and invalid ones — and sends them to the real
# server on a fresh Postgres database, as an admin, including stateful sequences that
# follow the document's links (create, then read, update, delete). It fails on any 5xx,
# on any answer the document does not describe (status code, content type, headers,
# body schema), on input the document forbids being accepted, on a method the document
# does not list answered other than 405 with `Allow`, and on operations that ignore
# their authentication.
#
# Two checks are off, for reasons of the API's design rather than leniency:
# - positive_data_acceptance ("schema-valid input must succeed"): validity is more than
#   JSON Schema can say. Cursors are opaque, an If-Match may be stale (412), an
#   Idempotency-Key may have been used with another body (422), names and titles are
#   checked after trimming and for Unicode control characters (422). Each of those
#   answers is documented, and the shape of every answer is still checked.
# - ensure_resource_availability ("a created resource can be fetched"): a creation
#   retried with its Idempotency-Key replays the first answer for 24 h, even when the
#   resource was deleted since; that replay is the point of the key.
#
# Needs: the app binary (APP_BIN, default the debug build; built when missing), a
# Postgres server (FUZZ_ADMIN_URL, default the local one, trust auth), python3 with
# pip. schemathesis is installed from PyPI into a virtualenv under the target dir.
# Knobs: FUZZ_EXAMPLES (cases per operation and phase, default 25), FUZZ_SEED (default
# fixed, so CI is reproducible; `FUZZ_SEED=random` for a new exploration).
# Writes target/schemathesis/report.md (figures) and the JUnit and NDJSON reports.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

SCHEMATHESIS_VERSION=4.32.5
TARGET=${CARGO_TARGET_DIR:-target}
VENV="$TARGET/schemathesis-venv"
OUT=target/schemathesis
ADMIN_URL=${FUZZ_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB="fuzz_$$"
URL="${ADMIN_URL%/*}/$DB"
BIN=${APP_BIN:-$TARGET/debug/app}
EXAMPLES=${FUZZ_EXAMPLES:-25}
SEED=${FUZZ_SEED:-20261128}
SECRET=fuzz-secret-0123456789abcdef-0123456789abcdef
ADMIN_PASSWORD="fuzzing admin passphrase"
mkdir -p "$OUT"
rm -f "$OUT"/*.ndjson "$OUT"/*.xml

if [ ! -x "$VENV/bin/schemathesis" ] || ! "$VENV/bin/schemathesis" --version | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION (PyPI)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
[ -x "$BIN" ] || cargo build -q -p app

PORT=$(free_port)
GRPC_PORT=$(free_port)

SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

psql -q "$ADMIN_URL" -c "CREATE DATABASE $DB" >/dev/null
export DATABASE_URL="$URL" JWT_SECRET="$SECRET" HOST=127.0.0.1 PORT GRPC_PORT LOG_FORMAT=json
# Logins and refreshes are rate-limited per minute; the fuzzer sends far more.
export AUTH_RATE_LIMIT_PER_MINUTE=1000000
export REGISTRATION_RATE_LIMIT_PER_MINUTE=1000000
"$BIN" migrate >/dev/null
ADMIN_PASSWORD="$ADMIN_PASSWORD" "$BIN" create-admin --email root@example.com --name Root >/dev/null
"$BIN" serve >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
BASE="http://127.0.0.1:$PORT"
wait_ready "$BASE" "$SERVER_PID" "$OUT/server.log"
TOKEN=$(curl -sf "$BASE/api/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"root@example.com\",\"password\":\"$ADMIN_PASSWORD\"}" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

SEED_ARGS=(--seed "$SEED")
[ "$SEED" = random ] && SEED_ARGS=()
set +e
# `logout-all` is left out: it would end the session of the token every other case
# uses (the end-to-end tests prove it).
"$VENV/bin/schemathesis" run docs/openapi.yaml \
  --url "$BASE" \
  --header "Authorization: Bearer $TOKEN" \
  --checks all \
  --exclude-checks positive_data_acceptance,ensure_resource_availability \
  --exclude-path /api/auth/logout-all \
  --max-examples "$EXAMPLES" \
  ${SEED_ARGS[@]+"${SEED_ARGS[@]}"} \
  --workers 2 \
  --request-timeout 10 \
  --suppress-health-check too_slow,filter_too_much \
  --report junit,ndjson \
  --report-dir "$OUT" \
  --no-color 2>&1 | tee "$OUT/output.txt"
STATUS=${PIPESTATUS[0]}
set -e

# The figures, from schemathesis's own summary.
{
  echo "schemathesis $SCHEMATHESIS_VERSION, seed $SEED, up to $EXAMPLES cases per operation and phase:"
  grep -E "^  (Selected|Tested):|generated, " "$OUT/output.txt" | sed 's/^ */  /' || true
  echo "  exit status $STATUS"
} | tee "$OUT/report.md"
exit "$STATUS"

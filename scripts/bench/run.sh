#!/usr/bin/env bash
# The benchmark suite (`just bench`): HTTP load with wrk against the release binary on
# a fresh Postgres database with 10k users, pgbench on the same SELECT as the reference,
# gRPC and WebSocket load, criterion micro-benchmarks, start-up time, memory, size.
# Prints one table and writes it to target/bench/results.md.
#
# Needs: a Postgres server (BENCH_ADMIN_URL, default the local one, trust auth), wrk
# (installed with apt-get when missing), pgbench, curl, python3.
# Knobs: BENCH_SECS (per HTTP run, default 10), BENCH_CONNECTIONS (default 25);
# MALLOC_MMAP_THRESHOLD_ (default 1 MiB, as in the Dockerfile; see docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/../.."

SECS=${BENCH_SECS:-10}
CONNS=${BENCH_CONNECTIONS:-25}
ADMIN_URL=${BENCH_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB="bench_$$"
URL="${ADMIN_URL%/*}/$DB"
PORT=${BENCH_PORT:-18080}
GRPC_PORT=${BENCH_GRPC_PORT:-18051}
TARGET=${CARGO_TARGET_DIR:-target}
OUT=target/bench
BIN="$TARGET/release/app"
SECRET=bench-secret-0123456789abcdef-0123456789abcdef
mkdir -p "$OUT"

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)" >&2
  if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >/dev/null; else sudo apt-get install -y wrk >/dev/null; fi
fi
for tool in pgbench psql curl python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done

echo "building (release)..." >&2
cargo build --release -q -p app --examples --bins

SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
cleanup() {
  stop_server
  psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

rss_kib() { awk "/^$2:/ {print \$2}" "/proc/$1/status"; }
# CPU time (user + system) the process has used, in clock ticks.
cpu_ticks() { awk '{sub(/^[^(]*\(.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
TICK_HZ=$(getconf CLK_TCK)

# Starts the server with extra environment; sets SERVER_PID and STARTUP_MS.
start_server() {
  local started now
  started=$(date +%s%N)
  env DATABASE_URL="$URL" JWT_SECRET="$SECRET" HOST=127.0.0.1 PORT="$PORT" \
    GRPC_PORT="$GRPC_PORT" WORKERS=0 LOG_FORMAT=json AUTH_RATE_LIMIT_PER_MINUTE=100000000 REGISTRATION_RATE_LIMIT_PER_MINUTE=100000000 \
    MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-1048576}" \
    "$@" "$BIN" serve >"$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/api/health/ready")" = 200 ]; do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/server.log" >&2; exit 1; }
    sleep 0.002
  done
  now=$(date +%s%N)
  STARTUP_MS=$(( (now - started) / 1000000 ))
}

ROWS=()
row() { ROWS+=("$1"); }

# wrk KIND NAME CONNECTIONS SECONDS: one row of requests/s, server CPU per request,
# p50, p99, errors, peak RSS. CPU per request (from /proc, user + system) is the figure
# to compare on a shared machine: requests/s moves with whatever else runs.
load() {
  local kind=$1 name=$2 conns=$3 secs=$4 result ticks_before ticks_after
  ticks_before=$(cpu_ticks "$SERVER_PID")
  result=$(BENCH_KIND=$kind BENCH_TOKEN=$TOKEN wrk -t2 -c"$conns" -d"${secs}s" --latency \
    -s scripts/bench/load.lua "http://127.0.0.1:$PORT" -- "$OUT/ids.txt" | grep '^RESULT' | cut -d' ' -f2-)
  ticks_after=$(cpu_ticks "$SERVER_PID")
  python3 - "$name" "$conns" "$(rss_kib "$SERVER_PID" VmHWM)" "$result" \
    "$((ticks_after - ticks_before))" "$TICK_HZ" >>"$OUT/rows.txt" <<'PY'
import json, sys
name, conns, hwm, r = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
ticks, hz = int(sys.argv[5]), int(sys.argv[6])
cpu_us = ticks / hz * 1e6 / r['requests'] if r['requests'] else 0
print(f"| {name} | {conns} | {r['requests'] / r['secs']:,.0f} | {cpu_us:,.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | {hwm / 1024:.1f} |")
PY
  echo "$result"
}

: >"$OUT/rows.txt"
echo "database $DB, migrations, seed..." >&2
psql -q "$ADMIN_URL" -c "CREATE DATABASE $DB" >/dev/null
DATABASE_URL="$URL" JWT_SECRET="$SECRET" "$BIN" migrate >/dev/null
start_server RUST_LOG=warn
COLD_STARTUP_MS=$STARTUP_MS
curl -sf -o /dev/null "http://127.0.0.1:$PORT/api/users" -H 'content-type: application/json' \
  -d '{"name":"Seed","email":"seed@bench.test","password":"bench password 1234"}'
psql -q "$URL" -f scripts/bench/seed.sql >/dev/null
# Settle the database after the bulk insert, so a checkpoint or autovacuum of the
# seed does not land in the middle of a measured row.
psql -q "$URL" -c "VACUUM ANALYZE" >/dev/null
psql -q "$URL" -c "CHECKPOINT" >/dev/null 2>&1 || true
psql -At "$URL" -c "SELECT id FROM users WHERE email LIKE 'user-%'" >"$OUT/ids.txt"
TOKEN=$(curl -sf "http://127.0.0.1:$PORT/api/auth/login" -H 'content-type: application/json' \
  -d '{"email":"seed@bench.test","password":"bench password 1234"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
stop_server

# Start-up to ready with migrations applied, and idle memory.
start_server RUST_LOG=warn
sleep 1
IDLE_RSS_KIB=$(rss_kib "$SERVER_PID" VmRSS)

echo "HTTP load..." >&2
# Warm-up (not reported): connections, caches, the pool's first checkouts.
BENCH_KIND=user BENCH_TOKEN=$TOKEN wrk -t2 -c"$CONNS" -d2s -s scripts/bench/load.lua \
  "http://127.0.0.1:$PORT" -- "$OUT/ids.txt" >/dev/null
load health "GET /api/health" "$CONNS" "$SECS" >/dev/null
USER_QUIET=$(load user "GET /api/users/{id}" "$CONNS" "$SECS")
load include "GET /api/users/{id}?include=posts" "$CONNS" "$SECS" >/dev/null
load login "POST /api/auth/login (argon2 verify)" 4 "$((SECS / 2 > 0 ? SECS / 2 : 1))" >/dev/null
load create "POST /api/users (argon2 hash)" 4 "$((SECS / 2 > 0 ? SECS / 2 : 1))" >/dev/null
LOADED_RSS_KIB=$(rss_kib "$SERVER_PID" VmHWM)

echo "gRPC load..." >&2
"$TARGET/release/examples/grpc_load" "http://127.0.0.1:$GRPC_PORT" "$TOKEN" "$OUT/ids.txt" "$CONNS" "$SECS" >"$OUT/grpc.jsonl"
stop_server

echo "request logging on..." >&2
start_server RUST_LOG=info
USER_LOGGED=$(load user "GET /api/users/{id}, request logs on" "$CONNS" "$SECS")
stop_server

echo "pgbench reference..." >&2
PGBENCH_TPS=$(pgbench -n -M prepared -c "$CONNS" -j 2 -T "$SECS" -f scripts/bench/select_user.sql "$URL" 2>/dev/null \
  | awk '/^tps/ {print $3; exit}')

echo "WebSocket fan-out..." >&2
WS=$("$TARGET/release/examples/ws_load" 100 500 2>/dev/null | tail -n 20)

echo "criterion micro-benchmarks..." >&2
cargo bench -q -p app --bench hot -- --warm-up-time 1 --measurement-time 2 >/dev/null 2>&1

BINARY_BYTES=$(stat -c %s "$BIN")
python3 - "$OUT" "$USER_QUIET" "$USER_LOGGED" "$PGBENCH_TPS" "$COLD_STARTUP_MS" "$STARTUP_MS" \
  "$IDLE_RSS_KIB" "$LOADED_RSS_KIB" "$BINARY_BYTES" "$CONNS" "$TARGET" <<'PY' >"$OUT/results.md"
import glob, json, os, platform, subprocess, sys, datetime
out, quiet, logged, pg_tps, cold, warm, idle, loaded, size, conns, target = sys.argv[1:]
quiet, logged = json.loads(quiet), json.loads(logged)
rps = quiet["requests"] / quiet["secs"]
rps_logged = logged["requests"] / logged["secs"]
pg = float(pg_tps or 0)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores ({cpu}), "
      f"{platform.system()} {platform.release()}; load generator, server and Postgres share the machine.\n")
print("| HTTP (wrk) | connections | requests/s | server CPU µs/request | p50 ms | p99 ms | errors | server peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|")
print(open(os.path.join(out, "rows.txt")).read().rstrip())
print()
def check(ok):
    return "met" if ok else "MISSED"
ratio = rps / pg if pg else 0
cost = 1 - rps_logged / rps if rps else 0
tail = quiet["p99_ms"] / quiet["p50_ms"] if quiet["p50_ms"] else 0
print("| target | measured | |")
print("|---|---|---|")
print(f"| `GET /api/users/{{id}}` ≥ 30 % of pgbench -M prepared ({conns} clients) | {rps:,.0f} vs {pg:,.0f} tps = {ratio:.0%} | {check(ratio >= 0.30)} |")
print(f"| request logging costs ≤ 15 % | {rps_logged:,.0f} vs {rps:,.0f} req/s = {cost:.0%} | {check(cost <= 0.15)} |")
print(f"| p99 ≤ 5 × p50 | {quiet['p99_ms']:.2f} / {quiet['p50_ms']:.2f} ms = {tail:.1f}× | {check(tail <= 5)} |")
print(f"| server RSS ≤ 40 MiB under load | {int(loaded) / 1024:.1f} MiB | {check(int(loaded) <= 40 * 1024)} |")
print(f"| server RSS ≤ 20 MiB idle | {int(idle) / 1024:.1f} MiB | {check(int(idle) <= 20 * 1024)} |")
print(f"| start-up to ready ≤ 100 ms (migrations applied) | {warm} ms (first start, applying none: {cold} ms) | {check(int(warm) <= 100)} |")
print(f"| release binary size | {int(size) / 1e6:.1f} MB | |")
print()
print("| gRPC | result |")
print("|---|---|")
for line in open(os.path.join(out, "grpc.jsonl")):
    r = json.loads(line)
    if "rps" in r:
        print(f"| {r['name']} ({conns} concurrent calls) | {r['rps']:,.0f} calls/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, {r['errors']} errors |")
    else:
        print(f"| {r['name']} | {r['users']:,} users in {r['secs']:.2f} s = {r['users_per_s']:,.0f} users/s |")
print()
print("| micro-benchmark (criterion) | mean |")
print("|---|---|")
for path in sorted(glob.glob(os.path.join(target, "criterion", "**", "new", "estimates.json"), recursive=True)):
    name = os.path.relpath(os.path.dirname(os.path.dirname(path)), os.path.join(target, "criterion"))
    ns = json.load(open(path))["mean"]["point_estimate"]
    print(f"| {name} | {ns / 1000:.2f} µs |" if ns >= 1000 else f"| {name} | {ns:.0f} ns |")
PY
{
  cat "$OUT/results.md"
  echo
  echo "WebSocket fan-out (ws_load: 100 clients in one room, 500 messages, in-process, memory):"
  echo
  echo "$WS"
} >"$OUT/results.tmp" && mv "$OUT/results.tmp" "$OUT/results.md"
cat "$OUT/results.md"

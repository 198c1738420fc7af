#!/usr/bin/env bash
# The soak run (`just soak`): the release server on a fresh Postgres database under a
# fixed rate of mixed traffic (crates/app/examples/soak.rs: HTTP reads, writes, edits,
# logins, the fan-out; WebSocket and gRPC chat) for a bounded time, on loopback only.
# Every SOAK_SAMPLE_SECS the server's RSS, open file descriptors, threads and database
# connections are sampled. Writes target/soak/report.md: error rate, p99 over time,
# memory over time with its trend, descriptors and connections; then stops the server
# with SIGTERM and records its exit status.
#
# Needs: a Postgres server (SOAK_ADMIN_URL, default the local one, trust auth), psql,
# curl, python3.
# Knobs: SOAK_SECS (default 600), SOAK_RATE (HTTP requests/s, default 200),
# SOAK_SAMPLE_SECS (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

SECS=${SOAK_SECS:-600}
RATE=${SOAK_RATE:-200}
EVERY=${SOAK_SAMPLE_SECS:-10}
ADMIN_URL=${SOAK_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB="soak_$$"
URL="${ADMIN_URL%/*}/$DB"
TARGET=${CARGO_TARGET_DIR:-target}
OUT=target/soak
BIN="$TARGET/release/app"
SECRET=soak-secret-0123456789abcdef-0123456789abcdef
mkdir -p "$OUT"
rm -f "$OUT"/*.jsonl "$OUT"/*.csv

for tool in psql curl python3; do
  command -v "$tool" >/dev/null || { echo "soak: $tool is required" >&2; exit 1; }
done
echo "building (release)..." >&2
cargo build --release -q -p app --bins --example soak

PORT=$(free_port)
GRPC_PORT=$(free_port)
SERVER_PID=""
SAMPLER_PID=""
cleanup() {
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null || true
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

psql -q "$ADMIN_URL" -c "CREATE DATABASE $DB" >/dev/null
# Production-like settings, except: logins are not rate-limited (the traffic logs in
# from one IP), and tokens outlive the run.
env DATABASE_URL="$URL" JWT_SECRET="$SECRET" HOST=127.0.0.1 PORT="$PORT" GRPC_PORT="$GRPC_PORT" \
  LOG_FORMAT=json AUTH_RATE_LIMIT_PER_MINUTE=100000000 REGISTRATION_RATE_LIMIT_PER_MINUTE=100000000 JWT_TTL_SECS=$((SECS + 600)) \
  MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-1048576}" \
  "$BIN" serve >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
wait_ready "http://127.0.0.1:$PORT" "$SERVER_PID" "$OUT/server.log"

# The sampler: one CSV row per interval, from /proc and pg_stat_activity.
(
  echo "t,rss_kib,fds,threads,db_connections" >"$OUT/samples.csv"
  start=$(date +%s)
  while kill -0 "$SERVER_PID" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
    threads=$(awk '/^Threads:/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
    fds=$(ls "/proc/$SERVER_PID/fd" 2>/dev/null | wc -l)
    conns=$(psql -tAq "$ADMIN_URL" -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DB'" 2>/dev/null || echo "")
    echo "$(( $(date +%s) - start )),$rss,$fds,$threads,$conns" >>"$OUT/samples.csv"
    sleep "$EVERY"
  done
) &
SAMPLER_PID=$!

echo "soak: ${SECS}s at ${RATE} requests/s, plus WebSocket and gRPC chat" >&2
"$TARGET/release/examples/soak" "http://127.0.0.1:$PORT" "http://127.0.0.1:$GRPC_PORT" \
  "$SECS" "$RATE" "$EVERY" >"$OUT/intervals.jsonl"

kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""
set +e
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"
EXIT=$?
set -e
SERVER_PID=""

python3 - "$OUT" "$SECS" "$RATE" "$EXIT" <<'PY' | tee "$OUT/report.md"
import csv, json, sys
out, secs, rate, exit_status = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
lines = [json.loads(l) for l in open(f"{out}/intervals.jsonl") if l.strip()]
intervals = [l for l in lines if not l.get("summary")]
summary = next(l for l in lines if l.get("summary"))
samples = list(csv.DictReader(open(f"{out}/samples.csv")))

def median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else 0.0

rss = [(int(s["t"]), int(s["rss_kib"]) / 1024) for s in samples if s["rss_kib"].isdigit()]
# The first fifth is warm-up (pools, caches and allocator arenas fill); the trend is
# measured on the rest, as the change between the medians of its first and last
# quarters: robust to the 19 MiB a login's Argon2 hash holds for a moment.
steady = [p for p in rss if p[0] >= secs / 5]
quarter = max(len(steady) // 4, 1)
early, late = steady[:quarter], steady[-quarter:]
span_min = (median(x for x, _ in late) - median(x for x, _ in early)) / 60
trend = (median(y for _, y in late) - median(y for _, y in early)) / span_min if span_min > 0 else 0.0
fds = [int(s["fds"]) for s in samples if s["fds"].isdigit()]
conns = [int(s["db_connections"]) for s in samples if s["db_connections"].isdigit()]
total = summary["http_requests"]
error_rate = summary["errors"] / max(total + summary["chat_messages"], 1)

print(f"# Soak: {secs} s at {rate:g} HTTP requests/s, WebSocket and gRPC chat\n")
print("| figure | value |")
print("|---|---|")
print(f"| HTTP requests | {total:,} ({total / secs:.0f}/s) |")
print(f"| chat messages echoed (WebSocket + gRPC) | {summary['chat_messages']:,} |")
print(f"| errors | {summary['errors']} ({error_rate:.4%}) {summary['error_kinds'] or ''} |")
print(f"| HTTP p50 / p99 / max | {summary['http_p50_ms']:.1f} / {summary['http_p99_ms']:.1f} / {summary['http_max_ms']:.0f} ms |")
print(f"| chat echo p99 | {summary['chat_p99_ms']:.1f} ms |")
if rss:
    print(f"| RSS start / peak / end | {rss[0][1]:.1f} / {max(y for _, y in rss):.1f} / {rss[-1][1]:.1f} MiB |")
    print(f"| RSS trend after warm-up (median of first vs last quarter) | {trend:+.2f} MiB/min, {median(y for _, y in early):.1f} → {median(y for _, y in late):.1f} MiB |")
if fds:
    print(f"| open file descriptors min / max | {min(fds)} / {max(fds)} |")
if conns:
    print(f"| database connections min / max | {min(conns)} / {max(conns)} |")
print(f"| exit status after SIGTERM | {exit_status} |")
print("\n## Over time\n")
print("| t (s) | HTTP req/s | errors | HTTP p50 ms | HTTP p99 ms | chat p99 ms | RSS MiB | fds | DB conns |")
print("|---|---|---|---|---|---|---|---|---|")
by_t = {int(s["t"]): s for s in samples}
for i in intervals:
    t = i["t"]
    if t > secs:
        break
    s = by_t.get(t) or by_t.get(min(by_t, key=lambda k: abs(k - t))) if by_t else None
    rss_mib = f"{int(s['rss_kib']) / 1024:.1f}" if s and s["rss_kib"].isdigit() else ""
    chat = max(i["ws_p99_ms"], i["grpc_p99_ms"])
    print(f"| {t} | {i['http_rps']:.0f} | {i['errors']} | {i['http_p50_ms']:.1f} | {i['http_p99_ms']:.1f} | {chat:.1f} | {rss_mib} | {s['fds'] if s else ''} | {s['db_connections'] if s else ''} |")
PY

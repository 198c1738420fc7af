# Convenience recipes; every one is a plain cargo (or docker) command underneath.

set dotenv-load := false

default:
    @just --list

# Serve the API (in memory unless DATABASE_URL is set).
run:
    cargo run -p app

# Run every test (Postgres tests use DATABASE_URL or the local server).
test:
    cargo test --workspace

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# The benchmark suite (release build, a scratch Postgres database): HTTP with wrk vs a
# pgbench reference, gRPC, WebSocket, criterion, start-up and memory; one table, also
# written to target/bench/results.md. See docs/benchmarks.md.
bench:
    bash scripts/bench/run.sh

# WebSocket fan-out alone: clients in one room, delivered messages/s, p99, memory.
bench-ws clients="200" messages="2000":
    cargo run --release -p app --example ws_load -- {{clients}} {{messages}}

# Property-based API fuzzing: schemathesis (from PyPI, into the target dir) against the
# debug server on a scratch Postgres database, from docs/openapi.yaml. As in CI.
# `FUZZ_SEED=random FUZZ_EXAMPLES=150 just fuzz-api` explores further.
fuzz-api:
    cargo build -p app
    bash scripts/schemathesis.sh

# Soak: the release server under a fixed rate of mixed traffic (HTTP, WebSocket and gRPC
# chat) for `secs` seconds; error rate, p99, RSS, descriptors and DB connections over
# time in target/soak/report.md. See docs/benchmarks.md.
soak secs="600" rate="200":
    SOAK_SECS={{secs}} SOAK_RATE={{rate}} bash scripts/soak.sh

# Dependency policy (deny.toml): licences, bans and sources, as CI checks them.
deny:
    cargo deny check licenses bans sources

# Known vulnerabilities in dependencies (needs the RustSec database from GitHub).
audit:
    cargo deny check advisories

# Regenerate docs/openapi.yaml from the handlers.
openapi:
    cargo run -q -p app -- openapi > docs/openapi.yaml

# Start the development database (docker compose).
db:
    docker compose up -d --wait db

# Start the development mail catcher (SMTP :1025, web UI http://localhost:8025).
mail:
    docker compose up -d mail

# Build and start the whole stack (db, mail, app) with docker compose.
up:
    docker compose up -d --build --wait

# Stop the stack (data stays in the db-data volume).
down:
    docker compose down

# Run only the background job workers.
worker:
    cargo run -p app -- worker

# Apply pending migrations to DATABASE_URL.
migrate:
    cargo run -p app -- migrate

# Shell helpers shared by the scripts that run the server (`source scripts/lib.sh`).

# A TCP port nothing listens on now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready BASE_URL PID LOG: waits (at most 10 s) until the server at BASE_URL answers
# readiness with 200; prints LOG and fails if process PID exits or time runs out.
wait_ready() {
  local base=$1 pid=$2 log=$3
  for _ in $(seq 1 500); do
    if [ "$(curl -s --max-time 1 -o /dev/null -w '%{http_code}' "$base/api/health/ready")" = 200 ]; then
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 0.02
  done
  echo "the server at $base never became ready" >&2
  cat "$log" >&2
  return 1
}

#!/usr/bin/env bash
# Gate acquire over loopback HTTP: requests/s and p99 latency with wrk (Debian package `wrk`),
# against `catchup demo` (the real runtime and API), for an open gate and a throttled one.
# Usage: scripts/bench-gate-http.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cargo build --release --quiet
port=18181
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
./target/release/catchup demo --listen 127.0.0.1:$port --speed 1 --state-dir "$dir/state" > "$dir/demo.out" 2> "$dir/demo.err" &
pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/readyz >/dev/null && break; sleep 0.1; done
token=$(awk '/token:/ {print $2}' "$dir/demo.out")
cat > "$dir/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"permits":1}'
wrk.headers["Content-Type"] = "application/json"
LUA
run() {
  local label=$1
  local out
  out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$dir/post.lua" "http://127.0.0.1:$port/v1/gates/ingestion/acquire")
  local rps p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  echo "gate $label: ${rps} requests/s, p99 ${p99}, non-2xx: ${non2xx:-0} (wrk -t2 -c$conns -d${secs}s)"
}
run "open"
CATCHUP_URL=http://127.0.0.1:$port CATCHUP_API_TOKEN=$token ./target/release/catchup ctl override set --group ingestion --rate 1000000000 --ttl 1h --reason "benchmark: throttled path" >/dev/null
sleep 1
run "throttled (1e9/s)"

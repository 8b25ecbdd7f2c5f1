#!/usr/bin/env bash
# `catchup demo` with 1,000 partitions in real time (speed 1), no API traffic: resident memory
# (peak and current) and CPU use over a measuring window.
# Usage: scripts/bench-demo.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
cargo build --release --quiet
dir=$(mktemp -d)
port=18182
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
# The 2025-11 replay scaled to 1,000 partitions: 400 input, 400 + 200 output.
sed -e '0,/partitions = 120/s//partitions = 400/' -e '0,/partitions = 120/s//partitions = 400/' -e 's/partitions = 60/partitions = 200/' \
  scenarios/2025-11-replay.toml > "$dir/demo-1000.toml"
total=$(awk -F' = ' '/^partitions/ {s += $2} END {print s}' "$dir/demo-1000.toml")
./target/release/catchup demo --scenario "$dir/demo-1000.toml" --listen 127.0.0.1:$port --speed 1 --state-dir "$dir/state" > "$dir/out" 2> "$dir/err" &
pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/readyz >/dev/null && break; sleep 0.1; done
sleep 5
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks)
sleep "$secs"
t1=$(ticks)
cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s="$secs" 'BEGIN {printf "%.2f", (b - a) / hz / s * 100}')
rss=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
hwm=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
echo "demo with $total partitions, real time, idle API: RSS ${rss} MiB (peak ${hwm} MiB), CPU ${cpu}% of a core over ${secs}s"

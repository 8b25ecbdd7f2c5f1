#!/usr/bin/env bash
# API load benchmark (issue 16): N concurrent gate long-polls (RSS during and 10 s after, /healthz
# p99 during), M idle connections closed by the idle timeout (open descriptors before and after),
# and, on a fresh server, K overrides created one after another (time each, RSS after).
#
#   scripts/bench-api.sh [BINARY] [LONG_POLLS] [IDLE] [OVERRIDES] [RUNS]
#   e.g. cargo build --release && scripts/bench-api.sh target/release/catchup 10000 20000 1000 3
#
# Prints one JSON line of figures per run. IDLE must stay below the open-file limit of both the
# client (this script) and the server (`ulimit -Hn`; 20,000 on the machine of the first runs, so
# 19,000 were used there).
set -euo pipefail
BIN=${1:-target/release/catchup}
POLLS=${2:-10000}
IDLE=${3:-20000}
OVERRIDES=${4:-1000}
RUNS=${5:-3}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# One server, fresh: N long-polls and M idle connections, or K overrides (each phase on its own
# server, so the override figures are not those of a process that just served 10,000 long-polls).
phase() {
  local polls=$1 idle=$2 overrides=$3
  DIR=$(mktemp -d)
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$DIR/catchup.toml" <<TOML
state_dir = "state"
tick = "2s"
[api]
listen = "127.0.0.1:$PORT"
[api.limits]
max_connections = $((polls > idle ? polls + 500 : idle + 500))
max_long_polls = $((polls + 100))
idle_timeout = "5s"
max_overrides = 100000
max_overrides_per_scope = 10000
[cluster]
kind = "simulator"
scenario = "$ROOT/scenarios/2025-11-replay.toml"
speed = 1.0
TOML
  CATCHUP_API_TOKEN=bench-token-0123456789 "$BIN" run --config "$DIR/catchup.toml" >/dev/null 2>"$DIR/log" &
  PID=$!
  trap 'kill $PID 2>/dev/null' EXIT
  python3 - "$PORT" "$PID" "$polls" "$idle" "$overrides" <<'PY'
import asyncio, json, os, sys, time, statistics
port, pid, polls, idle, overrides = map(int, sys.argv[1:])
TOKEN = "bench-token-0123456789"
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1]) / 1024
def fds(): return len(os.listdir(f"/proc/{pid}/fd"))
async def request(path, method="GET", body=None, token=None):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    if token: head += f"Authorization: Bearer {token}\r\n"
    data = json.dumps(body).encode() if body is not None else b""
    if body is not None: head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    w.write(head.encode() + b"\r\n" + data); await w.drain()
    out = await r.read(); w.close()
    return int(out.split(b" ", 2)[1])
async def main():
    for _ in range(100):
        try:
            await request("/healthz"); break
        except OSError: await asyncio.sleep(0.1)
    await asyncio.sleep(1)
    idle_rss = rss()
    out = {"idle_rss_mib": round(idle_rss, 1)}
    if polls:
        out |= await long_polls_and_idle()
    if overrides:
        out |= await create_overrides()
    print(json.dumps(out))
async def long_polls_and_idle():
    gate = json.loads((await asyncio.to_thread(lambda: __import__("urllib.request").request.urlopen(f"http://127.0.0.1:{port}/v1/gates/ingestion").read())))
    v = gate["version"] + 10**9
    # Long-polls that will not wake during the test.
    tasks = [asyncio.create_task(request(f"/v1/gates/ingestion?after_version={v}&wait=20s")) for _ in range(polls)]
    await asyncio.sleep(5)
    lat = []
    for _ in range(200):
        t = time.perf_counter(); await request("/healthz"); lat.append((time.perf_counter() - t) * 1000)
    during = rss()
    codes = await asyncio.gather(*tasks, return_exceptions=True)
    ok = sum(1 for c in codes if c == 200)
    await asyncio.sleep(10)
    after = rss()
    # Idle connections: opened, never written to.
    fds0 = fds()
    conns = []
    for _ in range(idle):
        try: conns.append(await asyncio.open_connection("127.0.0.1", port))
        except OSError: break
    await asyncio.sleep(1)
    fds_open = fds()
    await asyncio.sleep(7)
    fds_later = fds()
    closed = 0
    for r, w in conns:
        try:
            if await asyncio.wait_for(r.read(1), 0.05) == b"": closed += 1
        except (asyncio.TimeoutError, OSError): pass
        w.close()
    lat.sort()
    return {"long_polls_ok": ok, "rss_during_mib": round(during, 1),
        "rss_10s_after_mib": round(after, 1), "healthz_p99_ms": round(lat[int(len(lat) * 0.99) - 1], 2),
        "idle_opened": len(conns), "fds_before": fds0, "fds_with_idle": fds_open, "fds_after_idle_timeout": fds_later,
        "idle_closed_by_server": closed}
async def create_overrides():
    times = []
    for i in range(overrides):
        t = time.perf_counter()
        c = await request("/v1/overrides", "POST", {"scope": {"kind": "all_groups"}, "action": {"action": "fixed_rate", "rate": 1000 + i}, "reason": "bench", "ttl": "1h"}, TOKEN)
        times.append((time.perf_counter() - t) * 1000)
        assert c == 200, c
    times.sort()
    return {"override_create_median_ms": round(statistics.median(times), 2),
        "override_create_p99_ms": round(times[int(len(times) * 0.99) - 1], 2),
        "override_create_max_ms": round(times[-1], 2), "rss_after_overrides_mib": round(rss(), 1)}
asyncio.run(main())
PY
  kill "$PID"; wait "$PID" 2>/dev/null || true
  rm -rf "$DIR"
}
for run in $(seq 1 "$RUNS"); do
  A=$(phase "$POLLS" "$IDLE" 0)
  B=$(phase 0 0 "$OVERRIDES")
  python3 -c 'import json, sys; a, b = map(json.loads, sys.argv[1:]); b = {("fresh_idle_rss_mib" if k == "idle_rss_mib" else k): v for k, v in b.items()}; print(json.dumps(a | b))' "$A" "$B"
done

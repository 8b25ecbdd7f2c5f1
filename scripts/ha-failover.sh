#!/usr/bin/env bash
# Failover benchmark of HA mode (docs/ha.md): three `catchup run` instances on tansu, the leader
# killed with SIGKILL five times; prints the time from the kill to the new leader's first decision
# (median and max), at the default session timeout (10s). Needs tansu (~/.cargo/bin/tansu or $TANSU).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --features external --test integration ha_bench::failover_benchmark -- --ignored --nocapture

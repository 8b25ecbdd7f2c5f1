#!/usr/bin/env bash
# The whole test suite, installing what it needs when missing (idempotent: what is there is skipped).
# Used by CI (.ci/run) and by people: `scripts/test.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*"; }

# --- what the tests need -------------------------------------------------------------------------
# The control core needs only the Rust toolchain. Later components add their installs here
# (the Kafka-compatible broker, Python cross-check clients, Prometheus), each skipped when present.
need_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust (https://rustup.rs), then rerun" >&2
    exit 1
  fi
  for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
      log "installing $component"
      rustup component add "$component"
    fi
  done
}

need_rust

# --- checks --------------------------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
log "policy check on the shipped policies"
cargo run --quiet -- policy check policies/*.toml
log "cargo test (unit, property and integration tests)"
cargo test --quiet --lib --bins --tests

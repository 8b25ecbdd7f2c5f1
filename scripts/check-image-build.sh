#!/usr/bin/env bash
# Checks the container recipe without a Docker engine: copies exactly what docker/Dockerfile's
# build stage COPYs (honouring .dockerignore's target/ exclusion) into an empty directory, runs the
# build stage's cargo command there, and checks that the binary needs no shared library beyond the
# distroless cc-debian12 runtime's (glibc, libgcc_s, libssl3/libcrypto3) and answers --version.
# Usage: scripts/check-image-build.sh   (reuses target/ for dependencies; a few minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

# The build stage's COPY sources, in order (destination paths mirror them).
mapfile -t sources < <(awk '/^FROM .* AS build/{b=1; next} /^FROM /{b=0} b && /^COPY /{for(i=2;i<NF;i++) print $i}' docker/Dockerfile)
for s in "${sources[@]}"; do
  tar -C "$root" --exclude='target' -cf - "$s" | tar -C "$ctx" -xf -
done
echo "== context: ${sources[*]}"

# The build stage's command, with the dependency cache of this checkout.
(cd "$ctx" && CARGO_TARGET_DIR="$root/target" cargo build --release --locked --bin catchup)
bin="$root/target/release/catchup"

allowed='^(linux-vdso|/lib64/ld-linux|ld-linux|libc\.so|libm\.so|libgcc_s\.so|libssl\.so\.3|libcrypto\.so\.3|libpthread\.so|libdl\.so|librt\.so)'
extra=$(ldd "$bin" | awk '{print $1}' | grep -Ev "$allowed" || true)
if [ -n "$extra" ]; then
  echo "the binary needs libraries the distroless runtime lacks: $extra" >&2
  exit 1
fi
echo "== shared libraries: $(ldd "$bin" | awk '{print $1}' | tr '\n' ' ')"
"$bin" --version
echo "== the build stage builds from exactly the copied context"

#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine (as root) or a developer's.
# Installs what the tests need when it is missing, then builds and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

# shellcheck source=scripts/deps.sh
. scripts/deps.sh
ensure_rust
ensure_debian_binaries

export UCSPI_DJB_BIN="$top/.ext/ucspi-tcp/usr/bin"
export UCSPI_FEFE_BIN="$top/.ext/ucspi-tcp-ipv6/usr/bin"

# Extra setup that individual test groups need (databases, services) lives in
# scripts/test.d/*.sh; each may export variables and register cleanups.
cleanups=()
on_exit() { local c; for c in "${cleanups[@]:-}"; do [ -n "$c" ] && eval "$c" || true; done; }
trap on_exit EXIT
if [ -d scripts/test.d ]; then
  for f in scripts/test.d/*.sh; do
    [ -e "$f" ] || continue
    # shellcheck disable=SC1090
    . "$f"
  done
fi

cargo build --workspace --all-targets --locked 2>&1
cargo build --workspace --release --locked 2>&1
# The fuzz targets (their own workspace, run with nightly by scripts/fuzz.sh) must keep
# compiling: a stable check of them, with libFuzzer's C++ built by its build script.
apt_install g++
cargo check --manifest-path fuzz/Cargo.toml --bins --locked 2>&1
cargo test --workspace --locked --no-fail-fast -- --test-threads="${TEST_THREADS:-2}" 2>&1

#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, checks formatting and lints,
# runs the unit and integration tests, checks conservation against capinfos over pcaps/
# (and ../shared/corpus/ndpi when present), and runs one real-client lab scenario end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
# Tests need optimised code, not link-time optimisation or debug info: without them the ~20
# test binaries link several times faster. (`cargo build --release` alone keeps Cargo.toml's.)
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_DEBUG=0
SECONDS=0
step() { echo "test: $* (${SECONDS}s)"; }
bash scripts/deps.sh
step "formatting"
cargo fmt --all -- --check
step "clippy"
cargo clippy --all-targets --quiet -- -D warnings
step "release build"
cargo build --release --quiet
step "conservation"
scripts/conservation.sh
if [ "$(id -u)" -eq 0 ] && [ -x lab/ci-smoke.sh ]; then
  step "lab smoke test"
  lab/ci-smoke.sh --bin target/release/bittap
else
  echo "test: lab smoke test skipped (needs root for network namespaces)"
fi
step "cargo test"
cargo test --release
# Overflow and `unsafe` preconditions are checked only with debug assertions: the property
# tests of hostile input and the unit tests run on a debug build too (issue 18).
step "property tests, debug build"
cargo test --quiet --lib --test time_extremes --test property
if cargo fuzz --version >/dev/null 2>&1; then
  step "fuzz targets, ${BITTAP_FUZZ_SECONDS:-5} s each from their seeds"
  bash fuzz/run.sh --seconds "${BITTAP_FUZZ_SECONDS:-5}"
else
  echo "test: fuzz step skipped (cargo-fuzz not installed; scripts/deps.sh installs it)"
fi
step "done"

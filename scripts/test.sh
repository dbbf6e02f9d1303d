#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, checks formatting and lints,
# runs the unit and integration tests, checks conservation against capinfos over pcaps/
# (and ../shared/corpus/ndpi when present), and runs one real-client lab scenario end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo build --release --quiet
scripts/conservation.sh
if [ "$(id -u)" -eq 0 ] && [ -x lab/ci-smoke.sh ]; then
  lab/ci-smoke.sh --bin target/release/bittap
else
  echo "test: lab smoke test skipped (needs root for network namespaces)"
fi
cargo test --release

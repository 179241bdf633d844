#!/usr/bin/env bash
# Runs every test against the real parts: starts them first (scripts/testbed.sh).
# With CI=true, a test that cannot reach Docker or the registry fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! eval "$(scripts/testbed.sh)"; then
  if [ "${CI:-}" = true ]; then echo "test: the testbed did not start" >&2; exit 1; fi
  echo "test: !!! the testbed did not start; tests that need Docker will be SKIPPED !!!" >&2
fi
python3 scripts/check-cycles.py
# The habits: formatted, and no warning clippy finds.
cargo fmt --check
cargo clippy --workspace --all-targets -q -- -D warnings
# No function over 80 lines (clippy.toml) outside tests and the bench: a reader holds
# each one whole.
cargo clippy --workspace --lib --bins --exclude slipway-bench -q -- -D warnings -W clippy::too_many_lines
cargo test --workspace --all-targets --no-fail-fast "$@"
cargo test --workspace --doc
# The build tests once more on the engine's classic builder: builds behave the same on both.
SLIPWAY_BUILDER=classic cargo test -p slipway-cli --test exec_e2e --test acr_docs_e2e --test daemon_e2e \
  --test credentials_e2e --no-fail-fast "$@"
# A short fuzz smoke of every parser of untrusted input, with the known findings replayed.
scripts/fuzz.sh "${SLIPWAY_FUZZ_SECONDS:-10}"

#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test (unit, property, end-to-end, and the
# ONNX Runtime oracle). Installs what it needs by itself (a Python venv with onnxruntime).
set -euo pipefail
cd "$(dirname "$0")/.."

# Reuse one build directory across clones (CI builds from a fresh clone each time).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quantbench/target}"

# Python oracle environment (ONNX Runtime), created or refreshed when the pins change.
source scripts/python-env.sh
echo "python oracle: $QB_PYTHON"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# One build of everything, with one feature set: the unit tests, the tidy test, the end-to-end
# tests (the quantbench package's `e2e` test, which makes cargo build the binary it runs) and the
# tests crate's binaries (fuzz, benchmarks), which cargo builds for its integration test.
cargo test --workspace --locked

# In CI (CI=true), fuzz the loaders of untrusted files (model, npz, npy, recipe) for a bounded
# time: QB_FUZZ_SECONDS in all (default 240), shared equally by the four targets, round robin.
# The fuzz binary is the one `cargo test` just built (the core and every dependency build at
# opt-level 2); it is run directly, as `cargo run -p` would resolve features anew. Any panic,
# huge allocation or hang fails the run; reproducers are saved under $CARGO_TARGET_DIR/fuzz-crashes.
if [[ "${CI:-}" == "true" ]]; then
  "$CARGO_TARGET_DIR/debug/fuzz" all --seconds "${QB_FUZZ_SECONDS:-240}"
fi

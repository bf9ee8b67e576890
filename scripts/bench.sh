#!/usr/bin/env bash
# The benchmark: QuantBench vs ONNX Runtime's quantize_static on every sample model, memory at 1x
# and 8x calibration samples, simulated throughput and incremental latency, and the real-world corpus
# (tests/oracle/bench_corpus.py). Writes BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quantbench/target}"
source scripts/python-env.sh
# The headless CLI only (no GUI feature: no eframe/wgpu to build), and the simulation benchmark, in
# one cargo call: dependency features are then unified once (two calls would build tract twice).
cargo build -p quantbench --no-default-features --bin quantbench -p quantbench-tests --bin bench_simulate --locked
"$QB_PYTHON" tests/oracle/bench.py "$CARGO_TARGET_DIR/debug/quantbench" "$CARGO_TARGET_DIR/debug/bench_simulate" BENCHMARKS.md

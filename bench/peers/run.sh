#!/usr/bin/env bash
# The example rules' decision in payrules (fresh and warm instances), GoRules zen-engine,
# Rhai and native Rust, side by side (see src/main.rs and BENCHMARKS.md, "The peers").
#
#   bench/peers/run.sh [ROUNDS]
#
# Its own workspace, built by neither CI nor the README's commands. It builds into the
# main workspace's target directory, so what both build alike (wasmtime, payrules) is
# built once. Needs the wasm32-wasip2 target (rustup target add wasm32-wasip2).
set -euo pipefail
cd "$(dirname "$0")"
CARGO_TARGET_DIR=../../target exec cargo run --release --quiet -- "$@"

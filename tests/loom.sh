#!/usr/bin/env bash
# Runs the loom models of el2's cross-core mailbox protocol
# (el2/src/mailbox/loom_tests.rs): every interleaving of the cores within
# each model's bounds. Ends with each model's count of explored
# interleavings and the wall time. Builds into target/loom, so the normal
# build's artifacts are not invalidated by --cfg loom.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=target/loom
export RUSTFLAGS="--cfg loom"
# The models need speed, not the firmware's size: no LTO, no debug info
# (halves the cold build; only this script's target dir is affected).
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_DEBUG=false
export CARGO_PROFILE_RELEASE_OPT_LEVEL=3 CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
status=0
# One test at a time: the models are bound by loom's per-execution thread
# set-up (system time), which two models in one process only contend for.
cargo test -p el2 --lib --release -- loom --nocapture --test-threads=1 2>&1 | tee "$log" || status=$?
echo
echo "loom interleavings explored:"
grep -o 'loom model .*' "$log" | sed 's/^loom model /  /' || true
echo "loom: wall time $(($(date +%s) - start)) s (build included)"
exit "$status"

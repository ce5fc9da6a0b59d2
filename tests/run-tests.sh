#!/usr/bin/env bash
# Runs every test (host unit tests, the loom models, then the QEMU
# integration tests with the test guest and with Linux) and ends with one
# line that sums them up: "tests: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test -p el2 --lib --test fuzz --test register_access 2>&1 | tee -a "$log" || status=1
cargo test -p guest-api 2>&1 | tee -a "$log" || status=1
# The snapshot writer, QEMU's exec-log parser, and the ETE encoders (the
# exceptions-only and the instruction one) decoded by OpenCSD's trc_pkt_lister.
cargo test -p runner --release --lib --test decode --test insn_decode 2>&1 | tee -a "$log" || status=1
# Every interleaving (within bounds) of the cross-core request protocol.
tests/loom.sh 2>&1 | tee -a "$log" || status=1
# QEMU under TCG: at most two machines at once on a two-core host.
RUST_TEST_THREADS=${RUST_TEST_THREADS:-2} cargo test -p runner --release --test qemu 2>&1 | tee -a "$log" || status=1
# The instruction source against QEMU's own log of what the guest executed.
cargo test -p runner --release --test insn_oracle 2>&1 | tee -a "$log" || status=1
# Isolation: the hostile guest against QEMU's own machine (README, "Isolation").
cargo test -p runner --release --test isolation 2>&1 | tee -a "$log" || status=1
# make bench still measures and its figures keep their order (2 cores).
cargo test -p runner --release --test bench 2>&1 | tee -a "$log" || status=1
# Debian's Linux as the guest (make test-linux), one machine at a time.
cargo test -p runner --release --test linux -- --test-threads 1 2>&1 | tee -a "$log" || status=1
passed=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$log" | awk '{s+=$6} END {print s+0}')
if [ "$passed" -eq 0 ]; then status=1; fi
echo "tests: $passed passed, $failed failed"
exit $status

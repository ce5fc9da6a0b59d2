#!/usr/bin/env bash
# Builds the test guest and runs it on bare QEMU (no hypervisor), loaded the
# way the runner loads it: DTB at 0x4400_0000, image at 0x4420_0000.
#
#   tests/guest/bare-qemu.sh [CPUS] [BOOTARGS]
#   tests/guest/bare-qemu.sh 4 "test=smp resume-selftest"
#
# Without the hypervisor, hyp-calls and ping fail (nothing answers the
# hypervisor's calls) and hypmem finds ordinary RAM; everything else must pass.
# QEMU's `-device loader` start passes no DTB in x0: the guest then uses
# 0x4400_0000. QEMU's PSCI is reached with HVC here (the DTB says so).
set -euo pipefail
cpus=${1:-4}
bootargs=${2:-test=smp}
root=$(cd "$(dirname "$0")/../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-/tmp/target-guest}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

(cd "$root" && CARGO_TARGET_DIR=$target_dir cargo build -q -p test-guest --release --target aarch64-unknown-none)
aarch64-linux-gnu-objcopy -O binary "$target_dir/aarch64-unknown-none/release/test-guest" "$out/guest.bin"
qemu-system-aarch64 -machine "virt,gic-version=3,dumpdtb=$out/guest.dtb" -cpu max -smp "$cpus" -m 1G >/dev/null 2>&1
fdtput -t s "$out/guest.dtb" /chosen bootargs "$bootargs"
status=0
timeout 120 qemu-system-aarch64 -machine virt,gic-version=3 -cpu max -smp "$cpus" -m 1G \
    -nographic -semihosting \
    -device "loader,file=$out/guest.bin,addr=0x44200000,force-raw=on" \
    -device "loader,file=$out/guest.dtb,addr=0x44000000,force-raw=on" \
    -device loader,addr=0x44200000,cpu-num=0 || status=$?
echo "exit status: $status"
exit "$status"

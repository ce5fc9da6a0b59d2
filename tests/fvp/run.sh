#!/usr/bin/env bash
# make test-fvp: the test guest's trace-data scenario on Arm's FVP Base RevC
# AEMvA with ETE, TRBE and FEAT_TRF, under TF-A's BL31 with the hypervisor
# as BL33, decoded by OpenCSD with the real trace unit's ID registers.
#
# NEVER RUN HERE: no FVP can be installed on this project's machines, so
# only the skip path below has run. What has run is everything up to the
# model: the FVP-linked images, this layout and the device-tree preparation
# (tests/runner/src/fvp.rs), booted on QEMU virt with 3 GiB of RAM at these
# very addresses (tests/runner/tests/qemu.rs, fvp_layout_boots_on_qemu).
# Untested: the FVP's own devices, TF-A's hand-over, the real ETE/TRBE, and
# the model parameters below.
#
# Needs (environment):
#   FVP_BASE   the model binary (FVP_Base_RevC-2xAEMvA)
#   TFA_BL31   TF-A's bl31.bin, built for the reset-to-BL31 flow with the
#              hypervisor as a preloaded Linux-style BL33:
#                make PLAT=fvp RESET_TO_BL31=1 ARM_LINUX_KERNEL_AS_BL33=1 \
#                     PRELOADED_BL33_BASE=0x80080000 ARM_PRELOADED_DTB_BASE=0x82000000 \
#                     FVP_CLUSTER_COUNT=1 \
#                     ENABLE_SYS_REG_TRACE_FOR_NS=1 ENABLE_TRBE_FOR_NS=1 \
#                     ENABLE_TRF_FOR_NS=1 bl31
#              (BL31 enters BL33 at EL2 with x0 = ARM_PRELOADED_DTB_BASE.)
#   FVP_DTB    the FVP's device tree, as TF-A builds it for the model
#              (build/fvp/<type>/fdts/fvp-base-gicv3-psci.dtb, or the -1t
#              variant for a model with shifted affinities): its cpu nodes'
#              reg must be the MPIDRs the model reports, or the hypervisor
#              stops with "the boot core is not the first CPU".
# Optional:
#   FVP_CORES    cores of cluster 0 (default 4); the trees keep that many
#   TFA_BL31_ADDR  where bl31.bin is loaded and every core resets (0x04001000)
#   FVP_TIMEOUT  seconds (default 1200); FVP_ARGS: more model arguments
#
# What goes where (tests/runner/src/fvp.rs; QEMU's layout moved from RAM at
# 0x4000_0000 to FVP DRAM at 0x8000_0000):
#   bl31.bin                 0x04001000  (RVBAR of every core)
#   build/el2-fvp.bin        0x80080000  (PRELOADED_BL33_BASE)
#   hypervisor.dtb           0x82000000  (ARM_PRELOADED_DTB_BASE): FVP_DTB +
#                                        /chosen/bootargs "guest.entry=0x84200000 guest.dtb=0x84000000"
#   guest.dtb                0x84000000  FVP_DTB with memory 0x84000000.. end of
#                                        that DRAM range (0xff000000), GIC ITS disabled,
#                                        bootargs "test=tracedata"
#   build/test-guest-fvp.bin 0x84200000
#
# Pass: the guest prints "guest: DONE ... 0 failed, exit status 0" and no
# FAIL/FATAL/PANIC, then `runner --bin fvp decode` finds each core's
# "trace unit ids: backend=ete ..." line (TRCIDR0/1/2/8, TRCDEVARCH),
# writes the CoreSight snapshot with them and OpenCSD decodes every core
# without errors, core 0 with a Call exception per HVC. The run ends when
# the guest is done (the model is then stopped), so it does not depend on
# the model's semihosting exit status.
#
# Without FVP_BASE it prints a SKIPPED line and exits 77: skipped, never
# passed.
set -uo pipefail
if [ -z "${FVP_BASE:-}" ]; then
    echo "test-fvp: SKIPPED: FVP_BASE not set (see tests/fvp/run.sh and the README)"
    exit 77
fi
for v in TFA_BL31 FVP_DTB; do
    if [ -z "${!v:-}" ] || [ ! -f "${!v}" ]; then
        echo "test-fvp: FAILED: $v not set or not a file"
        exit 1
    fi
done
cd "$(dirname "$0")/../.."
cores=${FVP_CORES:-4}
bl31_addr=${TFA_BL31_ADDR:-0x04001000}
work=$(mktemp -d)
model=
cleanup() {
    [ -n "$model" ] && kill "$model" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

cargo build -q -p runner --release --bin fvp || exit 1
plan=$(target/release/fvp prepare --dtb "$FVP_DTB" --out "$work" --cores "$cores" \
    --bootargs "test=tracedata") || { echo "test-fvp: FAILED: device trees"; exit 1; }
eval "$plan"
echo "test-fvp: guest RAM $GUEST_RAM"

rvbar=()
for ((i = 0; i < cores; i++)); do
    rvbar+=(-C "cluster0.cpu$i.RVBAR=$bl31_addr")
done
log="$work/console.log"
: >"$log"
# shellcheck disable=SC2086 # FVP_ARGS is a list of words
"$FVP_BASE" \
    -C cluster0.NUM_CORES="$cores" -C cluster1.NUM_CORES=0 \
    "${rvbar[@]}" \
    -C cluster0.has_arm_v9-0=1 \
    -C cluster0.has_ete=1 \
    -C cluster0.has_trbe=1 \
    -C cluster0.has_self_hosted_trace_extension=2 \
    -C bp.secure_memory=0 \
    -C pctl.startup=0.0.0.0 \
    -C cache_state_modelled=0 \
    -C bp.pl011_uart0.out_file=- \
    -C bp.pl011_uart0.unbuffered_output=1 \
    -C bp.terminal_0.start_telnet=0 -C bp.terminal_1.start_telnet=0 \
    -C bp.terminal_2.start_telnet=0 -C bp.terminal_3.start_telnet=0 \
    -C bp.vis.disable_visualisation=1 \
    --data cluster0.cpu0="$TFA_BL31@$bl31_addr" \
    --data cluster0.cpu0="$HYPERVISOR_IMAGE@$HYPERVISOR_ADDR" \
    --data cluster0.cpu0="$HYPERVISOR_DTB@$HYPERVISOR_DTB_ADDR" \
    --data cluster0.cpu0="$GUEST_DTB@$GUEST_DTB_ADDR" \
    --data cluster0.cpu0="$GUEST_IMAGE@$GUEST_ADDR" \
    ${FVP_ARGS:-} >"$log" 2>&1 &
model=$!

# Wait for the guest's verdict, a refusal, the model's end or the timeout.
deadline=$((SECONDS + ${FVP_TIMEOUT:-1200}))
tail -f "$log" --pid="$model" & # show the console as it comes
while kill -0 "$model" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
    grep -q "guest: DONE\|FATAL\|PANIC" "$log" && break
    sleep 1
done
sleep 2 # let the last lines out
kill "$model" 2>/dev/null
wait "$model" 2>/dev/null
model=

if ! grep -q "guest: DONE .* 0 failed, exit status 0" "$log" \
    || grep -q "guest: FAIL\|FATAL\|PANIC" "$log"; then
    grep -q "guest: DONE" "$log" || echo "test-fvp: no verdict from the guest (timeout or model exit)"
    echo "test-fvp: FAILED"
    exit 1
fi
if ! target/release/fvp decode --log "$log" --out "$work/snapshot" --cores 2; then
    echo "test-fvp: FAILED (decode)"
    exit 1
fi
echo "test-fvp: PASSED"
exit 0

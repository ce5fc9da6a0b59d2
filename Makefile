# The trace-manager hypervisor: build, run and test on QEMU.
#
#   make run    build everything and boot the hypervisor with the bundled
#               test guest on QEMU (4 cores), with a summary at the end
#   make test   host tests, then QEMU tests on 1, 2, 4 and 8 cores, then
#               Debian's Linux as the guest (make test-linux)
#   make lint   cargo fmt --check and clippy with warnings as errors
#   make loom   exhaustive interleavings of the cross-core request protocol
#               (full bounds; `make test` runs the ring model with a preemption
#               bound of 2 instead of 3)
#   make bench  costs against their baselines (target/bench/)
#   make stress the trace stress at length (1,000,000 operations on 8 cores)
#   make run-linux  Debian's arm64 Linux kernel as the guest (4 cores)
#
# Both install what they need first (`make deps`): the Rust targets through
# rustup, and QEMU, dtc/fdtput and binutils for aarch64 through apt.

CARGO        ?= cargo
BUILD        := build
HYP_TARGET   := aarch64-unknown-none-softfloat
GUEST_TARGET := aarch64-unknown-none
OBJCOPY      := aarch64-linux-gnu-objcopy
SUDO         := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# command:package pairs that `deps` makes sure of.
APT_TOOLS    := qemu-system-aarch64:qemu-system-arm fdtput:device-tree-compiler \
                $(OBJCOPY):binutils-aarch64-linux-gnu trc_pkt_lister:libopencsd-bin

# Formatting and clippy (warnings are errors) for the host crates and for
# both bare-metal targets; `.ci/run` runs it before `make test`.
lint: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy -q -p el2 -p guest-api -p runner --all-targets -- -D warnings
	$(CARGO) clippy -q -p el2 --target $(HYP_TARGET) -- -D warnings
	$(CARGO) clippy -q -p el2 --target $(HYP_TARGET) --features fvp --target-dir target/fvp -- -D warnings
	$(CARGO) clippy -q -p test-guest --target $(GUEST_TARGET) -- -D warnings

.PHONY: all deps lint images bench run run-linux test-linux linux-boot-time linux-guest test test-host test-qemu test-fvp loom stress clean

all: images

deps:
	@missing=""; for t in $(APT_TOOLS); do \
	    command -v "$${t%%:*}" >/dev/null 2>&1 || missing="$$missing $${t##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "deps: installing$$missing"; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@rustup target list --installed | grep -qx $(HYP_TARGET) && \
	 rustup target list --installed | grep -qx $(GUEST_TARGET) || \
	 rustup target add $(HYP_TARGET) $(GUEST_TARGET)

images: deps
	@mkdir -p $(BUILD)
	$(CARGO) build -q -p el2 --release --target $(HYP_TARGET)
	$(OBJCOPY) -O binary target/$(HYP_TARGET)/release/el2 $(BUILD)/el2.bin
	cp target/$(HYP_TARGET)/release/el2 $(BUILD)/el2.elf
	$(CARGO) build -q -p el2 --release --target $(HYP_TARGET) --features naive-strategy --target-dir target/naive
	$(OBJCOPY) -O binary target/naive/$(HYP_TARGET)/release/el2 $(BUILD)/el2-naive.bin
	$(CARGO) build -q -p el2 --release --target $(HYP_TARGET) --features bare-relay --target-dir target/bare
	$(OBJCOPY) -O binary target/bare/$(HYP_TARGET)/release/el2 $(BUILD)/el2-bare.bin
	$(CARGO) build -q -p test-guest --release --target $(GUEST_TARGET)
	$(OBJCOPY) -O binary target/$(GUEST_TARGET)/release/test-guest $(BUILD)/test-guest.bin
	@# The same hypervisor and guest linked for FVP Base's DRAM (0x8000_0000):
	@# el2-fvp.bin at 0x8008_0000, test-guest-fvp.bin at 0x8420_0000.
	$(CARGO) build -q -p el2 --release --target $(HYP_TARGET) --features fvp --target-dir target/fvp
	$(OBJCOPY) -O binary target/fvp/$(HYP_TARGET)/release/el2 $(BUILD)/el2-fvp.bin
	$(CARGO) build -q -p test-guest --release --target $(GUEST_TARGET) --features fvp --target-dir target/fvp
	$(OBJCOPY) -O binary target/fvp/$(GUEST_TARGET)/release/test-guest $(BUILD)/test-guest-fvp.bin
	@ls -l $(BUILD)/el2.bin $(BUILD)/test-guest.bin | awk '{print "image", $$9, $$5, "bytes"}'

run: images
	$(CARGO) run -q -p runner --release -- --cores 4

# Debian's stock arm64 kernel with a busybox initramfs as the guest, 4 cores:
# /init checks CPUs, cpuidle and CPU hotplug, then powers off. LINUX_FLAVOUR
# picks the kernel package: cloud-arm64 (linux-image-cloud-arm64, the
# default, in build/linux) or arm64 (linux-image-arm64, the generic kernel,
# in build/linux-arm64); e.g. `make test-linux LINUX_FLAVOUR=arm64`.
# Fetched through a project-local apt state under that directory (see
# tests/linux/README.md); LINUX_ARGS passes options (e.g. --shell, --bare,
# --no-idle, --debug, --switches test.powerdown).
# The tracemgr module (guest-api/linux) is built when aarch64-linux-gnu-gcc
# is there (apt-get install gcc-aarch64-linux-gnu) and goes into the
# initramfs as /lib/modules/tracemgr.ko; LINUX_ARGS=--tracemgr loads and
# exercises it.
LINUX_ARGS ?=
LINUX_FLAVOUR ?= cloud-arm64
LINUX_DIR := $(BUILD)/linux$(if $(filter cloud-arm64,$(LINUX_FLAVOUR)),,-$(LINUX_FLAVOUR))
# The runner and the Linux tests find the kernel and initramfs here.
LINUX_ENV := LINUX_FLAVOUR=$(LINUX_FLAVOUR) TM_LINUX_DIR=$(abspath $(LINUX_DIR))
# Debian's perf (linux-perf:arm64) with its shared objects, the CoreSight
# modules and a workload with one hot function (tests/linux/workload) go
# into the initramfs too; LINUX_ARGS=--perf runs perf in the guest. The
# workload is freestanding and static (no arm64 libc needed) and keeps its
# symbols for perf report.
WORKLOAD_CFLAGS := -O2 -g -static -nostdlib -ffreestanding -fno-builtin \
                   -fno-tree-loop-distribute-patterns -fno-stack-protector -no-pie -Wall -Wextra
linux-guest: deps
	@command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || { \
	    echo "linux-guest: installing gcc-aarch64-linux-gnu (to build the Linux module)"; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends gcc-aarch64-linux-gnu; }
	@$(LINUX_ENV) tests/linux/fetch.sh $(LINUX_DIR)
	@if command -v aarch64-linux-gnu-gcc >/dev/null; then \
	    $(LINUX_ENV) tests/linux/build-module.sh $(LINUX_DIR) >$(LINUX_DIR)/build-module.log 2>&1 \
	    || { tail -20 $(LINUX_DIR)/build-module.log; exit 1; }; \
	 else echo "linux-guest: no aarch64-linux-gnu-gcc, tracemgr.ko not built"; \
	    rm -f $(LINUX_DIR)/tracemgr.ko; fi
	@$(LINUX_ENV) tests/linux/fetch-perf.sh $(LINUX_DIR) >$(LINUX_DIR)/fetch-perf.log 2>&1 \
	    || { tail -20 $(LINUX_DIR)/fetch-perf.log; exit 1; }
	@tail -1 $(LINUX_DIR)/fetch-perf.log
	aarch64-linux-gnu-gcc $(WORKLOAD_CFLAGS) -o $(LINUX_DIR)/workload tests/linux/workload/workload.c
	@aarch64-linux-gnu-readelf -SW $(LINUX_DIR)/workload | \
	    awk '{ for (i = 1; i <= NF; i++) if ($$i == ".text") print $$(i + 2), $$(i + 4) }' \
	    > $(LINUX_DIR)/workload.text
	@ko=; [ -f $(LINUX_DIR)/tracemgr.ko ] && ko="$(LINUX_DIR)/tracemgr.ko:lib/modules/tracemgr.ko \
	    $(LINUX_DIR)/tracemgr_cs.ko:lib/modules/tracemgr_cs.ko"; \
	python3 tests/linux/mkinitramfs.py $(LINUX_DIR)/busybox/bin/busybox \
	    tests/linux/init.sh $(LINUX_DIR)/initramfs.cpio $$ko \
	    tests/linux/csperf.sh:csperf.sh \
	    $(LINUX_DIR)/perf-root:/ $(LINUX_DIR)/kmod-root:/ $(LINUX_DIR)/workload:bin/workload \
	    $(LINUX_DIR)/workload.text:bin/workload.text

run-linux: images linux-guest
	$(LINUX_ENV) $(CARGO) run -q -p runner --release --bin linux -- --cores 4 $(LINUX_ARGS)

# Linux with the tracemgr module (tests/runner/tests/linux.rs, also part of
# `make test`): every CPU online, the sysfs controls on every CPU, then from
# CPU0 trace enabled and disabled on every CPU while the others idle through
# CPU_SUSPEND and are unplugged and replugged 5 times each, mode == hardware
# after every step; once with firmware returning from each power-down, once
# with each power-down a real warm boot (test.powerdown); and once with
# Debian's perf (--perf: cs_etm PMU, perf list, perf record/report).
test-linux: images linux-guest
	$(LINUX_ENV) $(CARGO) test -p runner --release --test linux -- --test-threads 1 --nocapture

# Boot time to /init of the same kernel on bare QEMU and under the
# hypervisor, both with -icount and cpuidle.off=1.
linux-boot-time: images linux-guest
	$(LINUX_ENV) $(CARGO) run -q -p runner --release --bin linux -- --cores 4 --boot-time

test: images linux-guest
	@tests/run-tests.sh

test-host: deps
	$(CARGO) test -p el2 -p guest-api --lib

test-qemu: images
	$(CARGO) test -p runner --release --test qemu --test insn_oracle

# The trace-data scenario on FVP Base RevC AEMvA with ETE/TRBE/TRF under
# TF-A's BL31 (paths from FVP_BASE, TFA_BL31, FVP_DTB; see tests/fvp/run.sh),
# with build/el2-fvp.bin and build/test-guest-fvp.bin. Never run here.
# Without an FVP: "test-fvp: SKIPPED" and exit status 77, never a pass.
test-fvp: images
	@tests/fvp/run.sh

loom: deps
	@TM_LOOM_FULL=1 tests/loom.sh

# Costs against their baselines in one run (tests/runner/src/bin/bench.rs):
# QEMU with -icount, the guest's PMU counting EL2 instructions, on 1, 2, 4
# and 8 cores, with the hypervisor and with it built without the trace
# manager (build/el2-bare.bin). Writes target/bench/results.json and
# table.md, and draws target/bench/cost.png (Debian's python3-matplotlib).
bench: images
	@/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || { \
	    echo "bench: installing python3-matplotlib (to draw the plot)"; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends python3-matplotlib; }
	$(CARGO) run -q -p runner --release --bin bench
	/usr/bin/python3 tests/bench/plot.py target/bench/results.json target/bench/cost.png

# The trace stress at length: 8 cores x STRESS_OPS operations (1,000,000 in
# all by default), TRACE_STATUS checked after every one, decided by the
# guest's exit status and its summary (ops, violations, errors). It runs
# under -icount shift=STRESS_ICOUNT,sleep=off: QEMU then runs the vCPUs in
# turn, switching at instruction-count boundaries (mid-EL2 code included),
# which is repeatable and about 50 times faster on a 2-core host than 8
# threads spinning at each other; `make test`'s stress runs use real
# threads instead. STRESS_ICOUNT= (empty) runs without -icount.
STRESS_OPS     ?= 125000
STRESS_TIMEOUT ?= 21600
STRESS_ICOUNT  ?= 0
stress: images
	TM_STRESS_OPS=$(STRESS_OPS) TM_STRESS_TIMEOUT=$(STRESS_TIMEOUT) TM_STRESS_ICOUNT=$(STRESS_ICOUNT) \
	    $(CARGO) test -p runner --release --test qemu -- --ignored --nocapture trace_stress_long

clean:
	$(CARGO) clean
	rm -rf $(BUILD)

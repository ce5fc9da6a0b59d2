//! The bundled test guest: a small EL1 kernel that checks, on every core,
//! that the hypervisor gives a real guest what it needs — PSCI (CPU_ON,
//! CPU_OFF, CPU_SUSPEND, AFFINITY_INFO), the GICv3 CPU interface and
//! redistributors, the virtual timer, SGIs between cores, the hypervisor's
//! own calls (`guest_api::hyp`) and, in the `hypmem` scenario, that the
//! hypervisor's memory is out of the guest's reach.
//!
//! Boot protocol (like Linux on arm64): the image is loaded at 0x4420_0000
//! (0x8420_0000 when built for FVP Base, feature `fvp`) and entered at its first instruction at EL1h, MMU off, with x0 = the DTB.
//! `/chosen/bootargs` picks the scenario (`test=smp`, the default, or
//! `test=hypmem hypmem=<hex address>`; `test=fault` checks that an
//! unexpected exception ends the run with status 3; `test=trace [ops=N]
//! [expect-violations]` checks the trace manager: its ABI, the guest's
//! isolation from the trace hardware and a concurrency stress on every
//! core; `test=story` is the trace manager's demonstration for `make run`;
//! `test=bench` measures for `make bench`;
//! `test=grant probes=<addr>` tries every device of QEMU's own tree (see
//! grant.rs); `test=fuzz [seed=N] [calls=N]` is the seeded ABI fuzz and `test=hostile`
//! the hostile register, memory, GIC and argument probes, see `fuzz.rs` and
//! `hostile.rs`; `test=console` disables the UART and prints from every
//! core while the hypervisor logs, see `console_test.rs`; `test=offflood`
//! and `test=vanish` turn a core off while others send it requests, see
//! `vanish.rs`; `test=insntrace` runs a known program under instruction
//! trace for the runner's oracle, see `insntrace.rs`).
//! Results go to the PL011 as
//! `guest[cpuN] guest: PASS <check>` / `... guest: FAIL <check>: <why>`, and
//! the guest ends with semihosting SYS_EXIT, status 0 only if all passed.
//!
//! On the host this is an empty program, so that `cargo build` of the
//! workspace works everywhere.
#![cfg_attr(target_os = "none", no_std, no_main)]
// There is no allocator: failure messages travel as fixed inline buffers.
#![allow(clippy::result_large_err)]

#[cfg(target_os = "none")]
#[macro_use]
mod console;

#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod bench;
#[cfg(target_os = "none")]
mod calls;
#[cfg(target_os = "none")]
mod console_test;
#[cfg(target_os = "none")]
mod fuzz;
#[cfg(target_os = "none")]
mod gic;
#[cfg(target_os = "none")]
mod grant;
mod hostile;
#[cfg(target_os = "none")]
mod hypmem;
#[cfg(target_os = "none")]
mod insntrace;
#[cfg(target_os = "none")]
mod irq;
#[cfg(target_os = "none")]
mod isolation;
#[cfg(target_os = "none")]
mod mmio;
#[cfg(target_os = "none")]
mod mmu;
#[cfg(target_os = "none")]
mod platform;
#[cfg(target_os = "none")]
mod report;
#[cfg(target_os = "none")]
mod smp;
#[cfg(target_os = "none")]
mod stepdebug;
#[cfg(target_os = "none")]
mod story;
#[cfg(target_os = "none")]
mod stress;
#[cfg(target_os = "none")]
mod suite;
#[cfg(target_os = "none")]
mod timer;
#[cfg(target_os = "none")]
mod trace_calls;
#[cfg(target_os = "none")]
mod tracedata;
#[cfg(target_os = "none")]
mod tracesuite;
#[cfg(target_os = "none")]
mod trap;
#[cfg(target_os = "none")]
mod vanish;

#[cfg(not(target_os = "none"))]
fn main() {}

/// Exit statuses reported through semihosting.
#[cfg(target_os = "none")]
pub mod status {
    /// Every check passed.
    pub const PASS: u64 = 0;
    /// At least one check failed.
    pub const FAILED: u64 = 1;
    /// The guest could not run its scenario (bad DTB, bad bootargs).
    pub const SETUP: u64 = 2;
    /// An exception nobody expected.
    pub const EXCEPTION: u64 = 3;
    /// A Rust panic.
    pub const PANIC: u64 = 4;
}

/// The boot core's Rust entry, called by `_start` with the MMU on, `.bss`
/// zeroed and the boot stack set.
#[cfg(target_os = "none")]
extern "C" fn primary_main(dtb: u64) -> ! {
    let dtb = if dtb == 0 {
        // Started by something that passes no DTB (QEMU's `-device loader`
        // for bare-QEMU debugging): the runner's fixed DTB address.
        platform::DEFAULT_DTB
    } else {
        dtb
    };
    let plat = match platform::init(dtb) {
        Ok(p) => p,
        Err(e) => {
            println!("guest: FAIL setup: device tree at {dtb:#x}: {e}");
            arch::exit(status::SETUP);
        }
    };
    console::set_base(plat.uart);
    let Some(me) = plat.index_of(arch::mpidr()) else {
        println!(
            "guest: FAIL setup: boot core MPIDR {:#x} is not in /cpus",
            arch::mpidr()
        );
        arch::exit(status::SETUP);
    };
    arch::set_core_index(me);
    smp::set_boot_core(me);
    println!(
        "boot: {} cpu(s), GICD {:#x}, GICR {:#x}, UART {:#x}, PSCI via {}, bootargs {:?}",
        plat.ncpus,
        plat.gicd,
        plat.gicr,
        plat.uart,
        plat.psci_conduit.name(),
        plat.bootargs.unwrap_or("")
    );
    if plat.cpus_in_dtb > plat.ncpus {
        println!(
            "boot: the DTB lists {} cpus, using the first {}",
            plat.cpus_in_dtb, plat.ncpus
        );
    }
    if let Err(e) = gic::init_distributor() {
        println!("guest: FAIL setup: GIC distributor: {e}");
        arch::exit(status::SETUP);
    }
    if let Err(e) = smp::init_this_core() {
        println!("guest: FAIL setup: {e}");
        arch::exit(status::SETUP);
    }
    let status = match plat.scenario() {
        platform::Scenario::Smp { resume_selftest } => suite::run(resume_selftest),
        platform::Scenario::HypMem { addr } => hypmem::run(addr),
        platform::Scenario::Trace {
            ops,
            expect_violations,
            deadline_s,
        } => tracesuite::run(ops, expect_violations, deadline_s * 1000),
        platform::Scenario::Story => story::run(),
        platform::Scenario::Bench => bench::run(),
        platform::Scenario::TraceData => tracedata::run(),
        platform::Scenario::InsnTrace { core } => insntrace::run(core),
        platform::Scenario::StepDebug => stepdebug::run(),
        platform::Scenario::Fuzz { seed, calls } => fuzz::run(seed, calls),
        platform::Scenario::Hostile => hostile::run(),
        platform::Scenario::Grant { probes } => grant::run(probes),
        platform::Scenario::Console => console_test::run(),
        platform::Scenario::OffFlood => vanish::run_offflood(),
        platform::Scenario::Vanish => vanish::run_vanish(),
        platform::Scenario::Fault => {
            println!("fault: executing UDF #0; the run must end with status 3");
            arch::udf()
        }
        platform::Scenario::Invalid(why) => {
            println!("guest: FAIL setup: bootargs: {why}");
            status::SETUP
        }
    };
    arch::exit(status);
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    arch::mask_irqs();
    println!("guest: FAIL panic: {info}");
    arch::exit(status::PANIC);
}

//! `test=console`: the guest does to its UART what it may do to a UART of
//! its own, and the hypervisor's log must not suffer for it. The boot core
//! disables the UART (UARTCR = 0), turns its FIFOs off and changes its
//! divisors; then every core prints [`LINES`] lines, and halfway through
//! each line makes an access the hypervisor faults and logs (with
//! `log=debug`: a load just below the guest's RAM, which stage 2 does not
//! map), then a hypercall. A hypervisor that shares the UART with its guest
//! prints its log line inside the guest's half-written one.
//!
//! The guest cannot see the console, so the verdict on it is the runner's
//! (`guest_console_neither_stalls_nor_garbles_the_hypervisors_log` in
//! `tests/runner/tests/qemu.rs`): every guest line and every hypervisor
//! line must appear, whole. Here each core checks that its loads aborted
//! and its hypercalls answered, and that it finished in time.

use core::arch::asm;

use guest_api::hyp;

use crate::arch;
use crate::console::Text;
use crate::report::{fail, Msg, Report, Subchecks};
use crate::smp::{self, Cmd};
use crate::trap;
use crate::{calls, mmio, platform, suite};

/// Lines each core prints.
pub const LINES: u64 = 40;
/// The text after `console: cpuN line I ` in every line; the runner's
/// test expects exactly this.
pub const PAYLOAD: &str = "the quick brown fox jumps over the lazy dog 0123456789";
/// Bound of the wait for each core's lines.
const WAIT_MS: u64 = 20_000;

/// PL011 registers the scenario reprograms.
const UARTIBRD: usize = 0x24;
const UARTFBRD: usize = 0x28;
const UARTLCR_H: usize = 0x2c;
const UARTCR: usize = 0x30;

/// Runs the scenario; the exit status.
pub fn run() -> u64 {
    let mut report = Report::new();
    report.check("cpu-on", suite::cpu_on());
    report.check("console", console());
    report.finish()
}

fn console() -> Result<(), Msg> {
    let mut s = Subchecks::new("console");
    let uart = platform::get().uart;
    // SAFETY: the UART the device tree gave the guest: its registers are
    // the guest's to program, and the guest's own output must keep working
    // (that is what is tested).
    unsafe {
        mmio::write32(uart + UARTCR, 0);
        mmio::write32(uart + UARTLCR_H, 0x60);
        mmio::write32(uart + UARTIBRD, 1);
        mmio::write32(uart + UARTFBRD, 0);
    }
    println!("console: UARTCR=0 LCR_H=0x60 IBRD=1 FBRD=0 written; {LINES} lines per core follow");
    let mut posted = [None; arch::MAX_CPUS];
    for i in smp::online_secondaries() {
        posted[i] = Some(smp::post(i, Cmd::Console, LINES));
    }
    s.add(lines(LINES));
    for (i, seq) in posted.iter().enumerate() {
        let Some(seq) = *seq else { continue };
        match smp::wait_done(i, seq, WAIT_MS) {
            Some(true) => {}
            Some(false) => s.fail(format_args!("cpu{i} failed its lines (see its output)")),
            None => s.fail(format_args!(
                "cpu{i} did not finish within {WAIT_MS} ms: {}",
                smp::progress(i, seq)
            )),
        }
    }
    s.result()
}

/// One core's part: `n` lines, each with a logged abort in its middle,
/// then a hypercall.
pub fn lines(n: u64) -> Result<(), Msg> {
    let me = arch::core_index();
    let below = platform::get().ram.0 - 8;
    let (first, rest) = PAYLOAD.split_at(PAYLOAD.len() / 2);
    for i in 0..n {
        let mut caught = None;
        let head = Text::<64>::format(format_args!("console: cpu{me} line {i} {first}"));
        crate::console::print_split(
            head.as_str(),
            || {
                // SAFETY: the load must abort (the catch skips it); it
                // reads, so even a hypervisor that let it through changes
                // nothing.
                caught = trap::catching(|| unsafe {
                    let v: u64;
                    asm!("mov {v}, xzr", "ldr {v}, [{a}]", v = out(reg) v, a = in(reg) below, options(nostack));
                    v
                })
                .1;
            },
            rest,
        );
        if caught.is_none() {
            fail!("line {i}: the load of {below:#x} did not abort");
        }
        match calls::hyp(hyp::ABI_VERSION, 0) {
            Ok(r) if r[0] == hyp::ABI_VERSION_VALUE => {}
            Ok(r) => fail!("line {i}: ABI_VERSION answered {:#x}", r[0]),
            Err(c) => fail!("line {i}: ABI_VERSION: {c}"),
        }
    }
    Ok(())
}

//! `test=hypmem hypmem=<addr>`: the hypervisor's memory must be out of the
//! guest's reach. A read and a write of `addr` must each raise a
//! synchronous external abort at EL1 (EC 0x25, DFSC 0x10, FAR = addr, WnR
//! telling read from write), after which the guest carries on.

use core::arch::asm;

use guest_api::hyp;

use crate::irq;
use crate::report::{fail, Msg, Report};
use crate::trap::{self, Caught};

/// EC: data abort taken without a change in exception level.
const EC_DATA_ABORT_SAME_EL: u64 = 0x25;
/// DFSC: synchronous external abort, not on a translation table walk.
const DFSC_SYNC_EXTERNAL: u64 = 0x10;
/// Written by the write probe, should it ever land.
const PATTERN: u64 = 0x6775_6573_7421_2121;

/// Runs the scenario; the exit status.
pub fn run(addr: u64) -> u64 {
    let mut report = Report::new();
    println!("hypmem: probing the hypervisor's memory at {addr:#x}");
    report.check("hypmem-read", probe(addr, false));
    report.check("hypmem-write", probe(addr, true));
    report.check("alive-after-abort", after());
    report.finish()
}

pub fn check_abort(addr: u64, write: bool, c: Caught) -> Result<(), Msg> {
    let iss = c.iss();
    let dfsc = iss & 0x3f;
    let wnr = (iss >> 6) & 1 == 1;
    if c.ec() != EC_DATA_ABORT_SAME_EL {
        fail!("EC {:#x}, want 0x25 (data abort at EL1): {c}", c.ec());
    }
    if dfsc != DFSC_SYNC_EXTERNAL {
        fail!("DFSC {dfsc:#x}, want 0x10 (synchronous external abort): {c}");
    }
    if c.far != addr {
        fail!("FAR_EL1 {:#x}, want {addr:#x}: {c}", c.far);
    }
    if wnr != write {
        fail!("WnR {}, want {}: {c}", wnr as u8, write as u8);
    }
    Ok(())
}

fn probe(addr: u64, write: bool) -> Result<(), Msg> {
    let a = addr as usize;
    let (value, caught) = if write {
        // SAFETY: the point of the test: this store must abort (the catch
        // skips it). Should the hypervisor let it through, it lands in
        // memory the guest was told is not its own: that is the failure
        // being tested for, and it is reported.
        trap::catching(|| unsafe {
            asm!("str {v}, [{a}]", v = in(reg) PATTERN, a = in(reg) a, options(nostack));
            0u64
        })
    } else {
        // SAFETY: as above, for a load; a skipped load leaves 0.
        trap::catching(|| unsafe {
            let v: u64;
            asm!("mov {v}, xzr", "ldr {v}, [{a}]", v = out(reg) v, a = in(reg) a, options(nostack));
            v
        })
    };
    let what = if write { "write" } else { "read" };
    match caught {
        None if write => fail!("the {what} of {addr:#x} did not fault"),
        None => fail!("the {what} of {addr:#x} did not fault (read {value:#x})"),
        Some(c) => {
            check_abort(addr, write, c)?;
            println!("hypmem: the {what} of {addr:#x} aborted as it should: {c}");
            Ok(())
        }
    }
}

fn after() -> Result<(), Msg> {
    match crate::calls::hyp(hyp::ABI_VERSION, 0) {
        Ok(r) if r[0] == hyp::ABI_VERSION_VALUE => {}
        Ok(r) => fail!(
            "ABI_VERSION after the aborts: {:#x}, want {:#x}",
            r[0],
            hyp::ABI_VERSION_VALUE
        ),
        Err(c) => fail!("ABI_VERSION after the aborts: {c}"),
    }
    irq::take_timer_irqs(1)
}

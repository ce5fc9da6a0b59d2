//! `test=stepdebug`: the guest's own debug while the hypervisor steps it.
//!
//! With `trace.source=insn` the hypervisor single-steps a tracing core
//! (MDCR_EL2.TDE routes the core's debug exceptions and debug-register
//! accesses to EL2). The guest must not notice, except in speed. On the
//! boot core, with its trace enabled (EL1):
//!
//! 1. MDSCR_EL1 reads back what the guest wrote (TDCC, bit 12, flipped and
//!    restored), not the hypervisor's stepping value (SS, bit 0, stays
//!    clear in what the guest reads);
//! 2. a BRK reaches the guest's own EL1 vector as EC 0x3C with its
//!    comment in the ISS and ELR_EL1 at the BRK;
//! 3. a loop with calls and HVCs computes what it computes untraced.
//!
//! After TRACE_DISABLE, MDSCR_EL1 still holds the guest's value. Without
//! `trace.source=insn` the same checks hold trivially (nothing traps), so
//! the scenario is also the baseline.

use core::arch::asm;

use guest_api::trace::CONFIG_EL1;

use crate::report::{fail, Msg, Report};
use crate::trace_calls as tc;
use crate::{calls, platform, trap};

/// MDSCR_EL1.TDCC: traps EL0's DCC accesses; harmless for this guest.
const MDSCR_TDCC: u64 = 1 << 12;
/// MDSCR_EL1.SS.
const MDSCR_SS: u64 = 1 << 0;
/// The BRK's comment.
const COMMENT: u64 = 0x5a7;

fn mdscr() -> u64 {
    let v: u64;
    // SAFETY: reads MDSCR_EL1; no memory is touched.
    unsafe { asm!("mrs {}, mdscr_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

fn set_mdscr(v: u64) {
    // SAFETY: writes MDSCR_EL1 with the guest's own value (only TDCC
    // differs from what it read); no memory is touched.
    unsafe {
        asm!("msr mdscr_el1, {}", "isb", in(reg) v, options(nomem, nostack, preserves_flags))
    };
}

/// A small computation with calls, branches and hypercalls.
#[inline(never)]
fn work(n: u64) -> u64 {
    let mut acc = 0u64;
    for i in 0..n {
        acc = acc
            .wrapping_mul(31)
            .wrapping_add(core::hint::black_box(i) ^ (acc >> 3));
        if i % 4 == 0 {
            let v = calls::call(
                calls::Conduit::Hvc,
                guest_api::smccc::SMCCC_VERSION,
                0,
                0,
                0,
            );
            acc = acc.wrapping_add(v.map_or(0, |r| r[0]));
        }
    }
    acc
}

fn checks() -> Result<(), Msg> {
    let p = platform::get();
    let me = p.mpidr[crate::arch::core_index()];
    let expected = work(16);
    let before = mdscr();
    match tc::enable(me, CONFIG_EL1, 0, 0) {
        Ok(x) if x[0] == 0 => {}
        Ok(x) => fail!("TRACE_ENABLE: x0 = {}", tc::code(&x)),
        Err(c) => fail!("TRACE_ENABLE: {c}"),
    }
    let seen = mdscr();
    set_mdscr(before ^ MDSCR_TDCC);
    let flipped = mdscr();
    set_mdscr(before);
    let (_, caught) = trap::catching(|| {
        // SAFETY: BRK raises a breakpoint exception that the armed catch
        // takes and steps over; nothing else happens.
        unsafe { asm!("brk #0x5a7", options(nomem, nostack)) }
    });
    let got = work(16);
    let r = tc::disable(me);
    let after = mdscr();
    match r {
        Ok(x) if x[0] == 0 => {}
        Ok(x) => fail!("TRACE_DISABLE: x0 = {}", tc::code(&x)),
        Err(c) => fail!("TRACE_DISABLE: {c}"),
    }
    if seen != before || seen & MDSCR_SS != 0 {
        fail!("MDSCR_EL1 read {seen:#x} while traced, {before:#x} before");
    }
    if flipped != before ^ MDSCR_TDCC {
        fail!(
            "MDSCR_EL1 read {flipped:#x} after writing {:#x}",
            before ^ MDSCR_TDCC
        );
    }
    if after != before {
        fail!("MDSCR_EL1 read {after:#x} after trace stopped, {before:#x} before");
    }
    match caught {
        Some(c) if c.ec() == 0x3c && c.iss() & 0xffff == COMMENT => {}
        Some(c) => fail!("BRK #{COMMENT:#x}: {c}"),
        None => fail!("BRK #{COMMENT:#x}: no exception reached the guest"),
    }
    if got != expected {
        fail!("the loop computed {got:#x} traced, {expected:#x} untraced");
    }
    println!("stepdebug: MDSCR_EL1 {before:#x} kept, BRK delivered, loop {got:#x} as untraced");
    Ok(())
}

/// Runs the scenario; the exit status.
pub fn run() -> u64 {
    let mut report = Report::new();
    report.check("stepdebug", checks());
    report.finish()
}

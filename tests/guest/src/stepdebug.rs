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
//! 4. hostile: a breakpoint armed on the loop (not applied while stepped:
//!    the debug registers read as zero), its own MDE/KDE/SS in MDSCR_EL1
//!    (kept and read back, not applied), and a branch into the
//!    hypervisor's memory (an instruction abort for the guest; EL2's step
//!    engine must not take EL2's memory for the guest's next instruction).
//!
//! After TRACE_DISABLE, MDSCR_EL1 still holds the guest's value. Without
//! `trace.source=insn` the same checks hold trivially (nothing traps), so
//! the scenario is also the baseline.

use core::arch::asm;

use guest_api::trace::{Stats, CONFIG_EL1, STATS_INSTRUCTIONS};

use crate::report::{fail, Msg, Report};
use crate::trace_calls as tc;
use crate::{calls, platform, trap};

/// MDSCR_EL1.TDCC: traps EL0's DCC accesses; harmless for this guest.
const MDSCR_TDCC: u64 = 1 << 12;
/// MDSCR_EL1.SS.
const MDSCR_SS: u64 = 1 << 0;
/// MDSCR_EL1.MDE, KDE and SS: the guest's own debug, kept while stepped.
const MDSCR_OWN_DEBUG: u64 = (1 << 15) | (1 << 13) | 1;
/// The hypervisor's memory on QEMU virt (the guest's tree never offers it).
const HYPERVISOR_MEMORY: u64 = 0x4008_0000;

fn breakpoint0() -> (u64, u64) {
    let (v, c): (u64, u64);
    // SAFETY: reads breakpoint 0's value and control; no memory is touched.
    unsafe {
        asm!("mrs {}, dbgbvr0_el1", "mrs {}, dbgbcr0_el1", out(reg) v, out(reg) c,
            options(nomem, nostack, preserves_flags))
    };
    (v, c)
}

fn set_breakpoint0(value: u64, control: u64) {
    // SAFETY: programs breakpoint 0; with MDSCR_EL1.MDE clear (restored
    // before any use) it raises nothing; no memory is touched.
    unsafe {
        asm!("msr dbgbvr0_el1, {}", "msr dbgbcr0_el1, {}", "isb", in(reg) value, in(reg) control,
            options(nomem, nostack, preserves_flags))
    };
}

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
    // Whether EL2 steps this core (TRACE_STATS says which source feeds it).
    let stepped = match calls::hyp6(guest_api::trace::TRACE_STATS, [me, 0, 0, 0])
        .map(Stats::from_registers)
    {
        Ok(Ok(st)) => st.flags & STATS_INSTRUCTIONS != 0,
        Ok(Err(e)) => fail!("TRACE_STATS: {e:?}"),
        Err(c) => fail!("TRACE_STATS: {c}"),
    };
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
    // Hostile, while stepped: arm a breakpoint on `work` (the guest's own
    // debug registers are not applied while EL2 steps it: they read as
    // zero and `work` must run undisturbed), turn on its own MDE/KDE/SS
    // (kept, not applied), and branch into the hypervisor's memory (the
    // step engine must not read EL2's memory as the guest's next
    // instruction, and the fetch must abort to the guest).
    set_breakpoint0(work as fn(u64) -> u64 as usize as u64, 0x1e7);
    let bp = breakpoint0();
    set_mdscr(before | MDSCR_OWN_DEBUG);
    let own = mdscr();
    let got_with_bp = work(16);
    let (_, fetched) = trap::catching_fetch(|| {
        // SAFETY: branches into the hypervisor's memory with the return
        // address in x30: the fetch aborts and the catch resumes at x30.
        unsafe {
            asm!(
                "adr x30, 1f",
                "br {a}",
                "1:",
                a = in(reg) HYPERVISOR_MEMORY,
                lateout("x30") _,
                options(nostack)
            )
        };
    });
    set_mdscr(before);
    set_breakpoint0(0, 0);
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
    let written = (work as fn(u64) -> u64 as usize as u64, 0x1e7);
    if stepped && bp != (0, 0) {
        fail!("the guest's breakpoint 0 read {bp:x?} while stepped, not zero");
    }
    if !stepped && bp != written {
        fail!("the guest's breakpoint 0 read {bp:x?}, not the {written:x?} it wrote");
    }
    if own != before | MDSCR_OWN_DEBUG {
        fail!(
            "MDSCR_EL1 read {own:#x} after writing {:#x}",
            before | MDSCR_OWN_DEBUG
        );
    }
    if got_with_bp != expected {
        fail!("with a breakpoint armed while stepped the loop computed {got_with_bp:#x}, not {expected:#x}");
    }
    match fetched {
        Some(c) if c.ec() == 0x21 => {}
        Some(c) => fail!("fetch from the hypervisor's memory: {c}"),
        None => fail!("a fetch from the hypervisor's memory did not abort"),
    }
    if got != expected {
        fail!("the loop computed {got:#x} traced, {expected:#x} untraced");
    }
    println!(
        "stepdebug: stepped={stepped}: MDSCR_EL1 {before:#x} kept, BRK delivered, loop {got:#x} as untraced, breakpoint {bp:x?}, fetch from EL2's memory aborted"
    );
    Ok(())
}

/// Runs the scenario; the exit status.
pub fn run() -> u64 {
    let mut report = Report::new();
    report.check("stepdebug", checks());
    report.finish()
}

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
//! 4. its hardware breakpoint (EL1, on a NOP) reaches its EL1 as EC 0x31
//!    when it would (MDE, KDE, PSTATE.D clear), and not at all with KDE
//!    clear or PSTATE.D set;
//! 5. its watchpoint (EL1 stores) reaches it as EC 0x35 with FAR_EL1 at
//!    the watched address, and its load does not;
//! 6. its own software step at EL1: an ERET with SPSR_EL1.SS set runs one
//!    instruction and then EC 0x33 with ISV set; with SS clear, EC 0x33
//!    before the first instruction, ISV clear;
//! 7. hostile: a branch into the hypervisor's memory (an instruction abort
//!    for the guest; EL2's step engine must not take EL2's memory for the
//!    guest's next instruction).
//!
//! The scenario prints what 4 to 6 saw on one `stepdebug: observed` line;
//! the runner requires the stepped run's line to be the unstepped one's.
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
/// MDSCR_EL1.MDE: breakpoints and watchpoints on.
const MDSCR_MDE: u64 = 1 << 15;
/// MDSCR_EL1.KDE: debug exceptions at EL1.
const MDSCR_KDE: u64 = 1 << 13;
/// DBGBCR: enabled, all four bytes, EL1 only (PMC 0b01).
const BCR_EL1: u64 = (0xf << 5) | (0b01 << 1) | 1;
/// DBGWCR: enabled, eight bytes, stores only (LSC 0b10), EL1 (PAC 0b01).
const WCR_EL1_STORES: u64 = (0xff << 5) | (0b10 << 3) | (0b01 << 1) | 1;
/// The hypervisor's memory on QEMU virt (the guest's tree never offers it).
const HYPERVISOR_MEMORY: u64 = 0x4008_0000;

fn breakpoint1() -> (u64, u64) {
    let (v, c): (u64, u64);
    // SAFETY: reads breakpoint 1's value and control; no memory is touched.
    unsafe {
        asm!("mrs {}, dbgbvr1_el1", "mrs {}, dbgbcr1_el1", out(reg) v, out(reg) c,
            options(nomem, nostack, preserves_flags))
    };
    (v, c)
}

fn set_breakpoint1((value, control): (u64, u64)) {
    // SAFETY: programs breakpoint 1 with its enable bit clear (callers
    // pass such a control): it raises nothing; no memory is touched.
    unsafe {
        asm!("msr dbgbvr1_el1, {}", "msr dbgbcr1_el1, {}", "isb", in(reg) value, in(reg) control,
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

/// What one experiment's exception looked like, relative to its label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen(Option<(u64, u64, i64, bool)>);

impl Seen {
    fn of(c: Option<trap::Caught>, label: u64, far: Option<u64>) -> Seen {
        Seen(c.map(|c| {
            let far_ok = far.is_none_or(|f| f == c.far);
            (c.ec(), c.iss(), c.elr.wrapping_sub(label) as i64, far_ok)
        }))
    }
}

impl core::fmt::Display for Seen {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            None => write!(f, "none"),
            Some((ec, iss, at, far_ok)) => write!(
                f,
                "ec={ec:#x},iss={iss:#x},at={at:+},far={}",
                if far_ok { "ok" } else { "wrong" }
            ),
        }
    }
}

/// Breakpoint 0 on a NOP at EL1, with PSTATE.D clear (`unmask`) or set,
/// under the MDSCR_EL1 the caller set.
fn breakpoint_on_nop(unmask: bool) -> Seen {
    let (label, c) = trap::catching(|| {
        let label: u64;
        // SAFETY: arms breakpoint 0 on the NOP at 5 (EL1 only), runs it
        // with PSTATE.D as asked, then puts DAIF back and disarms it; a
        // hit is taken by the armed catch, which steps over the NOP.
        unsafe {
            asm!(
                "mrs {saved}, daif",
                "adr {l}, 5f",
                "msr dbgbvr0_el1, {l}",
                "msr dbgbcr0_el1, {c}",
                "isb",
                "msr daifset, #8",
                "cbz {u}, 5f",
                "msr daifclr, #8",
                "5: nop",
                "msr daif, {saved}",
                "msr dbgbcr0_el1, xzr",
                "isb",
                saved = out(reg) _,
                l = out(reg) label,
                c = in(reg) BCR_EL1,
                u = in(reg) u64::from(unmask),
                options(nostack)
            )
        };
        label
    });
    Seen::of(c, label, None)
}

/// Watchpoint 0 on [`WATCHED`] for EL1 stores: a store (caught and
/// stepped over: it does not happen), then a load (not watched). The
/// exception and what the load read.
fn watchpoint_on_store() -> (Seen, u64) {
    let addr = WATCHED.as_ptr() as u64;
    let ((label, read), c) = trap::catching(|| {
        let (label, read): (u64, u64);
        // SAFETY: arms watchpoint 0 on WATCHED (an AtomicU64 of this
        // module, 8-byte aligned) for EL1 stores, stores to it and loads
        // it with PSTATE.D clear, then puts DAIF back and disarms it; the
        // store's hit is taken by the armed catch, which steps over it.
        unsafe {
            asm!(
                "mrs {saved}, daif",
                "msr dbgwvr0_el1, {a}",
                "msr dbgwcr0_el1, {c}",
                "isb",
                "msr daifclr, #8",
                "adr {l}, 6f",
                "6: str {v}, [{a}]",
                "ldr {r}, [{a}]",
                "msr daif, {saved}",
                "msr dbgwcr0_el1, xzr",
                "isb",
                saved = out(reg) _,
                a = in(reg) addr,
                c = in(reg) WCR_EL1_STORES,
                v = in(reg) 0xdead_u64,
                l = out(reg) label,
                r = out(reg) read,
                options(nostack)
            )
        };
        (label, read)
    });
    (Seen::of(c, label, Some(addr)), read)
}

static WATCHED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0x1111);

/// Its own software step at EL1: MDSCR_EL1.SS and KDE set with PSTATE.D
/// masked, then an ERET to 7 with PSTATE.D clear and SPSR_EL1.SS =
/// `active`; the step exception (whose catch turns SS off) and the sum
/// of the three ADDs there (7: each runs once, stepped or not).
fn own_step(active: bool) -> (Seen, u64) {
    let ((label, sum), c) = trap::catching_step(|| {
        let label: u64;
        let mut sum = 0u64;
        // SPSR_EL1 for the ERET: EL1 with the current SP (SPSel), A, I and
        // F masked, D clear, SS as asked.
        let spsr: u64 = 0x1c4 | if active { 1 << 21 } else { 0 };
        // SAFETY: steps the three ADDs at 7 through the guest's own
        // software step at EL1: the catch takes the step exception, clears
        // MDSCR_EL1.SS and resumes there; DAIF is put back after.
        unsafe {
            asm!(
                "mrs {saved}, daif",
                "msr daifset, #8",
                "mrs {t}, mdscr_el1",
                "orr {t}, {t}, #1",
                "orr {t}, {t}, #0x2000",
                "msr mdscr_el1, {t}",
                "isb",
                "mrs {t}, spsel",
                "orr {t}, {t}, {spsr}",
                "msr spsr_el1, {t}",
                "adr {l}, 7f",
                "msr elr_el1, {l}",
                "eret",
                "7: add {s}, {s}, #1",
                "add {s}, {s}, #2",
                "add {s}, {s}, #4",
                "msr daif, {saved}",
                saved = out(reg) _,
                t = out(reg) _,
                spsr = in(reg) spsr,
                l = out(reg) label,
                s = inout(reg) sum,
                options(nostack)
            )
        };
        (label, sum)
    });
    (Seen::of(c, label, None), sum)
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
    // Its breakpoint register reads back what it wrote (breakpoint 1,
    // left disabled: the enable bit is clear).
    let written = (work as fn(u64) -> u64 as usize as u64, BCR_EL1 & !1);
    set_breakpoint1(written);
    let bp = breakpoint1();
    set_breakpoint1((0, 0));
    // Its breakpoints, watchpoints and own step, each as without EL2.
    set_mdscr(before | MDSCR_MDE | MDSCR_KDE);
    let bp_taken = breakpoint_on_nop(true);
    let bp_masked = breakpoint_on_nop(false);
    set_mdscr(before | MDSCR_MDE);
    let bp_no_kde = breakpoint_on_nop(true);
    set_mdscr(before | MDSCR_MDE | MDSCR_KDE);
    let (wp, wp_read) = watchpoint_on_store();
    set_mdscr(before);
    let (step_active, sum_active) = own_step(true);
    set_mdscr(before);
    let (step_pending, sum_pending) = own_step(false);
    set_mdscr(before);
    let got_after_debug = work(16);
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
    if bp != written {
        fail!("the guest's breakpoint 1 read {bp:x?}, not the {written:x?} it wrote");
    }
    if got_after_debug != expected {
        fail!("after its own debug the loop computed {got_after_debug:#x}, not {expected:#x}");
    }
    match bp_taken.0 {
        Some((0x31, 0x22, 0, _)) => {}
        _ => fail!("its EL1 breakpoint with MDE, KDE and PSTATE.D clear: {bp_taken}"),
    }
    if bp_masked.0.is_some() || bp_no_kde.0.is_some() {
        fail!("its EL1 breakpoint with PSTATE.D set: {bp_masked}; with KDE clear: {bp_no_kde}");
    }
    match wp.0 {
        Some((0x35, iss, 0, true)) if iss & 0x7f == 0x62 => {}
        _ => fail!("its EL1 store watchpoint: {wp}"),
    }
    if wp_read != 0x1111 || WATCHED.load(core::sync::atomic::Ordering::Relaxed) != 0x1111 {
        fail!("the watched store was stepped over, yet the load read {wp_read:#x}");
    }
    match (step_active.0, step_pending.0) {
        (Some((0x33, 0x100_0022, 4, _)), Some((0x33, 0x22, 0, _))) => {}
        _ => fail!("its own step: active-not-pending {step_active}, active-pending {step_pending}"),
    }
    if sum_active != 7 || sum_pending != 7 {
        fail!("the stepped ADDs summed to {sum_active} and {sum_pending}, not 7");
    }
    println!(
        "stepdebug: observed breakpoint {bp_taken} masked {bp_masked} no-kde {bp_no_kde} watchpoint {wp} step {step_active} pending {step_pending}"
    );
    match fetched {
        Some(c) if c.ec() == 0x21 => {}
        Some(c) => fail!("fetch from the hypervisor's memory: {c}"),
        None => fail!("a fetch from the hypervisor's memory did not abort"),
    }
    if got != expected {
        fail!("the loop computed {got:#x} traced, {expected:#x} untraced");
    }
    println!(
        "stepdebug: stepped={stepped}: MDSCR_EL1 {before:#x} kept, BRK delivered, loop {got:#x} as untraced, breakpoint 1 {bp:x?} read back, fetch from EL2's memory aborted"
    );
    Ok(())
}

/// Runs the scenario; the exit status.
pub fn run() -> u64 {
    let mut report = Report::new();
    report.check("stepdebug", checks());
    report.finish()
}

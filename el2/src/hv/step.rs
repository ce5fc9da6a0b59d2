//! The instruction observer: on a core whose trace runs on the QEMU model
//! with the instruction source (`trace.source=insn`), EL2 single-steps the
//! guest and reports, in program order, every instruction it executed and
//! every exception it took (`trace::observe`), for the model's encoder to
//! turn into the packets an ETE would emit.
//!
//! The register dance (software step routed to EL2):
//!
//! - MDCR_EL2.TDE = 1 makes EL2 the debug target: debug exceptions from
//!   EL0/EL1 are enabled whatever the guest's KDE and PSTATE.D, and are
//!   taken to EL2 (it also traps the guest's debug-register accesses, which
//!   is how the guest keeps seeing its own MDSCR_EL1: [`mdscr_access`]).
//! - MDSCR_EL1.SS = 1, and SPSR_EL2.SS = 1 on each return to the guest:
//!   the guest executes one instruction and EL2 takes a software step
//!   exception (EC 0x32) with ELR_EL2 at the next one.
//! - If the guest takes an exception to its own EL1 meanwhile (an SVC, an
//!   abort, a virtual interrupt), exception entry clears PSTATE.SS and the
//!   step exception comes at the first instruction of its vector: EL2 tells
//!   that from a step by the vector address and ELR_EL1 ([`on_step`]).
//! - A trap to EL2 (HVC, an emulated access, a physical interrupt) is
//!   reported as an exception when it is taken ([`on_trap`]);
//!   [`on_guest_return`] re-arms the step where EL2 returns the guest to.
//!
//! When the trace leaves EL1 out (perf's `cs_etm//u`), EL1 is not stepped:
//! each stay there is parked, run unstepped to a breakpoint on an ERET to
//! EL0 the guest was seen to run (the core's breakpoints after the first
//! four) or to its next trap, and EL0 is stepped from its first
//! instruction ([`Stepper::fence`]).
//!
//! A load-exclusive/store-exclusive loop cannot be stepped: each step
//! exception clears the exclusive monitor, so the store never succeeds.
//! EL2 runs such a sequence unstepped, with a hardware breakpoint (EL2's
//! while it steps) where it exits, and reports the sequence's
//! instructions once, as their first pass succeeding (an interrupt inside
//! it is reported where it came, and stepping resumes there)
//! ([`Exclusive`]).
//!
//! The guest's own debug stays its own while it is stepped:
//!
//! - its BRK, which TDE also routes here, is handed back to its EL1 as the
//!   hardware would have (`trap.rs`);
//! - its breakpoints and watchpoints are in the hardware (its writes to
//!   DBGB*/DBGW* go through; the first four breakpoints are kept aside
//!   while EL2 borrows them for an exclusive sequence) and MDSCR_EL1.MDE
//!   is its own: each hit comes to EL2 (TDE), which delivers it to the
//!   guest's EL1 as EC 0x30/0x31 or 0x34/0x35 if the guest would have
//!   taken it (from EL0, or from EL1 with its KDE set and PSTATE.D clear),
//!   and otherwise steps over it with them off for that instruction
//!   ([`on_debug`]);
//! - its own software step is emulated: EL2 keeps the guest's PSTATE.SS
//!   (what its ERET restores from SPSR_EL1.SS and its exception entries
//!   save) and, at each instruction, applies the architecture's step
//!   state machine: active-not-pending, the step exception (EC 0x32/0x33,
//!   ISV = 1) follows the instruction; active-pending, it is taken before
//!   it (ISV = 0). An ERET with SPSR_EL1.SS set is stepped with it clear
//!   (else the hardware would run a second instruction before EL2's step
//!   exception) and the bit is put back after.
//! - MDSCR_EL1 reads back as it wrote it; its other debug registers (DCC,
//!   claim tags, ...) read as zero and ignore writes, and a warning says
//!   so once.
//!
//! The OS lock plays no part: the guest's is virtual (`vcpu`) and does not
//! reach the hardware, stepped or not. Inside an exclusive sequence EL2
//! runs unstepped, the guest's first four breakpoints are EL2's; a
//! watchpoint the guest would not take on its store-exclusive makes the
//! sequence be stepped, which fails it each time.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::{self, *};
use crate::esr::ec;
use crate::inject::psr;
use crate::regs::GuestRegs;
use crate::trace::observe::{Observed, Sample};
use crate::trace::packet::ExceptionType;

use super::state::{self, machine, PerCore};
use super::tracing;

/// MDSCR_EL1.SS.
const MDSCR_SS: u64 = 1 << 0;
/// MDSCR_EL1.TDCC: the guest's own, kept in the hardware while stepped.
const MDSCR_TDCC: u64 = 1 << 12;
/// MDSCR_EL1.MDE: breakpoints and watchpoints enabled.
const MDSCR_MDE: u64 = 1 << 15;
/// MDSCR_EL1.KDE: debug exceptions at EL1 (to EL1).
const MDSCR_KDE: u64 = 1 << 13;
/// MDCR_EL2.TDE.
const MDCR_TDE: u64 = 1 << 8;

/// One core's observer.
#[derive(Debug)]
struct Stepper {
    /// EL2 steps this core's guest.
    armed: bool,
    /// Where the guest resumed when EL2 last returned to it: the
    /// instruction the next step exception reports as executed.
    expected: u64,
    /// The guest's exception level there.
    el: u8,
    /// The instruction there, read when EL2 returned (`None`: not in guest
    /// RAM).
    word: Option<u32>,
    /// MDSCR_EL1 and MDCR_EL2 hold the stepping values (a warm boot or
    /// any entry through `vcpu::enter` clears it: [`hardware_lost`]).
    programmed: bool,
    /// ELR_EL1 and SPSR_EL1 then: an exception the guest takes to its own
    /// EL1 rewrites them.
    elr_el1: u64,
    spsr_el1: u64,
    /// The guest's own MDSCR_EL1 while EL2's stepping holds the register.
    mdscr: u64,
    /// What EL2 last wrote to MDSCR_EL1 for stepping (valid with
    /// `programmed`).
    hw_mdscr: u64,
    /// The guest's own PSTATE.SS: what its ERET set from SPSR_EL1.SS, and
    /// what an exception it takes saves there.
    gss: bool,
    /// The guest's own software step is active-not-pending for the
    /// instruction at `expected`: its step exception follows it.
    gstep: bool,
    /// The guest's ERET at `expected` had SPSR_EL1.SS set, which EL2
    /// cleared for the step and puts back after it.
    eret_ss: bool,
    /// The guest's own step exception is due where it resumes: an
    /// instruction completed while its step was active (ISV = 1).
    step_due: bool,
    /// The instruction at `expected` runs with the guest's breakpoints and
    /// watchpoints off: one the guest would not have taken stopped it.
    suppress: bool,
    /// The guest trapped to EL2 since the last return.
    trapped: bool,
    /// An exclusive sequence running unstepped.
    exclusive: Option<Exclusive>,
    /// Breakpoints hold an exclusive sequence's exits.
    bp_set: bool,
    /// The guest runs unstepped until its next trap to EL2 (an exclusive
    /// sequence whose exits EL2 could not bound): the trace has a gap.
    free_run: bool,
    /// The guest's breakpoints 0 to 3 (DBGBVR, DBGBCR), which EL2 borrows
    /// for [`Exclusive`] while it steps.
    saved_bp: [(u64, u64); BREAKPOINTS],
    /// The ERETs from EL1 to EL0 this core's guest has been seen to run
    /// (the first `eret_sites_n`): where a parked EL1 is stopped before
    /// it reaches EL0 ([`Stepper::fence`]).
    eret_sites: [u64; FENCE],
    eret_sites_n: usize,
    /// Breakpoints [`BREAKPOINTS`] onwards hold `eret_sites` while EL1 is
    /// parked; `saved_fence` has the guest's own values of them.
    fence: bool,
    saved_fence: [(u64, u64); FENCE],
    /// The guest's EL1, which its trace leaves out, runs unstepped until
    /// an ERET to EL0 at one of `eret_sites` (fenced) or a trap: nothing
    /// of it is reported, and no gap either.
    parked: bool,
    /// An EL0 stretch ran unstepped after a parked EL1 left through an
    /// ERET not in `eret_sites`: EL1 is stepped, not parked, until EL2
    /// sees the guest return to EL0 again (and learns the ERET).
    learn: bool,
}

/// A load-exclusive ... store-exclusive sequence the guest runs unstepped,
/// from `start` (the load) to the first of the breakpoints at `exits`.
#[derive(Clone, Copy, Debug)]
struct Exclusive {
    start: u64,
    el: u8,
    exits: [u64; BREAKPOINTS],
}

static STEP: PerCore<Stepper> = PerCore::new(
    [const {
        percore::ExceptionLock::new(core::cell::RefCell::new(Stepper {
            armed: false,
            expected: 0,
            el: 0,
            word: None,
            programmed: false,
            elr_el1: 0,
            spsr_el1: 0,
            mdscr: 0,
            hw_mdscr: 0,
            gss: false,
            gstep: false,
            eret_ss: false,
            step_due: false,
            suppress: false,
            trapped: false,
            exclusive: None,
            bp_set: false,
            free_run: false,
            saved_bp: [(0, 0); BREAKPOINTS],
            eret_sites: [0; FENCE],
            eret_sites_n: 0,
            fence: false,
            saved_fence: [(0, 0); FENCE],
            parked: false,
            learn: false,
        }))
    }; crate::dtb::MAX_CPUS],
);

fn with<R>(f: impl FnOnce(&mut Stepper) -> R) -> R {
    state::with(&STEP, f)
}

/// Bytes of per-core state this module keeps.
pub const STATE_SIZE: usize = core::mem::size_of::<Stepper>();

static UNVIRTUALISED_DEBUG: AtomicBool = AtomicBool::new(false);

impl Stepper {
    /// Puts back the SPSR_EL1.SS EL2 cleared to step the guest's ERET, if
    /// it did and the ERET has not run.
    /// Gives the guest back its first breakpoints if EL2 borrowed them.
    fn restore_guest_breakpoints(&mut self) {
        if core::mem::take(&mut self.bp_set) {
            for (i, bp) in self.saved_bp.iter().take(usable_breakpoints()).enumerate() {
                set_breakpoint(i, *bp);
            }
        }
    }

    /// Gives the guest back the breakpoints the fence borrowed.
    fn unfence(&mut self) {
        if core::mem::take(&mut self.fence) {
            for (i, bp) in self.saved_fence.iter().take(self.eret_sites_n).enumerate() {
                set_breakpoint(BREAKPOINTS + i, *bp);
            }
        }
    }

    /// Parking EL1: breakpoints (EL1) on the ERETs to EL0 seen so far, so
    /// that the unstepped EL1 stops there rather than run on into EL0.
    /// Whether it could (the core has breakpoints beyond [`BREAKPOINTS`]
    /// and an ERET has been seen).
    fn fence(&mut self) -> bool {
        let n = self
            .eret_sites_n
            .min(all_breakpoints().saturating_sub(BREAKPOINTS));
        if n == 0 {
            return false;
        }
        self.eret_sites_n = n;
        for i in 0..n {
            self.saved_fence[i] = breakpoint(BREAKPOINTS + i);
            set_breakpoint(BREAKPOINTS + i, (self.eret_sites[i], bcr_exec_at(1)));
        }
        self.fence = true;
        true
    }

    /// An ERET at `pc` took the guest from EL1 to EL0: remembered for
    /// [`Stepper::fence`].
    fn learn_eret(&mut self, pc: u64) {
        let n = self.eret_sites_n;
        if n < FENCE && !self.eret_sites[..n].contains(&pc) {
            self.eret_sites[n] = pc;
            self.eret_sites_n = n + 1;
        }
    }

    fn put_back_eret_ss(&mut self) {
        if core::mem::take(&mut self.eret_ss) {
            SPSR_EL1.set(SPSR_EL1.get() | psr::SS);
        }
    }
}

/// Whether the guest's debug exceptions to its EL1 are enabled at `el`
/// with PSTATE `spsr`, as they would be without EL2: from EL0 always, from
/// EL1 with MDSCR_EL1.KDE set and PSTATE.D clear.
fn own_debug_enabled(mdscr: u64, el: u8, spsr: u64) -> bool {
    el == 0 || (mdscr & MDSCR_KDE != 0 && spsr & psr::D == 0)
}

/// Whether the guest's own software step is enabled there.
fn own_step_enabled(mdscr: u64, el: u8, spsr: u64) -> bool {
    mdscr & MDSCR_SS != 0 && own_debug_enabled(mdscr, el, spsr)
}

/// ERET, ERETAA, ERETAB.
fn is_eret(word: u32) -> bool {
    matches!(word, 0xd69f_03e0 | 0xd69f_0bff | 0xd69f_0fff)
}

fn with_ss(spsr: u64, ss: bool) -> u64 {
    if ss {
        spsr | psr::SS
    } else {
        spsr & !psr::SS
    }
}

/// Cores that have been stepped, one bit each (logged once per core).
static FIRST_ARMED: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Each core's `Stepper::armed`, readable without borrowing [`STEP`]: with
/// trace off, every trap and every return costs a load and a branch here.
static ARMED: [AtomicBool; crate::dtb::MAX_CPUS] =
    [const { AtomicBool::new(false) }; crate::dtb::MAX_CPUS];

#[inline(always)]
fn armed_fast() -> bool {
    ARMED[arch::core_index()].load(Ordering::Relaxed)
}

fn el_of(spsr: u64) -> u8 {
    ((spsr >> 2) & 0b11) as u8
}

fn sample() -> Sample {
    Sample {
        timestamp: CNTVCT_EL0.get(),
        context_id: CONTEXTIDR_EL1.get() as u32,
    }
}

/// The guest's instruction at `va`, read through its stage 1 (stage 2 maps
/// guest RAM at the same address); `None` if it does not translate to
/// guest RAM.
fn guest_word(va: u64) -> Option<u32> {
    let ipa = arch::guest_va_to_ipa(va)?;
    let ram = machine().guest.memory();
    if !ram.iter().any(|r| r.contains(ipa) && r.contains(ipa | 3)) {
        return None;
    }
    // SAFETY: `ipa` (4-byte aligned: A64 instructions are) lies in guest
    // RAM, which stage 2 maps at the same physical address and EL2's own
    // map covers as Normal memory; reading it has no side effect.
    Some(unsafe { core::ptr::read_volatile((ipa & !3) as *const u32) })
}

/// The kind of exception behind the EL1 vector at `offset` from VBAR_EL1.
fn vector_kind(offset: u64) -> ExceptionType {
    match offset & 0x180 {
        0x080 => ExceptionType::Irq,
        0x100 => ExceptionType::Fiq,
        0x180 => ExceptionType::SystemError,
        _ => match ((ESR_EL1.get() >> 26) & 0x3f) as u8 {
            ec::SVC64 => ExceptionType::Call,
            ec::IABT_LOW | ec::IABT_CUR => ExceptionType::InstFault,
            ec::DABT_LOW | ec::DABT_CUR => ExceptionType::DataFault,
            _ => ExceptionType::Trap,
        },
    }
}

/// Whether `word` at `pc` is a direct branch whose target is `next`, or
/// an indirect branch or exception return (whose target may be anything).
fn may_branch_to(word: u32, pc: u64, next: u64) -> bool {
    let rel = |bits: u32, shift: u32| -> u64 {
        let v = ((word >> shift) & ((1 << bits) - 1)) as i64;
        let v = (v << (64 - bits)) >> (64 - bits);
        pc.wrapping_add((v * 4) as u64)
    };
    if word & 0x7c00_0000 == 0x1400_0000 {
        return rel(26, 0) == next; // B, BL
    }
    if word & 0xff00_0010 == 0x5400_0000 || word & 0x7e00_0000 == 0x3400_0000 {
        return rel(19, 5) == next; // B.cond, CBZ/CBNZ
    }
    if word & 0x7e00_0000 == 0x3600_0000 {
        return rel(14, 5) == next; // TBZ/TBNZ
    }
    // BR, BLR, RET, ERET and their pointer-authentication forms.
    word & 0xfe00_0000 == 0xd600_0000
}

/// Load/store exclusive (LDXR, LDAXR, LDXP, ... and their stores): bits
/// \[29:24\] = 0b001000 with o2 (bit 23) = 0; bit 22 is L. CASP shares the
/// pattern with o1 (bit 21) = 1 and bit 31 = 0 (the exclusive pairs have
/// bit 31 = 1): not an exclusive.
fn exclusive(word: u32) -> Option<bool> {
    let casp = word & (1 << 21) != 0 && word & (1 << 31) == 0;
    (word & 0x3f80_0000 == 0x0800_0000 && !casp).then_some(word & (1 << 22) != 0)
}

/// The target of a conditional branch (B.cond, CBZ/CBNZ, TBZ/TBNZ) at
/// `pc`, if `word` is one.
fn conditional_target(word: u32, pc: u64) -> Option<u64> {
    let rel = |bits: u32, shift: u32| -> u64 {
        let v = ((word >> shift) & ((1 << bits) - 1)) as i64;
        let v = (v << (64 - bits)) >> (64 - bits);
        pc.wrapping_add((v * 4) as u64)
    };
    if word & 0xff00_0010 == 0x5400_0000 || word & 0x7e00_0000 == 0x3400_0000 {
        Some(rel(19, 5))
    } else if word & 0x7e00_0000 == 0x3600_0000 {
        Some(rel(14, 5))
    } else {
        None
    }
}

/// Longest exclusive sequence EL2 looks for, in instructions.
const EXCLUSIVE_SCAN: u64 = 16;

/// Breakpoints EL2 may borrow for an exclusive sequence's exits (the
/// architecture guarantees at least two).
const BREAKPOINTS: usize = 4;

/// How many of [`BREAKPOINTS`] this core has (ID_AA64DFR0_EL1.BRPs + 1).
fn usable_breakpoints() -> usize {
    all_breakpoints().min(BREAKPOINTS)
}

/// The core's breakpoints (ID_AA64DFR0_EL1.BRPs + 1).
fn all_breakpoints() -> usize {
    ((ID_AA64DFR0_EL1.get() >> 12) & 0xf) as usize + 1
}

/// Breakpoints after [`BREAKPOINTS`] EL2 may borrow to fence a parked EL1
/// (QEMU's `max` CPU has 6 in all: 2).
const FENCE: usize = 2;

/// Where the exclusive sequence whose load is at `start` leaves, as at most
/// [`usable_breakpoints`] addresses (the rest repeat the first): the sequence runs to the first conditional
/// branch after its store (the retry); every successor of a conditional
/// branch in it that is neither `start` (the retry's loop) nor inside it
/// is an exit (an early exit such as a failed compare, the retry's
/// success side). `None` when there is no such shape within
/// [`EXCLUSIVE_SCAN`] instructions, another kind of branch comes first, or
/// there are more exits than breakpoints.
fn exclusive_exits(start: u64) -> Option<[u64; BREAKPOINTS]> {
    use crate::trace::insn::{classify, Class};
    let mut stored = false;
    let mut retry = None;
    for i in 1..EXCLUSIVE_SCAN {
        let pc = start.wrapping_add(4 * i);
        let word = guest_word(pc)?;
        match classify(word, pc) {
            Class::Other | Class::Isb => stored |= exclusive(word) == Some(false),
            Class::Conditional { .. } if stored => {
                retry = Some(pc);
                break;
            }
            Class::Conditional { .. } => {}
            _ => return None,
        }
    }
    let retry = retry?;
    let inside = |t: u64| t > start && t <= retry;
    let mut exits = [0u64; BREAKPOINTS];
    let mut n = 0;
    let limit = usable_breakpoints();
    let mut pc = start;
    while pc < retry {
        pc = pc.wrapping_add(4);
        let Class::Conditional { target } = classify(guest_word(pc)?, pc) else {
            continue;
        };
        let fall = pc.wrapping_add(4);
        let successors = if pc == retry {
            [target, fall]
        } else {
            [target, target]
        };
        for t in successors {
            if t == start || inside(t) || exits[..n].contains(&t) {
                continue;
            }
            if n == limit {
                return None;
            }
            exits[n] = t;
            n += 1;
        }
    }
    if n == 0 {
        return None;
    }
    for i in n..BREAKPOINTS {
        exits[i] = exits[0];
    }
    Some(exits)
}

/// DBGBCR: enabled, unlinked address match, all four bytes, at exception
/// level `el` only (PMC 0b10 for EL0, 0b01 for EL1; HMC = 0, SSC = 0b00).
const fn bcr_exec_at(el: u8) -> u64 {
    let pmc = if el == 0 { 0b10 } else { 0b01 };
    (0b1111 << 5) | (pmc << 1) | 1
}

/// DBGBVRn_EL1, DBGBCRn_EL1, DBGWVRn_EL1 and DBGWCRn_EL1 are op0 2, op1
/// 0, CRn 0, CRm n with these op2.
const DBGBVR: u8 = 4;
const DBGBCR: u8 = 5;
const DBGWVR: u8 = 6;
const DBGWCR: u8 = 7;

macro_rules! debug_registers {
    ($($n:literal)*) => {
        /// Reads breakpoint or watchpoint register `op2` ([`DBGBVR`] ...
        /// [`DBGWCR`]) number `n`; the caller checks that it exists.
        fn read_debug_register(op2: u8, n: usize) -> u64 {
            let mut v = 0u64;
            // SAFETY: reads a breakpoint or watchpoint register; no memory
            // is touched.
            unsafe {
                match (op2, n) {
                    $(
                    (DBGBVR, $n) => core::arch::asm!(concat!("mrs {}, dbgbvr", $n, "_el1"), out(reg) v, options(nomem, nostack, preserves_flags)),
                    (DBGBCR, $n) => core::arch::asm!(concat!("mrs {}, dbgbcr", $n, "_el1"), out(reg) v, options(nomem, nostack, preserves_flags)),
                    (DBGWVR, $n) => core::arch::asm!(concat!("mrs {}, dbgwvr", $n, "_el1"), out(reg) v, options(nomem, nostack, preserves_flags)),
                    (DBGWCR, $n) => core::arch::asm!(concat!("mrs {}, dbgwcr", $n, "_el1"), out(reg) v, options(nomem, nostack, preserves_flags)),
                    )*
                    _ => {}
                }
            }
            v
        }

        /// Writes breakpoint or watchpoint register `op2` number `n`; the
        /// caller checks that it exists.
        fn write_debug_register(op2: u8, n: usize, v: u64) {
            // SAFETY: programs a breakpoint or watchpoint register. What
            // it arms raises debug exceptions only: from the guest, TDE
            // takes them to EL2 while EL2 steps it (and to its own EL1
            // otherwise, as without EL2); EL2 itself never takes one, as
            // MDSCR_EL1.KDE is clear whenever EL2 runs with TDE set.
            unsafe {
                match (op2, n) {
                    $(
                    (DBGBVR, $n) => core::arch::asm!(concat!("msr dbgbvr", $n, "_el1, {}"), in(reg) v, options(nomem, nostack, preserves_flags)),
                    (DBGBCR, $n) => core::arch::asm!(concat!("msr dbgbcr", $n, "_el1, {}"), in(reg) v, options(nomem, nostack, preserves_flags)),
                    (DBGWVR, $n) => core::arch::asm!(concat!("msr dbgwvr", $n, "_el1, {}"), in(reg) v, options(nomem, nostack, preserves_flags)),
                    (DBGWCR, $n) => core::arch::asm!(concat!("msr dbgwcr", $n, "_el1, {}"), in(reg) v, options(nomem, nostack, preserves_flags)),
                    )*
                    _ => {}
                }
            }
        }
    };
}

debug_registers!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);

/// This core's breakpoints and watchpoints (ID_AA64DFR0_EL1.BRPs + 1,
/// .WRPs + 1).
fn debug_register_count(op2: u8) -> usize {
    let dfr0 = ID_AA64DFR0_EL1.get();
    let field = if op2 <= DBGBCR { 12 } else { 20 };
    ((dfr0 >> field) & 0xf) as usize + 1
}

/// Breakpoint `n`'s (DBGBVR, DBGBCR).
fn breakpoint(n: usize) -> (u64, u64) {
    (
        read_debug_register(DBGBVR, n),
        read_debug_register(DBGBCR, n),
    )
}

fn set_breakpoint(n: usize, (value, control): (u64, u64)) {
    write_debug_register(DBGBVR, n, value);
    write_debug_register(DBGBCR, n, control);
}

/// Reports the exclusive sequence from `start` as run once up to (not
/// including) `stop`, the address the guest was found at.
fn report_exclusive(start: u64, el: u8, stop: u64) {
    let s = sample();
    let mut pc = start;
    for _ in 0..EXCLUSIVE_SCAN {
        if pc == stop {
            return;
        }
        let word = guest_word(pc).unwrap_or(0);
        let next = match conditional_target(word, pc) {
            Some(t) if t == stop => stop,
            _ => pc.wrapping_add(4),
        };
        tracing::observe(&Observed::Executed { pc, word, next, el }, &s);
        pc = next;
    }
}

/// Up to two observations, in order.
type Observations = [Option<Observed>; 2];

/// A software step exception (EC 0x32) from the guest: what the guest did
/// since EL2 last returned to it.
pub fn on_step(regs: &GuestRegs) {
    if !armed_fast() {
        return;
    }
    state::count(crate::stats::Event::Step);
    let obs = with(|st| -> Observations {
        if !st.armed {
            return [None, None];
        }
        st.suppress = false;
        let (pc, el, next) = (st.expected, st.el, regs.elr);
        let to_el = el_of(regs.spsr);
        let Some(word) = st.word else {
            // Not an instruction EL2 could read (not in guest RAM): the
            // decoder could not walk it either.
            state::count(crate::stats::Event::Gap);
            return [Some(Observed::Gap), None];
        };
        let vbar = VBAR_EL1.get() & !0x7ff;
        let offset = next.wrapping_sub(vbar);
        let at_vector = offset < 0x800 && offset & 0x7f == 0 && to_el == 1;
        let (elr1, spsr1) = (ELR_EL1.get(), SPSR_EL1.get());
        let rewritten = elr1 != st.elr_el1 || spsr1 != st.spsr_el1;
        let exception = at_vector && (rewritten || !may_branch_to(word, pc, next));
        let eret_ss = core::mem::take(&mut st.eret_ss);
        if !exception {
            if is_eret(word) {
                if el == 1 && to_el == 0 {
                    st.learn_eret(pc);
                    st.learn = false;
                }
                // Its ERET set its PSTATE.SS from SPSR_EL1.SS (which EL2
                // cleared for the step: put back).
                if eret_ss {
                    SPSR_EL1.set(spsr1 | psr::SS);
                }
                st.gss = eret_ss;
            } else if st.gstep {
                // Its own step completed with this instruction.
                st.gss = false;
                st.step_due = true;
            }
            return [Some(Observed::Executed { pc, word, next, el }), None];
        }
        let kind = vector_kind(offset);
        let exc = |from_el| Observed::Exception {
            kind,
            ret: elr1,
            target: next,
            from_el,
            to_el,
        };
        let ran = !(elr1 == pc && kind != ExceptionType::Call);
        // The exception entry saved the hardware's PSTATE.SS (EL2's
        // stepping); the guest's own was its PSTATE.SS, cleared if its own
        // step completed with the instruction that ran.
        SPSR_EL1.set(with_ss(spsr1, st.gss && !(ran && st.gstep)));
        st.gss = false;
        if !ran {
            // Taken before the instruction at `pc` ran (an interrupt, an
            // abort on it).
            [Some(exc(el)), None]
        } else {
            // The instruction ran (an SVC, or any instruction after which
            // an interrupt came before the next): it went on to ELR_EL1,
            // at the level SPSR_EL1 gives.
            let exc = exc(el_of(spsr1));
            [
                Some(Observed::Executed {
                    pc,
                    word,
                    next: elr1,
                    el,
                }),
                Some(exc),
            ]
        }
    });
    emit(obs);
}

/// A breakpoint (EC 0x30) or watchpoint (EC 0x34) exception from the
/// guest while EL2 steps it: the end of an exclusive sequence EL2 let run
/// unstepped, or the guest's own. False if EL2 does not step the guest.
pub fn on_debug(regs: &mut GuestRegs, class: u8) -> bool {
    if !armed_fast() {
        return false;
    }
    let fenced = class == ec::BREAKPT_LOW
        && with(|st| {
            let hit = st.fence && st.eret_sites[..st.eret_sites_n].contains(&regs.elr);
            if hit {
                // A parked EL1 reached an ERET to EL0: stepping resumes
                // with it.
                st.parked = false;
                st.expected = regs.elr;
                st.el = el_of(regs.spsr);
            }
            hit
        });
    if fenced {
        return true;
    }
    let exclusive = with(|st| {
        let x = st.exclusive.take()?;
        let interrupted = ELR_EL1.get() != st.elr_el1 || SPSR_EL1.get() != st.spsr_el1;
        Some((x, interrupted))
    });
    if let Some((x, interrupted)) = exclusive {
        if interrupted {
            // The guest took an exception to its own EL1 inside the
            // unstepped sequence: what ran there is unknown.
            warn_gap(
                "an exception inside an unstepped exclusive sequence",
                x.start,
            );
            emit([Some(Observed::Gap), None]);
        } else {
            report_exclusive(x.start, x.el, regs.elr);
        }
        if class == ec::BREAKPT_LOW && x.exits.contains(&regs.elr) {
            return true;
        }
        // The guest's own breakpoint or watchpoint inside the sequence.
        with(|st| st.expected = regs.elr);
    }
    own_debug(regs, class);
    true
}

/// The guest's own breakpoint or watchpoint hit the instruction at
/// `regs.elr` before it ran: delivered to its EL1 if it would have taken
/// it without EL2, else stepped over with breakpoints and watchpoints off.
fn own_debug(regs: &mut GuestRegs, class: u8) {
    use crate::inject::{DebugKind, Fault, FSC_DEBUG};
    let (pc, el) = (regs.elr, el_of(regs.spsr));
    let taken = with(|st| {
        st.put_back_eret_ss();
        let taken = st.mdscr & MDSCR_MDE != 0 && own_debug_enabled(st.mdscr, el, regs.spsr);
        st.suppress = !taken;
        taken
    });
    if !taken {
        return;
    }
    let (kind, fault) = if class == ec::WATCHPT_LOW {
        let iss = (ESR_EL2.get() & 0x1ff_ffff) as u32;
        (
            ExceptionType::DataDebug,
            Fault::Debug {
                kind: DebugKind::Watchpoint,
                iss,
                far: Some(FAR_EL2.get()),
            },
        )
    } else {
        (
            ExceptionType::InstDebug,
            Fault::Debug {
                kind: DebugKind::Breakpoint,
                iss: FSC_DEBUG,
                far: Some(FAR_EL2.get()),
            },
        )
    };
    let ss = exception_entry();
    state::deliver(regs, fault, ss);
    emit([
        Some(Observed::Exception {
            kind,
            ret: pc,
            target: regs.elr,
            from_el: el,
            to_el: 1,
        }),
        None,
    ]);
}

/// An exception EL2 makes the guest take at its EL1 (an injected fault):
/// the PSTATE.SS its SPSR_EL1 saves, the guest's own while EL2 steps it
/// (exception entry then clears it); `None` when EL2 does not step it.
pub fn exception_entry() -> Option<bool> {
    if !armed_fast() {
        return None;
    }
    with(|st| {
        if !st.armed {
            return None;
        }
        st.put_back_eret_ss();
        Some(core::mem::take(&mut st.gss))
    })
}

static GAP_WARNED: AtomicBool = AtomicBool::new(false);

fn warn_gap(why: &str, at: u64) {
    state::count(crate::stats::Event::Gap);
    if !GAP_WARNED.swap(true, Ordering::Relaxed) {
        log::warn!("the instruction trace has a gap at {at:#x}: {why} (warned once)");
    } else {
        log::debug!("instruction trace gap at {at:#x}: {why}");
    }
}

/// Any other exception from the guest to EL2 (`sync` for a synchronous
/// one with exception class `class`, else a physical interrupt): what the
/// guest did before it, and the exception.
#[inline(always)]
pub fn on_trap(regs: &GuestRegs, sync: Option<u8>) {
    if armed_fast() {
        trap_while_armed(regs, sync);
    }
}

#[inline(never)]
fn trap_while_armed(regs: &GuestRegs, sync: Option<u8>) {
    if with(|st| core::mem::take(&mut st.parked)) {
        if el_of(regs.spsr) != 0 {
            // From the parked EL1: nothing of it is traced.
            with(|st| {
                st.trapped = true;
                st.suppress = false;
            });
            return;
        }
        // EL1 left through an ERET the fence did not hold: EL0 ran
        // unstepped to this trap.
        with(|st| {
            st.free_run = true;
            st.learn = true;
            st.el = 0;
        });
        warn_gap(
            "the untraced EL1 returned to EL0 through an ERET EL2 had not seen",
            regs.elr,
        );
        emit([Some(Observed::Gap), None]);
    }
    if let Some(x) = with(|st| st.exclusive.take()) {
        // Interrupted inside an unstepped exclusive sequence: what ran
        // before the interrupted instruction, then the trap there.
        report_exclusive(x.start, x.el, regs.elr);
        with(|st| st.expected = regs.elr);
    }
    let obs = with(|st| -> Observations {
        if !st.armed {
            return [None, None];
        }
        let (pc, el) = (st.expected, st.el);
        st.suppress = false;
        st.put_back_eret_ss();
        st.trapped = true;
        // After an unstepped stretch EL2 does not know what ran before the
        // trap (the trace already has its gap): only the trap itself.
        let known = !core::mem::take(&mut st.free_run);
        if known && sync == Some(ec::SYS64) && only_trapped_for_stepping(ESR_EL2.get()) {
            // Without the stepping it would not have trapped: to the
            // trace, the instruction simply ran (EL2 emulates it), and so
            // does the guest's own step.
            if st.gstep {
                st.gss = false;
                st.step_due = true;
            }
            let word = st.word.unwrap_or(0);
            return [
                Some(Observed::Executed {
                    pc,
                    word,
                    next: pc.wrapping_add(4),
                    el,
                }),
                None,
            ];
        }
        let (kind, executed) = match sync {
            // HVC's preferred return address is the next instruction: it
            // ran. A trapped SMC's is the SMC, which EL2 then skips.
            Some(ec::HVC64) => (ExceptionType::Call, true),
            Some(ec::SMC64) => (ExceptionType::Call, false),
            Some(ec::DABT_LOW) => (ExceptionType::DataFault, false),
            Some(ec::IABT_LOW) => (ExceptionType::InstFault, false),
            Some(ec::SERROR) => (ExceptionType::SystemError, false),
            Some(_) => (ExceptionType::Trap, false),
            None => (ExceptionType::Irq, false),
        };
        // Reported now, as a trace unit would before EL2 runs (EL2 may
        // stop trace before it returns); where the guest resumes is not
        // known yet: a call or an interrupt returns to its preferred return
        // address, an emulated instruction after it. If EL2 resumes the
        // guest elsewhere (an injected exception), the encoder sees the
        // next instruction somewhere else and gives its address.
        let ret = regs.elr;
        let target = match kind {
            ExceptionType::Call | ExceptionType::Irq | ExceptionType::SystemError
                if sync != Some(ec::SMC64) =>
            {
                ret
            }
            _ => ret.wrapping_add(4),
        };
        let exception = Observed::Exception {
            kind,
            ret,
            target,
            from_el: el,
            to_el: el,
        };
        if executed && known {
            let word = st.word.unwrap_or(0);
            [
                Some(Observed::Executed {
                    pc,
                    word,
                    next: ret,
                    el,
                }),
                Some(exception),
            ]
        } else {
            [Some(exception), None]
        }
    });
    emit(obs);
}

/// Whether the trapped system-register access with syndrome `esr` trapped
/// only because EL2 steps the guest (MDCR_EL2.TDE traps every debug
/// register; the OS lock registers trap anyway, TDOSA).
fn only_trapped_for_stepping(esr: u64) -> bool {
    use crate::debug_view::{DBGPRCR_EL1, OSDLR_EL1, OSLAR_EL1, OSLSR_EL1};
    match crate::esr::decode(esr) {
        crate::esr::Trap::SysReg { reg, .. } => {
            // op1 = 1 is the trace unit's (trapped anyway, CPTR_EL2.TTA).
            reg.op0 == 2
                && reg.op1 != 1
                && ![OSLAR_EL1, OSLSR_EL1, OSDLR_EL1, DBGPRCR_EL1].contains(&reg)
        }
        _ => false,
    }
}

fn emit(obs: Observations) {
    let s = sample();
    for ev in obs.into_iter().flatten() {
        tracing::observe(&ev, &s);
    }
}

/// The last thing before EL2 returns to the guest (every exit, and every
/// entry: cold, CPU_ON, warm boot): arms or disarms stepping for the next
/// instruction as this core's trace asks.
#[inline(always)]
pub fn on_guest_return(regs: &mut GuestRegs) {
    let stepping = tracing::stepping();
    if stepping || armed_fast() {
        guest_return(regs, stepping);
    }
}

#[inline(never)]
fn guest_return(regs: &mut GuestRegs, stepping: bool) {
    let mut gap = false;
    let mut own_step = None;
    with(|st| {
        // A parked EL1 ends with any return (parked again below if the
        // guest stays in an untraced EL1).
        st.unfence();
        st.parked = false;
        if stepping {
            if !st.armed {
                st.mdscr = MDSCR_EL1.get();
                for (i, bp) in st
                    .saved_bp
                    .iter_mut()
                    .take(usable_breakpoints())
                    .enumerate()
                {
                    *bp = breakpoint(i);
                }
                st.gss = regs.spsr & psr::SS != 0;
                st.gstep = false;
                st.step_due = false;
                st.trapped = false;
                st.armed = true;
                let me = arch::core_index();
                ARMED[me].store(true, Ordering::Relaxed);
                if FIRST_ARMED.fetch_or(1 << me, Ordering::Relaxed) & (1 << me) == 0 {
                    log::info!(
                        "stepping this core's guest: its trace runs on the instruction source"
                    );
                }
            }
            // An instruction EL2 completed for the guest (an HVC, an
            // emulated access: SPSR_EL2.SS clear) completed its own step.
            if core::mem::take(&mut st.trapped) && st.gstep && regs.spsr & psr::SS == 0 {
                st.gss = false;
            }
            let due = core::mem::take(&mut st.step_due);
            if due || (own_step_enabled(st.mdscr, el_of(regs.spsr), regs.spsr) && !st.gss) {
                // The guest's own step exception, taken here: after the
                // instruction that completed it (ISV = 1), or active-pending
                // before this one (ISV = 0).
                use crate::inject::{DebugKind, Fault, FSC_DEBUG, STEP_EX, STEP_ISV};
                let ex = due && st.word.is_some_and(|w| exclusive(w) == Some(true));
                let iss = if due { STEP_ISV } else { 0 } | if ex { STEP_EX } else { 0 };
                let (ret, from_el) = (regs.elr, el_of(regs.spsr));
                st.gss = false;
                let fault = Fault::Debug {
                    kind: DebugKind::SoftwareStep,
                    iss: iss | FSC_DEBUG,
                    far: None,
                };
                state::deliver(regs, fault, Some(false));
                own_step = Some(Observed::Exception {
                    kind: ExceptionType::InstDebug,
                    ret,
                    target: regs.elr,
                    from_el,
                    to_el: 1,
                });
            }
            let el = el_of(regs.spsr);
            let park = el == 1
                && own_step.is_none()
                && tracing::el1_untraced()
                && !st.learn
                && !st.suppress
                && !st.gss
                && !own_step_enabled(st.mdscr, el, regs.spsr)
                // At a fenced ERET (the fence just stopped it there): step
                // it into EL0.
                && !st.eret_sites[..st.eret_sites_n].contains(&regs.elr)
                && st.fence();
            if park {
                // EL1 is not traced: it runs unstepped, with the guest's
                // own MDE and breakpoints (their hits come here, TDE), to
                // the fence at its ERETs to EL0 or its next trap.
                state::count(crate::stats::Event::Parked);
                st.restore_guest_breakpoints();
                MDSCR_EL1.set((st.mdscr & MDSCR_TDCC) | MDSCR_MDE);
                MDCR_EL2.set(MDCR_EL2.get() | MDCR_TDE);
                arch::isb();
                st.programmed = false;
                st.parked = true;
                st.gstep = false;
                st.word = None;
                regs.spsr &= !psr::SS;
                st.expected = regs.elr;
                st.el = el;
                st.elr_el1 = ELR_EL1.get();
                st.spsr_el1 = SPSR_EL1.get();
                return;
            }
            st.word = guest_word(regs.elr);
            st.gstep = own_step_enabled(st.mdscr, el, regs.spsr) && st.gss;
            if el == 1 && st.word.is_some_and(is_eret) {
                let spsr1 = SPSR_EL1.get();
                if spsr1 & psr::SS != 0 {
                    SPSR_EL1.set(spsr1 & !psr::SS);
                    st.eret_ss = true;
                }
            }
            let load_exclusive = st.word.is_some_and(|w| exclusive(w) == Some(true))
                && !step_just_one(st, regs.spsr);
            let exits = if load_exclusive {
                exclusive_exits(regs.elr)
            } else {
                None
            };
            if load_exclusive && exits.is_none() {
                // No bounded shape: run free to the next trap, with a gap.
                st.restore_guest_breakpoints();
                MDSCR_EL1.set(st.mdscr & MDSCR_TDCC);
                MDCR_EL2.set(MDCR_EL2.get() | MDCR_TDE);
                arch::isb();
                st.programmed = false;
                st.free_run = true;
                regs.spsr &= !psr::SS;
                gap = true;
            } else if let Some(exits) = exits {
                // Unstepped to its exits (see the module documentation).
                for (i, exit) in exits.iter().take(usable_breakpoints()).enumerate() {
                    set_breakpoint(i, (*exit, bcr_exec_at(el)));
                }
                st.bp_set = true;
                MDSCR_EL1.set((st.mdscr & MDSCR_TDCC) | MDSCR_MDE);
                MDCR_EL2.set(MDCR_EL2.get() | MDCR_TDE);
                arch::isb();
                st.programmed = false;
                regs.spsr &= !psr::SS;
                st.exclusive = Some(Exclusive {
                    start: regs.elr,
                    el,
                    exits,
                });
            } else {
                st.restore_guest_breakpoints();
                // The guest's own MDE applies its breakpoints and
                // watchpoints (their hits come here: TDE).
                let mde = if st.suppress { 0 } else { st.mdscr & MDSCR_MDE };
                let want = (st.mdscr & MDSCR_TDCC) | MDSCR_SS | mde;
                if !st.programmed || st.hw_mdscr != want {
                    MDSCR_EL1.set(want);
                    MDCR_EL2.set(MDCR_EL2.get() | MDCR_TDE);
                    arch::isb();
                    st.programmed = true;
                    st.hw_mdscr = want;
                }
                regs.spsr |= psr::SS;
            }
            st.expected = regs.elr;
            st.el = el;
            st.elr_el1 = ELR_EL1.get();
            st.spsr_el1 = SPSR_EL1.get();
        } else if st.armed {
            st.armed = false;
            ARMED[arch::core_index()].store(false, Ordering::Relaxed);
            MDCR_EL2.set(MDCR_EL2.get() & !MDCR_TDE);
            st.bp_set = true;
            st.restore_guest_breakpoints();
            st.put_back_eret_ss();
            st.exclusive = None;
            st.programmed = false;
            st.suppress = false;
            st.parked = false;
            MDSCR_EL1.set(st.mdscr);
            arch::isb();
            // Its own PSTATE.SS, for the hardware's step from here.
            regs.spsr = with_ss(regs.spsr, st.gss);
        }
    });
    if own_step.is_some() {
        emit([own_step, None]);
    }
    if gap {
        warn_gap(
            "an exclusive sequence EL2 could not bound ran unstepped to the next trap",
            regs.elr,
        );
        emit([Some(Observed::Gap), None]);
    }
}

/// Whether the load-exclusive the guest resumes at is stepped as one
/// instruction rather than its sequence run unstepped: it runs with the
/// guest's breakpoints off, the guest steps it itself, or an interrupt EL2
/// just offered will be taken before it (the exception comes first: step
/// that rather than run the sequence blind).
fn step_just_one(st: &Stepper, spsr: u64) -> bool {
    st.suppress || st.gstep || (spsr & psr::I == 0 && interrupt_offered())
}

/// Whether a list register holds an interrupt pending for the guest.
fn interrupt_offered() -> bool {
    (0..machine().list_registers).any(|n| arch::ich_lr_read(n) & (1 << 62) != 0)
}

/// CPU_ON: the core starts with nothing stepped and nothing to put back
/// (what the step state held belonged to the core before it went off).
pub fn power_on() {
    ARMED[arch::core_index()].store(false, Ordering::Relaxed);
    with(|st| {
        st.armed = false;
        st.programmed = false;
        st.exclusive = None;
        st.bp_set = false;
        st.free_run = false;
        st.fence = false;
        st.parked = false;
        st.learn = false;
        st.word = None;
        st.gss = false;
        st.gstep = false;
        st.eret_ss = false;
        st.step_due = false;
        st.suppress = false;
        st.trapped = false;
    });
}

/// Every entry into the guest through `vcpu::enter` (cold boot, CPU_ON,
/// warm boot): the debug registers may have lost EL2's stepping values.
pub fn hardware_lost() {
    with(|st| st.programmed = false);
}

/// The guest's access to a debug register (op0 = 2) that trapped only
/// because EL2 steps it (TDE): its own MDSCR_EL1 is kept here, its
/// breakpoint and watchpoint registers go to the hardware (the first
/// breakpoints to their saved values while EL2 borrows them), the others
/// read as zero and ignore writes (see the module documentation). `None`
/// when EL2 does not step the guest, or for a breakpoint or watchpoint
/// this core does not have (UNDEFINED, as in the hardware).
pub fn mdscr_access(reg: crate::esr::SysReg, write: Option<u64>) -> Option<u64> {
    if !armed_fast() {
        return None;
    }
    with(|st| {
        // op1 = 1: the trace unit's registers, which trap (and are refused)
        // whether or not EL2 steps the guest.
        if !st.armed || reg.op0 != 2 || reg.op1 == 1 {
            return None;
        }
        if reg == MDSCR_EL1_REG {
            if let Some(v) = write {
                st.mdscr = v;
                // TDCC and MDE are the guest's own, in the hardware too.
                st.programmed = false;
            }
            return Some(st.mdscr);
        }
        if reg.op1 == 0 && reg.crn == 0 && (DBGBVR..=DBGWCR).contains(&reg.op2) {
            let n = reg.crm as usize;
            if n >= debug_register_count(reg.op2) {
                return None;
            }
            if reg.op2 <= DBGBCR && n < usable_breakpoints() {
                let bp = &mut st.saved_bp[n];
                let field = if reg.op2 == DBGBVR {
                    &mut bp.0
                } else {
                    &mut bp.1
                };
                if let Some(v) = write {
                    *field = v;
                    if !st.bp_set {
                        write_debug_register(reg.op2, n, v);
                    }
                }
                return Some(*field);
            }
            if reg.op2 <= DBGBCR
                && st.fence
                && (BREAKPOINTS..BREAKPOINTS + st.eret_sites_n).contains(&n)
            {
                // Borrowed by the fence of a parked EL1: the guest's own copy,
                // put back when the fence ends.
                let bp = &mut st.saved_fence[n - BREAKPOINTS];
                let field = if reg.op2 == DBGBVR {
                    &mut bp.0
                } else {
                    &mut bp.1
                };
                if let Some(v) = write {
                    *field = v;
                }
                return Some(*field);
            }
            if let Some(v) = write {
                write_debug_register(reg.op2, n, v);
            }
            return Some(read_debug_register(reg.op2, n));
        }
        if !UNVIRTUALISED_DEBUG.swap(true, Ordering::Relaxed) {
            log::warn!("the guest's other debug registers (DCC, claim tags) read as zero while EL2 steps it");
        }
        Some(0)
    })
}

/// MDSCR_EL1's encoding (op0 2, op1 0, CRn 0, CRm 2, op2 2).
const MDSCR_EL1_REG: crate::esr::SysReg = crate::esr::SysReg::new(2, 0, 0, 2, 2);

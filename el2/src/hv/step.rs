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
//! A load-exclusive/store-exclusive loop cannot be stepped: each step
//! exception clears the exclusive monitor, so the store never succeeds.
//! EL2 runs such a sequence unstepped, with a hardware breakpoint (EL2's
//! while it steps) where it exits, and reports the sequence's
//! instructions once, as their first pass succeeding (an interrupt inside
//! it is reported where it came, and stepping resumes there)
//! ([`Exclusive`]).
//!
//! The guest's own BRK, which TDE also routes here, is handed back to its
//! EL1 as the hardware would have (`trap.rs`). Not yet virtualised while a
//! core is stepped: the guest's breakpoints, watchpoints and its own
//! single-step (its MDSCR_EL1.MDE and .SS are kept, not applied) and its
//! other debug registers (reads as zero, writes ignored); a warning says
//! so once.

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
/// MDSCR_EL1.MDE and .KDE: the guest's breakpoints and watchpoints.
const MDSCR_MDE_KDE: u64 = (1 << 15) | (1 << 13);
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
}

/// A load-exclusive ... store-exclusive sequence the guest runs unstepped,
/// from `start` (the load) to the first of the breakpoints at `exits`.
#[derive(Clone, Copy, Debug)]
struct Exclusive {
    start: u64,
    el: u8,
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
            exclusive: None,
            bp_set: false,
            free_run: false,
            saved_bp: [(0, 0); BREAKPOINTS],
        }))
    }; crate::dtb::MAX_CPUS],
);

fn with<R>(f: impl FnOnce(&mut Stepper) -> R) -> R {
    state::with(&STEP, f)
}

/// Bytes of per-core state this module keeps.
pub const STATE_SIZE: usize = core::mem::size_of::<Stepper>();

static UNVIRTUALISED_DEBUG: AtomicBool = AtomicBool::new(false);
/// The guest's own MDE/KDE/SS seen while stepped (warned once).
static OWN_DEBUG_WARNED: AtomicBool = AtomicBool::new(false);

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
    (((ID_AA64DFR0_EL1.get() >> 12) & 0xf) as usize + 1).min(BREAKPOINTS)
}

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

macro_rules! dbg_pair {
    ($bvr:literal, $bcr:literal) => {{
        fn get() -> (u64, u64) {
            let (v, c): (u64, u64);
            // SAFETY: reads a breakpoint register pair; no memory effect.
            unsafe {
                core::arch::asm!(concat!("mrs {}, ", $bvr), concat!("mrs {}, ", $bcr),
                    out(reg) v, out(reg) c, options(nomem, nostack, preserves_flags))
            };
            (v, c)
        }
        fn set(v: u64, c: u64) {
            // SAFETY: programs a breakpoint register pair; a breakpoint
            // only raises debug exceptions, which TDE routes to EL2 while
            // it steps the guest.
            unsafe {
                core::arch::asm!(concat!("msr ", $bvr, ", {}"), concat!("msr ", $bcr, ", {}"),
                    in(reg) v, in(reg) c, options(nomem, nostack, preserves_flags))
            };
        }
        (get as fn() -> (u64, u64), set as fn(u64, u64))
    }};
}

/// Reads and writes one breakpoint's (DBGBVR, DBGBCR).
type BreakpointAccess = (fn() -> (u64, u64), fn(u64, u64));

/// The accessors of the breakpoints EL2 may borrow (only the first
/// [`usable_breakpoints`] exist on every core: callers take that many).
fn breakpoints() -> [BreakpointAccess; BREAKPOINTS] {
    [
        dbg_pair!("dbgbvr0_el1", "dbgbcr0_el1"),
        dbg_pair!("dbgbvr1_el1", "dbgbcr1_el1"),
        dbg_pair!("dbgbvr2_el1", "dbgbcr2_el1"),
        dbg_pair!("dbgbvr3_el1", "dbgbcr3_el1"),
    ]
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
        let (pc, el, next) = (st.expected, st.el, regs.elr);
        let to_el = el_of(regs.spsr);
        let Some(word) = st.word else {
            // Not an instruction EL2 could read (not in guest RAM): the
            // decoder could not walk it either.
            return [Some(Observed::Gap), None];
        };
        let vbar = VBAR_EL1.get() & !0x7ff;
        let offset = next.wrapping_sub(vbar);
        let at_vector = offset < 0x800 && offset & 0x7f == 0 && to_el == 1;
        let (elr1, spsr1) = (ELR_EL1.get(), SPSR_EL1.get());
        let rewritten = elr1 != st.elr_el1 || spsr1 != st.spsr_el1;
        let exception = at_vector && (rewritten || !may_branch_to(word, pc, next));
        if !exception {
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
        if elr1 == pc && kind != ExceptionType::Call {
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

/// A breakpoint exception (EC 0x30) from the guest: the end of an
/// exclusive sequence EL2 let run unstepped (the guest's own breakpoints
/// are not applied while it is stepped). False if EL2 did not expect it.
pub fn on_breakpoint(regs: &GuestRegs) -> bool {
    if !armed_fast() {
        return false;
    }
    let Some((x, interrupted)) = with(|st| {
        let interrupted = ELR_EL1.get() != st.elr_el1 || SPSR_EL1.get() != st.spsr_el1;
        st.exclusive.take().map(|x| (x, interrupted))
    }) else {
        return false;
    };
    if interrupted {
        // The guest took an exception to its own EL1 inside the unstepped
        // sequence: what ran there is unknown.
        warn_gap(
            "an exception inside an unstepped exclusive sequence",
            x.start,
        );
        emit([Some(Observed::Gap), None]);
    } else {
        report_exclusive(x.start, x.el, regs.elr);
    }
    true
}

static GAP_WARNED: AtomicBool = AtomicBool::new(false);

fn warn_gap(why: &str, at: u64) {
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
        // After an unstepped stretch EL2 does not know what ran before the
        // trap (the trace already has its gap): only the trap itself.
        let known = !core::mem::take(&mut st.free_run);
        if known && sync == Some(ec::SYS64) && only_trapped_for_stepping(ESR_EL2.get()) {
            // Without the stepping it would not have trapped: to the
            // trace, the instruction simply ran (EL2 emulates it).
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
    with(|st| {
        if stepping {
            if !st.armed {
                st.mdscr = MDSCR_EL1.get();
                for (i, (get, _)) in breakpoints().iter().take(usable_breakpoints()).enumerate() {
                    st.saved_bp[i] = get();
                }
                st.armed = true;
                let me = arch::core_index();
                ARMED[me].store(true, Ordering::Relaxed);
                warn_if_own_debug(st.mdscr);
                if FIRST_ARMED.fetch_or(1 << me, Ordering::Relaxed) & (1 << me) == 0 {
                    log::info!(
                        "stepping this core's guest: its trace runs on the instruction source"
                    );
                }
            }
            let el = el_of(regs.spsr);
            st.word = guest_word(regs.elr);
            let load_exclusive = st.word.is_some_and(|w| exclusive(w) == Some(true))
                // An interrupt EL2 just offered would be taken before the
                // load runs: step that one instruction (the exception comes
                // first) rather than run the sequence blind.
                && !(regs.spsr & psr::I == 0 && interrupt_offered());
            let exits = if load_exclusive {
                exclusive_exits(regs.elr)
            } else {
                None
            };
            let bps = breakpoints();
            if load_exclusive && exits.is_none() {
                // No bounded shape: run free to the next trap, with a gap.
                if st.bp_set {
                    for (_, set) in bps.iter().take(usable_breakpoints()) {
                        set(0, 0);
                    }
                    st.bp_set = false;
                }
                MDSCR_EL1.set(st.mdscr & MDSCR_TDCC);
                MDCR_EL2.set(MDCR_EL2.get() | MDCR_TDE);
                arch::isb();
                st.programmed = false;
                st.free_run = true;
                regs.spsr &= !psr::SS;
                gap = true;
            } else if let Some(exits) = exits {
                // Unstepped to its exits (see the module documentation).
                for (i, (_, set)) in bps.iter().take(usable_breakpoints()).enumerate() {
                    set(exits[i], bcr_exec_at(el));
                }
                st.bp_set = true;
                MDSCR_EL1.set((st.mdscr & MDSCR_TDCC) | MDSCR_MDE);
                st.programmed = false;
                regs.spsr &= !psr::SS;
                st.exclusive = Some(Exclusive {
                    start: regs.elr,
                    el,
                });
            } else {
                if st.bp_set {
                    for (_, set) in bps.iter().take(usable_breakpoints()) {
                        set(0, 0);
                    }
                    st.bp_set = false;
                }
                if !st.programmed {
                    MDSCR_EL1.set((st.mdscr & MDSCR_TDCC) | MDSCR_SS);
                    MDCR_EL2.set(MDCR_EL2.get() | MDCR_TDE);
                    arch::isb();
                    st.programmed = true;
                }
                regs.spsr |= psr::SS;
            }
            if st.exclusive.is_some() {
                MDCR_EL2.set(MDCR_EL2.get() | MDCR_TDE);
                arch::isb();
            }
            st.expected = regs.elr;
            st.el = el_of(regs.spsr);
            st.elr_el1 = ELR_EL1.get();
            st.spsr_el1 = SPSR_EL1.get();
        } else if st.armed {
            st.armed = false;
            ARMED[arch::core_index()].store(false, Ordering::Relaxed);
            MDCR_EL2.set(MDCR_EL2.get() & !MDCR_TDE);
            for (i, (_, set)) in breakpoints().iter().take(usable_breakpoints()).enumerate() {
                set(st.saved_bp[i].0, st.saved_bp[i].1);
            }
            st.exclusive = None;
            st.bp_set = false;
            st.programmed = false;
            MDSCR_EL1.set(st.mdscr);
            arch::isb();
            regs.spsr &= !psr::SS;
        }
    });
    if gap {
        warn_gap(
            "an exclusive sequence EL2 could not bound ran unstepped to the next trap",
            regs.elr,
        );
        emit([Some(Observed::Gap), None]);
    }
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
        st.word = None;
    });
}

/// Every entry into the guest through `vcpu::enter` (cold boot, CPU_ON,
/// warm boot): the debug registers may have lost EL2's stepping values.
pub fn hardware_lost() {
    with(|st| st.programmed = false);
}

fn warn_if_own_debug(mdscr: u64) {
    if mdscr & (MDSCR_SS | MDSCR_MDE_KDE) != 0 && !OWN_DEBUG_WARNED.swap(true, Ordering::Relaxed) {
        log::warn!(
            "the guest uses its own debug (MDSCR_EL1 {mdscr:#x}) while EL2 steps it: not applied until trace stops"
        );
    }
}

/// The guest's access to a debug register (op0 = 2) that trapped only
/// because EL2 steps it (TDE): its own MDSCR_EL1 is kept here; the others
/// read as zero and ignore writes (see the module documentation). `None`
/// when EL2 does not step the guest.
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
                warn_if_own_debug(v);
                // TDCC is the guest's own and stays in the hardware.
                st.programmed = false;
            }
            return Some(st.mdscr);
        }
        if !UNVIRTUALISED_DEBUG.swap(true, Ordering::Relaxed) {
            log::warn!("the guest's debug registers read as zero while EL2 steps it");
        }
        Some(0)
    })
}

/// MDSCR_EL1's encoding (op0 2, op1 0, CRn 0, CRm 2, op2 2).
const MDSCR_EL1_REG: crate::esr::SysReg = crate::esr::SysReg::new(2, 0, 0, 2, 2);

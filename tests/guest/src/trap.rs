//! Synchronous exceptions that a check expects: a core arms a catch around
//! one faulting instruction (a data abort on the hypervisor's memory, an
//! HVC that is UNDEFINED without a hypervisor); the vector records the
//! exception and resumes after the instruction. Any other synchronous
//! exception ends the run (see `arch::unexpected`).

use core::fmt;
use core::sync::atomic::{compiler_fence, AtomicBool, AtomicU64, Ordering};

use crate::arch::{self, Frame, MAX_CPUS};

/// A caught exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caught {
    /// ESR_EL1.
    pub esr: u64,
    /// FAR_EL1 (meaningful for aborts).
    pub far: u64,
    /// ELR_EL1: the faulting instruction.
    pub elr: u64,
}

impl Caught {
    /// Exception class, ESR[31:26].
    pub fn ec(&self) -> u64 {
        (self.esr >> 26) & 0x3f
    }

    /// Instruction-specific syndrome, ESR[24:0].
    pub fn iss(&self) -> u64 {
        self.esr & 0x1ff_ffff
    }
}

impl fmt::Display for Caught {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exception EC {:#x} (ESR_EL1 {:#x}, ELR_EL1 {:#x}, FAR_EL1 {:#x})",
            self.ec(),
            self.esr,
            self.elr,
            self.far
        )
    }
}

#[derive(Debug)]
struct Slot {
    armed: AtomicBool,
    /// An instruction fetch is probed: resume at the link register (x30)
    /// instead of after the faulting instruction, which is the target.
    fetch: AtomicBool,
    step: AtomicBool,
    hit: AtomicBool,
    esr: AtomicU64,
    far: AtomicU64,
    elr: AtomicU64,
}

static SLOTS: [Slot; MAX_CPUS] = [const {
    Slot {
        armed: AtomicBool::new(false),
        fetch: AtomicBool::new(false),
        step: AtomicBool::new(false),
        hit: AtomicBool::new(false),
        esr: AtomicU64::new(0),
        far: AtomicU64::new(0),
        elr: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// Runs `f` (which should be one faulting instruction in an `asm!` block)
/// with a catch armed; returns its result and the exception it raised, if
/// any. A faulting instruction is skipped, so `f`'s outputs are then
/// whatever its registers held.
pub fn catching<R>(f: impl FnOnce() -> R) -> (R, Option<Caught>) {
    let slot = &SLOTS[arch::core_index()];
    slot.hit.store(false, Ordering::Relaxed);
    slot.armed.store(true, Ordering::Relaxed);
    compiler_fence(Ordering::SeqCst);
    let r = f();
    compiler_fence(Ordering::SeqCst);
    slot.armed.store(false, Ordering::Relaxed);
    let caught = slot.hit.load(Ordering::Relaxed).then(|| Caught {
        esr: slot.esr.load(Ordering::Relaxed),
        far: slot.far.load(Ordering::Relaxed),
        elr: slot.elr.load(Ordering::Relaxed),
    });
    (r, caught)
}

/// Like [`catching`], for `f` that branches (with the return address in
/// x30) to code that may not be fetched: an instruction abort resumes at
/// x30, since stepping over the faulting "instruction" would land on the
/// next unfetchable one.
pub fn catching_fetch<R>(f: impl FnOnce() -> R) -> (R, Option<Caught>) {
    let slot = &SLOTS[arch::core_index()];
    slot.fetch.store(true, Ordering::Relaxed);
    let r = catching(f);
    slot.fetch.store(false, Ordering::Relaxed);
    r
}

/// Like [`catching`], for `f` that single-steps itself: a software step
/// exception from EL1 (EC 0x33) turns the step off (MDSCR_EL1.SS) and
/// resumes where it was taken, which is where the next instruction is.
pub fn catching_step<R>(f: impl FnOnce() -> R) -> (R, Option<Caught>) {
    let slot = &SLOTS[arch::core_index()];
    slot.step.store(true, Ordering::Relaxed);
    let r = catching(f);
    slot.step.store(false, Ordering::Relaxed);
    r
}

/// Called by the synchronous vector: takes the exception if a catch is
/// armed on this core (recording it and stepping over the instruction).
pub fn on_sync(frame: &mut Frame) -> bool {
    let slot = &SLOTS[arch::core_index()];
    if !slot.armed.swap(false, Ordering::Relaxed) {
        return false;
    }
    slot.esr.store(arch::esr_el1(), Ordering::Relaxed);
    slot.far.store(arch::far_el1(), Ordering::Relaxed);
    slot.elr.store(frame.elr, Ordering::Relaxed);
    slot.hit.store(true, Ordering::Relaxed);
    // EC 0x21: instruction abort taken without a change in exception level.
    let ec = (arch::esr_el1() >> 26) & 0x3f;
    if slot.fetch.load(Ordering::Relaxed) && ec == 0x21 {
        frame.elr = frame.x[30];
    } else if slot.step.load(Ordering::Relaxed) && ec == 0x33 {
        // SAFETY: clears MDSCR_EL1.SS (the step this catch was armed
        // for); no memory is touched.
        unsafe {
            core::arch::asm!(
                "mrs {t}, mdscr_el1",
                "bic {t}, {t}, #1",
                "msr mdscr_el1, {t}",
                "isb",
                t = out(reg) _,
                options(nomem, nostack, preserves_flags)
            )
        };
    } else {
        frame.elr += 4;
    }
    true
}

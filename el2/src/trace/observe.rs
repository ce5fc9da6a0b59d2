//! What EL2 observes of the guest on a core whose trace runs on the model
//! with the instruction source (software step routed to EL2): the
//! interface between the observer (`hv`, which steps the guest) and the
//! model's instruction-trace encoder, which turns observations into the
//! ETE packets a real trace unit would emit for the same execution.
//!
//! The observer reports, in program order, every guest instruction that
//! completed and every exception the guest took; the encoder decides
//! atoms, addresses, exceptions and context from them. Nothing here is
//! EL2-specific, so the encoder is tested on the host with made-up
//! programs and decoded by OpenCSD (`tests/runner/tests/insn_decode.rs`).
//!
//! What the encoder (`super::insn::InsnEncoder`, reached through
//! `Backend::observe`) relies on:
//!
//! - Every completed instruction is one `Executed`, including SVC, HVC and
//!   SMC (then followed by their `Exception`, whose `ret` is the next
//!   word) and ERET (`next` is where it returned to, `el` the level it ran
//!   at; the level it returned to shows in the next observation).
//! - An interrupt or abort is only an `Exception`: the instruction at `ret`
//!   did not complete and is reported when it does.
//! - An exception the guest takes to EL2 and EL2 returns from (a trapped
//!   HVC, an IRQ EL2 handles) is one `Exception` whose `target` is where
//!   the guest resumed, `to_el` its level there: EL2 is never traced, so
//!   it is invisible in the trace but for the exception.
//! - `next` of a branch must be where it really went: a conditional
//!   branch's atom is E exactly when `next` is its target. If `next`
//!   disagrees with what the code says, the next traced instruction gets an
//!   address packet, so the decoder recovers.
//! - The `Sample` goes with each observation: a changed CONTEXTIDR_EL1 is
//!   traced (if CONTEXT_ID is configured) before the next traced
//!   instruction or exception.

use super::packet::ExceptionType;

/// One observation, in the guest's program order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    /// The guest executed (completed) the instruction `word` at `pc` at
    /// exception level `el`; the next instruction it executes, unless an
    /// exception comes first, is at `next`.
    Executed {
        /// Address of the instruction (guest virtual address).
        pc: u64,
        /// Its encoding, read from guest memory.
        word: u32,
        /// Where execution went on.
        next: u64,
        /// 0 or 1.
        el: u8,
    },
    /// The guest took an exception. `ret` is the preferred return address
    /// (ELR of the level it was taken to): the instruction there did not
    /// complete (an interrupt, an abort) or, for a call (SVC, HVC, SMC),
    /// follows the instruction that did. `target` is where the guest
    /// resumed: the vector of an exception taken to EL1, or, for one taken
    /// to EL2 (never traced itself), where EL2 returned the guest to.
    Exception {
        /// What the exception was.
        kind: ExceptionType,
        /// The preferred return address.
        ret: u64,
        /// Where the guest resumed.
        target: u64,
        /// The level the exception was taken from (0 or 1).
        from_el: u8,
        /// The level the guest resumed at (0 or 1).
        to_el: u8,
    },
    /// The observer lost sight of the guest from here (it ran a stretch
    /// unstepped: an exclusive sequence EL2 could not bound, or one an
    /// exception interrupted, or an instruction it could not read): what
    /// follows starts afresh, as after code that was not traced.
    Gap,
}

/// The context observations carry alongside: sampled by the observer at
/// each observation, traced when it changes (and at each sync point).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Sample {
    /// The virtual count (CNTVCT_EL0), for timestamps.
    pub timestamp: u64,
    /// CONTEXTIDR_EL1.
    pub context_id: u32,
}

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
//! programs and decoded by OpenCSD.

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

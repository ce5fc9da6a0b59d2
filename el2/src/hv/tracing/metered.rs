//! The backend as the manager drives it, with the `bench` switch's
//! backend/manager split.
//!
//! With `bench`, the guest's PMU event counter 2 counts only while EL2 is
//! inside a backend call (programming the trace unit, or the QEMU model's
//! emulation of it): EL2 sets its enable bit on the way in and clears it on
//! the way out. A benchmark that programs counter 2 to count EL2
//! instructions, and leaves its enable to EL2, so reads how many of an
//! operation's EL2 instructions went to the backend; the rest went to the
//! manager and the transport (routing, mailbox, checks, logging).
//! `tests/guest/src/bench.rs` does that. Without `bench` the bracket is one
//! load and a branch per backend call, and the guest's counters are its own.

use core::ops::{Deref, DerefMut};

use crate::arch;
use crate::hv::state::machine;
use crate::manager::{Hardware, HwFault, TraceBackend};
use crate::trace::Backend;
use guest_api::trace::TraceConfig;

/// The event counter EL2 gates in `bench` runs.
pub const BACKEND_COUNTER: u32 = 2;

/// [`Backend`], each of its [`TraceBackend`] calls bracketed (see the
/// module documentation). Everything else of the backend is reached through
/// `Deref`.
#[derive(Debug)]
pub struct Metered(pub Backend);

impl Deref for Metered {
    type Target = Backend;
    fn deref(&self) -> &Backend {
        &self.0
    }
}

impl DerefMut for Metered {
    fn deref_mut(&mut self) -> &mut Backend {
        &mut self.0
    }
}

/// Runs `f` with counter [`BACKEND_COUNTER`] counting, in `bench` runs.
#[inline(always)]
pub fn metered<R>(f: impl FnOnce() -> R) -> R {
    if !machine().guest_counts_el2 {
        return f();
    }
    arch::pmcntenset_el0::write(1 << BACKEND_COUNTER);
    arch::isb();
    let r = f();
    arch::pmcntenclr_el0::write(1 << BACKEND_COUNTER);
    arch::isb();
    r
}

impl TraceBackend for Metered {
    type Saved = <Backend as TraceBackend>::Saved;

    fn start(&mut self, cfg: &TraceConfig) -> Result<(), HwFault> {
        metered(|| self.0.start(cfg))
    }
    fn stop(&mut self) -> Result<(), HwFault> {
        metered(|| self.0.stop())
    }
    fn hardware(&mut self) -> Hardware {
        metered(|| self.0.hardware())
    }
    fn save(&mut self) -> Self::Saved {
        metered(|| self.0.save())
    }
    fn restore(&mut self, cfg: &TraceConfig, saved: &Self::Saved) -> Result<(), HwFault> {
        metered(|| self.0.restore(cfg, saved))
    }
}

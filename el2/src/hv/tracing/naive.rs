//! The deliberately wrong strategy of the seed's race, for tests only: the
//! caller writes the target's mode, and the target programs its hardware
//! later. The same checker that finds nothing wrong with ours catches it.

use core::sync::atomic::{AtomicU64, Ordering};

use super::*;

const NONE: u64 = u64::MAX;
/// The mode, as written by whichever core asked (config word, 0 = disabled).
static MODE: [AtomicU64; crate::dtb::MAX_CPUS] =
    [const { AtomicU64::new(0) }; crate::dtb::MAX_CPUS];
/// Hardware programming the target has yet to do (config word, 0 = stop).
static PENDING: [AtomicU64; crate::dtb::MAX_CPUS] =
    [const { AtomicU64::new(NONE) }; crate::dtb::MAX_CPUS];

pub(super) fn call(idx: usize, req: Request) -> Option<[u64; 6]> {
    let word = match req {
        Request::TraceEnable(cfg) => cfg.encode().0,
        Request::TraceDisable => 0,
        _ => return None,
    };
    MODE[idx].store(word, Ordering::Release);
    PENDING[idx].store(word, Ordering::Release);
    gic::send_hyp_sgi(machine().platform.cpus()[idx]);
    Some([0, 0, 0, 0, 0, 0])
}

pub(super) fn apply_pending() {
    let idx = arch::core_index();
    let word = PENDING[idx].swap(NONE, Ordering::AcqRel);
    if word == NONE {
        return;
    }
    let _ = with_trace(
        |t| match guest_api::trace::TraceConfig::decode(word, 0, 0) {
            Ok(cfg) => t.enable(cfg),
            Err(_) => t.disable(),
        },
    );
}

pub(super) fn mode(idx: usize) -> Mode {
    match guest_api::trace::TraceConfig::decode(MODE[idx].load(Ordering::Acquire), 0, 0) {
        Ok(cfg) => Mode::Enabled(cfg),
        Err(_) => Mode::Disabled,
    }
}

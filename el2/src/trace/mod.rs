//! The trace hardware layer: one core's ETE trace unit, TRBE trace buffer
//! and FEAT_TRF filter, driven by EL2 through the architectural sequences.
//!
//! - `regs`: every register by name, its encoding, the `SysRegs` trait.
//! - `ete`: the driver (`Ete`): start, stop, save, restore, status.
//! - `insn`: the model's instruction-trace encoder (A64 waypoint
//!   classifier, `InsnEncoder`), fed by `observe`.
//! - `model`: `TraceModel`, the ETE + TRBE programming interface in
//!   software, with the hardware's rules, for CPUs without trace (QEMU).
//! - `backend`: `Backend`, what `manager::CoreTrace` drives on each core:
//!   the hardware or the model, with the core's buffer.
//! - `readback`: the Linux-style full save/restore, for comparison only,
//!   and `access_counts`: host only (tests and `make bench`), never in the
//!   hypervisor image.
//!
//! The real registers are `arch::trace_regs::HwTraceRegs` (target only).

pub mod backend;
pub mod data;
pub mod errata;
pub mod ete;
pub mod insn;
pub mod model;
pub mod observe;
pub mod packet;
#[cfg(not(target_os = "none"))]
pub mod readback;
#[cfg(test)]
pub mod recorder;
pub mod regs;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_errata;

pub use backend::*;
pub use ete::*;
pub use model::*;
#[cfg(not(target_os = "none"))]
pub use readback::*;
#[cfg(test)]
pub use recorder::*;
pub use regs::*;

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Which backend a core's trace layer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A trace unit with the system-register interface, a trace buffer EL2
    /// may program, and the trace filter.
    Hardware,
    /// No usable trace hardware: use `TraceModel`.
    Model,
}

/// ID_AA64DFR0_EL1.TraceVer [7:4]: 1 = trace unit with system registers.
const DFR0_TRACEVER: u32 = 4;
/// ID_AA64DFR0_EL1.TraceFilt [43:40]: 1 = FEAT_TRF.
const DFR0_TRACEFILT: u32 = 40;
/// ID_AA64DFR0_EL1.TraceBuffer [47:44]: 1 = FEAT_TRBE.
const DFR0_TRACEBUFFER: u32 = 44;
/// TRBIDR_EL1.P (bit 4): the buffer is owned by a higher EL.
const TRBIDR_P: u64 = 1 << 4;

fn dfr0_field(v: u64, lsb: u32) -> u64 {
    (v >> lsb) & 0xf
}

/// Whether ID_AA64DFR0_EL1 reports a trace buffer, so TRBIDR_EL1 may be
/// read (it is UNDEFINED otherwise).
pub fn has_trace_buffer(id_aa64dfr0: u64) -> bool {
    dfr0_field(id_aa64dfr0, DFR0_TRACEBUFFER) != 0
}

/// Decides the backend from ID_AA64DFR0_EL1 and, when the core has a trace
/// buffer, TRBIDR_EL1. The driver needs all three features: it programs
/// the unit through system registers, the buffer (TRB*) and the filter
/// (TRFCR_ELx, UNDEFINED without FEAT_TRF).
pub fn probe(id_aa64dfr0: u64, trbidr: Option<u64>) -> Probe {
    let unit = dfr0_field(id_aa64dfr0, DFR0_TRACEVER) >= 1;
    let filter = dfr0_field(id_aa64dfr0, DFR0_TRACEFILT) >= 1;
    let buffer = has_trace_buffer(id_aa64dfr0) && matches!(trbidr, Some(t) if t & TRBIDR_P == 0);
    if unit && filter && buffer {
        Probe::Hardware
    } else {
        Probe::Model
    }
}

/// `test.midr=<value>`: the errata table applies as if every core had this
/// MIDR_EL1 (0: the real one), and the QEMU model behaves like that part.
static TEST_MIDR: AtomicU64 = AtomicU64::new(0);
/// `test.trace-probe`: probe the trace registers even where the ID
/// registers say there are none, so the UNDEFINED path runs on QEMU.
static TEST_PROBE: AtomicBool = AtomicBool::new(false);
/// The MIDR of the first core that logged its errata decision.
static FIRST_MIDR: AtomicU64 = AtomicU64::new(u64::MAX);

/// Sets the test switches (boot, before any core probes its trace).
pub fn set_test_switches(midr: Option<u64>, probe_anyway: bool) {
    TEST_MIDR.store(midr.unwrap_or(0), Ordering::Relaxed);
    TEST_PROBE.store(probe_anyway, Ordering::Relaxed);
}

/// The MIDR the errata table is keyed on: `real`, or the test switch's.
pub fn effective_midr(real: u64) -> u64 {
    match TEST_MIDR.load(Ordering::Relaxed) {
        0 => real,
        m => m,
    }
}

/// Logs core `idx`'s errata decision: at info level for the first core and
/// for any core whose MIDR differs from the first's (big.LITTLE), at debug
/// level otherwise, so a boot log says it once per kind of core.
pub fn log_errata(idx: usize, midr: errata::Midr) {
    let first = FIRST_MIDR
        .compare_exchange(u64::MAX, midr.0, Ordering::Relaxed, Ordering::Relaxed)
        .unwrap_or_else(|f| f);
    let level = if first == u64::MAX || first != midr.0 {
        log::Level::Info
    } else {
        log::Level::Debug
    };
    let test = if TEST_MIDR.load(Ordering::Relaxed) != 0 {
        " (test.midr)"
    } else {
        ""
    };
    let mut any = false;
    for e in errata::applying(midr) {
        any = true;
        log::log!(
            level,
            "TRBE erratum {} applies (cpu{idx}: {}, MIDR {:#x}{test}): {}",
            e.number,
            e.cpu,
            midr.0,
            e.workaround.describe()
        );
    }
    if !any {
        log::log!(
            level,
            "trace errata: none apply (cpu{idx}: MIDR {:#x}{test})",
            midr.0
        );
    }
}

/// The backend a core with `errata` may use, given what probing found.
pub fn usable(found: Probe, errata: errata::Errata) -> Probe {
    if found == Probe::Hardware && errata.has(errata::Workaround::Unusable) {
        Probe::Model
    } else {
        found
    }
}

/// Probes this core's trace hardware safely: the ID registers first; then,
/// where they claim a trace unit, buffer and filter (or `test.trace-probe`
/// asks), one read of TRBIDR_EL1, TRCIDR0 and TRFCR_EL2 each through
/// `arch::trace_regs::try_read`, which survives an UNDEFINED read. Firmware
/// that traps one of them to EL3 and answers with an UNDEF leaves the core
/// with no usable trace hardware: it logs why and uses the model.
#[cfg(target_os = "none")]
pub fn probe_core(errata: errata::Errata) -> Probe {
    use crate::arch::trace_regs::{id_aa64dfr0, try_read, ProbeReg, TraceAccess};
    let dfr0 = id_aa64dfr0();
    // TRBIDR.P = 0 stands in for the unread register: "would be hardware".
    let claimed = probe(dfr0, Some(0)) == Probe::Hardware;
    if !claimed && !TEST_PROBE.load(Ordering::Relaxed) {
        return Probe::Model;
    }
    let _open = TraceAccess::open();
    let mut trbidr = 0;
    for (name, r) in [
        ("TRBIDR_EL1", ProbeReg::TrbIdR),
        ("TRCIDR0", ProbeReg::TrcIdR0),
        ("TRFCR_EL2", ProbeReg::TrfcrEl2),
    ] {
        match try_read(r) {
            Some(v) if r == ProbeReg::TrbIdR => trbidr = v,
            Some(_) => {}
            None => {
                log::warn!(
                    "no usable trace hardware: {name} is UNDEFINED at EL2 (firmware must leave trace to the \
                     non-secure side: MDCR_EL3.NSTB/NSTBE, CPTR_EL3.TTA = 0, MDCR_EL3.TTRF = 0; see README); \
                     this core uses the model"
                );
                return Probe::Model;
            }
        }
    }
    let found = probe(dfr0, Some(trbidr));
    let p = usable(found, errata);
    if p != found {
        log::warn!("TRBE not used on this core (erratum 1902691): it uses the model");
    }
    p
}

#[cfg(test)]
mod probe_tests {
    use super::*;

    const ETE_TRBE_TRF: u64 = (1 << 4) | (1 << 40) | (1 << 44);

    #[test]
    fn trace_probe_qemu_has_nothing() {
        // QEMU max: TraceVer, TraceFilt and TraceBuffer all 0 (PMUv3p5 and
        // debug fields set, to show they do not matter).
        let qemu_max = 0x0000_0000_1110_5f09_u64 & !ETE_TRBE_TRF;
        assert!(!has_trace_buffer(qemu_max));
        assert_eq!(probe(qemu_max, None), Probe::Model);
    }

    #[test]
    fn trace_probe_full_trace_is_hardware() {
        assert_eq!(probe(ETE_TRBE_TRF, Some(0x6)), Probe::Hardware);
        assert_eq!(
            probe(ETE_TRBE_TRF | (0x9 << 8), Some(0x26)),
            Probe::Hardware
        );
    }

    #[test]
    fn trace_probe_buffer_owned_elsewhere_is_model() {
        assert_eq!(probe(ETE_TRBE_TRF, Some(0x6 | TRBIDR_P)), Probe::Model);
    }

    #[test]
    fn trace_probe_missing_pieces_are_model() {
        assert_eq!(
            probe(ETE_TRBE_TRF & !(0xf << 44), None),
            Probe::Model,
            "no TRBE"
        );
        assert_eq!(
            probe(ETE_TRBE_TRF & !(0xf << 44), Some(0x6)),
            Probe::Model,
            "no TRBE, stray TRBIDR"
        );
        assert_eq!(
            probe(ETE_TRBE_TRF & !(0xf << 4), Some(0x6)),
            Probe::Model,
            "TraceVer 0"
        );
        assert_eq!(
            probe(ETE_TRBE_TRF & !(0xf << 40), Some(0x6)),
            Probe::Model,
            "no FEAT_TRF"
        );
        assert_eq!(probe(ETE_TRBE_TRF, None), Probe::Model, "TRBIDR not read");
    }

    #[test]
    fn trace_probe_refuses_a_trbe_with_erratum_1902691() {
        use errata::{Errata, Midr, CORTEX_A510};
        let r0p1 = Errata::for_midr(Midr::arm(CORTEX_A510, 0, 1));
        let r0p2 = Errata::for_midr(Midr::arm(CORTEX_A510, 0, 2));
        assert_eq!(usable(Probe::Hardware, r0p1), Probe::Model);
        assert_eq!(usable(Probe::Hardware, r0p2), Probe::Hardware);
        assert_eq!(usable(Probe::Model, Errata::NONE), Probe::Model);
    }

    #[test]
    fn trace_test_midr_overrides_the_real_one() {
        // The only test touching the switch (statics are process-wide).
        assert_eq!(effective_midr(0x000f_0510), 0x000f_0510);
        set_test_switches(Some(0x410f_d470), false);
        assert_eq!(effective_midr(0x000f_0510), 0x410f_d470);
        set_test_switches(None, false);
        assert_eq!(effective_midr(0x000f_0510), 0x000f_0510);
    }
}

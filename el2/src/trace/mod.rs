//! The trace hardware layer: one core's ETE trace unit, TRBE trace buffer
//! and FEAT_TRF filter, driven by EL2 through the architectural sequences.
//!
//! - `regs`: every register by name, its encoding, the `SysRegs` trait.
//! - `ete`: the driver (`Ete`): start, stop, save, restore, status.
//! - `model`: `TraceModel`, the ETE + TRBE programming interface in
//!   software, with the hardware's rules, for CPUs without trace (QEMU).
//! - `backend`: `Backend`, what `manager::CoreTrace` drives on each core:
//!   the hardware or the model, with the core's buffer.
//! - `readback`: the Linux-style full save/restore, for comparison only,
//!   and `access_counts`.
//!
//! The real registers are `arch::trace_regs::HwTraceRegs` (target only).

pub mod backend;
pub mod data;
pub mod errata;
pub mod ete;
pub mod model;
pub mod packet;
pub mod readback;
#[cfg(test)]
pub mod recorder;
pub mod regs;
#[cfg(test)]
mod tests;

pub use backend::*;
pub use ete::*;
pub use model::*;
pub use readback::*;
#[cfg(test)]
pub use recorder::*;
pub use regs::*;

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
}

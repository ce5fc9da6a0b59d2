//! What the guest sees of the debug and trace controls EL2 owns.
//!
//! - ID registers (trapped with HCR_EL2.TID3): read from the hardware, with
//!   the trace unit, trace buffer and trace filter hidden from
//!   ID_AA64DFR0_EL1 and ID_DFR0_EL1, so the guest's drivers never look
//!   for them. Encodings EL2 does not know read as zero (reserved ID space
//!   is RAZ, and an unknown feature stays hidden).
//! - The OS lock (trapped with MDCR_EL2.TDOSA): the PE's OS lock also stops
//!   the trace unit (ETE has no lock of its own), so the guest gets a
//!   per-core virtual one. Linux clears it at boot and sets it around
//!   power-down; neither may reach the real lock.

use crate::esr::SysReg;

/// ID_AA64DFR0_EL1.
pub const ID_AA64DFR0_EL1: SysReg = SysReg::new(3, 0, 0, 5, 0);
/// ID_DFR0_EL1 (the AArch32 view).
pub const ID_DFR0_EL1: SysReg = SysReg::new(3, 0, 0, 1, 2);
/// OSLAR_EL1.
pub const OSLAR_EL1: SysReg = SysReg::new(2, 0, 1, 0, 4);
/// OSLSR_EL1.
pub const OSLSR_EL1: SysReg = SysReg::new(2, 0, 1, 1, 4);
/// OSDLR_EL1.
pub const OSDLR_EL1: SysReg = SysReg::new(2, 0, 1, 3, 4);
/// DBGPRCR_EL1.
pub const DBGPRCR_EL1: SysReg = SysReg::new(2, 0, 1, 4, 4);

/// ID_AA64DFR0_EL1 fields hidden from the guest: TraceVer [7:4],
/// TraceFilt [43:40], TraceBuffer [47:44].
const DFR0_TRACE: u64 = (0xf << 4) | (0xf << 40) | (0xf << 44);
/// ID_DFR0_EL1.CopTrc [15:12], MMapTrc [19:16], TraceFilt [31:28].
const AARCH32_DFR0_TRACE: u64 = (0xf << 12) | (0xf << 16) | (0xf << 28);

/// Is `reg` in the ID space HCR_EL2.TID3 traps (op0 3, op1 0, CRn 0, CRm 1..7)?
pub fn is_id_register(reg: SysReg) -> bool {
    reg.op0 == 3 && reg.op1 == 0 && reg.crn == 0 && (1..=7).contains(&reg.crm)
}

/// The guest's view of an ID register whose hardware value is `hw`.
pub fn id_view(reg: SysReg, hw: u64) -> u64 {
    if reg == ID_AA64DFR0_EL1 {
        hw & !DFR0_TRACE
    } else if reg == ID_DFR0_EL1 {
        hw & !AARCH32_DFR0_TRACE
    } else {
        hw
    }
}

/// The per-core virtual OS lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OsLock {
    locked: bool,
}

/// OSLSR_EL1.OSLM = 0b10 (OS lock implemented, bits [3] and [0]).
const OSLSR_OSLM: u64 = 1 << 3;
const OSLSR_OSLK: u64 = 1 << 1;

impl OsLock {
    /// The lock as a core powers up: locked, as on a cold reset.
    pub const fn new() -> OsLock {
        OsLock { locked: true }
    }

    /// A trapped access: `write` is `Some(value)` for MSR. Returns the value
    /// an MRS reads, or `None` if `reg` is not an OS-lock register.
    pub fn access(&mut self, reg: SysReg, write: Option<u64>) -> Option<u64> {
        if reg == OSLAR_EL1 {
            if let Some(v) = write {
                self.locked = v & 1 != 0;
            }
            Some(0)
        } else if reg == OSLSR_EL1 {
            Some(OSLSR_OSLM | if self.locked { OSLSR_OSLK } else { 0 })
        } else if reg == OSDLR_EL1 || reg == DBGPRCR_EL1 {
            // No double lock; no powerdown-request control: RAZ/WI.
            Some(0)
        } else {
            None
        }
    }

    /// Is the guest's lock set?
    pub fn locked(&self) -> bool {
        self.locked
    }
}

impl Default for OsLock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_features_are_hidden() {
        // An Armv9 core with ETE (TraceVer 1), TRF 1, TRBE 1, PMUv3p5 (PMUVer 6), DebugVer 9.
        let hw = (1 << 44) | (1 << 40) | (6 << 8) | (1 << 4) | 9;
        assert_eq!(id_view(ID_AA64DFR0_EL1, hw), (6 << 8) | 9);
        assert_eq!(id_view(ID_DFR0_EL1, 0x1001_1000 | 0x0300_0000), 0x0300_0000);
        let pfr0 = SysReg::new(3, 0, 0, 4, 0);
        assert_eq!(id_view(pfr0, hw), hw, "other registers unchanged");
    }

    #[test]
    fn id_space() {
        assert!(is_id_register(ID_AA64DFR0_EL1));
        assert!(is_id_register(SysReg::new(3, 0, 0, 7, 4)));
        assert!(
            !is_id_register(SysReg::new(3, 0, 0, 0, 5)),
            "MPIDR is not TID3's"
        );
        assert!(!is_id_register(SysReg::new(3, 0, 1, 0, 0)), "SCTLR_EL1");
    }

    #[test]
    fn os_lock_is_virtual_and_starts_locked() {
        let mut l = OsLock::new();
        assert_eq!(l.access(OSLSR_EL1, None), Some(0b1010));
        assert_eq!(l.access(OSLAR_EL1, Some(0)), Some(0));
        assert_eq!(l.access(OSLSR_EL1, None), Some(0b1000));
        assert!(!l.locked());
        l.access(OSLAR_EL1, Some(1));
        assert!(l.locked());
        assert_eq!(l.access(OSDLR_EL1, Some(1)), Some(0));
        assert_eq!(l.access(SysReg::new(3, 0, 1, 0, 0), None), None);
    }
}

//! Injection of a synchronous exception into the EL1 guest.
//!
//! When the guest does something the hypervisor does not handle (an access
//! to an unmapped IPA, an unhandled System register, an unknown exception
//! class) the hypervisor makes it look as if the hardware had taken the
//! architectural exception to the guest's EL1: [`inject`] computes the
//! values of ESR_EL1, FAR_EL1, ELR_EL1 and SPSR_EL1 to write, and the new
//! ELR_EL2/SPSR_EL2 to `eret` to (the guest's vector).
//!
//! The rules follow the Arm ARM pseudocode `AArch64.TakeException` for a
//! synchronous exception taken to EL1 in AArch64 (HCR_EL2.RW == 1), the
//! same model as Linux KVM's `enter_exception64`:
//!
//! * Vector: VBAR_EL1\[63:11\] plus, by origin (the guest's PSTATE at the
//!   trap): EL1t (M = 0b0100) 0x000, EL1h (M = 0b0101) 0x200, EL0 AArch64
//!   (M = 0b0000) 0x400, EL0 AArch32 (M\[4\] = 1) 0x600; synchronous, so
//!   +0x000 within the group.
//! * ELR_EL1 = the faulting instruction (the preferred return address of an
//!   UNDEFINED instruction and of an abort); SPSR_EL1 = the old PSTATE,
//!   bit for bit (SPSR_EL2 already uses the SPSR_ELx format for either
//!   execution state).
//! * New PSTATE: M = EL1h; D, A, I, F set; SS, IL, UAO, BTYPE cleared;
//!   PAN set if SCTLR_EL1.SPAN == 0, else unchanged; SSBS =
//!   SCTLR_EL1.DSSBS. N, Z, C, V and DIT are unchanged, as in the
//!   architecture (`AArch64.TakeException` does not touch them; bit 24 is
//!   DIT in the SPSR_ELx format from AArch32 too). Every other bit is 0.
//!
//! Simplifications (documented, deliberate):
//!
//! * TCO is cleared. The architecture sets it when FEAT_MTE is implemented;
//!   the hypervisor does not expose MTE to its guest.
//! * ALLINT (FEAT_NMI) is cleared rather than set to !SCTLR_EL1.SPINTMASK,
//!   and PM (FEAT_EBEP), EXLOCK (FEAT_GCS) and UINJ are not modelled: these
//!   features are not exposed to the guest, so the bits are RES0.
//! * [`Fault::Undefined`] always reports IL = 1, even for a 16-bit T32
//!   instruction from AArch32 EL0.
//! * Aborts report a synchronous External abort (FSC 0b010000) with
//!   FnV = 0, EA = 0, SET = 0b00 and no instruction syndrome (ISV = 0).
//! * A PSTATE whose M field names EL2/EL3 (impossible for a guest) is
//!   treated as "current Exception level", SP chosen by M\[0\]; any M\[4\]
//!   = 1 mode is treated as AArch32 EL0 (EL1 is AArch64 by construction).
//! * From AArch32 the FAR is zero-extended from 32 bits, as the hardware
//!   reports it for an AArch32 address.

use crate::esr::ec;

/// The exception to make the guest take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// UNDEFINED instruction: EC 0x00, IL = 1 (the trapped instruction was
    /// 32-bit), ISS 0. FAR_EL1 is left unchanged.
    Undefined,
    /// Synchronous External abort on a data access at `far` (DFSC 0x10);
    /// `write` sets WnR.
    DataAbort { far: u64, write: bool },
    /// Synchronous External abort on an instruction fetch at `far`
    /// (IFSC 0x10).
    InstructionAbort { far: u64 },
    /// The guest's own BRK, which EL2 took only because it routes debug
    /// exceptions to itself while it steps the guest (MDCR_EL2.TDE): EC
    /// 0x3C, IL = 1, ISS = the instruction's 16-bit comment, as the
    /// hardware would have reported it to EL1. FAR_EL1 is left unchanged.
    Breakpoint { comment: u16 },
    /// A debug exception of the guest's own debug (a hardware breakpoint,
    /// a watchpoint or its software step) that EL2 took only because it
    /// steps the guest (MDCR_EL2.TDE): EC 0x30/0x31, 0x34/0x35 or
    /// 0x32/0x33 (lower/current EL), IL = 1, `iss` as the hardware gives
    /// it (IFSC/DFSC 0x22 and, for a watchpoint, WnR and CM; for a step,
    /// ISV and EX), FAR_EL1 = `far` (`None`: unchanged).
    Debug {
        kind: DebugKind,
        iss: u32,
        far: Option<u64>,
    },
}

/// The debug exceptions [`Fault::Debug`] delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugKind {
    Breakpoint,
    SoftwareStep,
    Watchpoint,
}

impl DebugKind {
    /// The exception class from a lower Exception level (from the current
    /// one: plus 1).
    pub const fn lower_class(self) -> u8 {
        match self {
            Self::Breakpoint => ec::BREAKPT_LOW,
            Self::SoftwareStep => ec::SOFTSTP_LOW,
            Self::Watchpoint => ec::WATCHPT_LOW,
        }
    }
}

/// The fault status code of a debug exception (IFSC/DFSC).
pub const FSC_DEBUG: u32 = 0x22;
/// ESR_ELx.ISS.ISV of a software step exception: EX is valid.
pub const STEP_ISV: u32 = 1 << 24;
/// ESR_ELx.ISS.EX of a software step exception: the stepped instruction
/// was a load-exclusive.
pub const STEP_EX: u32 = 1 << 6;

/// The guest's state at the trap to EL2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestState {
    /// ELR_EL2 at the trap: the faulting instruction.
    pub pc: u64,
    /// SPSR_EL2 at the trap: the guest's PSTATE.
    pub pstate: u64,
    pub vbar_el1: u64,
    pub sctlr_el1: u64,
}

/// The register values that deliver the exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Injection {
    pub esr_el1: u64,
    /// `None` leaves FAR_EL1 unchanged (UNDEFINED).
    pub far_el1: Option<u64>,
    /// The faulting pc.
    pub elr_el1: u64,
    /// The guest's PSTATE at the trap.
    pub spsr_el1: u64,
    /// New ELR_EL2: the guest's vector.
    pub pc: u64,
    /// New SPSR_EL2: the guest's PSTATE on entry to its handler.
    pub pstate: u64,
}

/// PSTATE / SPSR_ELx bits used here (AArch64 SPSR format).
pub mod psr {
    /// M\[4:0\]: M\[4\] = 1 for AArch32; M\[3:2\] = EL, M\[0\] = SP select.
    pub const M_MASK: u64 = 0x1f;
    pub const M_AARCH32: u64 = 1 << 4;
    pub const M_EL0T: u64 = 0b0000;
    pub const M_EL1T: u64 = 0b0100;
    pub const M_EL1H: u64 = 0b0101;
    pub const F: u64 = 1 << 6;
    pub const I: u64 = 1 << 7;
    pub const A: u64 = 1 << 8;
    pub const D: u64 = 1 << 9;
    pub const DAIF: u64 = D | A | I | F;
    /// BTYPE, bits \[11:10\] (FEAT_BTI).
    pub const BTYPE: u64 = 0b11 << 10;
    /// SSBS (FEAT_SSBS), AArch64 format.
    pub const SSBS: u64 = 1 << 12;
    /// ALLINT (FEAT_NMI).
    pub const ALLINT: u64 = 1 << 13;
    pub const IL: u64 = 1 << 20;
    pub const SS: u64 = 1 << 21;
    pub const PAN: u64 = 1 << 22;
    pub const UAO: u64 = 1 << 23;
    /// DIT (FEAT_DIT); bit 24 in the SPSR_ELx format from either state.
    pub const DIT: u64 = 1 << 24;
    /// TCO (FEAT_MTE).
    pub const TCO: u64 = 1 << 25;
    pub const NZCV: u64 = 0xf << 28;
}

/// SCTLR_EL1.SPAN, bit 23: 0 = set PSTATE.PAN on exception entry to EL1.
pub const SCTLR_SPAN: u64 = 1 << 23;
/// SCTLR_EL1.DSSBS, bit 44: PSTATE.SSBS on exception entry to EL1.
pub const SCTLR_DSSBS: u64 = 1 << 44;

/// ESR_ELx.IL.
const ESR_IL: u64 = 1 << 25;
/// ESR_ELx.ISS.WnR for a data abort.
const ESR_WNR: u64 = 1 << 6;
/// FSC: synchronous External abort, not on a translation table walk.
const FSC_SEA: u64 = 0b01_0000;

/// Where the exception comes from, as seen by EL1's vector table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Current Exception level (EL1) with SP_EL0 (EL1t).
    CurrentSp0,
    /// Current Exception level (EL1) with SP_EL1 (EL1h).
    CurrentSpx,
    /// Lower Exception level (EL0) in AArch64.
    LowerAArch64,
    /// Lower Exception level (EL0) in AArch32.
    LowerAArch32,
}

impl Origin {
    /// Classify the guest's PSTATE (SPSR_EL2) at the trap.
    pub const fn from_pstate(pstate: u64) -> Self {
        if pstate & psr::M_AARCH32 != 0 {
            Self::LowerAArch32
        } else if (pstate >> 2) & 0b11 == 0 {
            Self::LowerAArch64
        } else if pstate & 1 == 0 {
            Self::CurrentSp0
        } else {
            Self::CurrentSpx
        }
    }

    /// Offset of the vector group from VBAR_EL1.
    pub const fn vector_offset(self) -> u64 {
        match self {
            Self::CurrentSp0 => 0x000,
            Self::CurrentSpx => 0x200,
            Self::LowerAArch64 => 0x400,
            Self::LowerAArch32 => 0x600,
        }
    }

    /// Whether the exception comes from a lower Exception level (EL0).
    pub const fn is_lower(self) -> bool {
        matches!(self, Self::LowerAArch64 | Self::LowerAArch32)
    }
}

/// ESR_EL1 for `fault` taken from `origin`.
pub const fn syndrome(fault: Fault, origin: Origin) -> u64 {
    let lower = origin.is_lower();
    match fault {
        Fault::Undefined => ((ec::UNKNOWN as u64) << 26) | ESR_IL,
        Fault::Breakpoint { comment } => ((ec::BRK64 as u64) << 26) | ESR_IL | comment as u64,
        Fault::Debug { kind, iss, .. } => {
            let class = kind.lower_class() + if lower { 0 } else { 1 };
            ((class as u64) << 26) | ESR_IL | (iss as u64 & 0x1ff_ffff)
        }
        Fault::DataAbort { write, .. } => {
            let class = if lower { ec::DABT_LOW } else { ec::DABT_CUR };
            let wnr = if write { ESR_WNR } else { 0 };
            ((class as u64) << 26) | ESR_IL | wnr | FSC_SEA
        }
        Fault::InstructionAbort { .. } => {
            let class = if lower { ec::IABT_LOW } else { ec::IABT_CUR };
            ((class as u64) << 26) | ESR_IL | FSC_SEA
        }
    }
}

/// PSTATE on entry to the EL1 handler, from the PSTATE at the trap and
/// SCTLR_EL1 (see the module documentation for the rules).
pub const fn entry_pstate(old: u64, sctlr_el1: u64) -> u64 {
    let mut new = old & (psr::NZCV | psr::DIT);
    if sctlr_el1 & SCTLR_SPAN == 0 {
        new |= psr::PAN;
    } else {
        new |= old & psr::PAN;
    }
    if sctlr_el1 & SCTLR_DSSBS != 0 {
        new |= psr::SSBS;
    }
    new | psr::DAIF | psr::M_EL1H
}

/// Compute the registers that deliver `fault` to the guest's EL1.
pub const fn inject(fault: Fault, guest: GuestState) -> Injection {
    let origin = Origin::from_pstate(guest.pstate);
    let far = match fault {
        Fault::Undefined | Fault::Breakpoint { .. } => None,
        Fault::Debug { far, .. } => far,
        Fault::DataAbort { far, .. } | Fault::InstructionAbort { far } => Some(far),
    };
    let far_el1 = match far {
        Some(far) if matches!(origin, Origin::LowerAArch32) => Some(far & 0xffff_ffff),
        far => far,
    };
    Injection {
        esr_el1: syndrome(fault, origin),
        far_el1,
        elr_el1: guest.pc,
        spsr_el1: guest.pstate,
        pc: (guest.vbar_el1 & !0x7ff) | origin.vector_offset(),
        pstate: entry_pstate(guest.pstate, guest.sctlr_el1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esr::{self, FaultStatus, Trap};

    const VBAR: u64 = 0xffff_8000_1001_0800;
    /// SCTLR_EL1 with SPAN = 1 (PAN preserved) and DSSBS = 0, other bits
    /// set in a way that must not matter.
    const SCTLR_KEEP_PAN: u64 = 0x0000_0000_30d0_5985 | SCTLR_SPAN;

    fn guest(pstate: u64) -> GuestState {
        GuestState {
            pc: 0xffff_8000_0812_3454,
            pstate,
            vbar_el1: VBAR,
            sctlr_el1: SCTLR_KEEP_PAN,
        }
    }

    const MODES: [(u64, Origin, u64); 4] = [
        (psr::M_EL1T, Origin::CurrentSp0, 0x000),
        (psr::M_EL1H, Origin::CurrentSpx, 0x200),
        (psr::M_EL0T, Origin::LowerAArch64, 0x400),
        (0x10, Origin::LowerAArch32, 0x600), // AArch32 User mode
    ];

    #[test]
    fn origin_and_vector_offset_per_mode() {
        for (m, origin, off) in MODES {
            assert_eq!(Origin::from_pstate(m), origin);
            assert_eq!(Origin::from_pstate(m | 0xf000_03c0), origin);
            assert_eq!(origin.vector_offset(), off);
            let inj = inject(Fault::Undefined, guest(m));
            assert_eq!(inj.pc, 0xffff_8000_1001_0800 + off);
        }
    }

    #[test]
    fn vbar_low_bits_are_ignored() {
        let mut g = guest(psr::M_EL1H);
        g.vbar_el1 = 0x4000_0000 | 0x7ff;
        assert_eq!(inject(Fault::Undefined, g).pc, 0x4000_0200);
        g.vbar_el1 = u64::MAX;
        g.pstate = 0x10;
        // No overflow, and the result is still in the vector table.
        assert_eq!(
            inject(Fault::Undefined, g).pc,
            0xffff_ffff_ffff_f800 | 0x600
        );
    }

    #[test]
    fn undefined_syndrome_from_each_mode() {
        for (m, _, _) in MODES {
            let inj = inject(Fault::Undefined, guest(m));
            assert_eq!(inj.esr_el1, 0x0200_0000);
            assert_eq!(inj.far_el1, None);
        }
    }

    #[test]
    fn data_abort_syndrome_from_each_mode() {
        // From EL0: EC 0x24 -> 0x92000010; from EL1: EC 0x25 -> 0x96000010.
        let expect = [0x9600_0010u64, 0x9600_0010, 0x9200_0010, 0x9200_0010];
        for ((m, _, _), e) in MODES.into_iter().zip(expect) {
            let r = inject(
                Fault::DataAbort {
                    far: 0x1234,
                    write: false,
                },
                guest(m),
            );
            assert_eq!(r.esr_el1, e, "mode {m:#x}");
            let w = inject(
                Fault::DataAbort {
                    far: 0x1234,
                    write: true,
                },
                guest(m),
            );
            assert_eq!(w.esr_el1, e | 0x40, "mode {m:#x}");
        }
    }

    #[test]
    fn instruction_abort_syndrome_from_each_mode() {
        let expect = [0x8600_0010u64, 0x8600_0010, 0x8200_0010, 0x8200_0010];
        for ((m, _, _), e) in MODES.into_iter().zip(expect) {
            let inj = inject(Fault::InstructionAbort { far: 0x8000 }, guest(m));
            assert_eq!(inj.esr_el1, e, "mode {m:#x}");
            assert_eq!(inj.far_el1, Some(0x8000));
        }
    }

    #[test]
    fn syndromes_decode_back() {
        // The ESR we build, read with the EL2 decoder's field layout.
        let d = syndrome(
            Fault::DataAbort {
                far: 0,
                write: true,
            },
            Origin::LowerAArch64,
        );
        assert_eq!(
            esr::decode(d),
            Trap::DataAbort {
                access: None,
                s1ptw: false,
                fault: FaultStatus::SyncExternal,
                far_valid: true,
                cache_maintenance: false,
                write: true,
            }
        );
        let i = syndrome(Fault::InstructionAbort { far: 0 }, Origin::LowerAArch32);
        assert_eq!(
            esr::decode(i),
            Trap::InstructionAbort {
                s1ptw: false,
                fault: FaultStatus::SyncExternal
            }
        );
        let d1 = syndrome(
            Fault::DataAbort {
                far: 0,
                write: false,
            },
            Origin::CurrentSpx,
        );
        assert_eq!(esr::exception_class(d1), ec::DABT_CUR);
        assert!(esr::il(d1));
        assert_eq!(esr::iss(d1), 0x10);
        let u = syndrome(Fault::Undefined, Origin::CurrentSp0);
        assert_eq!(
            esr::decode(u),
            Trap::Other {
                ec: ec::UNKNOWN,
                iss: 0,
                il: true
            }
        );
    }

    #[test]
    fn far_handling() {
        let far = 0xffff_0000_dead_b000;
        let a64 = inject(Fault::DataAbort { far, write: false }, guest(psr::M_EL1H));
        assert_eq!(a64.far_el1, Some(far));
        let el0 = inject(Fault::InstructionAbort { far }, guest(psr::M_EL0T));
        assert_eq!(el0.far_el1, Some(far));
        // AArch32: a 32-bit address, zero-extended.
        let a32 = inject(Fault::DataAbort { far, write: true }, guest(0x10));
        assert_eq!(a32.far_el1, Some(0xdead_b000));
        assert_eq!(inject(Fault::Undefined, guest(psr::M_EL1T)).far_el1, None);
    }

    #[test]
    fn elr_and_spsr_preserve_the_trap_state() {
        for (m, _, _) in MODES {
            // Every bit set outside M, to show nothing is filtered.
            let pstate = 0xffff_ffff_ffff_ffe0 | m;
            for fault in [
                Fault::Undefined,
                Fault::DataAbort {
                    far: 1,
                    write: true,
                },
                Fault::InstructionAbort { far: 2 },
            ] {
                let g = guest(pstate);
                let inj = inject(fault, g);
                assert_eq!(inj.elr_el1, g.pc);
                assert_eq!(inj.spsr_el1, pstate);
            }
        }
    }

    #[test]
    fn entry_pstate_sets_el1h_and_daif() {
        for (m, _, _) in MODES {
            let p = inject(Fault::Undefined, guest(m)).pstate;
            assert_eq!(p & psr::M_MASK, psr::M_EL1H);
            assert_eq!(p & psr::DAIF, psr::DAIF);
            assert_eq!(p & 0x3c0, 0x3c0);
        }
    }

    #[test]
    fn entry_pstate_full_value() {
        // EL0t with N and C set, everything else clear; SPAN = 0, DSSBS = 1:
        // N|C | PAN | SSBS | DAIF | EL1h.
        // SCTLR_EL1 bits given as literals (DSSBS = bit 44, SPAN = bit 23).
        let p = entry_pstate(0xa000_0000, 1 << 44);
        assert_eq!(p, 0xa040_13c5);
        // EL1h with DAIF already set and SPAN = 1, DSSBS = 0.
        assert_eq!(entry_pstate(0x0000_03c5, 1 << 23), 0x3c5);
        // EL1t with PAN, Z, DIT; SPAN = 1 and DSSBS = 1.
        assert_eq!(
            entry_pstate(0x4140_0004, (1 << 44) | (1 << 23)),
            0x4140_13c5
        );
    }

    #[test]
    fn pan_follows_span() {
        for (m, _, _) in MODES {
            // SPAN == 0: PAN set whatever the old value.
            for old_pan in [0, psr::PAN] {
                assert_ne!(entry_pstate(m | old_pan, 0) & psr::PAN, 0);
            }
            // SPAN == 1: PAN copied.
            assert_eq!(entry_pstate(m, SCTLR_SPAN) & psr::PAN, 0);
            assert_eq!(entry_pstate(m | psr::PAN, SCTLR_SPAN) & psr::PAN, psr::PAN);
        }
        let mut g = guest(psr::M_EL0T);
        g.sctlr_el1 &= !SCTLR_SPAN;
        assert_ne!(inject(Fault::Undefined, g).pstate & psr::PAN, 0);
        g.sctlr_el1 |= SCTLR_SPAN;
        assert_eq!(inject(Fault::Undefined, g).pstate & psr::PAN, 0);
    }

    #[test]
    fn ssbs_follows_dssbs() {
        for (m, _, _) in MODES {
            assert_eq!(entry_pstate(m, SCTLR_DSSBS) & psr::SSBS, psr::SSBS);
            // Old SSBS (AArch64 bit 12, AArch32 bit 23) does not leak.
            assert_eq!(entry_pstate(m | psr::SSBS | (1 << 23), 0) & psr::SSBS, 0);
        }
        let mut g = guest(psr::M_EL1H);
        g.sctlr_el1 |= SCTLR_DSSBS;
        assert_eq!(inject(Fault::Undefined, g).pstate & psr::SSBS, psr::SSBS);
    }

    #[test]
    fn cleared_and_preserved_bits() {
        let cleared = psr::SS
            | psr::IL
            | psr::UAO
            | psr::TCO
            | psr::BTYPE
            | psr::ALLINT
            | (1 << 27) // AArch32 Q
            | (0xf << 16) // AArch32 GE
            | (1 << 5) // AArch32 T
            | (0xffff_ffff << 32);
        for (m, _, _) in MODES {
            let old = m | cleared | psr::NZCV | psr::DIT;
            let new = entry_pstate(old, SCTLR_SPAN);
            assert_eq!(new & cleared, 0, "mode {m:#x}: {new:#x}");
            assert_eq!(new & psr::NZCV, psr::NZCV);
            assert_eq!(new & psr::DIT, psr::DIT);
            let none = entry_pstate(m, SCTLR_SPAN);
            assert_eq!(none & (psr::NZCV | psr::DIT), 0);
            // Exactly the documented bits can be set.
            let allowed = psr::NZCV | psr::DIT | psr::PAN | psr::SSBS | psr::DAIF | psr::M_EL1H;
            assert_eq!(entry_pstate(u64::MAX, u64::MAX) & !allowed, 0);
            assert_eq!(entry_pstate(u64::MAX, u64::MAX), allowed);
        }
    }

    #[test]
    fn every_mode_value_is_consistent() {
        for m in 0..32u64 {
            let origin = Origin::from_pstate(m);
            for fault in [
                Fault::Undefined,
                Fault::DataAbort {
                    far: u64::MAX,
                    write: m & 1 == 0,
                },
                Fault::InstructionAbort { far: u64::MAX },
                Fault::Breakpoint { comment: 0x5a7 },
                Fault::Debug {
                    kind: DebugKind::Breakpoint,
                    iss: FSC_DEBUG,
                    far: Some(0),
                },
                Fault::Debug {
                    kind: DebugKind::Watchpoint,
                    iss: (1 << 6) | FSC_DEBUG,
                    far: Some(0x4400_1238),
                },
                Fault::Debug {
                    kind: DebugKind::SoftwareStep,
                    iss: STEP_ISV | STEP_EX | FSC_DEBUG,
                    far: None,
                },
            ] {
                let inj = inject(fault, guest(m));
                assert_eq!(inj.pc, (VBAR & !0x7ff) + origin.vector_offset());
                assert_eq!(inj.pstate & psr::M_MASK, psr::M_EL1H);
                let class = esr::exception_class(inj.esr_el1);
                let lower = m & 0x10 != 0 || m & 0b1100 == 0;
                assert_eq!(origin.is_lower(), lower, "m {m:#x}");
                match fault {
                    Fault::Undefined => assert_eq!(class, ec::UNKNOWN),
                    Fault::DataAbort { .. } => {
                        assert_eq!(class, if lower { ec::DABT_LOW } else { ec::DABT_CUR })
                    }
                    Fault::InstructionAbort { .. } => {
                        assert_eq!(class, if lower { ec::IABT_LOW } else { ec::IABT_CUR })
                    }
                    Fault::Breakpoint { comment } => {
                        assert_eq!(class, ec::BRK64);
                        assert_eq!(inj.esr_el1 & 0xffff, comment as u64);
                        // FAR_EL1 is not written for a breakpoint.
                        assert_eq!(inj.far_el1, None);
                        // The preferred return address is the BRK itself.
                        assert_eq!(inj.elr_el1, guest(m).pc);
                    }
                    Fault::Debug { kind, iss, far } => {
                        let expected = match kind {
                            DebugKind::Breakpoint => 0x30,
                            DebugKind::SoftwareStep => 0x32,
                            DebugKind::Watchpoint => 0x34,
                        } + u8::from(!lower);
                        assert_eq!(class, expected, "{kind:?} m {m:#x}");
                        assert_eq!(inj.esr_el1 & 0x1ff_ffff, iss as u64);
                        let far = far.map(|f| if m & 0x10 != 0 { f & 0xffff_ffff } else { f });
                        assert_eq!(inj.far_el1, far);
                        assert_eq!(inj.elr_el1, guest(m).pc);
                    }
                }
                assert!(esr::il(inj.esr_el1));
                assert_eq!(inj.esr_el1 >> 32, 0);
            }
        }
    }
}

//! Decoding of the Exception Syndrome Register (ESR_EL2) into [`Trap`].
//!
//! The trap handler reads ESR_EL2 once and calls [`decode`]; everything
//! after that works on the enum. The layouts follow the Arm Architecture
//! Reference Manual (DDI 0487), "ESR_EL2, Exception Syndrome Register (EL2)":
//!
//! ```text
//!  63      56 55        32 31    26 25  24                       0
//! +----------+------------+--------+----+-------------------------+
//! |   RES0   |    ISS2    |   EC   | IL |           ISS           |
//! +----------+------------+--------+----+-------------------------+
//! ```
//!
//! Only the fields the hypervisor acts upon are decoded; every other class
//! is returned unchanged as [`Trap::Other`]. [`decode`] is total: it never
//! panics, whatever the 64-bit value.

/// Exception classes (ESR_ELx.EC, bits \[31:26\]).
///
/// Names follow the Arm ARM descriptions (and Linux's `ESR_ELx_EC_*`).
/// Classes marked "AArch32" can only be reported for a trap from AArch32
/// state.
pub mod ec {
    /// Unknown reason (also: an UNDEFINED instruction).
    pub const UNKNOWN: u8 = 0x00;
    /// Trapped WFI, WFE, WFIT or WFET.
    pub const WFX: u8 = 0x01;
    /// AArch32: trapped MCR or MRC access with coproc == 0b1111.
    pub const CP15_32: u8 = 0x03;
    /// AArch32: trapped MCRR or MRRC access with coproc == 0b1111.
    pub const CP15_64: u8 = 0x04;
    /// AArch32: trapped MCR or MRC access with coproc == 0b1110.
    pub const CP14_MR: u8 = 0x05;
    /// AArch32: trapped LDC or STC access.
    pub const CP14_LS: u8 = 0x06;
    /// Access to SVE, Advanced SIMD or floating point trapped by CPACR/CPTR.
    pub const FP_ASIMD: u8 = 0x07;
    /// AArch32: trapped VMRS access from the ID group trap.
    pub const CP10_ID: u8 = 0x08;
    /// Trapped pointer authentication instruction (FEAT_PAuth).
    pub const PAC: u8 = 0x09;
    /// Other trapped instructions (LD64B/ST64B* with FEAT_LS64, ...).
    pub const OTHER: u8 = 0x0a;
    /// AArch32: trapped MRRC access with coproc == 0b1110.
    pub const CP14_64: u8 = 0x0c;
    /// Branch target exception (FEAT_BTI).
    pub const BTI: u8 = 0x0d;
    /// Illegal execution state.
    pub const ILLEGAL_STATE: u8 = 0x0e;
    /// AArch32: SVC.
    pub const SVC32: u8 = 0x11;
    /// AArch32: HVC.
    pub const HVC32: u8 = 0x12;
    /// AArch32: SMC trapped to EL2.
    pub const SMC32: u8 = 0x13;
    /// AArch64: SVC.
    pub const SVC64: u8 = 0x15;
    /// AArch64: HVC.
    pub const HVC64: u8 = 0x16;
    /// AArch64: SMC trapped to EL2 (HCR_EL2.TSC).
    pub const SMC64: u8 = 0x17;
    /// AArch64: trapped MSR, MRS or System instruction.
    pub const SYS64: u8 = 0x18;
    /// Access to SVE functionality trapped by CPACR/CPTR.ZEN.
    pub const SVE: u8 = 0x19;
    /// Trapped ERET, ERETAA or ERETAB.
    pub const ERET: u8 = 0x1a;
    /// Pointer authentication failure (FEAT_FPAC).
    pub const FPAC: u8 = 0x1c;
    /// Access to SME functionality trapped (FEAT_SME).
    pub const SME: u8 = 0x1d;
    /// Instruction Abort from a lower Exception level.
    pub const IABT_LOW: u8 = 0x20;
    /// Instruction Abort taken without a change in Exception level.
    pub const IABT_CUR: u8 = 0x21;
    /// PC alignment fault.
    pub const PC_ALIGN: u8 = 0x22;
    /// Data Abort from a lower Exception level.
    pub const DABT_LOW: u8 = 0x24;
    /// Data Abort taken without a change in Exception level.
    pub const DABT_CUR: u8 = 0x25;
    /// SP alignment fault.
    pub const SP_ALIGN: u8 = 0x26;
    /// Memory Operation exception (FEAT_MOPS).
    pub const MOPS: u8 = 0x27;
    /// AArch32: trapped floating-point exception.
    pub const FP_EXC32: u8 = 0x28;
    /// AArch64: trapped floating-point exception.
    pub const FP_EXC64: u8 = 0x2c;
    /// Guarded Control Stack exception (FEAT_GCS).
    pub const GCS: u8 = 0x2d;
    /// SError exception.
    pub const SERROR: u8 = 0x2f;
    /// Breakpoint exception from a lower Exception level.
    pub const BREAKPT_LOW: u8 = 0x30;
    /// Breakpoint exception taken without a change in Exception level.
    pub const BREAKPT_CUR: u8 = 0x31;
    /// Software Step exception from a lower Exception level.
    pub const SOFTSTP_LOW: u8 = 0x32;
    /// Software Step exception taken without a change in Exception level.
    pub const SOFTSTP_CUR: u8 = 0x33;
    /// Watchpoint exception from a lower Exception level.
    pub const WATCHPT_LOW: u8 = 0x34;
    /// Watchpoint exception taken without a change in Exception level.
    pub const WATCHPT_CUR: u8 = 0x35;
    /// AArch32: BKPT instruction.
    pub const BKPT32: u8 = 0x38;
    /// AArch32: Vector Catch exception.
    pub const VECTOR_CATCH32: u8 = 0x3a;
    /// AArch64: BRK instruction.
    pub const BRK64: u8 = 0x3c;
}

/// ESR_ELx.EC, bits \[31:26\].
pub const fn exception_class(esr: u64) -> u8 {
    ((esr >> 26) & 0x3f) as u8
}

/// ESR_ELx.IL, bit 25: `true` when the trapped instruction was 32 bits
/// long (always for AArch64; for T32 it distinguishes 16-bit encodings).
/// Also set (RES1) for exceptions that are not about an instruction, such
/// as aborts without a valid instruction syndrome.
pub const fn il(esr: u64) -> bool {
    esr & (1 << 25) != 0
}

/// The length in bytes of the instruction that trapped: 4 with IL set, 2
/// for a 16-bit T32 instruction (IL clear).
pub const fn instruction_length(esr: u64) -> u64 {
    if il(esr) {
        4
    } else {
        2
    }
}

/// Where the guest resumes after EL2 emulated the instruction at `elr`
/// that trapped with `esr`: the next instruction, by the length the
/// syndrome gives (Arm ARM: ESR_ELx.IL), never a fixed 4.
pub const fn next_instruction(elr: u64, esr: u64) -> u64 {
    elr.wrapping_add(instruction_length(esr))
}

/// ESR_ELx.ISS, bits \[24:0\].
pub const fn iss(esr: u64) -> u32 {
    (esr & 0x01ff_ffff) as u32
}

/// A System register (or System instruction) encoding, as in
/// `S<op0>_<op1>_C<crn>_C<crm>_<op2>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysReg {
    pub op0: u8,
    pub op1: u8,
    pub crn: u8,
    pub crm: u8,
    pub op2: u8,
}

impl SysReg {
    pub const fn new(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Self {
        Self {
            op0,
            op1,
            crn,
            crm,
            op2,
        }
    }

    /// The register named by the ISS of an EC 0x18 trap
    /// (Op0 \[21:20\], Op2 \[19:17\], Op1 \[16:14\], CRn \[13:10\], CRm \[4:1\]).
    pub const fn from_iss(iss: u32) -> Self {
        Self {
            op0: ((iss >> 20) & 0x3) as u8,
            op2: ((iss >> 17) & 0x7) as u8,
            op1: ((iss >> 14) & 0x7) as u8,
            crn: ((iss >> 10) & 0xf) as u8,
            crm: ((iss >> 1) & 0xf) as u8,
        }
    }
}

/// ICC_SGI1R_EL1, S3_0_C12_C11_5: generate a Group 1 SGI (own security state).
pub const ICC_SGI1R_EL1: SysReg = SysReg::new(3, 0, 12, 11, 5);
/// ICC_ASGI1R_EL1, S3_1_C12_C11_6: generate a Group 1 SGI (other security state).
pub const ICC_ASGI1R_EL1: SysReg = SysReg::new(3, 1, 12, 11, 6);
/// ICC_SGI0R_EL1, S3_2_C12_C11_7: generate a Group 0 SGI.
pub const ICC_SGI0R_EL1: SysReg = SysReg::new(3, 2, 12, 11, 7);
/// OSLAR_EL1, S2_0_C1_C0_4: OS Lock Access Register.
pub const OSLAR_EL1: SysReg = SysReg::new(2, 0, 1, 0, 4);
/// OSLSR_EL1, S2_0_C1_C1_4: OS Lock Status Register.
pub const OSLSR_EL1: SysReg = SysReg::new(2, 0, 1, 1, 4);
/// OSDLR_EL1, S2_0_C1_C3_4: OS Double Lock Register.
pub const OSDLR_EL1: SysReg = SysReg::new(2, 0, 1, 3, 4);
/// TRFCR_EL1, S3_0_C1_C2_1: Trace Filter Control Register (EL1).
pub const TRFCR_EL1: SysReg = SysReg::new(3, 0, 1, 2, 1);

/// The instruction syndrome of a data abort with ISV == 1: enough to
/// emulate the load or store without decoding the instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioAccess {
    /// Access size in bytes: 1, 2, 4 or 8 (`1 << SAS`).
    pub size: u8,
    /// SRT: the transfer register; 31 means XZR/WZR.
    pub reg: u8,
    /// WnR: the access was a write.
    pub write: bool,
    /// SSE: a load must sign-extend the value to the register width.
    pub sign_extend: bool,
    /// SF: the transfer register is 64-bit (Xn) rather than 32-bit (Wn).
    pub sixty_four: bool,
    /// AR: the instruction had acquire/release semantics.
    pub acquire_release: bool,
}

/// A Data or Instruction Fault Status Code (DFSC/IFSC, ISS bits \[5:0\]).
///
/// Levels are the translation table level of the fault; -1 only exists
/// with FEAT_LPA2 (52-bit addresses with 4KB/16KB granules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultStatus {
    /// 0b0000LL (level 0..3), 0b101001 (level -1).
    AddressSize { level: i8 },
    /// 0b0001LL (level 0..3), 0b101011 (level -1).
    Translation { level: i8 },
    /// 0b0010LL (level 0 only with FEAT_LPA2).
    AccessFlag { level: i8 },
    /// 0b0011LL (level 0 only with FEAT_LPA2).
    Permission { level: i8 },
    /// 0b010000: synchronous External abort, not on a table walk.
    SyncExternal,
    /// 0b0101LL (level 0..3), 0b010011 (level -1): synchronous External
    /// abort on a translation table walk or hardware table update.
    SyncExternalOnWalk { level: i8 },
    /// 0b100001: alignment fault.
    Alignment,
    /// 0b110000: TLB conflict abort.
    TlbConflict,
    /// Any other code (tag check, parity/ECC, granule protection,
    /// FEAT_D128 level -2 forms, IMPLEMENTATION DEFINED, reserved), as the
    /// raw 6-bit value.
    Other(u8),
}

impl FaultStatus {
    /// Decode a 6-bit DFSC/IFSC; bits above bit 5 are ignored.
    pub const fn from_fsc(fsc: u8) -> Self {
        let fsc = fsc & 0x3f;
        let level = (fsc & 0x3) as i8;
        match fsc {
            0x00..=0x03 => Self::AddressSize { level },
            0x04..=0x07 => Self::Translation { level },
            0x08..=0x0b => Self::AccessFlag { level },
            0x0c..=0x0f => Self::Permission { level },
            0x10 => Self::SyncExternal,
            0x13 => Self::SyncExternalOnWalk { level: -1 },
            0x14..=0x17 => Self::SyncExternalOnWalk { level },
            0x21 => Self::Alignment,
            0x29 => Self::AddressSize { level: -1 },
            0x2b => Self::Translation { level: -1 },
            0x30 => Self::TlbConflict,
            other => Self::Other(other),
        }
    }

    /// The translation table level, for the kinds that report one.
    pub const fn level(self) -> Option<i8> {
        match self {
            Self::AddressSize { level }
            | Self::Translation { level }
            | Self::AccessFlag { level }
            | Self::Permission { level }
            | Self::SyncExternalOnWalk { level } => Some(level),
            _ => None,
        }
    }
}

/// One trap to EL2, decoded from ESR_EL2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trap {
    /// EC 0x16: HVC from AArch64; `imm` is the instruction's imm16.
    Hvc { imm: u16 },
    /// EC 0x17: SMC from AArch64 trapped by HCR_EL2.TSC; `imm` is imm16.
    Smc { imm: u16 },
    /// EC 0x18: MSR/MRS/System instruction from AArch64. `rt` is the
    /// transfer register (31 = XZR); `read` is true for MRS (Direction = 1).
    SysReg { reg: SysReg, rt: u8, read: bool },
    /// EC 0x24: Data Abort from a lower Exception level (for EL2, a stage 2
    /// fault or an external abort on a guest access).
    DataAbort {
        /// The instruction syndrome, present only when ISV == 1.
        access: Option<MmioAccess>,
        /// S1PTW: the fault was on a stage 2 translation of a stage 1
        /// translation table walk.
        s1ptw: bool,
        /// DFSC.
        fault: FaultStatus,
        /// !FnV: FAR_EL2 holds a valid address.
        far_valid: bool,
        /// CM: the fault came from a cache maintenance or address
        /// translation instruction.
        cache_maintenance: bool,
        /// WnR: the access was a write (always set for CM faults).
        write: bool,
    },
    /// EC 0x20: Instruction Abort from a lower Exception level.
    InstructionAbort { s1ptw: bool, fault: FaultStatus },
    /// EC 0x01: trapped WFI/WFIT (`wfe == false`) or WFE/WFET
    /// (`wfe == true`), from TI\[0\].
    Wfx { wfe: bool },
    /// Any other exception class, including EC 0x25/0x21 (an abort taken
    /// at EL2 itself), all AArch32 classes, FP/SVE access, BRK, illegal
    /// execution state, alignment faults and reserved values.
    Other { ec: u8, iss: u32, il: bool },
}

// ISS fields of a data/instruction abort.
const ABT_ISV: u32 = 1 << 24;
const ABT_SSE: u32 = 1 << 21;
const ABT_SF: u32 = 1 << 15;
const ABT_AR: u32 = 1 << 14;
const ABT_FNV: u32 = 1 << 10;
const ABT_CM: u32 = 1 << 8;
const ABT_S1PTW: u32 = 1 << 7;
const ABT_WNR: u32 = 1 << 6;

/// Decode ESR_EL2. Total: never panics. Bits \[63:32\] (ISS2 and RES0) are
/// ignored.
pub const fn decode(esr: u64) -> Trap {
    let class = exception_class(esr);
    let iss = iss(esr);
    match class {
        ec::HVC64 => Trap::Hvc { imm: iss as u16 },
        ec::SMC64 => Trap::Smc { imm: iss as u16 },
        ec::SYS64 => Trap::SysReg {
            reg: SysReg::from_iss(iss),
            rt: ((iss >> 5) & 0x1f) as u8,
            read: iss & 1 != 0,
        },
        ec::DABT_LOW => {
            let write = iss & ABT_WNR != 0;
            let access = if iss & ABT_ISV != 0 {
                Some(MmioAccess {
                    size: 1 << ((iss >> 22) & 0x3),
                    reg: ((iss >> 16) & 0x1f) as u8,
                    write,
                    sign_extend: iss & ABT_SSE != 0,
                    sixty_four: iss & ABT_SF != 0,
                    acquire_release: iss & ABT_AR != 0,
                })
            } else {
                None
            };
            Trap::DataAbort {
                access,
                s1ptw: iss & ABT_S1PTW != 0,
                fault: FaultStatus::from_fsc(iss as u8),
                far_valid: iss & ABT_FNV == 0,
                cache_maintenance: iss & ABT_CM != 0,
                write,
            }
        }
        ec::IABT_LOW => Trap::InstructionAbort {
            s1ptw: iss & ABT_S1PTW != 0,
            fault: FaultStatus::from_fsc(iss as u8),
        },
        ec::WFX => Trap::Wfx { wfe: iss & 1 != 0 },
        _ => Trap::Other {
            ec: class,
            iss,
            il: il(esr),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IL: u64 = 1 << 25;

    /// ESR from its architectural fields.
    fn esr(ec: u8, il: bool, iss: u32) -> u64 {
        ((ec as u64) << 26) | (if il { IL } else { 0 }) | iss as u64
    }

    /// An emulated instruction is skipped by its length: 4 bytes for an A64
    /// (or 32-bit T32) instruction, 2 for a 16-bit T32 one. A fixed 4 (what
    /// the GIC emulation did) lands a 16-bit instruction's guest in the
    /// middle of the next instruction.
    #[test]
    fn next_instruction_follows_il() {
        let dabt = |il| esr(ec::DABT_LOW, il, (1 << 24) | (2 << 22));
        assert_eq!(instruction_length(dabt(true)), 4);
        assert_eq!(instruction_length(dabt(false)), 2);
        assert_eq!(next_instruction(0x4420_0000, dabt(true)), 0x4420_0004);
        assert_eq!(next_instruction(0x4420_0000, dabt(false)), 0x4420_0002);
        assert_eq!(
            next_instruction(0x4420_0100, esr(ec::SMC64, true, 0)),
            0x4420_0104
        );
        assert_eq!(
            next_instruction(u64::MAX - 1, dabt(false)),
            0,
            "wraps, never panics"
        );
    }

    /// The ISS of an EC 0x18 trap, built field by field from the Arm ARM
    /// layout (independently of `SysReg::from_iss`).
    fn sys_iss(r: SysReg, rt: u8, read: bool) -> u32 {
        ((r.op0 as u32) << 20)
            | ((r.op2 as u32) << 17)
            | ((r.op1 as u32) << 14)
            | ((r.crn as u32) << 10)
            | ((rt as u32) << 5)
            | ((r.crm as u32) << 1)
            | read as u32
    }

    #[test]
    fn field_accessors() {
        let v = 0xdead_beef_5a00_1234u64;
        assert_eq!(exception_class(v), 0x16);
        assert!(il(v));
        assert_eq!(iss(v), 0x1234);
        assert_eq!(exception_class(0xffff_ffff_ffff_ffff), 0x3f);
        assert_eq!(iss(0xffff_ffff_ffff_ffff), 0x01ff_ffff);
        assert!(!il(0x5800_0000));
    }

    #[test]
    fn hvc_imm0() {
        // `hvc #0` from AArch64: the well-known 0x5a000000.
        assert_eq!(decode(0x5a00_0000), Trap::Hvc { imm: 0 });
    }

    #[test]
    fn hvc_imm_nonzero() {
        assert_eq!(decode(0x5a00_1234), Trap::Hvc { imm: 0x1234 });
        assert_eq!(decode(0x5a00_ffff), Trap::Hvc { imm: 0xffff });
        // ISS2 / RES0 upper bits are ignored.
        assert_eq!(decode(0xff_0000_5a00_0042), Trap::Hvc { imm: 0x42 });
    }

    #[test]
    fn smc() {
        assert_eq!(decode(0x5e00_0000), Trap::Smc { imm: 0 });
        assert_eq!(decode(0x5e00_0007), Trap::Smc { imm: 7 });
    }

    #[test]
    fn hvc_smc_svc_from_aarch32_are_other() {
        assert_eq!(
            decode(0x4a00_0001),
            Trap::Other {
                ec: ec::HVC32,
                iss: 1,
                il: true
            }
        );
        assert_eq!(
            decode(esr(ec::SMC32, true, 0)),
            Trap::Other {
                ec: ec::SMC32,
                iss: 0,
                il: true
            }
        );
        assert!(matches!(
            decode(esr(ec::SVC64, true, 0)),
            Trap::Other { ec: 0x15, .. }
        ));
    }

    #[test]
    fn msr_icc_sgi1r_write() {
        // MSR ICC_SGI1R_EL1, x7. Op0=3 Op2=5 Op1=0 CRn=12 Rt=7 CRm=11 Dir=0:
        // (3<<20)|(5<<17)|(0<<14)|(12<<10)|(7<<5)|(11<<1)|0 = 0x3a30f6.
        let v = 0x6200_0000 | 0x003a_30f6;
        assert_eq!(v, esr(ec::SYS64, true, sys_iss(ICC_SGI1R_EL1, 7, false)));
        assert_eq!(
            decode(v),
            Trap::SysReg {
                reg: ICC_SGI1R_EL1,
                rt: 7,
                read: false
            }
        );
    }

    #[test]
    fn msr_with_xzr() {
        assert_eq!(
            decode(esr(ec::SYS64, true, sys_iss(ICC_SGI0R_EL1, 31, false))),
            Trap::SysReg {
                reg: ICC_SGI0R_EL1,
                rt: 31,
                read: false
            }
        );
    }

    #[test]
    fn mrs_read() {
        // MRS x2, OSLSR_EL1: Op0=2 Op2=4 Op1=0 CRn=1 Rt=2 CRm=1 Dir=1:
        // (2<<20)|(4<<17)|(1<<10)|(2<<5)|(1<<1)|1 = 0x280443.
        let v = 0x6200_0000 | 0x0028_0443;
        assert_eq!(
            decode(v),
            Trap::SysReg {
                reg: OSLSR_EL1,
                rt: 2,
                read: true
            }
        );
    }

    #[test]
    fn sysreg_constants_encodings() {
        // Each constant round-trips through the ISS layout, and they are
        // pairwise distinct.
        let all = [
            ICC_SGI1R_EL1,
            ICC_ASGI1R_EL1,
            ICC_SGI0R_EL1,
            OSLAR_EL1,
            OSLSR_EL1,
            OSDLR_EL1,
            TRFCR_EL1,
        ];
        for (i, r) in all.iter().enumerate() {
            assert_eq!(SysReg::from_iss(sys_iss(*r, 0, false)), *r);
            for other in &all[i + 1..] {
                assert_ne!(r, other);
            }
        }
        assert_eq!(ICC_ASGI1R_EL1, SysReg::new(3, 1, 12, 11, 6));
        assert_eq!(ICC_SGI0R_EL1, SysReg::new(3, 2, 12, 11, 7));
        assert_eq!(OSLAR_EL1, SysReg::new(2, 0, 1, 0, 4));
        assert_eq!(OSDLR_EL1, SysReg::new(2, 0, 1, 3, 4));
        assert_eq!(TRFCR_EL1, SysReg::new(3, 0, 1, 2, 1));
    }

    #[test]
    fn sysreg_every_field_value() {
        for op0 in 0..4u8 {
            for op1 in 0..8u8 {
                for crn in 0..16u8 {
                    for crm in 0..16u8 {
                        for op2 in 0..8u8 {
                            let r = SysReg::new(op0, op1, crn, crm, op2);
                            let rt = (op1 * 4 + op2) & 0x1f;
                            let read = crm & 1 == 1;
                            assert_eq!(
                                decode(esr(ec::SYS64, true, sys_iss(r, rt, read))),
                                Trap::SysReg { reg: r, rt, read }
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn data_abort_str_w3_word() {
        // str w3, [x0] to an unmapped IPA: ISV=1 SAS=0b10 SSE=0 SRT=3 SF=0
        // AR=0 WnR=1, DFSC = translation fault level 3 (0b000111).
        assert_eq!(
            decode(0x9383_0047),
            Trap::DataAbort {
                access: Some(MmioAccess {
                    size: 4,
                    reg: 3,
                    write: true,
                    sign_extend: false,
                    sixty_four: false,
                    acquire_release: false,
                }),
                s1ptw: false,
                fault: FaultStatus::Translation { level: 3 },
                far_valid: true,
                cache_maintenance: false,
                write: true,
            }
        );
    }

    #[test]
    fn data_abort_ldrsb_x5() {
        // ldrsb x5, [x1]: ISV=1 SAS=0 SSE=1 SRT=5 SF=1 WnR=0, level 2
        // translation fault: 0x93000000|0x200000|0x50000|0x8000|0x06.
        assert_eq!(
            decode(0x9325_8006),
            Trap::DataAbort {
                access: Some(MmioAccess {
                    size: 1,
                    reg: 5,
                    write: false,
                    sign_extend: true,
                    sixty_four: true,
                    acquire_release: false,
                }),
                s1ptw: false,
                fault: FaultStatus::Translation { level: 2 },
                far_valid: true,
                cache_maintenance: false,
                write: false,
            }
        );
    }

    #[test]
    fn data_abort_ldr_x_64bit_and_acquire() {
        // ldar x30, [x2]: SAS=0b11 SRT=30 SF=1 AR=1, translation level 1.
        let iss = (1 << 24) | (3 << 22) | (30 << 16) | (1 << 15) | (1 << 14) | 0x05;
        match decode(esr(ec::DABT_LOW, true, iss)) {
            Trap::DataAbort {
                access: Some(a),
                fault,
                write,
                ..
            } => {
                assert_eq!(a.size, 8);
                assert_eq!(a.reg, 30);
                assert!(a.sixty_four && a.acquire_release && !a.sign_extend && !a.write);
                assert!(!write);
                assert_eq!(fault, FaultStatus::Translation { level: 1 });
            }
            t => panic!("{t:?}"),
        }
    }

    #[test]
    fn data_abort_halfword_store_wzr() {
        // strh wzr, [x0]: SAS=0b01 SRT=31 WnR=1.
        let iss = (1 << 24) | (1 << 22) | (31 << 16) | (1 << 6) | 0x07;
        match decode(esr(ec::DABT_LOW, true, iss)) {
            Trap::DataAbort {
                access: Some(a), ..
            } => {
                assert_eq!(a.size, 2);
                assert_eq!(a.reg, 31);
                assert!(a.write);
            }
            t => panic!("{t:?}"),
        }
    }

    #[test]
    fn data_abort_without_syndrome() {
        // ISV=0 (e.g. ldp): no access; SAS..AR bits are ignored even if set.
        let iss = (3 << 22) | (7 << 16) | (1 << 6) | 0x06;
        assert_eq!(
            decode(esr(ec::DABT_LOW, true, iss)),
            Trap::DataAbort {
                access: None,
                s1ptw: false,
                fault: FaultStatus::Translation { level: 2 },
                far_valid: true,
                cache_maintenance: false,
                write: true,
            }
        );
    }

    #[test]
    fn data_abort_s1ptw_cm_fnv() {
        // Stage 2 fault on a stage 1 walk: S1PTW=1, WnR=0, level 1.
        match decode(esr(ec::DABT_LOW, true, (1 << 7) | 0x05)) {
            Trap::DataAbort {
                s1ptw,
                access,
                fault,
                ..
            } => {
                assert!(s1ptw);
                assert_eq!(access, None);
                assert_eq!(fault, FaultStatus::Translation { level: 1 });
            }
            t => panic!("{t:?}"),
        }
        // DC CIVAC on an unmapped IPA: CM=1, WnR=1.
        match decode(esr(ec::DABT_LOW, true, (1 << 8) | (1 << 6) | 0x07)) {
            Trap::DataAbort {
                cache_maintenance,
                write,
                s1ptw,
                ..
            } => {
                assert!(cache_maintenance && write && !s1ptw);
            }
            t => panic!("{t:?}"),
        }
        // External abort with FnV=1: FAR not valid.
        match decode(esr(ec::DABT_LOW, true, (1 << 10) | (1 << 9) | 0x10)) {
            Trap::DataAbort {
                far_valid, fault, ..
            } => {
                assert!(!far_valid);
                assert_eq!(fault, FaultStatus::SyncExternal);
            }
            t => panic!("{t:?}"),
        }
    }

    #[test]
    fn every_dfsc() {
        use FaultStatus::*;
        let expect = |fsc: u8| -> FaultStatus {
            match fsc {
                0b000000 => AddressSize { level: 0 },
                0b000001 => AddressSize { level: 1 },
                0b000010 => AddressSize { level: 2 },
                0b000011 => AddressSize { level: 3 },
                0b000100 => Translation { level: 0 },
                0b000101 => Translation { level: 1 },
                0b000110 => Translation { level: 2 },
                0b000111 => Translation { level: 3 },
                0b001000 => AccessFlag { level: 0 },
                0b001001 => AccessFlag { level: 1 },
                0b001010 => AccessFlag { level: 2 },
                0b001011 => AccessFlag { level: 3 },
                0b001100 => Permission { level: 0 },
                0b001101 => Permission { level: 1 },
                0b001110 => Permission { level: 2 },
                0b001111 => Permission { level: 3 },
                0b010000 => SyncExternal,
                0b010011 => SyncExternalOnWalk { level: -1 },
                0b010100 => SyncExternalOnWalk { level: 0 },
                0b010101 => SyncExternalOnWalk { level: 1 },
                0b010110 => SyncExternalOnWalk { level: 2 },
                0b010111 => SyncExternalOnWalk { level: 3 },
                0b100001 => Alignment,
                0b101001 => AddressSize { level: -1 },
                0b101011 => Translation { level: -1 },
                0b110000 => TlbConflict,
                x => Other(x),
            }
        };
        for fsc in 0..64u8 {
            assert_eq!(FaultStatus::from_fsc(fsc), expect(fsc), "fsc {fsc:#b}");
            // Bits above the 6-bit field do not leak in.
            assert_eq!(FaultStatus::from_fsc(fsc | 0xc0), expect(fsc));
            // Same answer through a data abort and an instruction abort.
            match decode(esr(ec::DABT_LOW, true, fsc as u32)) {
                Trap::DataAbort { fault, .. } => assert_eq!(fault, expect(fsc)),
                t => panic!("{t:?}"),
            }
            match decode(esr(ec::IABT_LOW, true, fsc as u32)) {
                Trap::InstructionAbort { fault, .. } => assert_eq!(fault, expect(fsc)),
                t => panic!("{t:?}"),
            }
        }
        assert_eq!(Other(0x11), FaultStatus::from_fsc(0x11)); // tag check
        assert_eq!(Translation { level: -1 }.level(), Some(-1));
        assert_eq!(SyncExternal.level(), None);
        assert_eq!(Permission { level: 3 }.level(), Some(3));
    }

    #[test]
    fn instruction_abort() {
        // Instruction fetch from an unmapped IPA: translation level 3.
        assert_eq!(
            decode(0x8200_0007),
            Trap::InstructionAbort {
                s1ptw: false,
                fault: FaultStatus::Translation { level: 3 }
            }
        );
        assert_eq!(
            decode(esr(ec::IABT_LOW, true, (1 << 7) | 0x0f)),
            Trap::InstructionAbort {
                s1ptw: true,
                fault: FaultStatus::Permission { level: 3 }
            }
        );
    }

    #[test]
    fn aborts_at_el2_itself_are_other() {
        for class in [ec::DABT_CUR, ec::IABT_CUR] {
            assert_eq!(
                decode(esr(class, true, 0x10)),
                Trap::Other {
                    ec: class,
                    iss: 0x10,
                    il: true
                }
            );
        }
    }

    #[test]
    fn wfi_and_wfe() {
        assert_eq!(decode(0x0600_0000), Trap::Wfx { wfe: false });
        assert_eq!(decode(0x0600_0001), Trap::Wfx { wfe: true });
        // With CV=1, COND=0b1110 (as reported from AArch64) and 16-bit IL=0.
        assert_eq!(decode(0x05e0_0000), Trap::Wfx { wfe: false });
        assert_eq!(decode(0x07e0_0001), Trap::Wfx { wfe: true });
        // WFIT (TI=0b10) / WFET (TI=0b11).
        assert_eq!(decode(0x0600_0002), Trap::Wfx { wfe: false });
        assert_eq!(decode(0x0600_0003), Trap::Wfx { wfe: true });
    }

    #[test]
    fn unknown_and_other_classes() {
        assert_eq!(
            decode(0x0200_0000),
            Trap::Other {
                ec: ec::UNKNOWN,
                iss: 0,
                il: true
            }
        );
        for class in [
            ec::FP_ASIMD,
            ec::SVE,
            ec::BRK64,
            ec::ILLEGAL_STATE,
            ec::PC_ALIGN,
            ec::SP_ALIGN,
            ec::SERROR,
            ec::FP_EXC64,
            ec::CP15_32,
            0x3f,
        ] {
            let v = esr(class, false, 0x0155_5555);
            assert_eq!(
                decode(v),
                Trap::Other {
                    ec: class,
                    iss: 0x0155_5555,
                    il: false
                }
            );
        }
    }

    #[test]
    fn sweep_never_panics_and_other_is_lossless() {
        let handled = [
            ec::HVC64,
            ec::SMC64,
            ec::SYS64,
            ec::DABT_LOW,
            ec::IABT_LOW,
            ec::WFX,
        ];
        let mut isses = [
            0u32,
            1,
            0x10,
            0x3f,
            0x40,
            0x80,
            0x100,
            0x400,
            0xffff,
            0x1_0000,
            0x00ff_ffff,
            0x0100_0000,
            0x01ff_ffff,
            0x0155_5555,
            0x00aa_aaaa,
            0x0183_0047,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        // A few pseudo-random ISS values (xorshift), deterministic.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for slot in isses.iter_mut().skip(16) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *slot = (x as u32) & 0x01ff_ffff;
        }
        for class in 0..64u8 {
            for &iss_v in &isses {
                for il_v in [false, true] {
                    for upper in [0u64, 0xffff_ffff_0000_0000, 0x00ab_cdef_0000_0000] {
                        let v = upper | esr(class, il_v, iss_v);
                        let t = decode(v);
                        // Upper bits never change the result.
                        assert_eq!(t, decode(v & 0xffff_ffff));
                        if handled.contains(&class) {
                            assert!(!matches!(t, Trap::Other { .. }), "{v:#x}");
                        } else {
                            assert_eq!(
                                t,
                                Trap::Other {
                                    ec: class,
                                    iss: iss_v,
                                    il: il_v
                                }
                            );
                        }
                    }
                }
            }
        }
        // And fully random 64-bit words.
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let t = decode(x);
            if let Trap::DataAbort {
                access: Some(a), ..
            } = t
            {
                assert!(matches!(a.size, 1 | 2 | 4 | 8));
                assert!(a.reg <= 31);
            }
        }
    }
}

//! The trace registers EL2 touches, by architectural name, and the access
//! trait the driver is written against.
//!
//! Encodings come from the Arm ARM (DDI 0487, chapter D24.4 "Trace unit
//! registers" for the TRC* system registers, D24.2/D24.3 for TRFCR_ELx,
//! TRB*_EL1 and OSLAR_EL1). ETE's TRC* registers sit at op0 = 2, op1 = 1,
//! and their (CRn, CRm, op2) is the external offset divided by four split as
//! CRn = bits [9:7], op2 = bits [6:4], CRm = bits [3:0].
//!
//! ETE has no Trace OS Lock of its own: TRCOSLSR.OSLM reads 0b100, "the
//! trace unit is controlled by the PE OS Lock", and the values that mean a
//! TRCOSLAR exists are not permitted with FEAT_ETE. So the lock EL2 opens is
//! OSLAR_EL1 (the PE's), and TRCOSLSR.OSLK reports it. Writing the old
//! ETMv4 TRCOSLAR encoding on an ETE core is UNDEFINED.

/// Every trace register EL2 touches, by architectural name. Indexed
/// variants carry the register number `n` of `TRCxxx<n>`; out-of-range
/// numbers are not registers (`is_valid` is false) and every backend
/// ignores them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reg {
    /// TRCPRGCTLR: EN (bit 0) enables the trace unit.
    TrcPrgCtlr,
    /// TRCSTATR: IDLE (bit 0), PMSTABLE (bit 1). Read-only.
    TrcStatR,
    /// TRCCONFIGR: trace options (CCI 4, CID 6, TS 11; bit 0 RES1).
    TrcConfigR,
    /// TRCAUXCTLR: IMPLEMENTATION DEFINED, resets to 0 on a trace unit reset.
    TrcAuxCtlR,
    /// TRCEVENTCTL0R: event selectors.
    TrcEventCtl0R,
    /// TRCEVENTCTL1R: event element controls.
    TrcEventCtl1R,
    /// TRCRSR (ETE): resources status, TA (bit 12).
    TrcRsR,
    /// TRCSTALLCTLR: present only when TRCIDR3.STALLCTL is 1.
    TrcStallCtlR,
    /// TRCTSCTLR: timestamp event.
    TrcTsCtlR,
    /// TRCSYNCPR: PERIOD [4:0], trace sync every 2^PERIOD bytes.
    TrcSyncPR,
    /// TRCCCCTLR: cycle count threshold; present only when TRCIDR0.TRCCCI is 1.
    TrcCcCtlR,
    /// TRCBBCTLR: branch broadcast ranges.
    TrcBbCtlR,
    /// TRCTRACEIDR: TRACEID [6:0].
    TrcTraceIdR,
    /// TRCQCTLR: Q element ranges.
    TrcQCtlR,
    /// TRCVICTLR: ViewInst main control.
    TrcViCtlR,
    /// TRCVIIECTLR: ViewInst include/exclude ranges.
    TrcViIeCtlR,
    /// TRCVISSCTLR: ViewInst start/stop comparators; present only when
    /// TRCIDR4.NUMACPAIRS is not 0.
    TrcViSsCtlR,
    /// TRCVIPCSSCTLR: ViewInst start/stop PE comparator inputs.
    TrcViPcSsCtlR,
    /// TRCSEQEVR<n>, n = 0..=2.
    TrcSeqEvR(u8),
    /// TRCSEQRSTEVR.
    TrcSeqRstEvR,
    /// TRCSEQSTR: sequencer state.
    TrcSeqStR,
    /// TRCEXTINSELR<n>, n = 0..=3.
    TrcExtInSelR(u8),
    /// TRCCNTRLDVR<n>, n = 0..=3.
    TrcCntRldVR(u8),
    /// TRCCNTCTLR<n>, n = 0..=3.
    TrcCntCtlR(u8),
    /// TRCCNTVR<n>, n = 0..=3: counter values.
    TrcCntVR(u8),
    /// TRCIDR<n>, n = 0..=13. Read-only.
    TrcIdR(u8),
    /// TRCRSCTLR<n>, n = 2..=31 (selectors 0 and 1 are fixed FALSE/TRUE).
    TrcRsCtlR(u8),
    /// TRCSSCCR<n>, n = 0..=7.
    TrcSsCcR(u8),
    /// TRCSSCSR<n>, n = 0..=7.
    TrcSsCsR(u8),
    /// TRCSSPCICR<n>, n = 0..=7.
    TrcSsPcIcR(u8),
    /// TRCOSLSR: OSLK (bit 1) mirrors the PE OS Lock on ETE. Read-only.
    TrcOsLsR,
    /// TRCACVR<n>, n = 0..=15: address comparator values.
    TrcAcVR(u8),
    /// TRCACATR<n>, n = 0..=15: address comparator access types.
    TrcAcAtR(u8),
    /// TRCCIDCVR<n>, n = 0..=7.
    TrcCidCvR(u8),
    /// TRCVMIDCVR<n>, n = 0..=7.
    TrcVmidCvR(u8),
    /// TRCCIDCCTLR0.
    TrcCidCCtlR0,
    /// TRCCIDCCTLR1.
    TrcCidCCtlR1,
    /// TRCVMIDCCTLR0.
    TrcVmidCCtlR0,
    /// TRCVMIDCCTLR1.
    TrcVmidCCtlR1,
    /// TRCCLAIMSET.
    TrcClaimSet,
    /// TRCCLAIMCLR.
    TrcClaimClr,
    /// OSLAR_EL1: the PE OS Lock, which is also the trace unit's on ETE.
    /// Write-only.
    OslarEl1,
    /// TRFCR_EL1: E0TRE (0), E1TRE (1), TS [6:5].
    TrfcrEl1,
    /// TRFCR_EL2: E0HTRE (0), E2TRE (1), CX (3), TS [6:5].
    TrfcrEl2,
    /// TRBLIMITR_EL1: LIMIT [63:12], nVM 5, TM [4:3], FM [2:1], E 0.
    TrbLimitR,
    /// TRBPTR_EL1: the write pointer.
    TrbPtr,
    /// TRBBASER_EL1: BASE [63:12].
    TrbBaseR,
    /// TRBSR_EL1: EC [31:26], IRQ 22, TRG 21, WRAP 20, EA 18, S 17, MSS [15:0].
    TrbSR,
    /// TRBMAR_EL1: memory attributes (used with nVM = 1 only).
    TrbMaR,
    /// TRBTRG_EL1: trigger counter.
    TrbTrgR,
    /// TRBIDR_EL1: Align [3:0], P 4, F 5. Read-only.
    TrbIdR,
    /// TRCDEVARCH: the unit's architecture (ETE: ARCHID 0x5a13, with its
    /// revision), which a trace decoder needs. Read-only.
    TrcDevArch,
    /// TRCAUTHSTATUS: the debug and trace the authentication interface
    /// allows, which perf records for a decoder. Read-only.
    TrcAuthStatus,
}

/// Whether a register can be read, written, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegAccess {
    /// MRS only (an MSR is UNDEFINED).
    ReadOnly,
    /// MSR only (an MRS is UNDEFINED).
    WriteOnly,
    /// Both.
    ReadWrite,
}

/// One access through `SysRegs`, as a recorder logs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// MRS of the register.
    Read(Reg),
    /// MSR of the register with the value.
    Write(Reg, u64),
    /// ISB.
    Isb,
    /// DSB.
    Dsb,
    /// TSB CSYNC.
    TsbCsync,
}

/// Access to one core's trace registers plus the barriers the sequences
/// need. Implemented by the real hardware (`arch::trace_regs::HwTraceRegs`,
/// target only), by the model (`TraceModel`) and by the test recorder.
pub trait SysRegs {
    /// MRS. A write-only or invalid register reads as 0.
    fn read(&mut self, r: Reg) -> u64;
    /// MSR. A write to a read-only or invalid register is dropped.
    fn write(&mut self, r: Reg, v: u64);
    /// ISB: context synchronization.
    fn isb(&mut self);
    /// DSB (full system).
    fn dsb(&mut self);
    /// TSB CSYNC: trace synchronization barrier.
    fn tsb_csync(&mut self);
    /// CNTPCT_EL0, the physical count: the driver's bounded waits are
    /// bounded in time, and reading it through the trait lets the fakes
    /// control time.
    fn counter(&mut self) -> u64;
    /// CNTFRQ_EL0, counts per second. A firmware that left it 0 makes the
    /// driver assume 1 GHz (the architected frequency from Armv8.6), so a
    /// wait is never shorter than meant.
    fn counter_freq(&mut self) -> u64;
}

impl<T: SysRegs + ?Sized> SysRegs for &mut T {
    fn read(&mut self, r: Reg) -> u64 {
        (**self).read(r)
    }
    fn write(&mut self, r: Reg, v: u64) {
        (**self).write(r, v)
    }
    fn isb(&mut self) {
        (**self).isb()
    }
    fn dsb(&mut self) {
        (**self).dsb()
    }
    fn tsb_csync(&mut self) {
        (**self).tsb_csync()
    }
    fn counter(&mut self) -> u64 {
        (**self).counter()
    }
    fn counter_freq(&mut self) -> u64 {
        (**self).counter_freq()
    }
}

/// Calls `$m!` with the table of every register: access, variant and the
/// generic system-register name the assembler takes (LLVM rejects the
/// TRFCR names, so every register is spelled `S<op0>_<op1>_C<n>_C<m>_<op2>`).
/// `arch::trace_regs` expands it into one MRS/MSR per register; the tests
/// check every name against `Reg::encoding`, which is written out
/// independently below.
macro_rules! trace_reg_table {
    ($m:ident) => {
        $m! {
            rw TrcPrgCtlr => "S2_1_C0_C1_0",
            ro TrcStatR => "S2_1_C0_C3_0",
            rw TrcConfigR => "S2_1_C0_C4_0",
            rw TrcAuxCtlR => "S2_1_C0_C6_0",
            rw TrcEventCtl0R => "S2_1_C0_C8_0",
            rw TrcEventCtl1R => "S2_1_C0_C9_0",
            rw TrcRsR => "S2_1_C0_C10_0",
            rw TrcStallCtlR => "S2_1_C0_C11_0",
            rw TrcTsCtlR => "S2_1_C0_C12_0",
            rw TrcSyncPR => "S2_1_C0_C13_0",
            rw TrcCcCtlR => "S2_1_C0_C14_0",
            rw TrcBbCtlR => "S2_1_C0_C15_0",
            rw TrcTraceIdR => "S2_1_C0_C0_1",
            rw TrcQCtlR => "S2_1_C0_C1_1",
            rw TrcViCtlR => "S2_1_C0_C0_2",
            rw TrcViIeCtlR => "S2_1_C0_C1_2",
            rw TrcViSsCtlR => "S2_1_C0_C2_2",
            rw TrcViPcSsCtlR => "S2_1_C0_C3_2",
            rw TrcSeqEvR(0) => "S2_1_C0_C0_4",
            rw TrcSeqEvR(1) => "S2_1_C0_C1_4",
            rw TrcSeqEvR(2) => "S2_1_C0_C2_4",
            rw TrcSeqRstEvR => "S2_1_C0_C6_4",
            rw TrcSeqStR => "S2_1_C0_C7_4",
            rw TrcExtInSelR(0) => "S2_1_C0_C8_4",
            rw TrcExtInSelR(1) => "S2_1_C0_C9_4",
            rw TrcExtInSelR(2) => "S2_1_C0_C10_4",
            rw TrcExtInSelR(3) => "S2_1_C0_C11_4",
            rw TrcCntRldVR(0) => "S2_1_C0_C0_5",
            rw TrcCntRldVR(1) => "S2_1_C0_C1_5",
            rw TrcCntRldVR(2) => "S2_1_C0_C2_5",
            rw TrcCntRldVR(3) => "S2_1_C0_C3_5",
            rw TrcCntCtlR(0) => "S2_1_C0_C4_5",
            rw TrcCntCtlR(1) => "S2_1_C0_C5_5",
            rw TrcCntCtlR(2) => "S2_1_C0_C6_5",
            rw TrcCntCtlR(3) => "S2_1_C0_C7_5",
            rw TrcCntVR(0) => "S2_1_C0_C8_5",
            rw TrcCntVR(1) => "S2_1_C0_C9_5",
            rw TrcCntVR(2) => "S2_1_C0_C10_5",
            rw TrcCntVR(3) => "S2_1_C0_C11_5",
            ro TrcIdR(0) => "S2_1_C0_C8_7",
            ro TrcIdR(1) => "S2_1_C0_C9_7",
            ro TrcIdR(2) => "S2_1_C0_C10_7",
            ro TrcIdR(3) => "S2_1_C0_C11_7",
            ro TrcIdR(4) => "S2_1_C0_C12_7",
            ro TrcIdR(5) => "S2_1_C0_C13_7",
            ro TrcIdR(6) => "S2_1_C0_C14_7",
            ro TrcIdR(7) => "S2_1_C0_C15_7",
            ro TrcIdR(8) => "S2_1_C0_C0_6",
            ro TrcIdR(9) => "S2_1_C0_C1_6",
            ro TrcIdR(10) => "S2_1_C0_C2_6",
            ro TrcIdR(11) => "S2_1_C0_C3_6",
            ro TrcIdR(12) => "S2_1_C0_C4_6",
            ro TrcIdR(13) => "S2_1_C0_C5_6",
            rw TrcRsCtlR(2) => "S2_1_C1_C2_0",
            rw TrcRsCtlR(3) => "S2_1_C1_C3_0",
            rw TrcRsCtlR(4) => "S2_1_C1_C4_0",
            rw TrcRsCtlR(5) => "S2_1_C1_C5_0",
            rw TrcRsCtlR(6) => "S2_1_C1_C6_0",
            rw TrcRsCtlR(7) => "S2_1_C1_C7_0",
            rw TrcRsCtlR(8) => "S2_1_C1_C8_0",
            rw TrcRsCtlR(9) => "S2_1_C1_C9_0",
            rw TrcRsCtlR(10) => "S2_1_C1_C10_0",
            rw TrcRsCtlR(11) => "S2_1_C1_C11_0",
            rw TrcRsCtlR(12) => "S2_1_C1_C12_0",
            rw TrcRsCtlR(13) => "S2_1_C1_C13_0",
            rw TrcRsCtlR(14) => "S2_1_C1_C14_0",
            rw TrcRsCtlR(15) => "S2_1_C1_C15_0",
            rw TrcRsCtlR(16) => "S2_1_C1_C0_1",
            rw TrcRsCtlR(17) => "S2_1_C1_C1_1",
            rw TrcRsCtlR(18) => "S2_1_C1_C2_1",
            rw TrcRsCtlR(19) => "S2_1_C1_C3_1",
            rw TrcRsCtlR(20) => "S2_1_C1_C4_1",
            rw TrcRsCtlR(21) => "S2_1_C1_C5_1",
            rw TrcRsCtlR(22) => "S2_1_C1_C6_1",
            rw TrcRsCtlR(23) => "S2_1_C1_C7_1",
            rw TrcRsCtlR(24) => "S2_1_C1_C8_1",
            rw TrcRsCtlR(25) => "S2_1_C1_C9_1",
            rw TrcRsCtlR(26) => "S2_1_C1_C10_1",
            rw TrcRsCtlR(27) => "S2_1_C1_C11_1",
            rw TrcRsCtlR(28) => "S2_1_C1_C12_1",
            rw TrcRsCtlR(29) => "S2_1_C1_C13_1",
            rw TrcRsCtlR(30) => "S2_1_C1_C14_1",
            rw TrcRsCtlR(31) => "S2_1_C1_C15_1",
            rw TrcSsCcR(0) => "S2_1_C1_C0_2",
            rw TrcSsCcR(1) => "S2_1_C1_C1_2",
            rw TrcSsCcR(2) => "S2_1_C1_C2_2",
            rw TrcSsCcR(3) => "S2_1_C1_C3_2",
            rw TrcSsCcR(4) => "S2_1_C1_C4_2",
            rw TrcSsCcR(5) => "S2_1_C1_C5_2",
            rw TrcSsCcR(6) => "S2_1_C1_C6_2",
            rw TrcSsCcR(7) => "S2_1_C1_C7_2",
            rw TrcSsCsR(0) => "S2_1_C1_C8_2",
            rw TrcSsCsR(1) => "S2_1_C1_C9_2",
            rw TrcSsCsR(2) => "S2_1_C1_C10_2",
            rw TrcSsCsR(3) => "S2_1_C1_C11_2",
            rw TrcSsCsR(4) => "S2_1_C1_C12_2",
            rw TrcSsCsR(5) => "S2_1_C1_C13_2",
            rw TrcSsCsR(6) => "S2_1_C1_C14_2",
            rw TrcSsCsR(7) => "S2_1_C1_C15_2",
            rw TrcSsPcIcR(0) => "S2_1_C1_C0_3",
            rw TrcSsPcIcR(1) => "S2_1_C1_C1_3",
            rw TrcSsPcIcR(2) => "S2_1_C1_C2_3",
            rw TrcSsPcIcR(3) => "S2_1_C1_C3_3",
            rw TrcSsPcIcR(4) => "S2_1_C1_C4_3",
            rw TrcSsPcIcR(5) => "S2_1_C1_C5_3",
            rw TrcSsPcIcR(6) => "S2_1_C1_C6_3",
            rw TrcSsPcIcR(7) => "S2_1_C1_C7_3",
            ro TrcOsLsR => "S2_1_C1_C1_4",
            rw TrcAcVR(0) => "S2_1_C2_C0_0",
            rw TrcAcVR(1) => "S2_1_C2_C2_0",
            rw TrcAcVR(2) => "S2_1_C2_C4_0",
            rw TrcAcVR(3) => "S2_1_C2_C6_0",
            rw TrcAcVR(4) => "S2_1_C2_C8_0",
            rw TrcAcVR(5) => "S2_1_C2_C10_0",
            rw TrcAcVR(6) => "S2_1_C2_C12_0",
            rw TrcAcVR(7) => "S2_1_C2_C14_0",
            rw TrcAcVR(8) => "S2_1_C2_C0_1",
            rw TrcAcVR(9) => "S2_1_C2_C2_1",
            rw TrcAcVR(10) => "S2_1_C2_C4_1",
            rw TrcAcVR(11) => "S2_1_C2_C6_1",
            rw TrcAcVR(12) => "S2_1_C2_C8_1",
            rw TrcAcVR(13) => "S2_1_C2_C10_1",
            rw TrcAcVR(14) => "S2_1_C2_C12_1",
            rw TrcAcVR(15) => "S2_1_C2_C14_1",
            rw TrcAcAtR(0) => "S2_1_C2_C0_2",
            rw TrcAcAtR(1) => "S2_1_C2_C2_2",
            rw TrcAcAtR(2) => "S2_1_C2_C4_2",
            rw TrcAcAtR(3) => "S2_1_C2_C6_2",
            rw TrcAcAtR(4) => "S2_1_C2_C8_2",
            rw TrcAcAtR(5) => "S2_1_C2_C10_2",
            rw TrcAcAtR(6) => "S2_1_C2_C12_2",
            rw TrcAcAtR(7) => "S2_1_C2_C14_2",
            rw TrcAcAtR(8) => "S2_1_C2_C0_3",
            rw TrcAcAtR(9) => "S2_1_C2_C2_3",
            rw TrcAcAtR(10) => "S2_1_C2_C4_3",
            rw TrcAcAtR(11) => "S2_1_C2_C6_3",
            rw TrcAcAtR(12) => "S2_1_C2_C8_3",
            rw TrcAcAtR(13) => "S2_1_C2_C10_3",
            rw TrcAcAtR(14) => "S2_1_C2_C12_3",
            rw TrcAcAtR(15) => "S2_1_C2_C14_3",
            rw TrcCidCvR(0) => "S2_1_C3_C0_0",
            rw TrcCidCvR(1) => "S2_1_C3_C2_0",
            rw TrcCidCvR(2) => "S2_1_C3_C4_0",
            rw TrcCidCvR(3) => "S2_1_C3_C6_0",
            rw TrcCidCvR(4) => "S2_1_C3_C8_0",
            rw TrcCidCvR(5) => "S2_1_C3_C10_0",
            rw TrcCidCvR(6) => "S2_1_C3_C12_0",
            rw TrcCidCvR(7) => "S2_1_C3_C14_0",
            rw TrcVmidCvR(0) => "S2_1_C3_C0_1",
            rw TrcVmidCvR(1) => "S2_1_C3_C2_1",
            rw TrcVmidCvR(2) => "S2_1_C3_C4_1",
            rw TrcVmidCvR(3) => "S2_1_C3_C6_1",
            rw TrcVmidCvR(4) => "S2_1_C3_C8_1",
            rw TrcVmidCvR(5) => "S2_1_C3_C10_1",
            rw TrcVmidCvR(6) => "S2_1_C3_C12_1",
            rw TrcVmidCvR(7) => "S2_1_C3_C14_1",
            rw TrcCidCCtlR0 => "S2_1_C3_C0_2",
            rw TrcCidCCtlR1 => "S2_1_C3_C1_2",
            rw TrcVmidCCtlR0 => "S2_1_C3_C2_2",
            rw TrcVmidCCtlR1 => "S2_1_C3_C3_2",
            rw TrcClaimSet => "S2_1_C7_C8_6",
            rw TrcClaimClr => "S2_1_C7_C9_6",
            wo OslarEl1 => "S2_0_C1_C0_4",
            rw TrfcrEl1 => "S3_0_C1_C2_1",
            rw TrfcrEl2 => "S3_4_C1_C2_1",
            rw TrbLimitR => "S3_0_C9_C11_0",
            rw TrbPtr => "S3_0_C9_C11_1",
            rw TrbBaseR => "S3_0_C9_C11_2",
            rw TrbSR => "S3_0_C9_C11_3",
            rw TrbMaR => "S3_0_C9_C11_4",
            rw TrbTrgR => "S3_0_C9_C11_6",
            ro TrbIdR => "S3_0_C9_C11_7",
            ro TrcDevArch => "S2_1_C7_C15_6",
            ro TrcAuthStatus => "S2_1_C7_C14_6",
        }
    };
}
// Used by `arch::trace_regs`, which exists only on the target.
#[cfg_attr(not(target_os = "none"), allow(unused_imports))]
pub(crate) use trace_reg_table;

macro_rules! table_items {
    ($( $acc:ident $name:ident $( ( $idx:literal ) )? => $s:literal, )*) => {
        impl Reg {
            /// Every register, in `index` order.
            pub const ALL: [Reg; Reg::COUNT] = [ $( Reg::$name $( ($idx) )? ),* ];

            /// Whether the register is read-only, write-only or both.
            pub const fn access(self) -> RegAccess {
                match self {
                    $( Reg::$name $( ($idx) )? => table_items!(@acc $acc), )*
                    _ => RegAccess::ReadWrite,
                }
            }

            /// The name the assembler takes (`S2_1_C0_C1_0`), or "" for an
            /// invalid register.
            pub const fn asm_name(self) -> &'static str {
                match self {
                    $( Reg::$name $( ($idx) )? => $s, )*
                    _ => "",
                }
            }
        }
    };
    (@acc ro) => { RegAccess::ReadOnly };
    (@acc wo) => { RegAccess::WriteOnly };
    (@acc rw) => { RegAccess::ReadWrite };
}
trace_reg_table!(table_items);

/// (op0, op1, CRn, CRm, op2) of an ETE trace-unit register.
const fn trc(crn: u8, crm: u8, op2: u8) -> (u8, u8, u8, u8, u8) {
    (2, 1, crn, crm, op2)
}

impl Reg {
    /// Number of registers (valid `Reg` values).
    pub const COUNT: usize = 174;

    /// Whether an indexed variant's number names an architected register.
    pub const fn is_valid(self) -> bool {
        self.index() < Reg::COUNT
    }

    /// Can EL2 read it?
    pub const fn readable(self) -> bool {
        self.is_valid() && !matches!(self.access(), RegAccess::WriteOnly)
    }

    /// Can EL2 write it?
    pub const fn writable(self) -> bool {
        self.is_valid() && !matches!(self.access(), RegAccess::ReadOnly)
    }

    /// Is this a trace-unit (TRC*) register other than TRCPRGCTLR, the
    /// status registers and the claim tags: one whose writes the Arm ARM
    /// makes CONSTRAINED UNPREDICTABLE unless the unit is idle?
    pub const fn is_programming(self) -> bool {
        let i = self.index();
        i < Reg::index(Reg::OslarEl1)
            && !matches!(
                self,
                Reg::TrcPrgCtlr
                    | Reg::TrcStatR
                    | Reg::TrcOsLsR
                    | Reg::TrcIdR(_)
                    | Reg::TrcClaimSet
                    | Reg::TrcClaimClr
            )
    }

    /// Is this a trace buffer (TRB*) register?
    pub const fn is_trbe(self) -> bool {
        matches!(
            self,
            Reg::TrbLimitR
                | Reg::TrbPtr
                | Reg::TrbBaseR
                | Reg::TrbSR
                | Reg::TrbMaR
                | Reg::TrbTrgR
                | Reg::TrbIdR
        )
    }

    /// The system-register encoding (op0, op1, CRn, CRm, op2). Invalid
    /// registers give (0, 0, 0, 0, 0).
    pub const fn encoding(self) -> (u8, u8, u8, u8, u8) {
        if !self.is_valid() {
            return (0, 0, 0, 0, 0);
        }
        match self {
            Reg::TrcPrgCtlr => trc(0, 1, 0),
            Reg::TrcStatR => trc(0, 3, 0),
            Reg::TrcConfigR => trc(0, 4, 0),
            Reg::TrcAuxCtlR => trc(0, 6, 0),
            Reg::TrcEventCtl0R => trc(0, 8, 0),
            Reg::TrcEventCtl1R => trc(0, 9, 0),
            Reg::TrcRsR => trc(0, 10, 0),
            Reg::TrcStallCtlR => trc(0, 11, 0),
            Reg::TrcTsCtlR => trc(0, 12, 0),
            Reg::TrcSyncPR => trc(0, 13, 0),
            Reg::TrcCcCtlR => trc(0, 14, 0),
            Reg::TrcBbCtlR => trc(0, 15, 0),
            Reg::TrcTraceIdR => trc(0, 0, 1),
            Reg::TrcQCtlR => trc(0, 1, 1),
            Reg::TrcViCtlR => trc(0, 0, 2),
            Reg::TrcViIeCtlR => trc(0, 1, 2),
            Reg::TrcViSsCtlR => trc(0, 2, 2),
            Reg::TrcViPcSsCtlR => trc(0, 3, 2),
            Reg::TrcSeqEvR(n) => trc(0, n, 4),
            Reg::TrcSeqRstEvR => trc(0, 6, 4),
            Reg::TrcSeqStR => trc(0, 7, 4),
            Reg::TrcExtInSelR(n) => trc(0, 8 + n, 4),
            Reg::TrcCntRldVR(n) => trc(0, n, 5),
            Reg::TrcCntCtlR(n) => trc(0, 4 + n, 5),
            Reg::TrcCntVR(n) => trc(0, 8 + n, 5),
            // TRCIDR0..7 live at op2 = 7, CRm = 8..15; TRCIDR8..13 at op2 = 6.
            Reg::TrcIdR(n) if n < 8 => trc(0, 8 + n, 7),
            Reg::TrcIdR(n) => trc(0, n - 8, 6),
            Reg::TrcRsCtlR(n) => trc(1, n & 15, n >> 4),
            Reg::TrcSsCcR(n) => trc(1, n, 2),
            Reg::TrcSsCsR(n) => trc(1, 8 + n, 2),
            Reg::TrcSsPcIcR(n) => trc(1, n, 3),
            Reg::TrcOsLsR => trc(1, 1, 4),
            // 64-bit comparators: CRm = n[2:0]:0, op2 = n[3]:00 (+ 0b10 for ACATR).
            Reg::TrcAcVR(n) => trc(2, (n & 7) << 1, n >> 3),
            Reg::TrcAcAtR(n) => trc(2, (n & 7) << 1, 2 + (n >> 3)),
            Reg::TrcCidCvR(n) => trc(3, n << 1, 0),
            Reg::TrcVmidCvR(n) => trc(3, n << 1, 1),
            Reg::TrcCidCCtlR0 => trc(3, 0, 2),
            Reg::TrcCidCCtlR1 => trc(3, 1, 2),
            Reg::TrcVmidCCtlR0 => trc(3, 2, 2),
            Reg::TrcVmidCCtlR1 => trc(3, 3, 2),
            Reg::TrcClaimSet => trc(7, 8, 6),
            Reg::TrcClaimClr => trc(7, 9, 6),
            Reg::OslarEl1 => (2, 0, 1, 0, 4),
            Reg::TrfcrEl1 => (3, 0, 1, 2, 1),
            Reg::TrfcrEl2 => (3, 4, 1, 2, 1),
            Reg::TrbLimitR => (3, 0, 9, 11, 0),
            Reg::TrbPtr => (3, 0, 9, 11, 1),
            Reg::TrbBaseR => (3, 0, 9, 11, 2),
            Reg::TrbSR => (3, 0, 9, 11, 3),
            Reg::TrbMaR => (3, 0, 9, 11, 4),
            Reg::TrbTrgR => (3, 0, 9, 11, 6),
            Reg::TrbIdR => (3, 0, 9, 11, 7),
            Reg::TrcDevArch => trc(7, 15, 6),
            Reg::TrcAuthStatus => trc(7, 14, 6),
        }
    }

    /// A dense index in `0..COUNT` (backends keep one slot per register),
    /// or `COUNT` for an out-of-range register number.
    pub const fn index(self) -> usize {
        const fn at(base: usize, n: u8, lo: u8, hi: u8) -> usize {
            if n >= lo && n <= hi {
                base + (n - lo) as usize
            } else {
                Reg::COUNT
            }
        }
        match self {
            Reg::TrcPrgCtlr => 0,
            Reg::TrcStatR => 1,
            Reg::TrcConfigR => 2,
            Reg::TrcAuxCtlR => 3,
            Reg::TrcEventCtl0R => 4,
            Reg::TrcEventCtl1R => 5,
            Reg::TrcRsR => 6,
            Reg::TrcStallCtlR => 7,
            Reg::TrcTsCtlR => 8,
            Reg::TrcSyncPR => 9,
            Reg::TrcCcCtlR => 10,
            Reg::TrcBbCtlR => 11,
            Reg::TrcTraceIdR => 12,
            Reg::TrcQCtlR => 13,
            Reg::TrcViCtlR => 14,
            Reg::TrcViIeCtlR => 15,
            Reg::TrcViSsCtlR => 16,
            Reg::TrcViPcSsCtlR => 17,
            Reg::TrcSeqEvR(n) => at(18, n, 0, 2),
            Reg::TrcSeqRstEvR => 21,
            Reg::TrcSeqStR => 22,
            Reg::TrcExtInSelR(n) => at(23, n, 0, 3),
            Reg::TrcCntRldVR(n) => at(27, n, 0, 3),
            Reg::TrcCntCtlR(n) => at(31, n, 0, 3),
            Reg::TrcCntVR(n) => at(35, n, 0, 3),
            Reg::TrcIdR(n) => at(39, n, 0, 13),
            Reg::TrcRsCtlR(n) => at(53, n, 2, 31),
            Reg::TrcSsCcR(n) => at(83, n, 0, 7),
            Reg::TrcSsCsR(n) => at(91, n, 0, 7),
            Reg::TrcSsPcIcR(n) => at(99, n, 0, 7),
            Reg::TrcOsLsR => 107,
            Reg::TrcAcVR(n) => at(108, n, 0, 15),
            Reg::TrcAcAtR(n) => at(124, n, 0, 15),
            Reg::TrcCidCvR(n) => at(140, n, 0, 7),
            Reg::TrcVmidCvR(n) => at(148, n, 0, 7),
            Reg::TrcCidCCtlR0 => 156,
            Reg::TrcCidCCtlR1 => 157,
            Reg::TrcVmidCCtlR0 => 158,
            Reg::TrcVmidCCtlR1 => 159,
            Reg::TrcClaimSet => 160,
            Reg::TrcClaimClr => 161,
            Reg::OslarEl1 => 162,
            Reg::TrfcrEl1 => 163,
            Reg::TrfcrEl2 => 164,
            Reg::TrbLimitR => 165,
            Reg::TrbPtr => 166,
            Reg::TrbBaseR => 167,
            Reg::TrbSR => 168,
            Reg::TrbMaR => 169,
            Reg::TrbTrgR => 170,
            Reg::TrbIdR => 171,
            Reg::TrcDevArch => 172,
            Reg::TrcAuthStatus => 173,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn s(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> (u8, u8, u8, u8, u8) {
        (op0, op1, crn, crm, op2)
    }

    /// The adversarial test guest (`tests/guest/src/hostile.rs`) cannot
    /// import this table, so it walks a superset it generates itself: the
    /// whole op0 = 2, op1 = 1 space, S3_0_C9_C11_<0..7>, TRFCR_EL1 and
    /// TRFCR_EL2, expecting UNDEFINED for each; OSLAR_EL1 is the guest's
    /// virtual OS lock, checked apart. Every register here must be in it.
    #[test]
    fn every_register_is_in_the_space_the_hostile_guest_walks() {
        let mut walked = 0;
        for r in Reg::ALL {
            let (op0, op1, crn, crm, op2) = r.encoding();
            let in_walk = (op0, op1) == (2, 1)
                || (op0, op1, crn, crm) == (3, 0, 9, 11)
                || (op1 == 0 || op1 == 4) && (op0, crn, crm, op2) == (3, 1, 2, 1);
            if in_walk {
                walked += 1;
            } else {
                assert_eq!(r, Reg::OslarEl1, "{r:?} is outside the guest's walk");
            }
        }
        assert_eq!(walked, Reg::COUNT - 1);
    }

    #[test]
    fn trace_encodings_match_the_architecture_table() {
        // The encodings the Arm ARM gives for the TRBE (S3_0_C9_C11_*),
        // FEAT_TRF (TRFCR_ELx, S3_x_C1_C2_1) and ETE (S2_1_*) registers,
        // written out by hand rather than from Reg's own table.
        assert_eq!(Reg::TrfcrEl2.encoding(), s(3, 4, 1, 2, 1));
        assert_eq!(Reg::TrfcrEl1.encoding(), s(3, 0, 1, 2, 1));
        assert_eq!(Reg::TrbLimitR.encoding(), s(3, 0, 9, 11, 0));
        assert_eq!(Reg::TrbPtr.encoding(), s(3, 0, 9, 11, 1));
        assert_eq!(Reg::TrbBaseR.encoding(), s(3, 0, 9, 11, 2));
        assert_eq!(Reg::TrbSR.encoding(), s(3, 0, 9, 11, 3));
        assert_eq!(Reg::TrbMaR.encoding(), s(3, 0, 9, 11, 4));
        assert_eq!(Reg::TrbTrgR.encoding(), s(3, 0, 9, 11, 6));
        assert_eq!(Reg::TrbIdR.encoding(), s(3, 0, 9, 11, 7));
        assert_eq!(Reg::TrcDevArch.encoding(), s(2, 1, 7, 15, 6));
        assert_eq!(Reg::TrcAuthStatus.encoding(), s(2, 1, 7, 14, 6));
        assert_eq!(Reg::TrcPrgCtlr.encoding(), s(2, 1, 0, 1, 0));
        assert_eq!(Reg::TrcStatR.encoding(), s(2, 1, 0, 3, 0));
        assert_eq!(Reg::TrcConfigR.encoding(), s(2, 1, 0, 4, 0));
        assert_eq!(Reg::TrcTraceIdR.encoding(), s(2, 1, 0, 0, 1));
        assert_eq!(Reg::TrcOsLsR.encoding(), s(2, 1, 1, 1, 4));
    }

    #[test]
    fn trace_encodings_match_the_arm_arm_register_pages() {
        // DDI 0487 D24.4: TRCVICTLR, TRCVISSCTLR, TRCRSR, TRCIDR3, TRCAUXCTLR.
        assert_eq!(Reg::TrcViCtlR.encoding(), s(2, 1, 0, 0, 2));
        assert_eq!(Reg::TrcViSsCtlR.encoding(), s(2, 1, 0, 2, 2));
        assert_eq!(Reg::TrcRsR.encoding(), s(2, 1, 0, 10, 0));
        assert_eq!(Reg::TrcIdR(3).encoding(), s(2, 1, 0, 11, 7));
        assert_eq!(Reg::TrcAuxCtlR.encoding(), s(2, 1, 0, 6, 0));
        // Comparators: TRCACVR<n> CRn 2, CRm n[2:0]:0, op2 n[3]:00; TRCACATR op2 n[3]:10.
        assert_eq!(Reg::TrcAcVR(0).encoding(), s(2, 1, 2, 0, 0));
        assert_eq!(Reg::TrcAcVR(1).encoding(), s(2, 1, 2, 2, 0));
        assert_eq!(Reg::TrcAcVR(8).encoding(), s(2, 1, 2, 0, 1));
        assert_eq!(Reg::TrcAcAtR(1).encoding(), s(2, 1, 2, 2, 2));
        assert_eq!(Reg::TrcAcAtR(15).encoding(), s(2, 1, 2, 14, 3));
        assert_eq!(Reg::TrcRsCtlR(2).encoding(), s(2, 1, 1, 2, 0));
        assert_eq!(Reg::TrcRsCtlR(31).encoding(), s(2, 1, 1, 15, 1));
        assert_eq!(Reg::TrcClaimSet.encoding(), s(2, 1, 7, 8, 6));
        assert_eq!(Reg::TrcIdR(8).encoding(), s(2, 1, 0, 0, 6));
        // The PE OS Lock, which is the trace unit's on ETE.
        assert_eq!(Reg::OslarEl1.encoding(), s(2, 0, 1, 0, 4));
    }

    fn parse(name: &str) -> (u8, u8, u8, u8, u8) {
        let p: Vec<&str> = name.split('_').collect();
        assert_eq!(p.len(), 5, "{name}");
        let n = |t: &str, prefix: &str| t.strip_prefix(prefix).unwrap().parse::<u8>().unwrap();
        (
            n(p[0], "S"),
            n(p[1], ""),
            n(p[2], "C"),
            n(p[3], "C"),
            n(p[4], ""),
        )
    }

    #[test]
    fn trace_asm_names_agree_with_encodings_for_every_register() {
        for r in Reg::ALL {
            assert_eq!(parse(r.asm_name()), r.encoding(), "{r:?}");
        }
    }

    #[test]
    fn trace_register_index_is_a_bijection_and_encodings_are_unique() {
        let mut encs = HashSet::new();
        for (i, r) in Reg::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
            assert!(r.is_valid());
            assert!(encs.insert(r.encoding()), "duplicate encoding for {r:?}");
        }
        for bad in [
            Reg::TrcAcVR(16),
            Reg::TrcRsCtlR(1),
            Reg::TrcIdR(14),
            Reg::TrcCntVR(4),
            Reg::TrcSeqEvR(3),
        ] {
            assert!(!bad.is_valid(), "{bad:?}");
            assert!(!bad.readable() && !bad.writable());
            assert_eq!(bad.encoding(), (0, 0, 0, 0, 0));
        }
    }

    #[test]
    fn trace_register_classes() {
        assert_eq!(Reg::TrcStatR.access(), RegAccess::ReadOnly);
        assert_eq!(Reg::TrcIdR(0).access(), RegAccess::ReadOnly);
        assert_eq!(Reg::TrbIdR.access(), RegAccess::ReadOnly);
        assert_eq!(Reg::OslarEl1.access(), RegAccess::WriteOnly);
        assert!(Reg::TrcConfigR.is_programming() && Reg::TrcAcVR(3).is_programming());
        for r in [
            Reg::TrcPrgCtlr,
            Reg::TrcStatR,
            Reg::TrcOsLsR,
            Reg::OslarEl1,
            Reg::TrfcrEl1,
            Reg::TrbLimitR,
        ] {
            assert!(!r.is_programming(), "{r:?}");
        }
        assert!(Reg::TrbSR.is_trbe() && !Reg::TrfcrEl1.is_trbe());
    }
}

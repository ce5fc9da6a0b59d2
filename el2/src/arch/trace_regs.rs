//! The real trace registers: one MRS/MSR per register, generated from the
//! table in `trace::regs` (whose names the host tests check against the
//! Arm ARM encodings), plus the barriers the sequences need.
//!
//! Preconditions, owned by the caller (EL2's boot and per-core code):
//! - Only on a core `trace::probe` classed `Hardware`; on any other core
//!   every one of these registers is UNDEFINED.
//! - CPTR_EL2.TTA traps trace-unit register accesses *from EL2 too* (Arm
//!   ARM pseudocode: "PSTATE.EL == EL2 ... elsif CPTR_EL2.TTA == '1' then
//!   AArch64.SystemAccessTrap(EL2, 0x18)"). EL2 keeps TTA set to keep the
//!   guest out, so it opens the trap around its own sequences with
//!   `TraceAccess`.
//! - Each core touches only its own registers: system registers are per PE.

use core::arch::{asm, global_asm};

use super::{Readable, Writeable, CNTFRQ_EL0, CNTPCT_EL0, CPTR_EL2, ID_AA64DFR0_EL1};
use crate::trace::{trace_reg_table, Reg, SysRegs};

/// CPTR_EL2.TTA (bit 20 with HCR_EL2.E2H = 0).
const CPTR_TTA: u64 = 1 << 20;

/// This core's trace registers.
#[derive(Clone, Copy, Debug, Default)]
pub struct HwTraceRegs;

macro_rules! hw_access {
    (@read wo $s:literal) => {
        0
    };
    (@read $acc:ident $s:literal) => {{
        let v: u64;
        // SAFETY: an MRS of a trace, trace-filter or trace-buffer register
        // has no effect on memory; EL2 may read it on a core probed to
        // have it, with CPTR_EL2.TTA open (module preconditions).
        unsafe { asm!(concat!("mrs {}, ", $s), out(reg) v, options(nomem, nostack, preserves_flags)) };
        v
    }};
    (@write ro $s:literal, $v:ident) => {{
        let _ = $v;
    }};
    (@write $acc:ident $s:literal, $v:ident) => {
        // SAFETY: the trace registers cannot break EL2's memory safety: the
        // buffer they make the hardware write is the guest buffer the
        // caller validated. Not `nomem`: enabling the buffer starts DMA-like
        // writes, so the compiler must not move memory accesses across it.
        unsafe { asm!(concat!("msr ", $s, ", {}"), in(reg) $v, options(nostack, preserves_flags)) }
    };
    ($( $acc:ident $name:ident $( ( $idx:literal ) )? => $s:literal, )*) => {
        fn read_reg(r: Reg) -> u64 {
            match r {
                $( Reg::$name $( ($idx) )? => hw_access!(@read $acc $s), )*
                _ => 0,
            }
        }

        fn write_reg(r: Reg, v: u64) {
            match r {
                $( Reg::$name $( ($idx) )? => hw_access!(@write $acc $s, v), )*
                _ => {}
            }
        }
    };
}
trace_reg_table!(hw_access);

impl SysRegs for HwTraceRegs {
    fn read(&mut self, r: Reg) -> u64 {
        read_reg(r)
    }

    fn write(&mut self, r: Reg, v: u64) {
        write_reg(r, v)
    }

    fn isb(&mut self) {
        super::isb();
    }

    fn dsb(&mut self) {
        super::dsb_sy();
    }

    fn tsb_csync(&mut self) {
        // TSB CSYNC is HINT #18 (LLVM rejects the mnemonic without +v8.4a);
        // on a core without FEAT_TRF it executes as a NOP.
        // SAFETY: a barrier has no memory-safety preconditions.
        unsafe { asm!("hint #18", options(nostack, preserves_flags)) };
    }

    fn counter(&mut self) -> u64 {
        // The ISBs of the waits order the counter reads with the TRCSTATR
        // reads; the counter need not be exact to a few ticks.
        CNTPCT_EL0.get()
    }

    fn counter_freq(&mut self) -> u64 {
        CNTFRQ_EL0.get()
    }
}

/// ID_AA64DFR0_EL1: TraceVer [7:4], TraceFilt [43:40], TraceBuffer [47:44].
pub fn id_aa64dfr0() -> u64 {
    ID_AA64DFR0_EL1.get()
}

/// TRBIDR_EL1. Call only when `trace::has_trace_buffer(id_aa64dfr0())`:
/// without FEAT_TRBE the register is UNDEFINED.
pub fn trbidr() -> u64 {
    let v: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { asm!("mrs {}, S3_0_C9_C11_7", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Opens CPTR_EL2.TTA for EL2's own trace-unit accesses while it lives and
/// closes it again when dropped. Create it on the owning core with
/// interrupts masked, around a whole sequence: the guest cannot run while
/// it is open.
#[derive(Debug)]
pub struct TraceAccess {
    cptr: u64,
}

impl TraceAccess {
    /// Clears CPTR_EL2.TTA (and synchronizes).
    pub fn open() -> TraceAccess {
        let cptr = CPTR_EL2.get();
        CPTR_EL2.set(cptr & !CPTR_TTA);
        super::isb();
        TraceAccess { cptr }
    }
}

impl Drop for TraceAccess {
    fn drop(&mut self) {
        CPTR_EL2.set(self.cptr);
        super::isb();
    }
}

/// OSLAR_EL1.OSLK = 0 on this core, then OSLSR_EL1.OSLK read back:
/// `init_el2` calls it on every entry path (cold boot, CPU_ON, warm boot),
/// so the guest's debug exceptions are generated from its first
/// instruction (see `trace::open_os_lock`). OSLAR_EL1 exists on every
/// Armv8-A core and EL2 may write it whatever MDCR_EL2.TDOSA says (that
/// traps EL1 only). Returns false if the lock stayed set.
pub fn open_os_lock_at_init() -> bool {
    crate::trace::open_os_lock(&mut HwTraceRegs);
    let oslsr: u64;
    // SAFETY: reading OSLSR_EL1 has no side effects.
    unsafe {
        asm!("mrs {}, S2_0_C1_C1_4", out(reg) oslsr, options(nomem, nostack, preserves_flags))
    };
    oslsr & (1 << 1) == 0
}

/// A trace register the boot probe reads before trusting the ID registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeReg {
    /// TRBIDR_EL1: trapped to EL3 by MDCR_EL3.NSTB when firmware keeps the
    /// trace buffer for the Secure side.
    TrbIdR,
    /// TRCIDR0: trapped to EL3 by CPTR_EL3.TTA.
    TrcIdR0,
    /// TRFCR_EL2: trapped to EL3 by MDCR_EL3.TTRF.
    TrfcrEl2,
}

/// What a probe function returns, in x0 and x1 (AAPCS64 returns a 16-byte
/// composite in x0/x1).
#[repr(C)]
struct Probed {
    value: u64,
    /// Set by the EL2 synchronous-exception vector (boot/vectors.S) when
    /// the probing MRS was UNDEFINED: it resumes after the instruction.
    undefined: u64,
}

// The probing MRS instructions all lie in [el2_trace_probe_start,
// el2_trace_probe_end). The current-EL synchronous vector resumes an
// UNDEFINED exception (EC 0x00; or 0x18, a trapped system-register access)
// taken at an address in that range at the next instruction with x1 = 1,
// and treats every other exception as the hypervisor fault it is. Each
// function follows AAPCS64 and touches x0 and x1 only (the vector saves
// and restores the x16/x17 it uses).
global_asm!(
    ".section .text.el2_trace_probe, \"ax\"",
    ".balign 4",
    ".global el2_trace_probe_start",
    ".global el2_trace_probe_end",
    ".global el2_probe_trbidr",
    ".global el2_probe_trcidr0",
    ".global el2_probe_trfcr_el2",
    "el2_trace_probe_start:",
    "el2_probe_trbidr:",
    "    mov x1, #0",
    "    mrs x0, S3_0_C9_C11_7",
    "    ret",
    "el2_probe_trcidr0:",
    "    mov x1, #0",
    "    mrs x0, S2_1_C0_C8_7",
    "    ret",
    "el2_probe_trfcr_el2:",
    "    mov x1, #0",
    "    mrs x0, S3_4_C1_C2_1",
    "    ret",
    "el2_trace_probe_end:",
);

extern "C" {
    fn el2_probe_trbidr() -> Probed;
    fn el2_probe_trcidr0() -> Probed;
    fn el2_probe_trfcr_el2() -> Probed;
}

/// Reads `r`, or None if the read is UNDEFINED at EL2 (firmware traps it
/// to EL3, which answers with an UNDEF, or the core has no such register).
/// Call with CPTR_EL2.TTA open (`TraceAccess`) and interrupts masked.
///
/// An EL3 that does not answer a trapped access with an UNDEF (older TF-A
/// reports an unhandled exception and stops) cannot be survived from EL2:
/// nothing here can detect that beforehand, so the README lists what
/// firmware must set.
pub fn try_read(r: ProbeReg) -> Option<u64> {
    // SAFETY: each function is an MRS of an ID or control register (no
    // side effects) in AAPCS64 form; an UNDEFINED exception inside it is
    // resumed by the vector with x1 = 1, and any other exception stops
    // the hypervisor as a fault, as it would anywhere.
    let p = unsafe {
        match r {
            ProbeReg::TrbIdR => el2_probe_trbidr(),
            ProbeReg::TrcIdR0 => el2_probe_trcidr0(),
            ProbeReg::TrfcrEl2 => el2_probe_trfcr_el2(),
        }
    };
    (p.undefined == 0).then_some(p.value)
}

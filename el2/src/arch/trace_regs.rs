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

use core::arch::asm;

use super::cptr_el2;
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
        super::cntpct_el0::read()
    }

    fn counter_freq(&mut self) -> u64 {
        super::cntfrq_el0::read()
    }
}

/// ID_AA64DFR0_EL1: TraceVer [7:4], TraceFilt [43:40], TraceBuffer [47:44].
pub fn id_aa64dfr0() -> u64 {
    let v: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe {
        asm!("mrs {}, id_aa64dfr0_el1", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
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
        let cptr = cptr_el2::read();
        cptr_el2::write(cptr & !CPTR_TTA);
        super::isb();
        TraceAccess { cptr }
    }
}

impl Drop for TraceAccess {
    fn drop(&mut self) {
        cptr_el2::write(self.cptr);
        super::isb();
    }
}

//! The generic timer: the virtual counter for time and timeouts, and the
//! EL1 virtual timer (CNTV_*, PPI 27) for interrupts.

use core::arch::asm;

use crate::arch::read_sysreg;

/// INTID of the EL1 virtual timer.
pub const VTIMER_INTID: u32 = 27;

/// Counter frequency in Hz (CNTFRQ_EL0, or QEMU's 62.5 MHz if unset).
pub fn freq() -> u64 {
    match read_sysreg!("cntfrq_el0") & 0xffff_ffff {
        0 => 62_500_000,
        f => f,
    }
}

/// The virtual counter, CNTVCT_EL0.
pub fn now() -> u64 {
    // SAFETY: ISB only orders the counter read after earlier instructions.
    unsafe { asm!("isb", options(nomem, nostack, preserves_flags)) };
    read_sysreg!("cntvct_el0")
}

/// Counter ticks in `ms` milliseconds.
pub fn ms_to_ticks(ms: u64) -> u64 {
    freq() / 1000 * ms
}

/// Counter ticks to microseconds.
pub fn ticks_to_us(ticks: u64) -> u64 {
    ticks.saturating_mul(1_000_000) / freq()
}

/// Arms the virtual timer to fire in `ms` milliseconds.
pub fn arm_ms(ms: u64) {
    let ticks = ms_to_ticks(ms).min(i32::MAX as u64);
    // SAFETY: programs only this core's EL1 virtual timer (TVAL, then
    // CTL.ENABLE = 1 with IMASK clear).
    unsafe {
        asm!(
            "msr cntv_tval_el0, {t}",
            "msr cntv_ctl_el0, {c}",
            "isb",
            t = in(reg) ticks,
            c = in(reg) 1u64,
            options(nomem, nostack, preserves_flags)
        )
    };
}

/// Stops the virtual timer (its interrupt line drops).
pub fn disable() {
    // SAFETY: CNTV_CTL_EL0 = 0 only turns this core's virtual timer off.
    unsafe {
        asm!(
            "msr cntv_ctl_el0, xzr",
            "isb",
            options(nomem, nostack, preserves_flags)
        )
    };
}

/// A point in counter time for bounded waits.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(u64);

impl Deadline {
    /// `ms` milliseconds from now.
    pub fn after_ms(ms: u64) -> Self {
        Deadline(now().wrapping_add(ms_to_ticks(ms)))
    }

    /// Has it passed?
    pub fn expired(self) -> bool {
        now() >= self.0
    }
}

/// Busy-waits (with interrupts as they are) for `us` microseconds.
pub fn delay_us(us: u64) {
    let end = now() + freq() / 1_000_000 * us;
    while now() < end {
        crate::arch::relax();
    }
}

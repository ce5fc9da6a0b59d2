//! The IRQ handler and the per-core interrupt counters the checks read.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::arch::{self, MAX_CPUS};
use crate::{gic, timer};

/// How many SGI IDs (1..=7) one IPI wave uses: sender `s` sends SGI
/// `1 + s % 7` in wave `s / 7`, so no two senders of a wave share an SGI ID
/// (SGIs of one ID coalesce while pending) and SGI 0 stays the doorbell.
pub const SGIS_PER_WAVE: usize = 7;

/// One counter per core.
type Row = [AtomicU32; MAX_CPUS];

/// Virtual-timer interrupts taken, per core.
pub static TIMER_IRQS: Row = [const { AtomicU32::new(0) }; MAX_CPUS];
/// Doorbell SGIs taken, per core.
pub static DOORBELLS: Row = [const { AtomicU32::new(0) }; MAX_CPUS];
/// Interrupts with an INTID nobody expected, per core.
pub static UNEXPECTED: Row = [const { AtomicU32::new(0) }; MAX_CPUS];
/// The last unexpected INTID, per core.
pub static LAST_UNEXPECTED: Row = [const { AtomicU32::new(0) }; MAX_CPUS];
/// The IPI wave in progress.
pub static IPI_WAVE: AtomicU32 = AtomicU32::new(0);
/// IPI SGIs received: `IPI_RECEIVED[target][sender]`.
pub static IPI_RECEIVED: [Row; MAX_CPUS] =
    [const { [const { AtomicU32::new(0) }; MAX_CPUS] }; MAX_CPUS];
/// IPI SGIs sent: `IPI_SENT[sender][target]`.
pub static IPI_SENT: [Row; MAX_CPUS] =
    [const { [const { AtomicU32::new(0) }; MAX_CPUS] }; MAX_CPUS];

/// The SGI ID sender `s` uses in the IPI check.
pub fn ipi_sgi(sender: usize) -> u32 {
    1 + (sender % SGIS_PER_WAVE) as u32
}

/// The IPI wave sender `s` sends in.
pub fn ipi_wave(sender: usize) -> u32 {
    (sender / SGIS_PER_WAVE) as u32
}

/// Called by the IRQ vector: acknowledges one interrupt, counts it, ends it.
/// Prints nothing (it may have interrupted a core holding the console).
pub fn handle() {
    let me = arch::core_index();
    let iar = gic::ack();
    let intid = iar & 0xff_ffff;
    if intid >= 1020 {
        // Spurious: nothing to end.
        return;
    }
    match intid {
        gic::SGI_DOORBELL => {
            DOORBELLS[me].fetch_add(1, Ordering::Relaxed);
        }
        1..=7 => {
            let wave = IPI_WAVE.load(Ordering::Relaxed) as usize;
            let sender = wave * SGIS_PER_WAVE + (intid as usize - 1);
            if sender < MAX_CPUS {
                IPI_RECEIVED[me][sender].fetch_add(1, Ordering::Release);
            } else {
                LAST_UNEXPECTED[me].store(intid, Ordering::Relaxed);
                UNEXPECTED[me].fetch_add(1, Ordering::Relaxed);
            }
        }
        timer::VTIMER_INTID => {
            // Level-triggered: stop the timer before ending the interrupt.
            timer::disable();
            TIMER_IRQS[me].fetch_add(1, Ordering::Release);
        }
        _ => {
            LAST_UNEXPECTED[me].store(intid, Ordering::Relaxed);
            UNEXPECTED[me].fetch_add(1, Ordering::Relaxed);
        }
    }
    gic::eoi(iar);
}

/// Sleeps in WFI until `cond` holds, with IRQs unmasked between sleeps,
/// giving up after `ms`. The check and the WFI run with IRQs masked, so an
/// interrupt that makes `cond` true cannot slip in between them unseen.
///
/// A WFI ends only with an interrupt: use this only when one is due (an
/// armed timer, an expected SGI).
pub fn wait_wfi(ms: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = timer::Deadline::after_ms(ms);
    loop {
        arch::mask_irqs();
        if cond() {
            arch::unmask_irqs();
            return true;
        }
        if deadline.expired() {
            arch::unmask_irqs();
            return false;
        }
        arch::wfi();
        arch::unmask_irqs();
    }
}

/// Busy-polls (IRQs as they are) until `cond` holds, giving up after `ms`.
pub fn poll(ms: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = timer::Deadline::after_ms(ms);
    loop {
        if cond() {
            return true;
        }
        if deadline.expired() {
            return false;
        }
        arch::relax();
    }
}

/// Takes `n` virtual-timer interrupts on this core, arming the timer for
/// ~2 ms each time and sleeping in WFI until its interrupt has been taken.
pub fn take_timer_irqs(n: u32) -> Result<(), crate::report::Msg> {
    let me = arch::core_index();
    for i in 0..n {
        let before = TIMER_IRQS[me].load(Ordering::Acquire);
        timer::arm_ms(2);
        if !wait_wfi(1000, || TIMER_IRQS[me].load(Ordering::Acquire) != before) {
            timer::disable();
            return Err(crate::report::msg(format_args!(
                "timer interrupt {} of {n} not taken within 1 s (CNTV_CTL_EL0 {:#x})",
                i + 1,
                arch::read_sysreg!("cntv_ctl_el0")
            )));
        }
    }
    Ok(())
}

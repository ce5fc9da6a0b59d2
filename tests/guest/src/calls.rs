//! SMCCC calls: PSCI through the DTB's conduit, the hypervisor's own
//! service (`guest_api::hyp`) through HVC.
//!
//! Every call runs under a [`trap`](crate::trap) catch, so that a call the
//! CPU refuses (HVC without EL2 on bare QEMU) is a failed check, not a crash.

use core::arch::asm;

use guest_api::{hyp, psci};

use crate::trap::{self, Caught};
use crate::{arch, platform};

/// How SMCCC calls reach their handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    /// `smc #0`.
    Smc,
    /// `hvc #0`.
    Hvc,
}

impl Conduit {
    /// The DTB's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Conduit::Smc => "smc",
            Conduit::Hvc => "hvc",
        }
    }
}

/// What a call returns: x0..x3, or the exception it raised.
pub type Ret = Result<[u64; 4], Caught>;

/// Makes an SMCCC call with up to three arguments.
pub fn call(conduit: Conduit, fid: u32, a1: u64, a2: u64, a3: u64) -> Ret {
    let (r, caught) = trap::catching(|| raw(conduit, fid, a1, a2, a3));
    match caught {
        None => Ok(r),
        Some(c) => Err(c),
    }
}

fn raw(conduit: Conduit, fid: u32, a1: u64, a2: u64, a3: u64) -> [u64; 4] {
    let (r0, r1, r2, r3): (u64, u64, u64, u64);
    match conduit {
        // SAFETY: an SMCCC call: x0..x3 carry the function ID and arguments
        // and come back with results; x4..x17 may be clobbered (SMCCC 1.0);
        // everything else is preserved by the callee.
        Conduit::Smc => unsafe {
            asm!(
                "smc #0",
                inlateout("x0") fid as u64 => r0,
                inlateout("x1") a1 => r1,
                inlateout("x2") a2 => r2,
                inlateout("x3") a3 => r3,
                lateout("x4") _, lateout("x5") _, lateout("x6") _, lateout("x7") _,
                lateout("x8") _, lateout("x9") _, lateout("x10") _, lateout("x11") _,
                lateout("x12") _, lateout("x13") _, lateout("x14") _, lateout("x15") _,
                lateout("x16") _, lateout("x17") _,
                options(nostack)
            )
        },
        // SAFETY: as above, through the hypervisor conduit.
        Conduit::Hvc => unsafe {
            asm!(
                "hvc #0",
                inlateout("x0") fid as u64 => r0,
                inlateout("x1") a1 => r1,
                inlateout("x2") a2 => r2,
                inlateout("x3") a3 => r3,
                lateout("x4") _, lateout("x5") _, lateout("x6") _, lateout("x7") _,
                lateout("x8") _, lateout("x9") _, lateout("x10") _, lateout("x11") _,
                lateout("x12") _, lateout("x13") _, lateout("x14") _, lateout("x15") _,
                lateout("x16") _, lateout("x17") _,
                options(nostack)
            )
        },
    }
    [r0, r1, r2, r3]
}

/// A call of the hypervisor's service (always HVC).
pub fn hyp(fid: u32, a1: u64) -> Ret {
    call(Conduit::Hvc, fid, a1, 0, 0)
}

/// What a call with four arguments and six results returns: x0..x5, or
/// the exception it raised.
pub type Ret6 = Result<[u64; 6], Caught>;

/// A call of the hypervisor's service with x1..x4 as arguments and x0..x5
/// as results (the trace calls, `guest_api::trace`).
pub fn hyp6(fid: u32, args: [u64; 4]) -> Ret6 {
    let (r, caught) = trap::catching(|| raw6(fid, args));
    match caught {
        None => Ok(r),
        Some(c) => Err(c),
    }
}

fn raw6(fid: u32, a: [u64; 4]) -> [u64; 6] {
    let (r0, r1, r2, r3, r4, r5): (u64, u64, u64, u64, u64, u64);
    // SAFETY: an SMCCC call through the hypervisor conduit: x0..x4 carry
    // the function ID and arguments, x0..x5 come back with results; x6..x17
    // may be clobbered (SMCCC 1.0); everything else is preserved.
    unsafe {
        asm!(
            "hvc #0",
            inlateout("x0") fid as u64 => r0,
            inlateout("x1") a[0] => r1,
            inlateout("x2") a[1] => r2,
            inlateout("x3") a[2] => r3,
            inlateout("x4") a[3] => r4,
            lateout("x5") r5,
            lateout("x6") _, lateout("x7") _, lateout("x8") _, lateout("x9") _,
            lateout("x10") _, lateout("x11") _, lateout("x12") _, lateout("x13") _,
            lateout("x14") _, lateout("x15") _, lateout("x16") _, lateout("x17") _,
            options(nostack)
        )
    };
    [r0, r1, r2, r3, r4, r5]
}

/// PING(target MPIDR): x0 = 0, x1 = target index, x2 = target MPIDR,
/// x3 = pings served by the target.
pub fn ping(mpidr: u64) -> Ret {
    hyp(hyp::PING, mpidr)
}

/// A PSCI call through the DTB's conduit; x0 as a signed status.
pub fn psci(fid: u32, a1: u64, a2: u64, a3: u64) -> Result<i64, Caught> {
    call(platform::get().psci_conduit, fid, a1, a2, a3).map(|r| r[0] as i64)
}

/// PSCI CPU_ON (SMC64 form).
pub fn cpu_on(mpidr: u64, entry: u64, context: u64) -> Result<i64, Caught> {
    psci(psci::CPU_ON_64, mpidr, entry, context)
}

/// PSCI CPU_OFF: returns only on failure.
pub fn cpu_off() -> Result<i64, Caught> {
    psci(psci::CPU_OFF, 0, 0, 0)
}

/// PSCI AFFINITY_INFO(target, lowest level 0).
pub fn affinity_info(mpidr: u64) -> Result<i64, Caught> {
    psci(psci::AFFINITY_INFO_64, mpidr, 0, 0)
}

/// PSCI CPU_SUSPEND for a state that keeps the core's context (standby).
pub fn cpu_suspend_standby(power_state: u32) -> Result<i64, Caught> {
    psci(
        psci::CPU_SUSPEND_64,
        power_state as u64,
        arch::secondary_entry(),
        arch::core_index() as u64,
    )
}

/// PSCI CPU_SUSPEND for a state that may lose the core's context: returns
/// the call's x0, or [`arch::RESUMED_THROUGH_ENTRY`] if the core came back
/// through its entry point. Call with IRQs masked.
pub fn cpu_suspend_powerdown(power_state: u32) -> i64 {
    arch::psci_save_call(
        psci::CPU_SUSPEND_64,
        power_state as u64,
        arch::secondary_entry(),
        arch::core_index() as u64,
        platform::get().psci_conduit == Conduit::Hvc,
    )
}

/// [`cpu_suspend_powerdown`] that also reports whether the callee-saved FP
/// registers d8..d15 survived it (see [`arch::psci_save_call_checking_fp`]).
pub fn cpu_suspend_powerdown_checking_fp(power_state: u32) -> (i64, bool) {
    arch::psci_save_call_checking_fp(
        psci::CPU_SUSPEND_64,
        power_state as u64,
        arch::secondary_entry(),
        arch::core_index() as u64,
        platform::get().psci_conduit == Conduit::Hvc,
    )
}

/// CPU_OFF that keeps the core's context: another core's CPU_ON (with
/// the entry point and this core's index) makes it return
/// [`arch::RESUMED_THROUGH_ENTRY`]. Exercises the power-down resume path
/// where no firmware really powers down. Call with IRQs masked.
pub fn cpu_off_keeping_context() -> i64 {
    arch::psci_save_call(
        psci::CPU_OFF,
        0,
        0,
        0,
        platform::get().psci_conduit == Conduit::Hvc,
    )
}

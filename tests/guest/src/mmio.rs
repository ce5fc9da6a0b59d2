//! 32-bit MMIO with plain single-register `ldr w`/`str w` (no pairs, no
//! writeback), the only forms the hypervisor's MMIO emulation decodes.

use core::arch::asm;

/// Reads the 32-bit register at `addr`.
///
/// # Safety
/// `addr` must be a 4-byte aligned device register, mapped and readable.
pub unsafe fn read32(addr: usize) -> u32 {
    let v: u32;
    // SAFETY: the caller guarantees `addr` is a readable device register.
    unsafe { asm!("ldr {v:w}, [{a}]", v = out(reg) v, a = in(reg) addr, options(nostack)) };
    v
}

/// Writes the 32-bit register at `addr`.
///
/// # Safety
/// `addr` must be a 4-byte aligned device register, mapped and writable, and
/// writing `v` to it must not break what the rest of the guest relies on.
pub unsafe fn write32(addr: usize, v: u32) {
    // SAFETY: the caller guarantees `addr` is a writable device register.
    unsafe { asm!("str {v:w}, [{a}]", v = in(reg) v, a = in(reg) addr, options(nostack)) };
}

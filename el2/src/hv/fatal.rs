//! The end of the line: a boot refusal, a panic, or a fault in EL2 itself.
//! A leaf: it needs only the console and `arch`'s exits, so every other
//! module may stop through it without importing anything above itself.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::{arch, println};

/// Stops the boot with a message. Under `-semihosting` QEMU exits with
/// status 2, so a runner sees the refusal; otherwise the machine resets
/// (`arch::exit_failure`).
pub fn fatal(args: fmt::Arguments<'_>) -> ! {
    println!("FATAL: {args}");
    arch::exit_failure(2)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("PANIC: {info}");
    arch::exit_failure(101)
}

static IN_FAULT: AtomicBool = AtomicBool::new(false);

/// A fault in the hypervisor itself: a bug, never a guest's doing.
#[no_mangle]
extern "C" fn el2_fault(kind: u64, esr: u64, elr: u64, far: u64) -> ! {
    if arch::semihosting_unavailable(esr) {
        println!("no semihosting to report the exit status: resetting through PSCI SYSTEM_RESET");
        arch::system_reset();
    }
    if IN_FAULT.swap(true, Ordering::SeqCst) {
        arch::halt();
    }
    println!("FATAL: hypervisor exception (vector {kind}) ESR {esr:#x} ELR {elr:#x} FAR {far:#x}");
    arch::exit_failure(3)
}

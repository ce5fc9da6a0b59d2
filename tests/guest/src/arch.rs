//! Boot entry points, exception vectors and the few system registers the
//! guest touches directly.
//!
//! Entry points (all at EL1h, MMU off, DAIF masked):
//! - `_start` (the first byte of the image): the boot core, x0 = DTB.
//! - `guest_secondary_entry`: every core started or resumed through PSCI
//!   (CPU_ON, or CPU_SUSPEND with a power-down state), x0 = context_id =
//!   the core's index in `/cpus`.
//!
//! Each of them first enables FP/SIMD, installs the vectors and turns on the
//! MMU with the static identity map of [`crate::mmu`], touching no memory
//! through data accesses before that (with the MMU off every access is
//! Device memory). Only then do they use a stack.
//!
//! A core that asks for a power-down (CPU_SUSPEND, or the context-keeping
//! CPU_OFF of the resume self-test) saves its callee-saved registers and
//! stack pointer in its [`RESUME`] slot first; if PSCI then resumes it at the
//! entry point instead of returning, the entry finds the slot marked and
//! returns from [`psci_save_call`] with [`RESUMED_THROUGH_ENTRY`].

use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::mmu;

/// Most cores the guest drives.
pub const MAX_CPUS: usize = 8;
/// Per-core stack size. The linker script reserves `__guest_stacks_size`
/// (defined below) = `(MAX_CPUS + 1) * STACK_SIZE` bytes after `.bss`.
pub const STACK_SIZE: usize = 16 * 1024;
/// The boot core runs on its own stack, after the per-core ones.
const BOOT_STACK_SLOT: usize = MAX_CPUS;
/// Size of one [`ResumeSlot`]; the assembly indexes slots with `lsl #8`.
const RESUME_SLOT_SIZE: usize = 256;
/// What [`psci_save_call`] returns when the core came back through its
/// entry point rather than by the call returning (PSCI never returns 1).
pub const RESUMED_THROUGH_ENTRY: i64 = 1;

const _: () = assert!(core::mem::size_of::<ResumeSlot>() == RESUME_SLOT_SIZE);
const _: () = assert!(core::mem::size_of::<Frame>() == FRAME_SIZE);

/// The callee-saved state of a core that asked for a power-down:
/// x19..x30 at 0..96, sp at 96, the "resume pending" flag at 104, and the
/// callee-saved FP registers d8..d15 at 112..176 (AAPCS64: their low 64
/// bits), which a real power-down loses too. 256 bytes per core: the entry
/// path indexes the slots with a shift.
#[repr(C, align(256))]
pub struct ResumeSlot(UnsafeCell<[u64; 32]>);

// SAFETY: a slot is written and read only by its own core (in assembly,
// around its own PSCI call and in its own entry path); nothing else touches it.
unsafe impl Sync for ResumeSlot {}

/// One resume slot per core, indexed by core index.
static RESUME: [ResumeSlot; MAX_CPUS] = [const { ResumeSlot(UnsafeCell::new([0; 32])) }; MAX_CPUS];

/// Size of the exception [`Frame`].
const FRAME_SIZE: usize = 800;

/// The registers saved by the exception vectors, as laid out on the stack.
#[repr(C)]
#[derive(Debug)]
pub struct Frame {
    /// x0..x30.
    pub x: [u64; 31],
    /// ELR_EL1: the return address; a handler may move it on.
    pub elr: u64,
    /// SPSR_EL1.
    pub spsr: u64,
    /// FPCR.
    pub fpcr: u64,
    /// FPSR.
    pub fpsr: u64,
    _pad: u64,
    /// q0..q31.
    pub q: [u128; 32],
}

global_asm!(
    r#"
.macro GUEST_MOV64 reg, val
    movz    \reg, #((\val) & 0xffff)
    movk    \reg, #(((\val) >> 16) & 0xffff), lsl #16
    movk    \reg, #(((\val) >> 32) & 0xffff), lsl #32
    movk    \reg, #(((\val) >> 48) & 0xffff), lsl #48
.endm

// sp = __stacks_start + (slot + 1) * STACK_SIZE
.macro GUEST_SET_STACK slot
    adrp    x9, __stacks_start
    add     x9, x9, :lo12:__stacks_start
    add     x10, \slot, #1
    mov     x11, #{stack_size}
    madd    x9, x10, x11, x9
    mov     sp, x9
.endm

// Size of the stack area, for the linker script.
    .global __guest_stacks_size
    .set __guest_stacks_size, {stacks_size}

    .section .text.head, "ax"
    .global _start
    .type _start, %function
_start:
    msr     daifset, #0xf
    mov     x19, x0
    mov     x20, #{boot_slot}
    bl      guest_el1_setup
    msr     tpidr_el1, xzr
    // Zero .bss, once, on the boot core, with the MMU and caches on.
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
guest_zero_bss:
    cmp     x1, x2
    b.hs    guest_bss_done
    stp     xzr, xzr, [x1], #16
    b       guest_zero_bss
guest_bss_done:
    GUEST_SET_STACK x20
    mov     x29, xzr
    mov     x30, xzr
    mov     x0, x19
    bl      {primary_main}
    b       guest_park
    .size _start, . - _start

    .section .text.guest_boot, "ax"
    .global guest_secondary_entry
    .type guest_secondary_entry, %function
guest_secondary_entry:
    msr     daifset, #0xf
    mov     x20, x0
    cmp     x20, #{max_cpus}
    b.hs    guest_park
    bl      guest_el1_setup
    msr     tpidr_el1, x20
    adrp    x1, {resume}
    add     x1, x1, :lo12:{resume}
    add     x1, x1, x20, lsl #8
    ldr     x2, [x1, #104]
    cbnz    x2, guest_resume_context
    GUEST_SET_STACK x20
    mov     x29, xzr
    mov     x30, xzr
    mov     x0, x20
    bl      {secondary_main}
    b       guest_park
guest_resume_context:
    // Back from a power-down: return from guest_psci_save_call.
    str     xzr, [x1, #104]
    ldp     x19, x20, [x1, #0]
    ldp     x21, x22, [x1, #16]
    ldp     x23, x24, [x1, #32]
    ldp     x25, x26, [x1, #48]
    ldp     x27, x28, [x1, #64]
    ldp     x29, x30, [x1, #80]
    ldp     d8, d9, [x1, #112]
    ldp     d10, d11, [x1, #128]
    ldp     d12, d13, [x1, #144]
    ldp     d14, d15, [x1, #160]
    ldr     x9, [x1, #96]
    mov     sp, x9
    mov     x0, #{resumed}
    ret
    .size guest_secondary_entry, . - guest_secondary_entry

guest_park:
    msr     daifset, #0xf
    wfe
    b       guest_park

// FP/SIMD on, vectors, MMU on. Uses x9..x11 only, and no memory.
    .type guest_el1_setup, %function
guest_el1_setup:
    mov     x9, #(3 << 20)
    msr     cpacr_el1, x9
    adrp    x9, guest_vectors
    add     x9, x9, :lo12:guest_vectors
    msr     vbar_el1, x9
    GUEST_MOV64 x9, {mair}
    msr     mair_el1, x9
    mrs     x10, id_aa64mmfr0_el1
    and     x10, x10, #0xf
    mov     x11, #5
    cmp     x10, x11
    csel    x10, x10, x11, ls
    GUEST_MOV64 x9, {tcr}
    orr     x9, x9, x10, lsl #32
    msr     tcr_el1, x9
    adrp    x9, {page_table}
    add     x9, x9, :lo12:{page_table}
    msr     ttbr0_el1, x9
    isb
    tlbi    vmalle1
    ic      iallu
    dsb     nsh
    isb
    GUEST_MOV64 x9, {sctlr}
    msr     sctlr_el1, x9
    isb
    ret
    .size guest_el1_setup, . - guest_el1_setup

// i64 guest_psci_save_call(fid, a1, a2, a3, slot, use_hvc)
// Saves the callee-saved registers in `slot`, marks it, and makes the call.
// Returns the call's x0, or RESUMED_THROUGH_ENTRY via the entry point.
    .global guest_psci_save_call
    .type guest_psci_save_call, %function
guest_psci_save_call:
    stp     x19, x20, [x4, #0]
    stp     x21, x22, [x4, #16]
    stp     x23, x24, [x4, #32]
    stp     x25, x26, [x4, #48]
    stp     x27, x28, [x4, #64]
    stp     x29, x30, [x4, #80]
    stp     d8, d9, [x4, #112]
    stp     d10, d11, [x4, #128]
    stp     d12, d13, [x4, #144]
    stp     d14, d15, [x4, #160]
    mov     x9, sp
    str     x9, [x4, #96]
    mov     x9, #1
    str     x9, [x4, #104]
    mov     x19, x4
    dsb     ish
    cbnz    x5, guest_save_call_hvc
    smc     #0
    b       guest_save_call_back
guest_save_call_hvc:
    hvc     #0
guest_save_call_back:
    str     xzr, [x19, #104]
    ldr     x19, [x19, #0]
    ret
    .size guest_psci_save_call, . - guest_psci_save_call

// The vector table: every entry saves x0/x1, passes its number (0..15) and
// joins the common path, which saves everything else, calls
// exception_entry(kind, frame) and returns with what the frame then holds.
    .section .text.vectors, "ax"
    .balign 2048
    .global guest_vectors
guest_vectors:
    .irp kind, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    .balign 0x80
    sub     sp, sp, #{frame_size}
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       guest_exception_common
    .endr

guest_exception_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x1, elr_el1
    stp     x30, x1, [sp, #240]
    mrs     x1, spsr_el1
    mrs     x2, fpcr
    stp     x1, x2, [sp, #256]
    mrs     x1, fpsr
    str     x1, [sp, #272]
    add     x1, sp, #288
    stp     q0, q1, [x1, #0]
    stp     q2, q3, [x1, #32]
    stp     q4, q5, [x1, #64]
    stp     q6, q7, [x1, #96]
    stp     q8, q9, [x1, #128]
    stp     q10, q11, [x1, #160]
    stp     q12, q13, [x1, #192]
    stp     q14, q15, [x1, #224]
    stp     q16, q17, [x1, #256]
    stp     q18, q19, [x1, #288]
    stp     q20, q21, [x1, #320]
    stp     q22, q23, [x1, #352]
    stp     q24, q25, [x1, #384]
    stp     q26, q27, [x1, #416]
    stp     q28, q29, [x1, #448]
    stp     q30, q31, [x1, #480]
    mov     x1, sp
    bl      {exception_entry}
    add     x1, sp, #288
    ldp     q0, q1, [x1, #0]
    ldp     q2, q3, [x1, #32]
    ldp     q4, q5, [x1, #64]
    ldp     q6, q7, [x1, #96]
    ldp     q8, q9, [x1, #128]
    ldp     q10, q11, [x1, #160]
    ldp     q12, q13, [x1, #192]
    ldp     q14, q15, [x1, #224]
    ldp     q16, q17, [x1, #256]
    ldp     q18, q19, [x1, #288]
    ldp     q20, q21, [x1, #320]
    ldp     q22, q23, [x1, #352]
    ldp     q24, q25, [x1, #384]
    ldp     q26, q27, [x1, #416]
    ldp     q28, q29, [x1, #448]
    ldp     q30, q31, [x1, #480]
    ldr     x1, [sp, #272]
    msr     fpsr, x1
    ldp     x1, x2, [sp, #256]
    msr     spsr_el1, x1
    msr     fpcr, x2
    ldp     x30, x1, [sp, #240]
    msr     elr_el1, x1
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    add     sp, sp, #{frame_size}
    eret
"#,
    stack_size = const STACK_SIZE,
    stacks_size = const (MAX_CPUS + 1) * STACK_SIZE,
    boot_slot = const BOOT_STACK_SLOT,
    max_cpus = const MAX_CPUS,
    resumed = const RESUMED_THROUGH_ENTRY,
    frame_size = const FRAME_SIZE,
    mair = const mmu::MAIR,
    tcr = const mmu::TCR,
    sctlr = const mmu::SCTLR,
    page_table = sym mmu::PAGE_TABLE,
    resume = sym RESUME,
    primary_main = sym crate::primary_main,
    secondary_main = sym crate::smp::secondary_main,
    exception_entry = sym exception_entry,
);

extern "C" {
    /// The entry point given to PSCI CPU_ON and CPU_SUSPEND (x0 = core index).
    fn guest_secondary_entry();
    fn guest_psci_save_call(fid: u64, a1: u64, a2: u64, a3: u64, slot: *mut u64, hvc: u64) -> i64;
}

/// Physical (= virtual: identity map) address of the secondary/resume entry.
pub fn secondary_entry() -> u64 {
    guest_secondary_entry as *const () as usize as u64
}

/// Makes a PSCI call that may lose this core's context (CPU_SUSPEND to a
/// power-down state): saves the callee-saved state first so that a resume
/// at [`secondary_entry`] (with context_id = this core's index) comes back
/// here. Returns the call's x0, or [`RESUMED_THROUGH_ENTRY`].
///
/// Call it with IRQs masked; after a resume through the entry the core's
/// GIC CPU interface and timer must be set up again.
pub fn psci_save_call(fid: u32, a1: u64, a2: u64, a3: u64, hvc: bool) -> i64 {
    let slot = RESUME[core_index()].0.get().cast::<u64>();
    // SAFETY: `slot` is this core's own resume slot (nobody else uses it);
    // the assembly follows the AAPCS64 (it saves and restores x19..x30 and
    // sp itself) and the SMCCC call preserves what AAPCS64 callers rely on.
    unsafe { guest_psci_save_call(fid as u64, a1, a2, a3, slot, hvc as u64) }
}

/// [`psci_save_call`] with d8..d15 (callee-saved under AAPCS64) holding
/// known values across the call: returns the call's x0 (or
/// [`RESUMED_THROUGH_ENTRY`]) and whether d8..d15 came back intact, which
/// after a real power-down only the resume path's restore can ensure.
pub fn psci_save_call_checking_fp(fid: u32, a1: u64, a2: u64, a3: u64, hvc: bool) -> (i64, bool) {
    const PATTERN: [u64; 8] = [
        0xd8d8_0000_1111_0008,
        0xd9d9_0000_1111_0009,
        0xdada_0000_1111_000a,
        0xdbdb_0000_1111_000b,
        0xdcdc_0000_1111_000c,
        0xdddd_0000_1111_000d,
        0xdede_0000_1111_000e,
        0xdfdf_0000_1111_000f,
    ];
    let slot = RESUME[core_index()].0.get().cast::<u64>();
    let mut after = [0u64; 8];
    let r: u64;
    // SAFETY: as `psci_save_call` for the call itself (this core's own
    // slot; the assembly follows the AAPCS64, so x20, which holds `after`,
    // survives the call or the resume). d8..d15 are declared clobbered: the
    // block loads them, and stores them to `after`, a local array.
    unsafe {
        asm!(
            "ldp d8, d9, [{p}]",
            "ldp d10, d11, [{p}, #16]",
            "ldp d12, d13, [{p}, #32]",
            "ldp d14, d15, [{p}, #48]",
            "bl {call}",
            "stp d8, d9, [x20]",
            "stp d10, d11, [x20, #16]",
            "stp d12, d13, [x20, #32]",
            "stp d14, d15, [x20, #48]",
            p = in(reg) PATTERN.as_ptr(),
            call = sym guest_psci_save_call,
            inout("x0") fid as u64 => r,
            in("x1") a1,
            in("x2") a2,
            in("x3") a3,
            in("x4") slot,
            in("x5") hvc as u64,
            in("x20") after.as_mut_ptr(),
            out("d8") _,
            out("d9") _,
            out("d10") _,
            out("d11") _,
            out("d12") _,
            out("d13") _,
            out("d14") _,
            out("d15") _,
            clobber_abi("C"),
        );
    }
    (r as i64, after == PATTERN)
}

/// Rust side of every exception vector.
extern "C" fn exception_entry(kind: u64, frame: &mut Frame) {
    match kind {
        // Current EL with SP_ELx: synchronous, IRQ.
        4 => {
            if !crate::trap::on_sync(frame) {
                unexpected(kind, frame);
            }
        }
        5 => crate::irq::handle(),
        _ => unexpected(kind, frame),
    }
}

/// Reports an exception nobody expected and ends the run with status 3.
fn unexpected(kind: u64, frame: &Frame) -> ! {
    const KINDS: [&str; 4] = ["synchronous", "IRQ", "FIQ", "SError"];
    const FROM: [&str; 4] = ["EL1t", "EL1h", "EL0 (AArch64)", "EL0 (AArch32)"];
    println!(
        "guest: FAIL exception: unexpected {} from {}: ESR_EL1={:#x} ELR_EL1={:#x} FAR_EL1={:#x} SPSR_EL1={:#x}",
        KINDS[(kind & 3) as usize],
        FROM[((kind >> 2) & 3) as usize],
        esr_el1(),
        frame.elr,
        far_el1(),
        frame.spsr
    );
    exit(crate::status::EXCEPTION);
}

macro_rules! read_sysreg {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: reading this system register at EL1 has no side effects.
        unsafe {
            ::core::arch::asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack, preserves_flags))
        };
        v
    }};
}
pub(crate) use read_sysreg;

/// ESR_EL1.
pub fn esr_el1() -> u64 {
    read_sysreg!("esr_el1")
}

/// FAR_EL1.
pub fn far_el1() -> u64 {
    read_sysreg!("far_el1")
}

/// This core's affinity: MPIDR_EL1 without the U/MT/RES1 bits.
pub fn mpidr() -> u64 {
    read_sysreg!("mpidr_el1") & 0xff_00ff_ffff
}

/// This core's index in `/cpus` (kept in TPIDR_EL1).
pub fn core_index() -> usize {
    (read_sysreg!("tpidr_el1") as usize).min(MAX_CPUS - 1)
}

/// Records this core's index (the boot core learns it from the DTB).
pub fn set_core_index(index: usize) {
    // SAFETY: TPIDR_EL1 is software's own register; only this guest reads it.
    unsafe { asm!("msr tpidr_el1, {}", in(reg) index as u64, options(nomem, nostack)) };
}

/// Masks IRQs (PSTATE.I).
pub fn mask_irqs() {
    // SAFETY: changes only this core's interrupt mask; a compiler barrier
    // (no `nomem`) so that memory accesses stay on their side of it.
    unsafe { asm!("msr daifset, #2", options(nostack)) };
}

/// Unmasks IRQs; a pending one is taken right here.
pub fn unmask_irqs() {
    // SAFETY: the vectors are installed before any interrupt is enabled;
    // a compiler barrier so that memory accesses stay on their side of it.
    unsafe { asm!("msr daifclr, #2", "isb", options(nostack)) };
}

/// Waits for an interrupt (which wakes the core even while PSTATE.I masks it).
pub fn wfi() {
    // SAFETY: WFI only suspends this core until an interrupt is pending.
    unsafe { asm!("dsb sy", "wfi", options(nostack)) };
}

/// Executes a permanently undefined instruction: an unexpected exception.
pub fn udf() -> ! {
    // SAFETY: UDF raises an Undefined Instruction exception, which the
    // vectors report before ending the run; it never returns.
    unsafe { asm!("udf #0", options(noreturn, nomem, nostack)) }
}

/// A hint for busy-wait loops.
pub fn relax() {
    // SAFETY: YIELD is a hint with no architectural effect.
    unsafe { asm!("yield", options(nomem, nostack, preserves_flags)) };
}

/// Ends the run through semihosting SYS_EXIT (ADP_Stopped_ApplicationExit
/// with `status`); never returns.
pub fn exit(status: u64) -> ! {
    const SYS_EXIT: u64 = 0x18;
    const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x2_0026;
    static EXITING: AtomicBool = AtomicBool::new(false);
    mask_irqs();
    if EXITING.swap(true, Ordering::SeqCst) {
        // Already on the way out (semihosting is off and the HLT trapped,
        // or another core is exiting): stop here.
        park();
    }
    let block = [ADP_STOPPED_APPLICATION_EXIT, status];
    // SAFETY: the semihosting call reads the two-word block on our stack and
    // ends the machine; if semihosting is off it is an UNDEFINED exception,
    // which the vectors report.
    unsafe {
        asm!(
            "hlt #0xf000",
            inout("x0") SYS_EXIT => _,
            in("x1") block.as_ptr(),
            options(nostack)
        )
    };
    // Only reached without semihosting.
    park();
}

/// Stops this core for good (IRQs masked).
pub fn park() -> ! {
    mask_irqs();
    loop {
        // SAFETY: WFE only waits; IRQs are masked, nothing else runs here.
        unsafe { asm!("wfe", options(nomem, nostack)) };
    }
}

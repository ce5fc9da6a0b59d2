//! `test=insntrace`: a known program traced instruction by instruction,
//! for the runner's oracle (`tests/runner/tests/insn_oracle.rs`), which
//! compares the decoded trace with QEMU's own log of what ran.
//!
//! The program (`insntrace_run`, assembly below) lies in its own section,
//! `.text.insntrace`, between the symbols `insntrace_start` and
//! `insntrace_end`, together with its own EL1 vector table (installed in
//! VBAR_EL1 while it runs) and its SVC and IRQ handlers, so one address
//! range covers every instruction it executes at EL1. It makes no MMIO
//! access and prints nothing. In order:
//!
//! 1. TRACE_ENABLE of this core (EL1, address filter = the program's range):
//!    the trace starts with the instruction after this HVC;
//! 2. a counted loop (SUBS/B.NE: taken 4 times, then not taken);
//! 3. BL to a leaf function and RET;
//! 4. BR through a table of two addresses, one per pass;
//! 5. CBZ, CBNZ, TBZ and TBNZ, each taken and not taken;
//! 6. SVC, taken by the program's own synchronous vector, which returns
//!    with ERET;
//! 7. HVC SMCCC_VERSION;
//! 8. IRQs unmasked and a loop that spins until the program's IRQ vector
//!    has taken the virtual timer's interrupt (acknowledge, timer off, end
//!    of interrupt, ERET back into the loop); the loop arms the timer
//!    (100 µs) on its third pass, so the interrupt comes in its middle
//!    however slowly the core runs;
//! 9. TRACE_DISABLE of this core: the last traced instruction is that HVC.
//!
//! The program returns what each step produced (call results, interrupt
//! counts, an accumulator every step adds to); the scenario checks them,
//! then reads the core's trace buffer (TRACE_READ) and prints it as
//! `tracedata: insn OFFSET HEX` lines (the `test=tracedata` format), with
//! `insntrace: program <start> <end> core <index> ...` first.
//!
//! `insntrace-core=N` runs the program on core N (default: the boot core),
//! started through its `smp` mailbox; the boot core then waits for it
//! (polling) and reads that core's buffer. The other secondaries take
//! virtual-timer interrupts meanwhile (the `timer` command of `smp`), so the
//! traced core runs while others do.

use core::arch::global_asm;

use guest_api::trace::{self as abi, CONFIG_ADDR_FILTER, CONFIG_EL1};

use crate::report::{fail, Msg, Report};
use crate::{arch, platform, smp, suite, timer, tracedata};

/// TRACE_ENABLE's config word: EL1, address range filter.
pub const CONFIG: u64 = CONFIG_EL1 | CONFIG_ADDR_FILTER;
/// Iterations of the counted loop.
const LOOP: u64 = 5;
/// What the accumulator holds at the end: the loop's LOOP, the leaf's +1,
/// the table's 0x10 + 0x20, 0x1000 if every CB*/TB* went its way, the SVC
/// handler's 0x100.
pub const EXPECTED_ACC: u64 = LOOP + 1 + 0x30 + 0x1000 + 0x100;
/// The pass of the waiting loop that arms the timer.
const ARM_PASS: u64 = 3;
/// When the timer fires after being armed (µs).
const TIMER_US: u64 = 100;
/// How long the program spins for the timer interrupt at most (ms).
const GIVE_UP_MS: u64 = 5000;
/// Timer interrupts each other core takes meanwhile.
const OTHER_TIMER_IRQS: u64 = 25;

/// The program's inputs and results (offsets fixed by the assembly).
#[repr(C)]
#[derive(Debug, Default)]
struct Params {
    /// 0: this core's MPIDR (TRACE_ENABLE/DISABLE target).
    mpidr: u64,
    /// 8: TRACE_ENABLE config word.
    config: u64,
    /// 16, 24: the filter [start, end).
    start: u64,
    end: u64,
    /// 32: timer delay (counter ticks).
    timer_ticks: u64,
    /// 40: how long to wait for the interrupt (counter ticks).
    give_up_ticks: u64,
    /// 48: TRACE_ENABLE's x0.
    enable: u64,
    /// 56: TRACE_DISABLE's x0.
    disable: u64,
    /// 64: SMCCC_VERSION's x0.
    smccc_version: u64,
    /// 72: timer interrupts the program's IRQ vector took.
    timer_irqs: u64,
    /// 80: passes of the waiting loop.
    wait_loops: u64,
    /// 88: other interrupts it took (acknowledged and ended).
    other_irqs: u64,
    /// 96: the accumulator.
    acc: u64,
}

// The assembly's offsets.
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(Params, start) == 16 && offset_of!(Params, timer_ticks) == 32);
    assert!(offset_of!(Params, enable) == 48 && offset_of!(Params, disable) == 56);
    assert!(offset_of!(Params, smccc_version) == 64 && offset_of!(Params, timer_irqs) == 72);
    assert!(offset_of!(Params, other_irqs) == 88 && offset_of!(Params, acc) == 96);
};

global_asm!(
    r#"
    .section .text.insntrace, "ax"
    .balign 2048
    .global insntrace_start
insntrace_start:
insntrace_vectors:
    // Current EL with SP_EL0: never used.
    .irp kind, 0, 1, 2, 3
    .balign 0x80
    mov     x0, #\kind
    b       insntrace_unexpected
    .endr

    // Current EL with SP_ELx, synchronous: the program's SVC.
    .balign 0x80
insntrace_sync:
    mrs     x16, esr_el1
    lsr     x16, x16, #26
    cmp     x16, #0x15
    b.ne    1f
    add     x24, x24, #0x100
    eret
1:  mov     x0, #4
    b       insntrace_unexpected

    // Current EL with SP_ELx, IRQ: the timer's (others are ended and counted).
    .balign 0x80
insntrace_irq:
    mrs     x16, icc_iar1_el1
    and     x17, x16, #0xffffff
    cmp     x17, #1020
    b.hs    2f
    cmp     x17, #{vtimer}
    b.ne    1f
    msr     cntv_ctl_el0, xzr
    isb
    add     x21, x21, #1
    msr     icc_eoir1_el1, x16
    eret
1:  add     x23, x23, #1
    msr     icc_eoir1_el1, x16
2:  eret

    // FIQ, SError, and everything from lower ELs: never expected.
    .irp kind, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    .balign 0x80
    mov     x0, #\kind
    b       insntrace_unexpected
    .endr

    .balign 0x80
insntrace_unexpected:
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    msr     vbar_el1, x20
    isb
    b       {fatal}

// void insntrace_run(Params *p): x19 = p, x20 = the guest's VBAR_EL1,
// x21 timer IRQs, x22 wait loops, x23 other IRQs, x24 accumulator.
    .global insntrace_run
    .type insntrace_run, %function
insntrace_run:
    stp     x29, x30, [sp, #-64]!
    mov     x29, sp
    stp     x19, x20, [sp, #16]
    stp     x21, x22, [sp, #32]
    stp     x23, x24, [sp, #48]
    mov     x19, x0
    mrs     x20, vbar_el1
    adr     x9, insntrace_vectors
    msr     vbar_el1, x9
    isb
    mov     x21, xzr
    mov     x22, xzr
    mov     x23, xzr
    mov     x24, xzr
    // 1. TRACE_ENABLE(mpidr, config, start, end).
    movz    x0, #({enable} & 0xffff)
    movk    x0, #(({enable} >> 16) & 0xffff), lsl #16
    ldp     x1, x2, [x19, #0]
    ldp     x3, x4, [x19, #16]
    .global insntrace_enable_hvc
insntrace_enable_hvc:
    hvc     #0
    .global insntrace_first
insntrace_first:
    str     x0, [x19, #48]
    // 2. A counted loop.
    mov     x9, #{loops}
insntrace_loop:
    add     x24, x24, #1
    subs    x9, x9, #1
    b.ne    insntrace_loop
    // 3. BL and RET.
    mov     x0, x24
    bl      insntrace_leaf
    mov     x24, x0
    // 3b. Exclusive sequences, which EL2 runs unstepped to a breakpoint at
    // their exit (a step would clear the monitor): an increment of a stack
    // word with its retry loop, then a compare-and-store whose compare
    // fails (the early exit).
    sub     sp, sp, #16
    str     xzr, [sp]
insntrace_excl:
    ldaxr   x13, [sp]
    add     x13, x13, #1
    stlxr   w14, x13, [sp]
    cbnz    w14, insntrace_excl
insntrace_cas:
    ldaxr   x13, [sp]
    cmp     x13, #5
    b.ne    1f
    stlxr   w14, xzr, [sp]
    cbnz    w14, insntrace_cas
1:  clrex
    add     sp, sp, #16
    // 4. BR through a table.
    adr     x10, insntrace_table
    mov     x11, #0
insntrace_dispatch:
    ldr     x12, [x10, x11, lsl #3]
    br      x12
insntrace_case0:
    add     x24, x24, #0x10
    b       insntrace_next
insntrace_case1:
    add     x24, x24, #0x20
insntrace_next:
    add     x11, x11, #1
    cmp     x11, #2
    b.lo    insntrace_dispatch
    // 5. CBZ/CBNZ/TBZ/TBNZ both ways; x24 = 0x36 = 0b110110 here.
    cbz     x24, insntrace_branches_done
    mov     x13, #0
    cbz     x13, 1f
    b       insntrace_branches_done
1:  tbz     x24, #0, 2f
    b       insntrace_branches_done
2:  tbz     x24, #1, insntrace_branches_done
    tbnz    x24, #2, 3f
    b       insntrace_branches_done
3:  cbnz    x13, insntrace_branches_done
    tbnz    x24, #3, insntrace_branches_done
    cbnz    x24, 4f
    b       insntrace_branches_done
4:  add     x24, x24, #0x1000
insntrace_branches_done:
    // 6. SVC to the program's own vector (+0x100, ERET).
    svc     #0x42
    // 7. HVC SMCCC_VERSION.
    movz    w0, #0x8000, lsl #16
    hvc     #0
    str     x0, [x19, #64]
    // 8. The timer's interrupt in the middle of a loop: armed on the
    // loop's third pass, however fast the loop runs.
    ldp     x9, x10, [x19, #32]
    mrs     x11, cntvct_el0
    add     x10, x11, x10
    mov     x12, #1
    msr     daifclr, #2
insntrace_wait:
    add     x22, x22, #1
    cmp     x22, #{arm_pass}
    b.ne    1f
    msr     cntv_tval_el0, x9
    msr     cntv_ctl_el0, x12
1:  mrs     x11, cntvct_el0
    cmp     x11, x10
    b.hs    insntrace_waited
    cbz     x21, insntrace_wait
insntrace_waited:
    msr     daifset, #2
    msr     cntv_ctl_el0, xzr
    // 9. TRACE_DISABLE(mpidr): the last traced instruction.
    movz    x0, #({disable} & 0xffff)
    movk    x0, #(({disable} >> 16) & 0xffff), lsl #16
    ldr     x1, [x19, #0]
    .global insntrace_disable_hvc
insntrace_disable_hvc:
    hvc     #0
    str     x0, [x19, #56]
    msr     vbar_el1, x20
    isb
    stp     x21, x22, [x19, #72]
    stp     x23, x24, [x19, #88]
    ldp     x19, x20, [sp, #16]
    ldp     x21, x22, [sp, #32]
    ldp     x23, x24, [sp, #48]
    ldp     x29, x30, [sp], #64
    ret
    .size insntrace_run, . - insntrace_run

    .type insntrace_leaf, %function
insntrace_leaf:
    add     x0, x0, #1
    ret
    .size insntrace_leaf, . - insntrace_leaf

    .balign 8
insntrace_table:
    .quad   insntrace_case0
    .quad   insntrace_case1
    .global insntrace_end
insntrace_end:
    .text
"#,
    vtimer = const timer::VTIMER_INTID,
    enable = const abi::TRACE_ENABLE,
    disable = const abi::TRACE_DISABLE,
    loops = const LOOP,
    arm_pass = const ARM_PASS,
    fatal = sym insntrace_fatal,
);

extern "C" {
    fn insntrace_run(p: *mut Params);
    static insntrace_start: u8;
    static insntrace_end: u8;
    static insntrace_enable_hvc: u8;
    static insntrace_first: u8;
    static insntrace_disable_hvc: u8;
}

/// An exception the program's vectors did not expect: reported, and the
/// run ends with status 3 (the guest's vectors are back in place).
extern "C" fn insntrace_fatal(kind: u64, esr: u64, elr: u64) -> ! {
    println!(
        "guest: FAIL insntrace: unexpected exception at vector {kind}: ESR_EL1={esr:#x} ELR_EL1={elr:#x}"
    );
    arch::exit(crate::status::EXCEPTION);
}

/// The program's address range `[start, end)`.
pub fn range() -> (u64, u64) {
    (
        &raw const insntrace_start as u64,
        &raw const insntrace_end as u64,
    )
}

/// Runs the scenario on `core` (default: this, the boot core); the exit
/// status.
pub fn run(core: Option<usize>) -> u64 {
    let mut report = Report::new();
    report.check("cpu-on", suite::cpu_on());
    report.check("insntrace", insntrace(core));
    report.finish()
}

fn insntrace(core: Option<usize>) -> Result<(), Msg> {
    let plat = platform::get();
    let me = arch::core_index();
    let core = core.unwrap_or(me);
    if core >= plat.ncpus || (core != me && !smp::online(core)) {
        fail!("insntrace-core={core}: no such core online");
    }
    let mpidr = plat.mpidr[core];
    let (start, end) = range();
    println!(
        "insntrace: program {start:#x} {end:#x} core {core} mpidr {mpidr:#x} enable-hvc {:#x} first {:#x} disable-hvc {:#x} config {CONFIG:#x}",
        &raw const insntrace_enable_hvc as u64,
        &raw const insntrace_first as u64,
        &raw const insntrace_disable_hvc as u64,
    );
    // The other secondaries take timer interrupts meanwhile; the boot core,
    // if it is not the traced one, polls for the traced core's result.
    let mut others = [None; arch::MAX_CPUS];
    for i in smp::online_secondaries().filter(|&i| i != core) {
        others[i] = Some(smp::post(i, smp::Cmd::Timer, OTHER_TIMER_IRQS));
    }
    let traced = if core == me {
        run_program()
    } else {
        let seq = smp::post(core, smp::Cmd::InsnTrace, 0);
        match smp::wait_done(core, seq, 120_000) {
            Some(true) => Ok(()),
            Some(false) => Err(crate::report::msg(format_args!(
                "core {core}: the program's checks failed (its line above)"
            ))),
            None => Err(crate::report::msg(format_args!(
                "core {core}: program {}",
                smp::progress(core, seq)
            ))),
        }
    };
    for (i, seq) in others.iter().enumerate() {
        if let Some(seq) = *seq {
            match smp::wait_done(i, seq, 60_000) {
                Some(true) => {}
                Some(false) => fail!("core {i} failed its timer interrupts"),
                None => fail!("core {i}: timer command {}", smp::progress(i, seq)),
            }
        }
    }
    traced?;
    tracedata::capture("insn", mpidr)
}

/// Runs the program on this core and checks what it returned.
pub fn run_program() -> Result<(), Msg> {
    let mpidr = platform::get().mpidr[arch::core_index()];
    let (start, end) = range();
    let mut p = Params {
        mpidr,
        config: CONFIG,
        start,
        end,
        timer_ticks: timer::freq() / 1_000_000 * TIMER_US,
        give_up_ticks: timer::ms_to_ticks(GIVE_UP_MS),
        ..Params::default()
    };
    arch::mask_irqs();
    // SAFETY: the program follows the AAPCS64 (it saves and restores the
    // callee-saved registers it uses; its HVCs clobber only x0..x17, which
    // are caller-saved); it reads and writes only `p` and its own stack
    // frame; it replaces VBAR_EL1 with its own vector table while it runs
    // and puts the guest's back before returning (or before reporting an
    // unexpected exception); it unmasks IRQs only around its timer loop and
    // returns with them masked, and turns the virtual timer off.
    unsafe { insntrace_run(&mut p) };
    arch::unmask_irqs();
    println!(
        "insntrace: ran enable={} disable={} smccc-version={:#x} timer-irqs={} wait-loops={} other-irqs={} acc={:#x}",
        p.enable as i64, p.disable as i64, p.smccc_version, p.timer_irqs, p.wait_loops, p.other_irqs, p.acc
    );
    if p.enable != 0 {
        fail!("TRACE_ENABLE: {}", p.enable as i64);
    }
    if p.disable != 0 {
        fail!("TRACE_DISABLE: {}", p.disable as i64);
    }
    if p.smccc_version >> 31 != 0 {
        fail!("SMCCC_VERSION: {:#x}", p.smccc_version);
    }
    if p.timer_irqs != 1 {
        fail!("{} timer interrupts in the program, want 1", p.timer_irqs);
    }
    if p.wait_loops < ARM_PASS {
        fail!(
            "the waiting loop ended after {} pass(es), before arming the timer on pass {ARM_PASS}",
            p.wait_loops
        );
    }
    if p.acc != EXPECTED_ACC {
        fail!("accumulator {:#x}, want {EXPECTED_ACC:#x}", p.acc);
    }
    Ok(())
}

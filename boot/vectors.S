/*
 * EL2 exception vectors.
 *
 * From the guest (lower EL, AArch64): the guest's x0..x30, ELR_EL2 and
 * SPSR_EL2 are saved as a GuestRegs frame (el2/src/regs.rs) on this core's
 * stack, Rust handles the exception with a &mut to the frame, and the frame
 * is restored and returned to. EL2 runs with every interrupt masked, so a
 * frame is never interrupted.
 *
 * From EL2 itself: only a hypervisor fault can land here. It is reported
 * and the core stops.
 */
.equ FRAME_SIZE, (34 * 8)

.macro save_guest
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #(0 * 8)]
    stp     x2, x3, [sp, #(2 * 8)]
    stp     x4, x5, [sp, #(4 * 8)]
    stp     x6, x7, [sp, #(6 * 8)]
    stp     x8, x9, [sp, #(8 * 8)]
    stp     x10, x11, [sp, #(10 * 8)]
    stp     x12, x13, [sp, #(12 * 8)]
    stp     x14, x15, [sp, #(14 * 8)]
    stp     x16, x17, [sp, #(16 * 8)]
    stp     x18, x19, [sp, #(18 * 8)]
    stp     x20, x21, [sp, #(20 * 8)]
    stp     x22, x23, [sp, #(22 * 8)]
    stp     x24, x25, [sp, #(24 * 8)]
    stp     x26, x27, [sp, #(26 * 8)]
    stp     x28, x29, [sp, #(28 * 8)]
    mrs     x1, elr_el2
    mrs     x2, spsr_el2
    stp     x30, x1, [sp, #(30 * 8)]
    str     x2, [sp, #(32 * 8)]
    mov     x0, sp
.endm

.macro restore_guest
    ldr     x2, [sp, #(32 * 8)]
    ldp     x30, x1, [sp, #(30 * 8)]
    msr     elr_el2, x1
    msr     spsr_el2, x2
    ldp     x28, x29, [sp, #(28 * 8)]
    ldp     x26, x27, [sp, #(26 * 8)]
    ldp     x24, x25, [sp, #(24 * 8)]
    ldp     x22, x23, [sp, #(22 * 8)]
    ldp     x20, x21, [sp, #(20 * 8)]
    ldp     x18, x19, [sp, #(18 * 8)]
    ldp     x16, x17, [sp, #(16 * 8)]
    ldp     x14, x15, [sp, #(14 * 8)]
    ldp     x12, x13, [sp, #(12 * 8)]
    ldp     x10, x11, [sp, #(10 * 8)]
    ldp     x8, x9, [sp, #(8 * 8)]
    ldp     x6, x7, [sp, #(6 * 8)]
    ldp     x4, x5, [sp, #(4 * 8)]
    ldp     x2, x3, [sp, #(2 * 8)]
    ldp     x0, x1, [sp, #(0 * 8)]
    add     sp, sp, #FRAME_SIZE
.endm

.macro guest_vector idx, handler
/* .org cannot move backwards: an entry that outgrew its 0x80 bytes fails to assemble. */
.org el2_vectors + \idx * 0x80
    /* A vector entry holds 32 instructions: save here, restore out of line. */
    save_guest
    bl      \handler
    b       guest_exit
.endm

.macro el2_fault_vector kind
.org el2_vectors + \kind * 0x80
    mov     x0, #\kind
    mrs     x1, esr_el2
    mrs     x2, elr_el2
    mrs     x3, far_el2
    b       el2_fault
.endm

.section .text.vectors, "ax"
guest_exit:
    restore_guest
    eret

.balign 0x800
.global el2_vectors
el2_vectors:
    /* Current EL with SP_EL0: never used by the hypervisor. */
    el2_fault_vector 0
    el2_fault_vector 1
    el2_fault_vector 2
    el2_fault_vector 3
    /*
     * Current EL with SP_EL2, synchronous: a hypervisor fault, except an
     * UNDEFINED trace-register read by the boot probe
     * (el2/src/arch/trace_regs.rs, between el2_trace_probe_start and
     * el2_trace_probe_end; EC 0x00, or 0x18 for a trapped access), which
     * resumes at the next instruction with x1 = 1: firmware that traps
     * trace to EL3 and answers with an UNDEF means "no usable trace", not
     * a dead hypervisor. x16/x17 are saved around the check.
     */
.org el2_vectors + 4 * 0x80
    stp     x16, x17, [sp, #-16]!
    mrs     x16, elr_el2
    adrp    x17, el2_trace_probe_start
    add     x17, x17, :lo12:el2_trace_probe_start
    cmp     x16, x17
    b.lo    1f
    adrp    x17, el2_trace_probe_end
    add     x17, x17, :lo12:el2_trace_probe_end
    cmp     x16, x17
    b.hs    1f
    mrs     x17, esr_el2
    ubfx    x17, x17, #26, #6
    cbz     x17, 2f
    cmp     x17, #0x18
    b.ne    1f
2:  add     x16, x16, #4
    msr     elr_el2, x16
    mov     x1, #1
    ldp     x16, x17, [sp], #16
    eret
1:  ldp     x16, x17, [sp], #16
    mov     x0, #4
    mrs     x1, esr_el2
    mrs     x2, elr_el2
    mrs     x3, far_el2
    b       el2_fault
    /* An interrupt that EL2's masking should have stopped. */
    el2_fault_vector 5
    el2_fault_vector 6
    el2_fault_vector 7
    /* Lower EL, AArch64: the guest. */
    guest_vector 8, handle_guest_sync
    guest_vector 9, handle_guest_irq
    guest_vector 10, handle_guest_irq
    guest_vector 11, handle_guest_serror
    /* Lower EL, AArch32: only the guest's EL0 can be AArch32 (HCR_EL2.RW = 1); same handlers. */
    guest_vector 12, handle_guest_sync
    guest_vector 13, handle_guest_irq
    guest_vector 14, handle_guest_irq
    guest_vector 15, handle_guest_serror
.org el2_vectors + 0x800

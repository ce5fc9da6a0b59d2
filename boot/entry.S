/*
 * Entry points of the hypervisor, in the order the architecture needs them:
 * vectors first, then the load address, then .bss, the stack and the EL2
 * MMU, and only then Rust. Every entry arrives here at EL2 with the MMU off.
 *
 *   _start            cold boot of the first core: x0 = DTB address
 *   secondary_entry   PSCI CPU_ON and warm boot (a CPU_SUSPEND that really
 *                     powered down): x0 = context, whose low byte is the
 *                     core's index and bit 8 marks a warm boot
 */
/*
 * The CPU count and the per-core stack size come from Rust (el2/src/arch/mod.rs
 * passes platform::MAX_CPUS and layout::STACK_SIZE as operands of global_asm!);
 * the total is exported for linker/el2.ld, which reserves the stacks.
 */
.equ STACK_SIZE, {stack_size}
.equ MAX_CPUS, {max_cpus}
.global __el2_stacks_size
.set __el2_stacks_size, {stacks_size}

.macro current_el_is_2 fail
    mrs     x9, CurrentEL
    cmp     x9, #(2 << 2)
    b.ne    \fail
.endm

/* Set this core's stack pointer from its index in x19. */
.macro core_stack
    adrp    x9, __stacks_start
    add     x9, x9, :lo12:__stacks_start
    add     x10, x19, #1
    mov     x11, #STACK_SIZE
    madd    x9, x10, x11, x9
    mov     sp, x9
.endm

/*
 * Turn on the EL2 stage-1 MMU with the static identity map (el2/src/mmu.rs).
 * Rust code may use unaligned accesses and atomics, which need Normal memory.
 */
.macro enable_el2_mmu
    adrp    x9, EL2_IDMAP
    add     x9, x9, :lo12:EL2_IDMAP
    msr     ttbr0_el2, x9
    adrp    x9, EL2_MAIR
    ldr     x9, [x9, :lo12:EL2_MAIR]
    msr     mair_el2, x9
    adrp    x9, EL2_TCR
    ldr     x9, [x9, :lo12:EL2_TCR]
    msr     tcr_el2, x9
    isb
    tlbi    alle2
    dsb     nsh
    isb
    adrp    x9, EL2_SCTLR
    ldr     x9, [x9, :lo12:EL2_SCTLR]
    msr     sctlr_el2, x9
    isb
.endm

.section .text.head, "ax"
.global _start
_start:
    /* Vectors before anything can fault. */
    adrp    x9, el2_vectors
    add     x9, x9, :lo12:el2_vectors
    msr     vbar_el2, x9
    isb
    current_el_is_2 halt
    /* The image is linked, not relocatable: refuse to run anywhere else. */
    adr     x9, _start
    ldr     x10, =_start
    cmp     x9, x10
    b.ne    halt
    mov     x20, x0
    /* Zero .bss (16-byte aligned by the linker script). */
    adrp    x9, __bss_start
    add     x9, x9, :lo12:__bss_start
    adrp    x10, __bss_end
    add     x10, x10, :lo12:__bss_end
1:  cmp     x9, x10
    b.hs    2f
    stp     xzr, xzr, [x9], #16
    b       1b
2:  mov     x19, #0
    msr     tpidr_el2, x19
    core_stack
    enable_el2_mmu
    mov     x0, x20
    bl      primary_main
    b       halt

.global secondary_entry
secondary_entry:
    adrp    x9, el2_vectors
    add     x9, x9, :lo12:el2_vectors
    msr     vbar_el2, x9
    isb
    current_el_is_2 halt
    and     x19, x0, #0xff
    cmp     x19, #MAX_CPUS
    b.hs    halt
    mov     x20, x0
    msr     tpidr_el2, x19
    core_stack
    enable_el2_mmu
    mov     x0, x20
    bl      secondary_main
    b       halt

.global halt
halt:
    msr     daifset, #0xf
1:  wfe
    b       1b

.text
/*
 * __guest_enter(regs: *const GuestRegs) -> !
 * Loads the guest's registers and returns to it. The EL2 stack is reset to
 * this core's top first: nothing on it outlives the return to the guest.
 */
.global __guest_enter
__guest_enter:
    mrs     x19, tpidr_el2
    core_stack
    ldp     x1, x2, [x0, #(31 * 8)]
    msr     elr_el2, x1
    msr     spsr_el2, x2
    ldp     x2, x3, [x0, #(2 * 8)]
    ldp     x4, x5, [x0, #(4 * 8)]
    ldp     x6, x7, [x0, #(6 * 8)]
    ldp     x8, x9, [x0, #(8 * 8)]
    ldp     x10, x11, [x0, #(10 * 8)]
    ldp     x12, x13, [x0, #(12 * 8)]
    ldp     x14, x15, [x0, #(14 * 8)]
    ldp     x16, x17, [x0, #(16 * 8)]
    ldp     x18, x19, [x0, #(18 * 8)]
    ldp     x20, x21, [x0, #(20 * 8)]
    ldp     x22, x23, [x0, #(22 * 8)]
    ldp     x24, x25, [x0, #(24 * 8)]
    ldp     x26, x27, [x0, #(26 * 8)]
    ldp     x28, x29, [x0, #(28 * 8)]
    ldr     x30, [x0, #(30 * 8)]
    ldp     x0, x1, [x0]
    eret

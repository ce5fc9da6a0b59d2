//! The only place with assembly: system registers, barriers, semihosting
//! (the SMC conduit to firmware is the smccc crate's). Each register is one named function.
//! This module exists only for the real target.

use core::arch::{asm, global_asm};

pub mod trace_regs;

// The CPU count and the stack size are defined once, in Rust (`MAX_CPUS`
// with the platform types, `layout::STACK_SIZE` below): entry.S gets them as
// operands, and defines `__el2_stacks_size` from them for linker/el2.ld,
// which reserves the stacks. Nothing else repeats the numbers.
global_asm!(
    include_str!("../../../boot/entry.S"),
    max_cpus = const crate::platform::MAX_CPUS,
    stack_size = const layout::STACK_SIZE,
    stacks_size = const layout::STACKS_SIZE,
);
global_asm!(include_str!("../../../boot/vectors.S"));

/// The system registers aarch64-cpu defines whose writes cannot break EL2's
/// memory safety, with their field definitions and the traits that read and
/// write them (`REG.get()`, `REG.set(v)`, `REG.read(REG::FIELD)`,
/// `REG.write(REG::FIELD::Value + ...)`). The registers that can (HCR_EL2,
/// VTCR_EL2, VTTBR_EL2, TPIDR_EL2, VBAR_EL2) are not in this list: they
/// have `unsafe` writers below ([`hcr_el2`], ...), and outside this module
/// their aarch64-cpu objects are never used as registers, only for their
/// fields ([`fields`]; el2/tests/register_access.rs checks it).
pub use aarch64_cpu::registers::{
    ReadWriteable, Readable, Writeable, CNTFRQ_EL0, CNTHCTL_EL2, CNTPCT_EL0, CNTVCT_EL0,
    CNTVOFF_EL2, CONTEXTIDR_EL1, CPTR_EL2, ELR_EL1, ESR_EL1, ESR_EL2, FAR_EL1, FAR_EL2, HPFAR_EL2,
    ICH_AP0R0_EL2, ICH_AP1R0_EL2, ICH_HCR_EL2, ICH_MISR_EL2, ICH_VMCR_EL2, ICH_VTR_EL2,
    ID_AA64DFR0_EL1, ID_AA64PFR0_EL1, MDCR_EL2, MDSCR_EL1, MIDR_EL1, MPIDR_EL1, PAR_EL1, SCTLR_EL1,
    SPSR_EL1, VBAR_EL1, VMPIDR_EL2,
};

/// Field definitions of the registers with `unsafe` writers, for building
/// their values (`fields::HCR_EL2::VM::Enable.value`). Their register
/// objects are for this module only.
pub mod fields {
    pub use aarch64_cpu::registers::HCR_EL2;
}

/// A register aarch64-cpu lacks (no definition there), by name or encoding.
macro_rules! sysreg {
    ($(#[$doc:meta])* $name:ident, $reg:literal) => {
        $(#[$doc])*
        pub mod $name {
            /// Reads the register.
            #[inline(always)]
            pub fn read() -> u64 {
                let v: u64;
                // SAFETY: reading this system register at EL2 has no side effect
                // on memory and is permitted at EL2.
                unsafe { core::arch::asm!(concat!("mrs {}, ", $reg), out(reg) v, options(nomem, nostack, preserves_flags)) };
                v
            }
            /// Writes the register. Callers own the meaning of the value;
            /// none of the registers with a safe writer can break EL2's
            /// memory safety: translation, vector and per-core-identity
            /// registers have an `unsafe` writer instead (`guarded!`).
            #[inline(always)]
            pub fn write(v: u64) {
                // SAFETY: see above; writes happen at EL2, where access is permitted.
                unsafe { core::arch::asm!(concat!("msr ", $reg, ", {}"), in(reg) v, options(nostack, preserves_flags)) };
            }
        }
    };
}

/// A register whose write can break EL2's memory safety: aarch64-cpu's
/// definition behind a safe reader and an `unsafe` writer with the contract.
macro_rules! guarded {
    ($(#[$doc:meta])* $name:ident, $reg:ident, $contract:literal) => {
        $(#[$doc])*
        pub mod $name {
            use aarch64_cpu::registers::{Readable, Writeable, $reg};
            /// Reads the register.
            #[inline(always)]
            pub fn read() -> u64 {
                $reg.get()
            }
            /// Writes the register.
            ///
            /// # Safety
            #[doc = $contract]
            #[inline(always)]
            pub unsafe fn write(v: u64) {
                $reg.set(v)
            }
        }
    };
}

guarded!(/// Hypervisor Configuration Register.
    hcr_el2, HCR_EL2,
    "The value must keep EL2's own translation regime as it is (E2H = 0, \
     TGE = 0: EL2 runs on its own identity map) and may set VM only while \
     VTTBR_EL2/VTCR_EL2 describe a stage 2 that maps no hypervisor memory. \
     On the core it runs on, with interrupts masked.");
guarded!(/// Virtualization Translation Control Register.
    vtcr_el2, VTCR_EL2,
    "The value must describe the layout of the tables VTTBR_EL2 points at \
     (or will, before the guest runs): the wrong size or levels make the \
     walk reach memory the tables do not own, the hypervisor's included.");
guarded!(/// Virtualization Translation Table Base Register.
    vttbr_el2, VTTBR_EL2,
    "The value's base must be the root of a stage-2 table that lives as long \
     as any guest runs on this core and maps no hypervisor memory; a TLB \
     invalidation must follow before the guest runs.");
guarded!(/// Per-core software thread ID: holds the core's index.
    tpidr_el2, TPIDR_EL2,
    "`core_index()` and `hv::state::ThisCore` trust this register to \
     hold this core's own index, unique among running cores: write only \
     that, or a value no Rust code reads before entry.S writes it again.");
guarded!(/// Vector base (EL2): clobbered by a simulated power loss.
    vbar_el2, VBAR_EL2,
    "Every exception taken at EL2 runs from this address: write only the \
     address of `el2_vectors`, or a value no exception can meet before \
     entry.S writes it again.");
sysreg!(/// Hypervisor System Trap Register.
    hstr_el2, "hstr_el2");
sysreg!(/// Virtualization Processor ID.
    vpidr_el2, "vpidr_el2");
sysreg!(/// Performance Monitors Control Register (read for PMCR.N).
    pmcr_el0, "pmcr_el0");
sysreg!(/// Performance Monitors Count Enable Set (the `bench` split).
    pmcntenset_el0, "pmcntenset_el0");
sysreg!(/// Performance Monitors Count Enable Clear (the `bench` split).
    pmcntenclr_el0, "pmcntenclr_el0");
sysreg!(/// SVE Control Register (EL2), written as S3_4_C1_C2_0.
    zcr_el2, "S3_4_C1_C2_0");
sysreg!(/// Cache Type Register (DminLine).
    ctr_el0, "ctr_el0");

// The GIC's ICC registers: arm-gic and arm-sysregs (hv/gic.rs).

sysreg!(/// GIC virtualization: empty list register status.
    ich_elrsr_el2, "S3_4_C12_C11_5");

/// Runs `$body` with `$lr` bound to aarch64-cpu's list register `$n`
/// (0..16); `$other` for any other index.
macro_rules! with_list_register {
    ($n:expr, $lr:ident => $body:expr, _ => $other:expr) => {{
        use aarch64_cpu::registers::*;
        match $n {
            0 => {
                let $lr = ICH_LR0_EL2;
                $body
            }
            1 => {
                let $lr = ICH_LR1_EL2;
                $body
            }
            2 => {
                let $lr = ICH_LR2_EL2;
                $body
            }
            3 => {
                let $lr = ICH_LR3_EL2;
                $body
            }
            4 => {
                let $lr = ICH_LR4_EL2;
                $body
            }
            5 => {
                let $lr = ICH_LR5_EL2;
                $body
            }
            6 => {
                let $lr = ICH_LR6_EL2;
                $body
            }
            7 => {
                let $lr = ICH_LR7_EL2;
                $body
            }
            8 => {
                let $lr = ICH_LR8_EL2;
                $body
            }
            9 => {
                let $lr = ICH_LR9_EL2;
                $body
            }
            10 => {
                let $lr = ICH_LR10_EL2;
                $body
            }
            11 => {
                let $lr = ICH_LR11_EL2;
                $body
            }
            12 => {
                let $lr = ICH_LR12_EL2;
                $body
            }
            13 => {
                let $lr = ICH_LR13_EL2;
                $body
            }
            14 => {
                let $lr = ICH_LR14_EL2;
                $body
            }
            15 => {
                let $lr = ICH_LR15_EL2;
                $body
            }
            _ => $other,
        }
    }};
}

/// Reads list register `n` (0..16); other indices read as 0.
pub fn ich_lr_read(n: usize) -> u64 {
    with_list_register!(n, lr => lr.get(), _ => 0)
}

/// Writes list register `n` (0..16); other indices are ignored.
pub fn ich_lr_write(n: usize, v: u64) {
    with_list_register!(n, lr => lr.set(v), _ => ())
}

/// Instruction synchronization barrier.
#[inline(always)]
pub fn isb() {
    // SAFETY: a barrier has no memory-safety preconditions.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };
}

/// Cleans and invalidates the data cache lines of `[addr, addr + len)` to
/// the point of coherency, then waits: data EL2 wrote into guest memory is
/// visible to a guest running with its caches off, and no stale line of
/// EL2's is left to shadow what that guest writes there later.
pub fn clean_dcache_to_poc(addr: u64, len: u64) {
    let line = 4u64 << ((ctr_el0::read() >> 16) & 0xf); // CTR_EL0.DminLine
    let mut a = addr & !(line - 1);
    let end = addr.saturating_add(len);
    while a < end {
        // SAFETY: a cache clean by VA changes no memory contents; `a` is an
        // address the caller just wrote through EL2's identity map.
        unsafe { asm!("dc civac, {0}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    dsb_sy();
}

/// Full-system data synchronization barrier.
#[inline(always)]
/// Translates the guest virtual address `va` as an EL1 read in the guest's
/// current stage-1 regime (`AT S1E1R`, which PAN does not affect, so EL0
/// pages translate too): the intermediate physical address, or `None` if
/// the walk faults. PAR_EL1 is the guest's register: it is put back.
pub fn guest_va_to_ipa(va: u64) -> Option<u64> {
    let saved = PAR_EL1.get();
    // SAFETY: an address translation instruction only writes PAR_EL1 (put
    // back below); it reads translation tables the guest owns, with the
    // guest's permissions, and cannot fault at EL2.
    unsafe { asm!("at s1e1r, {}", "isb", in(reg) va, options(nostack, preserves_flags)) };
    let par = PAR_EL1.get();
    PAR_EL1.set(saved);
    if par & 1 != 0 {
        return None;
    }
    Some((par & 0x000f_ffff_ffff_f000) | (va & 0xfff))
}

pub fn dsb_sy() {
    // SAFETY: a barrier has no memory-safety preconditions.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Invalidates all stage-1 and stage-2 EL1&0 TLB entries of the current
/// VMID, inner shareable, and waits for completion.
pub fn tlbi_vmalls12e1is() {
    // SAFETY: TLB maintenance only drops cached translations.
    unsafe {
        asm!(
            "dsb ishst",
            "tlbi vmalls12e1is",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}

/// Waits for an event (another core's SEV, or an interrupt becoming pending).
#[inline(always)]
pub fn wfe() {
    // SAFETY: waiting has no memory-safety preconditions.
    unsafe { asm!("wfe", options(nomem, nostack, preserves_flags)) };
}

/// Wakes every core waiting in WFE.
#[inline(always)]
pub fn sev() {
    // SAFETY: signalling an event has no memory-safety preconditions.
    unsafe { asm!("sev", options(nomem, nostack, preserves_flags)) };
}

/// This core's index in the platform's CPU list, set by boot/entry.S.
#[inline(always)]
pub fn core_index() -> usize {
    tpidr_el2::read() as usize
}

/// Set while this core tries to exit through semihosting: an UNDEFINED
/// exception at EL2 then means "no semihosting here", not a bug
/// ([`semihosting_unavailable`]).
static TRYING_SEMIHOSTING: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// Whether an EL2 exception with syndrome `esr` is the semihosting HLT of
/// [`semihosting_exit`] refused: HLT is UNDEFINED (EC 0) when no debugger
/// or emulator serves semihosting, as on QEMU without `-semihosting` and
/// on silicon.
pub fn semihosting_unavailable(esr: u64) -> bool {
    (esr >> 26) & 0x3f == 0 && TRYING_SEMIHOSTING.load(core::sync::atomic::Ordering::Relaxed)
}

/// Ends the machine after a failure: through semihosting with `status`
/// where it is served (the bundled test guests' runs), otherwise, when the
/// HLT comes back as UNDEFINED (see `el2_fault`), through PSCI
/// SYSTEM_RESET, which QEMU with `-no-reboot` turns into an exit; the
/// console says why.
pub fn exit_failure(status: u32) -> ! {
    semihosting_exit(status)
}

/// Resets the machine through firmware (PSCI SYSTEM_RESET); halts if
/// firmware returns.
pub fn system_reset() -> ! {
    // Nothing to do with an error: the caller is already failing.
    let _ = smccc::psci::system_reset::<smccc::Smc>();
    halt()
}

/// Exits QEMU through Arm semihosting (SYS_EXIT, ADP_Stopped_ApplicationExit)
/// with `status`. Only does something under `-semihosting`; without it the
/// HLT is UNDEFINED and `el2_fault` resets the machine instead.
pub fn semihosting_exit(status: u32) -> ! {
    TRYING_SEMIHOSTING.store(true, core::sync::atomic::Ordering::Relaxed);
    let block = [0x20026u64, status as u64];
    // SAFETY: the semihosting call reads the two-word block, which lives on
    // this stack frame for the duration of the call.
    unsafe { asm!("hlt #0xf000", in("x0") 0x18u64, in("x1") block.as_ptr(), options(nostack)) };
    halt()
}

/// Stops this core for good.
pub fn halt() -> ! {
    loop {
        // SAFETY: masking interrupts and waiting have no memory effects.
        unsafe { asm!("msr daifset, #0xf", "wfe", options(nomem, nostack)) };
    }
}

/// The physical address of a boot/entry.S symbol used as a PSCI entry point.
pub fn secondary_entry_address() -> u64 {
    extern "C" {
        fn secondary_entry();
    }
    secondary_entry as *const () as u64
}

/// Enters the guest with `regs` loaded. Never returns: the next time this
/// core runs hypervisor code is through the vectors.
pub fn enter_guest(regs: &crate::regs::GuestRegs) -> ! {
    extern "C" {
        fn __guest_enter(regs: *const crate::regs::GuestRegs) -> !;
    }
    // SAFETY: __guest_enter reads the frame before resetting the stack it may
    // live on, and only returns to the guest.
    unsafe { __guest_enter(regs) }
}

/// The stacks' sizes, and linker-script symbols turned into addresses once
/// here.
pub mod layout {
    /// Bytes of each core's EL2 stack.
    pub const STACK_SIZE: usize = 32 * 1024;
    /// Bytes of all per-core stacks: linker/el2.ld reserves this much
    /// (`__el2_stacks_size`, set by boot/entry.S).
    pub const STACKS_SIZE: usize = crate::platform::MAX_CPUS * STACK_SIZE;
    // boot/entry.S takes a core's index from the low byte of its CPU_ON
    // context (bit 8 marks a warm boot), so no more than 256 cores; each
    // stack top must keep SP 16-byte aligned (SCTLR_EL2.SA).
    const _: () = assert!(crate::platform::MAX_CPUS >= 1 && crate::platform::MAX_CPUS <= 256);
    const _: () = assert!(STACK_SIZE.is_multiple_of(16));

    extern "C" {
        static __hyp_start: u8;
        static __hyp_end: u8;
        static __image_end: u8;
        static __stacks_start: u8;
        static __stacks_end: u8;
        static __bss_start: u8;
        static __bss_end: u8;
    }

    fn addr(sym: *const u8) -> u64 {
        sym as u64
    }

    /// First byte of the hypervisor image.
    pub fn hyp_start() -> u64 {
        // The address of a linker symbol, never a reference to it (the
        // symbols mark places, not `u8`s that exist).
        addr(&raw const __hyp_start)
    }
    /// End of everything the hypervisor owns (2 MiB aligned).
    pub fn hyp_end() -> u64 {
        // The address of a linker symbol, never a reference to it (the
        // symbols mark places, not `u8`s that exist).
        addr(&raw const __hyp_end)
    }
    /// End of the loaded image (code and data).
    pub fn image_end() -> u64 {
        // The address of a linker symbol, never a reference to it (the
        // symbols mark places, not `u8`s that exist).
        addr(&raw const __image_end)
    }
    /// Size of .bss.
    pub fn bss_size() -> u64 {
        // Addresses of linker symbols, never references (see above).
        addr(&raw const __bss_end) - addr(&raw const __bss_start)
    }
    /// Size of all per-core stacks.
    pub fn stacks_size() -> u64 {
        // Addresses of linker symbols, never references (see above).
        addr(&raw const __stacks_end) - addr(&raw const __stacks_start)
    }
}

/// Reads the ID register S3_0_C0_C<crm>_<op2> (CRm 1..7), for the guest's
/// trapped reads. Encodings outside this list read as zero without touching
/// the hardware: reserved ID space is RAZ, and a feature register this
/// hypervisor does not know is better hidden than passed on.
pub fn read_id_register(crm: u8, op2: u8) -> u64 {
    macro_rules! id {
        ($($c:literal, $o:literal);* $(;)?) => {
            match (crm, op2) {
                $(($c, $o) => {
                    let v: u64;
                    // SAFETY: reading an ID register has no side effects.
                    unsafe { asm!(concat!("mrs {}, S3_0_C0_C", $c, "_", $o), out(reg) v, options(nomem, nostack, preserves_flags)) };
                    v
                })*
                _ => 0,
            }
        };
    }
    id!(
        // AArch32 ID registers: ID_PFR0/1, ID_DFR0, ID_AFR0, ID_MMFR0..3,
        // ID_ISAR0..5, ID_MMFR4, ID_ISAR6, MVFR0..2.
        1, 0; 1, 1; 1, 2; 1, 3; 1, 4; 1, 5; 1, 6; 1, 7;
        2, 0; 2, 1; 2, 2; 2, 3; 2, 4; 2, 5; 2, 6; 2, 7;
        3, 0; 3, 1; 3, 2;
        // ID_AA64PFR0/1, ZFR0, SMFR0; DFR0/1, AFR0/1; ISAR0..2; MMFR0..2.
        4, 0; 4, 1; 4, 4; 4, 5;
        5, 0; 5, 1; 5, 4; 5, 5;
        6, 0; 6, 1; 6, 2;
        7, 0; 7, 1; 7, 2;
    )
}

/// Simulates what a real core power-down does to EL2 and then takes the
/// warm-boot entry, as firmware would after waking the core: the MMU and
/// caches go off, the EL2 configuration, the GIC CPU interface and the FP/SIMD
/// registers lose their values, and execution restarts at `secondary_entry` with `context` in x0.
/// Only the test switch `test.powerdown` uses it, on QEMU, whose PSCI never
/// powers a core down.
pub fn simulate_power_loss(context: u64) -> ! {
    const JUNK: u64 = 0x5a5a_5a5a_5a5a_5a5a;
    // SAFETY: interrupts are masked and this core is about to restart at
    // the warm entry, which sets VBAR, TPIDR and the MMU again before any
    // Rust runs (entry.S) and HCR, VTCR, VTTBR in `init_el2` before the
    // guest does; nothing between here and the jump reads TPIDR_EL2 or
    // runs the guest. HCR = 0 leaves VM clear, so stage 2 is off.
    unsafe {
        hcr_el2::write(0);
        vttbr_el2::write(0);
        vtcr_el2::write(0);
        tpidr_el2::write(JUNK);
    }
    MDCR_EL2.set(0);
    CNTHCTL_EL2.set(0);
    ICH_VMCR_EL2.set(0);
    ICH_AP0R0_EL2.set(0);
    ICH_AP1R0_EL2.set(0);
    for n in 0..=ICH_VTR_EL2.read(ICH_VTR_EL2::ListRegs) as usize {
        ich_lr_write(n, 0);
    }
    ICH_HCR_EL2.set(0);
    arm_gic::gicv3::GicCpuInterface::enable_group1(false);
    isb();
    let entry = secondary_entry_address();
    // SAFETY: this abandons the current stack and every Rust frame on it,
    // as a power loss would: nothing is returned to. The MMU goes off with
    // the identity map still describing every address used next, so the
    // branch lands at the same physical address; the entry code rebuilds
    // the stack, the MMU and all state from scratch.
    unsafe {
        asm!(
            // The guest's FP/SIMD registers are lost too (the hypervisor is
            // built soft-float; these are the only FP instructions in it,
            // and CPTR_EL2 leaves FP untrapped).
            ".arch_extension fp",
            ".arch_extension simd",
            "dup v0.2d, x1",
            "mov v1.16b, v0.16b",
            "mov v2.16b, v0.16b",
            "mov v3.16b, v0.16b",
            "mov v4.16b, v0.16b",
            "mov v5.16b, v0.16b",
            "mov v6.16b, v0.16b",
            "mov v7.16b, v0.16b",
            "mov v8.16b, v0.16b",
            "mov v9.16b, v0.16b",
            "mov v10.16b, v0.16b",
            "mov v11.16b, v0.16b",
            "mov v12.16b, v0.16b",
            "mov v13.16b, v0.16b",
            "mov v14.16b, v0.16b",
            "mov v15.16b, v0.16b",
            "mov v16.16b, v0.16b",
            "mov v17.16b, v0.16b",
            "mov v18.16b, v0.16b",
            "mov v19.16b, v0.16b",
            "mov v20.16b, v0.16b",
            "mov v21.16b, v0.16b",
            "mov v22.16b, v0.16b",
            "mov v23.16b, v0.16b",
            "mov v24.16b, v0.16b",
            "mov v25.16b, v0.16b",
            "mov v26.16b, v0.16b",
            "mov v27.16b, v0.16b",
            "mov v28.16b, v0.16b",
            "mov v29.16b, v0.16b",
            "mov v30.16b, v0.16b",
            "mov v31.16b, v0.16b",
            "mrs x9, sctlr_el2",
            "bic x9, x9, #1",          // M
            "bic x9, x9, #(1 << 2)",   // C
            "bic x9, x9, #(1 << 12)",  // I
            "msr sctlr_el2, x9",
            "isb",
            "msr vbar_el2, x1",
            "br x2",
            in("x0") context,
            in("x1") JUNK,
            in("x2") entry,
            options(noreturn)
        );
    }
}

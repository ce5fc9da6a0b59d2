//! The machine and the cores as every core sees them: the description
//! decided at boot ([`Machine`], read-only afterwards), each core's shared
//! state ([`CORES`]: atomics other cores read or post to), and the guest's
//! virtual GIC registers.
//!
//! What only a core itself touches lives with the module that owns it, in
//! a [`PerCore`] cell: the vCPU's list-register backlog and debug state in
//! `vcpu`, the trace unit in `tracing`, the UART's line buffer in `vuart`.
//! `percore` gives each core its own element and `RefCell` checks at run
//! time that no two borrows overlap; [`ThisCore`] is the core index it
//! trusts.
//!
//! The bottom of `hv`'s module graph, above only `fatal`.

use core::sync::atomic::{AtomicU32, AtomicU64};

use super::fatal::fatal;
use crate::arch;
use crate::dtb::{GuestLayout, Platform, Range, MAX_CPUS};
use crate::gic_mmio::{Layout, VirtGic};
use crate::inject::{self, Fault, GuestState};
use crate::mailbox::Mailbox;
use crate::power::CorePower;
use crate::regs::GuestRegs;
use crate::stage2::Stage2;
use crate::stats::{Counters, Event};
use guest_api::psci::PowerStateFormat;

/// The bit of the context word EL2 gives firmware with its own entry point
/// (`arch::secondary_entry_address`) that marks a warm boot: firmware hands
/// the word back in x0 when the core restarts there, and `boot` tells a
/// wake-up from a power-down suspend (`core index | WARM_BOOT`) from a
/// CPU_ON (`core index`).
pub const WARM_BOOT: u64 = 1 << 8;

/// The index of the running core, for [`percore::PerCore`].
#[derive(Debug)]
pub struct ThisCore;

// SAFETY: `arch::core_index` reads TPIDR_EL2, which entry.S sets to the
// core's own index (from its MPIDR's position in the boot order) before any
// Rust runs, and which is written nowhere else but through `unsafe` writers
// whose contract keeps it so: no two cores ever hold the same index.
unsafe impl percore::Cores for ThisCore {
    fn core_index() -> usize {
        arch::core_index()
    }
}

/// A value per core, reachable only from its own core with exceptions
/// masked (EL2 always runs so; `percore::exception_free` proves it to the
/// type system), mutable through the `RefCell`.
pub type PerCore<T> =
    percore::PerCore<[percore::ExceptionLock<core::cell::RefCell<T>>; MAX_CPUS], ThisCore>;

/// Runs `f` on this core's element of `cell`.
pub fn with<T, R>(cell: &PerCore<T>, f: impl FnOnce(&mut T) -> R) -> R {
    percore::exception_free(|token| f(&mut cell.get().borrow_mut(token)))
}

/// What other cores may see of a core.
#[derive(Debug)]
pub struct Shared {
    /// Power state as the hypervisor sees it.
    pub power: CorePower,
    /// The guest's entry point for the next CPU_ON or power-down resume.
    pub entry: AtomicU64,
    /// The guest's context_id for it.
    pub context: AtomicU64,
    /// Cross-core requests addressed to this core.
    pub mailbox: Mailbox,
    /// Virtual SGIs waiting to be injected into this core's guest.
    pub pending_sgi: AtomicU32,
    /// PINGs this core has answered.
    pub pings: AtomicU64,
    /// What this core did for the guest (written by this core only).
    pub stats: Counters,
}

impl Shared {
    const fn new() -> Shared {
        Shared {
            power: CorePower::new(),
            entry: AtomicU64::new(0),
            context: AtomicU64::new(0),
            mailbox: Mailbox::new(),
            pending_sgi: AtomicU32::new(0),
            pings: AtomicU64::new(0),
            stats: Counters::new(),
        }
    }
}

/// Shared per-core state, indexed by core.
pub static CORES: [Shared; MAX_CPUS] = [const { Shared::new() }; MAX_CPUS];

/// The guest's virtual GIC registers.
pub static VGIC: VirtGic = VirtGic::new();

/// Everything decided at boot, read-only afterwards.
#[derive(Debug)]
pub struct Machine {
    /// The platform from the hypervisor's device tree.
    pub platform: Platform,
    /// The guest's memory and CPUs from its device tree.
    pub guest: GuestLayout,
    /// The physical GIC frames.
    pub gic: Layout,
    /// The hypervisor's own memory.
    pub hyp: Range,
    /// The guest's translation tables.
    pub stage2: Stage2,
    /// How firmware encodes CPU_SUSPEND's power_state.
    pub power_state_format: PowerStateFormat,
    /// Number of list registers.
    pub list_registers: usize,
    /// Test switch `test.powerdown`: a power-down CPU_SUSPEND that firmware
    /// returned from is turned into a real warm boot with EL2 and trace state
    /// lost, so the warm-boot restore path runs where firmware never powers
    /// down (QEMU).
    pub simulate_power_loss: bool,
    /// Switch `bench`: the guest's PMU counters may count at EL2.
    pub guest_counts_el2: bool,
    /// Test switch `test.vanish`: a guest's CPU_OFF goes straight to
    /// firmware, leaving the core's mailbox open and its power ON in the
    /// hypervisor's view, as a core powered off behind PSCI's back.
    pub vanish_on_cpu_off: bool,
    /// Ticks of the generic counter (CNTPCT_EL0) a cross-core wait may last.
    pub request_bound_ticks: u64,
    /// Switch `trace.source`: what feeds the QEMU model.
    pub trace_source: crate::bootargs::TraceSource,
}

static MACHINE: spin::Once<Machine> = spin::Once::new();

/// Publishes the machine description; done once by the boot core.
pub fn set_machine(m: Machine) -> &'static Machine {
    MACHINE.call_once(|| m)
}

/// The machine description. Only called after boot published it: every
/// exception from the guest happens after that.
pub fn machine() -> &'static Machine {
    match MACHINE.get() {
        Some(m) => m,
        None => fatal(format_args!("machine used before boot finished")),
    }
}

/// This core's shared state.
pub fn me() -> &'static Shared {
    &CORES[arch::core_index()]
}

/// Counts `event` for this core.
pub fn count(event: Event) {
    me().stats.count(event);
}

/// Marks this core running and able to take requests (its mailbox open).
pub fn come_online() {
    let me = me();
    me.mailbox.open();
    me.power.online();
}

impl Machine {
    /// The core index of a guest vCPU's MPIDR: one the guest's device tree
    /// lists (vCPUs are pinned 1:1 to the physical cores of the same MPIDR),
    /// with every bit outside the affinity fields zero.
    pub fn guest_cpu_index(&self, mpidr: u64) -> Option<usize> {
        let idx = self.platform.target_index(mpidr)?;
        let phys = self.platform.cpus()[idx];
        self.guest.cpus().contains(&phys).then_some(idx)
    }
}

/// Makes the guest take `fault` at its EL1 (the registers
/// `inject::inject` computes), from the state in `regs`; `ss`, when given,
/// is the SPSR_EL1.SS to save instead of the one in `regs.spsr` (EL2's own
/// stepping sets that one while it steps the guest).
pub fn deliver(regs: &mut GuestRegs, fault: Fault, ss: Option<bool>) {
    use crate::arch::*;
    let inj = inject::inject(
        fault,
        GuestState {
            pc: regs.elr,
            pstate: regs.spsr,
            vbar_el1: VBAR_EL1.get(),
            sctlr_el1: SCTLR_EL1.get(),
        },
    );
    ESR_EL1.set(inj.esr_el1);
    if let Some(far) = inj.far_el1 {
        FAR_EL1.set(far);
    }
    let spsr = match ss {
        Some(true) => inj.spsr_el1 | inject::psr::SS,
        Some(false) => inj.spsr_el1 & !inject::psr::SS,
        None => inj.spsr_el1,
    };
    ELR_EL1.set(inj.elr_el1);
    SPSR_EL1.set(spsr);
    regs.elr = inj.pc;
    regs.spsr = inj.pstate;
}

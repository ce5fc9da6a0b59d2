//! Per-core state: what other cores may read or request (shared, atomics)
//! and what only the core itself touches (local).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::gic::VcpuInterface;
use super::tracing::Backend;
use crate::arch;
use crate::debug_view::OsLock;
use crate::dtb::{GuestLayout, Platform, Range, MAX_CPUS};
use crate::gic_mmio::{Layout, VirtGic};
use crate::mailbox::Mailbox;
use crate::manager::CoreTrace;
use crate::power::CorePower;
use crate::stage2::Stage2;
use crate::stats::{Counters, Event};
use crate::vgic::Pending;
use crate::vuart::LineBuffer;
use guest_api::psci::PowerStateFormat;

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

/// State only the owning core touches.
#[derive(Debug)]
pub struct Local {
    /// Interrupts waiting for a free list register.
    pub pending: Pending,
    /// The guest's virtual OS lock.
    pub oslock: OsLock,
    /// This core's trace state, created on the core's first start.
    pub trace: Option<CoreTrace<Backend>>,
    /// The guest's virtual CPU interface, saved across a power-down.
    pub vcpu_if: Option<VcpuInterface>,
    /// What this vCPU wrote to its UART and the console has not had yet.
    pub vuart_tx: LineBuffer,
}

struct LocalCell(UnsafeCell<Local>);

// SAFETY: each cell is only ever accessed by its own core (see `local`).
unsafe impl Sync for LocalCell {}

static LOCAL: [LocalCell; MAX_CPUS] = [const {
    LocalCell(UnsafeCell::new(Local {
        pending: Pending::new(),
        oslock: OsLock::new(),
        trace: None,
        vcpu_if: None,
        vuart_tx: LineBuffer::new(),
    }))
}; MAX_CPUS];

/// Shared per-core state, indexed by core.
pub static CORES: [Shared; MAX_CPUS] = [const { Shared::new() }; MAX_CPUS];

/// The guest's virtual GIC registers.
pub static VGIC: VirtGic = VirtGic::new();

/// This core's local state.
///
/// # Safety
/// The caller runs at EL2 on the core the state belongs to, with interrupts
/// masked (always true in EL2 here), and does not hold another reference
/// returned by this function: handlers do not nest, so each exception
/// handler takes it at most once.
pub unsafe fn local() -> &'static mut Local {
    let cell = &LOCAL[arch::core_index()];
    // SAFETY: by the caller's promise this is the only live reference, and
    // only this core ever reaches this cell.
    unsafe { &mut *cell.0.get() }
}

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
        None => crate::hv::boot::fatal(format_args!("machine used before boot finished")),
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

/// Marks this core running and able to take requests. `cold` is a power-on
/// (CPU_ON, first boot): the guest's per-core interrupt and debug state start
/// from reset. A warm boot or a refused CPU_OFF keeps them.
pub fn come_online(cold: bool) {
    let me = me();
    if cold {
        VGIC.redist[arch::core_index()].reset();
        me.pending_sgi.store(0, Ordering::Relaxed);
        // SAFETY: EL2 on this core, interrupts masked, no other `local()` alive.
        let local = unsafe { local() };
        local.oslock = OsLock::new();
    }
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

//! The guest's virtual CPU on this core: entering it, the virtual
//! interrupts offered to it (list registers, SGIs), the exceptions injected
//! into it, its virtual debug state, and its virtual CPU interface across a
//! power-down.
//!
//! Everything here runs on the vCPU's own core; its per-core state is a
//! [`PerCore`] cell that no other core can reach.

use core::sync::atomic::Ordering;

use super::gic;
use super::state::{self, machine, PerCore, CORES, VGIC};
use crate::arch::{self, *};
use crate::debug_view::OsLock;
use crate::esr::SysReg;
use crate::inject::Fault;
use crate::regs::GuestRegs;
use crate::sgi;
use crate::vgic::{self, ListRegisters, Pending, Refill};

/// What only this core's vCPU has.
#[derive(Debug)]
struct Vcpu {
    /// Interrupts waiting for a free list register.
    pending: Pending,
    /// The guest's virtual OS lock.
    oslock: OsLock,
    /// The virtual CPU interface, saved across a power-down.
    saved: Option<VcpuInterface>,
}

static VCPU: PerCore<Vcpu> = PerCore::new(
    [const {
        percore::ExceptionLock::new(core::cell::RefCell::new(Vcpu {
            pending: Pending::new(),
            oslock: OsLock::new(),
            saved: None,
        }))
    }; crate::dtb::MAX_CPUS],
);

fn with<R>(f: impl FnOnce(&mut Vcpu) -> R) -> R {
    state::with(&VCPU, f)
}

/// Bytes of per-core state this module keeps.
pub const STATE_SIZE: usize = core::mem::size_of::<Vcpu>();

/// SCTLR_EL1 at guest entry: MMU and caches off, RES1 bits set.
pub const SCTLR_EL1_RESET: u64 = 0x30d0_0800;

/// A power-on (first boot, CPU_ON): the vCPU's per-core interrupt and debug
/// state start from reset. A warm boot or a refused CPU_OFF keeps them.
pub fn power_on() {
    let me = arch::core_index();
    VGIC.redist[me].reset();
    CORES[me].pending_sgi.store(0, Ordering::Relaxed);
    with(|v| v.oslock = OsLock::new());
    super::step::power_on();
}

/// Enters the guest at `entry` with `arg` in x0.
pub fn enter(entry: u64, arg: u64) -> ! {
    flush_list_registers();
    let mut regs = GuestRegs::entry(entry, arg);
    super::step::hardware_lost();
    super::step::on_guest_return(&mut regs);
    arch::enter_guest(&regs)
}

/// Enters the guest at the resume entry point of a power-down suspend, with
/// its context_id in x0 and its EL1 state as after a power-up (MMU off), as
/// PSCI describes a wake-up from power-down.
pub fn resume_at_entry(entry: u64, context: u64) -> ! {
    SCTLR_EL1.set(SCTLR_EL1_RESET);
    isb();
    enter(entry, context)
}

/// The guest's access to an OS lock register, if `reg` is one: the value a
/// read returns.
pub fn os_lock_access(reg: SysReg, write: Option<u64>) -> Option<u64> {
    with(|v| v.oslock.access(reg, write))
}

/// Injects the architectural exception for `fault` into the guest (while
/// EL2 steps it, SPSR_EL1.SS gets the guest's own PSTATE.SS, not EL2's).
pub fn inject_fault(regs: &mut GuestRegs, fault: Fault) {
    let ss = super::step::exception_entry();
    state::deliver(regs, fault, ss);
}

fn list_registers() -> HwListRegisters {
    HwListRegisters(machine().list_registers)
}

/// Offers interrupt `intid` (a physical one EL2 took for the guest) at
/// `priority`.
pub fn inject(intid: u32, priority: u8) {
    with(|v| vgic::inject(&mut list_registers(), &mut v.pending, intid, priority));
}

/// Raises (`level`) or withdraws the purely virtual interrupt `intid`.
pub fn set_virtual_level(intid: u32, level: bool, priority: u8) {
    with(|v| {
        if level {
            vgic::assert_virtual(&mut list_registers(), &mut v.pending, intid, priority);
        } else {
            vgic::deassert_virtual(&mut list_registers(), &mut v.pending, intid);
        }
    });
}

/// Whether a virtual interrupt is pending in the list registers.
pub fn any_pending() -> bool {
    vgic::any_pending(&list_registers())
}

/// Moves waiting virtual interrupts into free list registers.
pub fn flush_list_registers() {
    with(|v| {
        if !v.pending.is_empty() {
            vgic::flush(&mut list_registers(), &mut v.pending);
        }
    });
}

/// A guest SGI: recorded in each target's pending set, and the target is
/// told with EL2's SGI (or served at once when it is this core).
pub fn send_guest_sgi(value: u64) {
    let m = machine();
    let me = arch::core_index();
    let (intid, mask) = sgi::targets(value, m.platform.cpus(), me);
    for idx in (0..m.platform.cpu_count).filter(|i| mask & (1 << i) != 0) {
        let core = &CORES[idx];
        if !core.power.is_on() || m.guest_cpu_index(m.platform.cpus()[idx]).is_none() {
            continue;
        }
        core.pending_sgi.fetch_or(1 << intid, Ordering::AcqRel);
        if idx == me {
            deliver_sgis();
        } else {
            gic::send_hyp_sgi(m.platform.cpus()[idx]);
        }
    }
}

/// Injects this core's pending virtual SGIs that its guest has enabled.
pub fn deliver_sgis() {
    let me = arch::core_index();
    let enabled = VGIC.redist[me].sgi_enable.load(Ordering::Relaxed);
    let got = CORES[me].pending_sgi.fetch_and(!enabled, Ordering::AcqRel) & enabled;
    if got == 0 {
        return;
    }
    with(|v| {
        let mut lrs = list_registers();
        for intid in (0..16).filter(|i| got & (1 << i) != 0) {
            let prio = VGIC.redist[me].sgi_priority[intid as usize].load(Ordering::Relaxed);
            vgic::inject(&mut lrs, &mut v.pending, intid, prio);
        }
    });
}

/// Before a power-down: keep the virtual CPU interface the core will lose.
pub fn save_for_power_down() {
    let saved = VcpuInterface::save(machine().list_registers);
    with(|v| v.saved = Some(saved));
}

/// After a power-down suspend, on both ways back: put it back.
pub fn restore_after_power_down() {
    if let Some(saved) = with(|v| v.saved.take()) {
        saved.restore();
    }
}

/// This core's list registers.
#[derive(Debug)]
pub struct HwListRegisters(pub usize);

impl ListRegisters for HwListRegisters {
    fn count(&self) -> usize {
        self.0
    }
    fn read(&self, n: usize) -> u64 {
        ich_lr_read(n)
    }
    fn write(&mut self, n: usize, v: u64) {
        ich_lr_write(n, v)
    }
    fn set_refill_interrupt(&mut self, refill: Refill) {
        use ICH_HCR_EL2::{NPIE, UIE};
        let hcr = ICH_HCR_EL2.extract();
        let want = match refill {
            Refill::Off => UIE::CLEAR + NPIE::CLEAR,
            Refill::NoPending => UIE::CLEAR + NPIE::SET,
            Refill::Underflow => UIE::SET + NPIE::CLEAR,
        };
        if !hcr.matches_all(want) {
            ICH_HCR_EL2.modify(want);
            isb();
        }
    }
}

/// The guest's virtual CPU interface, which a power-down loses: its
/// priority mask and enables (ICH_VMCR_EL2), active priorities and list
/// registers.
#[derive(Clone, Copy, Debug)]
struct VcpuInterface {
    vmcr: u64,
    ap0r0: u64,
    ap1r0: u64,
    lrs: [u64; 16],
    count: usize,
}

impl VcpuInterface {
    /// Reads this core's virtual CPU interface.
    fn save(count: usize) -> VcpuInterface {
        let mut lrs = [0; 16];
        for (n, lr) in lrs.iter_mut().enumerate().take(count) {
            *lr = ich_lr_read(n);
        }
        VcpuInterface {
            vmcr: ICH_VMCR_EL2.get(),
            ap0r0: ICH_AP0R0_EL2.get(),
            ap1r0: ICH_AP1R0_EL2.get(),
            lrs,
            count,
        }
    }

    /// Writes it back. Only the first active-priority register of each group
    /// is kept: it covers 5 bits of priority, which is what the cores this
    /// runs on implement (ICH_VTR_EL2.PREbits = 4).
    fn restore(&self) {
        ICH_VMCR_EL2.set(self.vmcr);
        ICH_AP0R0_EL2.set(self.ap0r0);
        ICH_AP1R0_EL2.set(self.ap1r0);
        for n in 0..self.count {
            ich_lr_write(n, self.lrs[n]);
        }
        isb();
    }
}

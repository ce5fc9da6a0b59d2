//! The physical GICv3: distributor and redistributor setup, the EL2 CPU
//! interface, SGIs, and the list registers behind `vgic::ListRegisters`.

use core::ptr::{read_volatile, write_volatile};

use arm_gic::gicv3::GicCpuInterface;
use arm_gic::{IntId, InterruptGroup};
use arm_sysregs::el1::accessors::{
    read_icc_rpr_el1, write_icc_bpr1_el1, write_icc_ctlr_el1, write_icc_dir_el1,
    write_icc_sgi1r_el1,
};
use arm_sysregs::el1::registers::{IccBpr1El1, IccCtlrEl1, IccDirEl1, IccSgi1rEl1};

use crate::arch::{self, *};
use crate::dtb::{Platform, MAX_CPUS};
use crate::gic_mmio::{self, Layout, MAINTENANCE_INTID};
use crate::sgi::{self, HYP_SGI};

fn r32(pa: u64) -> u32 {
    // SAFETY: `pa` is a GIC register inside the frames the device tree gave,
    // identity mapped as Device memory at EL2.
    unsafe { read_volatile(pa as *const u32) }
}

fn w32(pa: u64, v: u32) {
    // SAFETY: as in `r32`.
    unsafe { write_volatile(pa as *mut u32, v) }
}

fn r64(pa: u64) -> u64 {
    // SAFETY: as in `r32`; 64-bit GIC registers are 8-byte aligned.
    unsafe { read_volatile(pa as *const u64) }
}

/// Real GIC MMIO for `gic_mmio::emulate`.
#[derive(Debug)]
pub struct PhysicalGic;

impl gic_mmio::Hw for PhysicalGic {
    fn read(&mut self, pa: u64, size: u8) -> u64 {
        // SAFETY: `emulate` only passes addresses inside the GIC frames, with
        // the register's own access size and natural alignment.
        unsafe {
            match size {
                1 => read_volatile(pa as *const u8) as u64,
                4 => read_volatile(pa as *const u32) as u64,
                _ => read_volatile(pa as *const u64),
            }
        }
    }

    fn write(&mut self, pa: u64, size: u8, value: u64) {
        // SAFETY: as in `read`.
        unsafe {
            match size {
                1 => write_volatile(pa as *mut u8, value as u8),
                4 => write_volatile(pa as *mut u32, value as u32),
                _ => write_volatile(pa as *mut u64, value),
            }
        }
    }
}

/// GICD_IROUTER<n> of SPI `intid` (as the guest programmed it: the
/// distributor emulation passes SPI routing through).
pub fn spi_route(l: &Layout, intid: u32) -> u64 {
    if !(32..=1019).contains(&intid) {
        return 0;
    }
    r64(l.gicd.base + 0x6000 + 8 * intid as u64)
}

/// Whether SPI `intid` is enabled (GICD_ISENABLER<n>) and its priority
/// (GICD_IPRIORITYR<n>), as the guest programmed them.
pub fn spi_enabled_priority(l: &Layout, intid: u32) -> (bool, u8) {
    if !(32..=1019).contains(&intid) {
        return (false, 0xff);
    }
    let d = l.gicd.base;
    let enabled = r32(d + 0x100 + 4 * (intid as u64 / 32)) & (1 << (intid % 32)) != 0;
    let word = r32(d + 0x400 + (intid as u64 & !3));
    (enabled, (word >> (8 * (intid % 4))) as u8)
}

/// Errors finding the redistributors.
#[derive(Clone, Copy, Debug)]
pub struct MissingRedistributor(pub u64);

/// Walks the redistributor region and finds each core's frame by the
/// affinity in GICR_TYPER, instead of assuming the order.
pub fn layout(p: &Platform) -> Result<Layout, MissingRedistributor> {
    let mut redists = [0u64; MAX_CPUS];
    for (i, &mpidr) in p.cpus().iter().enumerate() {
        let want = ((mpidr >> 32) & 0xff) << 24 | (mpidr & 0xff_ffff);
        let mut frame = p.gicr.base;
        let mut found = false;
        while frame + gic_mmio::REDIST_STRIDE <= p.gicr.end() {
            let typer = r64(frame + 0x8);
            if typer >> 32 == want {
                redists[i] = frame;
                found = true;
                break;
            }
            if typer & (1 << 4) != 0 {
                break; // GICR_TYPER.Last
            }
            frame += if typer & (1 << 1) != 0 {
                0x4_0000
            } else {
                gic_mmio::REDIST_STRIDE
            };
        }
        if !found {
            return Err(MissingRedistributor(mpidr));
        }
    }
    Ok(Layout {
        gicd: p.gicd,
        redists,
        cores: p.cpu_count,
        trbe_intid: p.trbe_intid,
    })
}

fn wait_rwp(pa: u64, bit: u32) {
    for _ in 0..1_000_000 {
        if r32(pa) & bit == 0 {
            return;
        }
    }
    log::warn!("GIC: register write at {pa:#x} still pending");
}

/// Enables the distributor with affinity routing and puts every SPI in
/// group 1, disabled. Done once, by the boot core, before any guest runs.
pub fn init_distributor(l: &Layout) {
    let d = l.gicd.base;
    w32(d, 0);
    wait_rwp(d, 1 << 31);
    let lines = ((r32(d + 0x4) & 0x1f) + 1) * 32;
    for n in 1..lines / 32 {
        let o = 4 * n as u64;
        w32(d + 0x180 + o, 0xffff_ffff); // ICENABLER
        w32(d + 0x280 + o, 0xffff_ffff); // ICPENDR
        w32(d + 0x080 + o, 0xffff_ffff); // IGROUPR: group 1
    }
    // ARE (bit 4) and EnableGrp1 (bit 1) in the single-security-state layout.
    w32(d, (1 << 4) | (1 << 1));
    wait_rwp(d, 1 << 31);
}

/// Wakes this core's redistributor and enables EL2's SGI and the
/// maintenance interrupt. On a cold start (power-on) every other SGI and PPI
/// starts disabled and inactive, for the guest to enable its own; a warm
/// start (after a power-down suspend) keeps the guest's settings, which the
/// redistributor retains.
pub fn init_redistributor(l: &Layout, core: usize, cold: bool) {
    let rd = l.redists[core];
    let sgi = rd + 0x1_0000;
    w32(rd + 0x14, r32(rd + 0x14) & !(1 << 1));
    for _ in 0..1_000_000 {
        if r32(rd + 0x14) & (1 << 2) == 0 {
            break;
        }
    }
    if cold {
        w32(sgi + 0x180, 0xffff_ffff);
        w32(sgi + 0x380, 0xffff_ffff);
    }
    w32(sgi + 0x080, 0xffff_ffff);
    // EL2's own: its SGI, the maintenance interrupt, and the TRBE's PPI if
    // the device tree names one (without one the TRBE runs with no
    // interrupt: see `trace`'s buffer handling).
    let own = [Some(HYP_SGI), Some(MAINTENANCE_INTID), l.trbe_intid];
    for intid in own.into_iter().flatten() {
        let reg = sgi + 0x400 + (intid as u64 & !3);
        let shift = 8 * (intid % 4);
        w32(reg, (r32(reg) & !(0xff << shift)) | (0x80 << shift));
    }
    w32(
        sgi + 0x100,
        own.into_iter()
            .flatten()
            .fold(0, |m, intid| m | (1 << intid)),
    );
    wait_rwp(rd, 1 << 3); // GICR_CTLR.RWP
}

/// Sets up this core's physical CPU interface for EL2 and its virtual
/// CPU interface for the guest.
pub fn init_cpu_interface() {
    // SRE and Enable (EL1 may use its system registers), then DFB and DIB.
    GicCpuInterface::enable_system_register_el2(true);
    GicCpuInterface::disable_legacy_interrupt_bypass_el2(true);
    isb();
    GicCpuInterface::set_priority_mask(0xff);
    write_icc_bpr1_el1(IccBpr1El1::empty());
    // EOImode = 1: EL2 drops priority, the guest's virtual EOI deactivates.
    write_icc_ctlr_el1(IccCtlrEl1::EOIMODE);
    GicCpuInterface::enable_group1(true);
    ICH_VMCR_EL2.set(0);
    for n in 0..list_register_count() {
        ich_lr_write(n, 0);
    }
    ICH_HCR_EL2.write(ICH_HCR_EL2::En::SET);
    isb();
}

/// ICH_VTR_EL2.ListRegs + 1.
pub fn list_register_count() -> usize {
    ICH_VTR_EL2.read(ICH_VTR_EL2::ListRegs) as usize + 1
}

/// Sends EL2's SGI to the core with `mpidr`. (Encoded here, not with
/// arm-gic's `send_sgi`: its target list has no range selector, so it cannot
/// reach a core whose Aff0 is 16 or more.)
pub fn send_hyp_sgi(mpidr: u64) {
    arch::dsb_sy();
    write_icc_sgi1r_el1(IccSgi1rEl1::from_bits_retain(sgi::sgi1r_for(
        mpidr, HYP_SGI,
    )));
    isb();
}

/// Acknowledges the highest-priority pending group-1 interrupt: its INTID
/// and the running priority it raised; `None` when nothing is pending (a
/// special INTID, 1020..=1023).
pub fn acknowledge() -> Option<(IntId, u8)> {
    let intid = GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1)?;
    if (1020..=1023).contains(&u32::from(intid)) {
        return None;
    }
    Some((intid, read_icc_rpr_el1().priority()))
}

/// Drops the running priority of `intid` (EOImode = 1: not deactivated).
pub fn end_of_interrupt(intid: IntId) {
    GicCpuInterface::end_interrupt(intid, InterruptGroup::Group1);
}

/// Deactivates `intid`: for interrupts EL2 consumes itself.
pub fn deactivate(intid: IntId) {
    write_icc_dir_el1(IccDirEl1::empty().with_intid(intid.into()));
}

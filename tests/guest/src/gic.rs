//! GICv3: the distributor (once, boot core), each core's redistributor and
//! its CPU interface through the ICC_* system registers (under the
//! hypervisor those reach the virtual CPU interface; the distributor and
//! redistributors are trapped and emulated, so every access is a plain
//! 32-bit `ldr w`/`str w`).

use core::arch::asm;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::arch::{self, MAX_CPUS};
use crate::{mmio, platform, timer};

const GICD_CTLR: usize = 0x0000;
/// GICD_CTLR.RWP: register write pending.
const GICD_CTLR_RWP: u32 = 1 << 31;
/// GICD_CTLR.ARE (ARE_NS when security is on).
const GICD_CTLR_ARE: u32 = 1 << 4;
/// GICD_CTLR.EnableGrp1 (EnableGrp1NS when security is on).
const GICD_CTLR_ENABLE_GRP1: u32 = 1 << 1;

const GICR_TYPER: usize = 0x0008;
const GICR_WAKER: usize = 0x0014;
/// GICR_TYPER.VLPIS: the frames are 256 KiB (GICv4 VLPI frames follow).
const TYPER_VLPIS: u32 = 1 << 1;
/// GICR_TYPER.Last: the last redistributor of the region.
const TYPER_LAST: u32 = 1 << 4;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// RD_base to SGI_base.
const SGI_BASE: usize = 0x1_0000;
/// Redistributor frames per core (RD_base + SGI_base), GICv3.
const GICR_STRIDE: usize = 0x2_0000;
const GICR_IGROUPR0: usize = 0x0080;
const GICR_ISENABLER0: usize = 0x0100;
const GICR_IPRIORITYR: usize = 0x0400;

/// Priority of every interrupt the guest uses.
pub const PRIORITY: u8 = 0xa0;
/// SGI that wakes an idle core to look at its mailbox.
pub const SGI_DOORBELL: u32 = 0;
/// SGIs 0..7 and the virtual timer.
const ENABLED: u32 = 0xff | (1 << timer::VTIMER_INTID);

/// Each core's RD_base.
static RD_BASE: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];

/// Core `core`'s RD_base (its SGI_base frame is 64 KiB above), once that
/// core has set up its redistributor.
pub fn rd_base(core: usize) -> usize {
    RD_BASE[core].load(Ordering::Relaxed)
}

fn rd(offset: usize) -> usize {
    RD_BASE[arch::core_index()].load(Ordering::Relaxed) + offset
}

fn read(addr: usize) -> u32 {
    // SAFETY: every address passed here is a GIC register inside the
    // regions the DTB names, mapped as Device memory.
    unsafe { mmio::read32(addr) }
}

fn write(addr: usize, v: u32) {
    // SAFETY: as for `read`; the values written are the GICv3 setup of
    // the interrupts this guest owns.
    unsafe { mmio::write32(addr, v) }
}

/// Polls until `done` (bounded by `ms`).
fn poll(ms: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = timer::Deadline::after_ms(ms);
    loop {
        if done() {
            return true;
        }
        if deadline.expired() {
            return false;
        }
        arch::relax();
    }
}

/// Enables affinity routing and Group 1 in the distributor.
pub fn init_distributor() -> Result<(), &'static str> {
    let ctlr = platform::get().gicd + GICD_CTLR;
    write(ctlr, read(ctlr) | GICD_CTLR_ARE | GICD_CTLR_ENABLE_GRP1);
    if !poll(1000, || read(ctlr) & GICD_CTLR_RWP == 0) {
        return Err("GICD_CTLR.RWP stayed set");
    }
    if read(ctlr) & GICD_CTLR_ARE == 0 {
        return Err("GICD_CTLR.ARE did not stick");
    }
    Ok(())
}

/// GICR_TYPER[63:32]'s affinity value for an MPIDR.
fn typer_affinity(mpidr: u64) -> u32 {
    (((mpidr >> 32) & 0xff) << 24 | (mpidr & 0xff_ffff)) as u32
}

/// Finds the redistributor whose GICR_TYPER affinity is `mpidr`: first at
/// the core's position in the region, else by walking the region.
fn find_redistributor(index: usize, mpidr: u64) -> Result<usize, &'static str> {
    let p = platform::get();
    let want = typer_affinity(mpidr);
    let size = if p.gicr_size == 0 {
        GICR_STRIDE * MAX_CPUS
    } else {
        p.gicr_size
    };
    let guess = p.gicr + index * GICR_STRIDE;
    if (index + 1) * GICR_STRIDE <= size && read(guess + GICR_TYPER + 4) == want {
        return Ok(guess);
    }
    let mut offset = 0;
    while offset + GICR_STRIDE <= size {
        let frame = p.gicr + offset;
        let typer = read(frame + GICR_TYPER);
        if read(frame + GICR_TYPER + 4) == want {
            return Ok(frame);
        }
        if typer & TYPER_LAST != 0 {
            break;
        }
        offset += if typer & TYPER_VLPIS != 0 {
            2 * GICR_STRIDE
        } else {
            GICR_STRIDE
        };
    }
    Err("no redistributor has this core's affinity")
}

/// Wakes this core's redistributor and sets up its SGIs and the virtual
/// timer PPI: Group 1, priority [`PRIORITY`], enabled.
pub fn init_redistributor() -> Result<(), &'static str> {
    let me = arch::core_index();
    let base = find_redistributor(me, arch::mpidr())?;
    RD_BASE[me].store(base, Ordering::Relaxed);

    let waker = rd(GICR_WAKER);
    write(waker, read(waker) & !WAKER_PROCESSOR_SLEEP);
    if !poll(1000, || read(waker) & WAKER_CHILDREN_ASLEEP == 0) {
        return Err("GICR_WAKER.ChildrenAsleep stayed set");
    }

    let sgi = rd(SGI_BASE);
    write(sgi + GICR_IGROUPR0, u32::MAX);
    let prio = u32::from_ne_bytes([PRIORITY; 4]);
    // SGIs 0..7.
    write(sgi + GICR_IPRIORITYR, prio);
    write(sgi + GICR_IPRIORITYR + 4, prio);
    // INTID 27 is byte 3 of the register for INTIDs 24..27.
    let reg = sgi + GICR_IPRIORITYR + (timer::VTIMER_INTID as usize & !3);
    let shift = (timer::VTIMER_INTID % 4) * 8;
    write(
        reg,
        (read(reg) & !(0xff << shift)) | ((PRIORITY as u32) << shift),
    );
    write(sgi + GICR_ISENABLER0, ENABLED);
    let enabled = read(sgi + GICR_ISENABLER0);
    if enabled & ENABLED != ENABLED {
        return Err("GICR_ISENABLER0 does not show the enables");
    }
    Ok(())
}

/// Sets up this core's CPU interface: system registers, all priorities
/// unmasked, no preemption groups, EOImode 0, Group 1 enabled.
pub fn init_cpu_interface() {
    // SAFETY: programs only this core's GIC CPU interface registers.
    unsafe {
        asm!(
            "msr icc_sre_el1, {sre}",
            "isb",
            "msr icc_pmr_el1, {pmr}",
            "msr icc_bpr1_el1, xzr",
            "mrs {t}, icc_ctlr_el1",
            "bic {t}, {t}, #2",
            "msr icc_ctlr_el1, {t}",
            "msr icc_igrpen1_el1, {one}",
            "isb",
            sre = in(reg) 0x7u64,
            pmr = in(reg) 0xffu64,
            one = in(reg) 1u64,
            t = out(reg) _,
            options(nomem, nostack, preserves_flags)
        )
    };
}

/// Stops this core's CPU interface from signalling Group 1 interrupts.
pub fn disable_cpu_interface() {
    // SAFETY: clears only this core's Group 1 enable.
    unsafe {
        asm!(
            "msr icc_igrpen1_el1, xzr",
            "isb",
            options(nomem, nostack, preserves_flags)
        )
    };
}

/// Acknowledges the highest-priority pending Group 1 interrupt: its IAR
/// value (1023 when none).
pub fn ack() -> u32 {
    let v: u64;
    // SAFETY: reading IAR1 acknowledges an interrupt; only the IRQ handler
    // calls this, and it ends each acknowledged interrupt with `eoi`.
    unsafe { asm!("mrs {}, icc_iar1_el1", out(reg) v, options(nomem, nostack)) };
    v as u32
}

/// Ends (and, EOImode 0, deactivates) an acknowledged interrupt.
pub fn eoi(iar: u32) {
    // SAFETY: ends the interrupt this core acknowledged with `ack`.
    unsafe {
        asm!(
            "msr icc_eoir1_el1, {}",
            "isb",
            in(reg) iar as u64,
            options(nomem, nostack)
        )
    };
}

/// ICC_SGI1R_EL1 value sending SGI `intid` to the core with affinity `mpidr`.
pub fn sgi1r_value(intid: u32, mpidr: u64) -> u64 {
    let aff0 = mpidr & 0xff;
    let aff1 = (mpidr >> 8) & 0xff;
    let aff2 = (mpidr >> 16) & 0xff;
    let aff3 = (mpidr >> 32) & 0xff;
    (1u64 << (aff0 & 0xf))
        | (aff1 << 16)
        | (((intid & 0xf) as u64) << 24)
        | (aff2 << 32)
        | ((aff0 >> 4) << 44)
        | (aff3 << 48)
}

/// Sends SGI `intid` (0..7) to the core with affinity `mpidr` (may be
/// this core). Earlier stores are visible to the target before it takes it.
pub fn send_sgi(intid: u32, mpidr: u64) {
    debug_assert!(intid < 8, "SGIs 8..15 are not the guest's");
    let v = sgi1r_value(intid, mpidr);
    // SAFETY: DSB makes earlier stores visible to the target first; the
    // write generates one Group 1 SGI for one target.
    unsafe {
        asm!(
            "dsb ishst",
            "msr icc_sgi1r_el1, {}",
            "isb",
            in(reg) v,
            options(nostack)
        )
    };
}

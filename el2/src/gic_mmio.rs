//! The guest's view of the GIC distributor and redistributors.
//!
//! Stage 2 leaves these frames unmapped, so every guest access traps and is
//! emulated here. Most registers pass through to the physical GIC (vCPU n
//! is pinned to physical core n, so routing and SPI configuration mean the
//! same to both). What is filtered protects the hypervisor:
//!
//! - SGIs are virtual: the guest's SGI enables and priorities are kept here,
//!   never written to the physical redistributor, so the hypervisor's own
//!   SGI cannot be disabled, regrouped or reprioritised by the guest.
//! - PPI 25, the maintenance interrupt EL2 uses to refill list registers,
//!   is left alone.
//! - Everything stays in group 1 (IGROUPR reads as all ones, writes are
//!   ignored): a group-0 interrupt would arrive as an FIQ nobody acknowledges.
//! - GICR_WAKER is virtual: a guest that marks its redistributor asleep before
//!   CPU_SUSPEND must not stop the physical GIC from waking the core (QEMU's
//!   PSCI suspend is a WFI that only a physical interrupt ends).
//! - GICD_CTLR's group enables are virtual; the physical distributor stays
//!   enabled with affinity routing.
//! - LPIs are not offered: the LPI bits of GICD_TYPER/GICR_TYPER read as
//!   zero and the LPI table registers are RAZ/WI.
//!
//! Accesses of a size a register does not support read as zero and ignore
//! writes, as the GIC architecture allows.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};

use crate::dtb::{Range, MAX_CPUS};

/// Size of one redistributor (RD_base + SGI_base frames) on GICv3.
pub const REDIST_STRIDE: u64 = 0x2_0000;
/// INTID of the GIC maintenance interrupt (a PPI), used by EL2.
pub const MAINTENANCE_INTID: u32 = 25;
/// PPIs the guest may configure: 16..32 except the maintenance interrupt
/// and the TRBE interrupt `trbe_intid` (a PPI, 16..=31), if the machine
/// has one. The architecture does not fix the TRBE's PPI: it comes from
/// the device tree (`arm,trbe`), and without one no PPI is taken from the
/// guest.
pub const fn guest_ppis(trbe_intid: Option<u32>) -> u32 {
    let ppis = 0xffff_0000 & !(1 << MAINTENANCE_INTID);
    match trbe_intid {
        Some(intid) => ppis & !(1 << (intid & 31)),
        None => ppis,
    }
}

/// Where an emulated access lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The distributor, at this offset.
    Distributor(u64),
    /// The redistributor of core `core`, at this offset in its 128 KiB.
    Redistributor { core: usize, offset: u64 },
}

/// The physical GIC frames, in the platform's CPU order.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// The distributor frame.
    pub gicd: Range,
    /// RD_base of each core's redistributor, by core index.
    pub redists: [u64; MAX_CPUS],
    /// Number of cores.
    pub cores: usize,
    /// The TRBE interrupt's INTID (a PPI) from the device tree: EL2's,
    /// hidden from the guest. `None`: the tree names none, and the TRBE
    /// runs without an interrupt.
    pub trbe_intid: Option<u32>,
}

impl Layout {
    /// Which frame `ipa` falls in, if any.
    pub fn locate(&self, ipa: u64) -> Option<Target> {
        if self.gicd.contains(ipa) && ipa - self.gicd.base < 0x1_0000 {
            return Some(Target::Distributor(ipa - self.gicd.base));
        }
        self.redists[..self.cores]
            .iter()
            .position(|&rd| ipa >= rd && ipa - rd < REDIST_STRIDE)
            .map(|core| Target::Redistributor {
                core,
                offset: ipa - self.redists[core],
            })
    }

    fn physical(&self, t: Target) -> u64 {
        match t {
            Target::Distributor(o) => self.gicd.base + o,
            Target::Redistributor { core, offset } => self.redists[core] + offset,
        }
    }
}

/// Physical GIC register access, real or faked in tests.
pub trait Hw {
    /// Reads `size` bytes (1, 4 or 8) at physical address `pa`.
    fn read(&mut self, pa: u64, size: u8) -> u64;
    /// Writes `size` bytes (1, 4 or 8) at physical address `pa`.
    fn write(&mut self, pa: u64, size: u8, value: u64);
}

/// The virtual parts of one core's redistributor.
#[derive(Debug)]
pub struct VirtRedist {
    /// The guest's SGI enable bits (0..16).
    pub sgi_enable: AtomicU32,
    /// The guest's SGI priorities.
    pub sgi_priority: [AtomicU8; 16],
    /// GICR_WAKER.ProcessorSleep as the guest wrote it.
    pub sleep: AtomicBool,
}

impl VirtRedist {
    /// The reset state: SGIs disabled, priority 0, and asleep (a
    /// redistributor resets with ProcessorSleep set; the guest wakes it as
    /// it would real hardware).
    pub const fn new() -> VirtRedist {
        VirtRedist {
            sgi_enable: AtomicU32::new(0),
            sgi_priority: [const { AtomicU8::new(0) }; 16],
            sleep: AtomicBool::new(true),
        }
    }

    /// Resets to the power-on state (CPU_ON of this core).
    pub fn reset(&self) {
        self.sgi_enable.store(0, Ordering::Relaxed);
        for p in &self.sgi_priority {
            p.store(0, Ordering::Relaxed);
        }
        self.sleep.store(true, Ordering::Relaxed);
    }
}

impl Default for VirtRedist {
    fn default() -> Self {
        Self::new()
    }
}

/// The virtual parts of the whole GIC.
#[derive(Debug)]
pub struct VirtGic {
    /// GICD_CTLR group enables as the guest wrote them.
    pub dist_ctlr: AtomicU32,
    /// Per core.
    pub redist: [VirtRedist; MAX_CPUS],
}

impl VirtGic {
    /// The reset state.
    pub const fn new() -> VirtGic {
        VirtGic {
            dist_ctlr: AtomicU32::new(0),
            redist: [const { VirtRedist::new() }; MAX_CPUS],
        }
    }
}

impl Default for VirtGic {
    fn default() -> Self {
        Self::new()
    }
}

/// GICD_CTLR bits with a single security state (DS = 1).
const CTLR_ENABLE_GRP0: u32 = 1 << 0;
const CTLR_ENABLE_GRP1: u32 = 1 << 1;
const CTLR_ARE: u32 = 1 << 4;
const CTLR_DS: u32 = 1 << 6;
/// LPI-related TYPER bits hidden from the guest.
const GICD_TYPER_LPIS: u64 = (1 << 17) | (1 << 16);
const GICR_TYPER_LPIS: u64 = (1 << 0) | (1 << 1) | (1 << 3);

/// The result of an emulated access that changed what the guest may receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing to do.
    None,
    /// The SGI enables of this core changed: deliver SGIs that now may be.
    SgiEnabled(usize),
}

/// Emulates one guest access. `write` is `Some(value)` for a store. Returns
/// the value a load reads (0 for stores) and what the caller must follow up.
pub fn emulate(
    layout: &Layout,
    virt: &VirtGic,
    hw: &mut dyn Hw,
    target: Target,
    size: u8,
    write: Option<u64>,
) -> (u64, Effect) {
    let guest_ppis = guest_ppis(layout.trbe_intid);
    // A misaligned access is no GIC register access (the architecture
    // requires natural alignment): RAZ/WI, never passed to the hardware.
    let offset = match target {
        Target::Distributor(o) | Target::Redistributor { offset: o, .. } => o,
    };
    if size == 0 || !offset.is_multiple_of(u64::from(size)) {
        return (0, Effect::None);
    }
    let pa = layout.physical(target);
    let pass = |hw: &mut dyn Hw| match write {
        Some(v) => {
            hw.write(pa, size, v);
            0
        }
        None => hw.read(pa, size),
    };
    let r = match target {
        Target::Distributor(o) => match (o, size) {
            (0x0, 4) => match write {
                Some(v) => {
                    virt.dist_ctlr.store(
                        v as u32 & (CTLR_ENABLE_GRP0 | CTLR_ENABLE_GRP1),
                        Ordering::Relaxed,
                    );
                    0
                }
                None => (virt.dist_ctlr.load(Ordering::Relaxed) | CTLR_ARE | CTLR_DS) as u64,
            },
            (0x4 | 0x8 | 0xc, 4) if write.is_none() => {
                let v = hw.read(pa, 4);
                if o == 0x4 {
                    v & !GICD_TYPER_LPIS
                } else {
                    v
                }
            }
            (0x80..=0xff, 4) if write.is_none() => 0xffff_ffff,
            (0x100..=0x3ff, 4) | (0xc00..=0xcff, 4) => pass(hw),
            (0x400..=0x7ff, 1 | 4) => pass(hw),
            (0x6100..=0x7fdf, 8) => pass(hw),
            (0x6100..=0x7fdf, 4) => pass(hw),
            (0xffd0..=0xffff, 4) if write.is_none() => hw.read(pa, 4),
            _ => 0,
        },
        Target::Redistributor { core, offset } => {
            let v = &virt.redist[core];
            match (offset, size) {
                (0x0, 4) if write.is_none() => hw.read(pa, 4) & !1,
                (0x4, 4) if write.is_none() => hw.read(pa, 4),
                (0x8, 8) if write.is_none() => hw.read(pa, 8) & !GICR_TYPER_LPIS,
                (0x8, 4) if write.is_none() => hw.read(pa, 4) & !GICR_TYPER_LPIS,
                (0xc, 4) if write.is_none() => hw.read(pa, 4),
                (0x14, 4) => match write {
                    Some(w) => {
                        v.sleep.store(w & 0b10 != 0, Ordering::Relaxed);
                        0
                    }
                    // ChildrenAsleep follows ProcessorSleep at once.
                    None => {
                        if v.sleep.load(Ordering::Relaxed) {
                            0b110
                        } else {
                            0
                        }
                    }
                },
                (0xffd0..=0xffff, 4) if write.is_none() => hw.read(pa, 4),
                (0x1_0080, 4) if write.is_none() => 0xffff_ffff,
                (0x1_0100 | 0x1_0180, 4) => {
                    let set = offset == 0x1_0100;
                    match write {
                        Some(w) => {
                            let sgis = w as u32 & 0xffff;
                            if set {
                                v.sgi_enable.fetch_or(sgis, Ordering::Relaxed);
                            } else {
                                v.sgi_enable.fetch_and(!sgis, Ordering::Relaxed);
                            }
                            if w as u32 & guest_ppis != 0 {
                                hw.write(pa, 4, w & guest_ppis as u64);
                            }
                            return (
                                0,
                                if set && sgis != 0 {
                                    Effect::SgiEnabled(core)
                                } else {
                                    Effect::None
                                },
                            );
                        }
                        None => {
                            (hw.read(pa, 4) & guest_ppis as u64)
                                | v.sgi_enable.load(Ordering::Relaxed) as u64
                        }
                    }
                }
                (0x1_0200 | 0x1_0280 | 0x1_0300 | 0x1_0380, 4) => match write {
                    Some(w) => {
                        if w as u32 & guest_ppis != 0 {
                            hw.write(pa, 4, w & guest_ppis as u64);
                        }
                        0
                    }
                    None => hw.read(pa, 4) & guest_ppis as u64,
                },
                (0x1_0400..=0x1_041f, 1 | 4) => priority_bytes(
                    v,
                    hw,
                    pa,
                    (offset - 0x1_0400) as u32,
                    size,
                    write,
                    guest_ppis,
                ),
                (0x1_0c00, 4) if write.is_none() => 0xaaaa_aaaa,
                (0x1_0c04, 4) => {
                    // Two bits per PPI; EL2's interrupts' fields are kept.
                    let keep = (0b11u64 << (2 * (MAINTENANCE_INTID - 16)))
                        | layout
                            .trbe_intid
                            .map_or(0, |intid| 0b11u64 << (2 * (intid & 15)));
                    match write {
                        Some(w) => {
                            let cur = hw.read(pa, 4);
                            hw.write(pa, 4, (w & !keep) | (cur & keep));
                            0
                        }
                        None => hw.read(pa, 4),
                    }
                }
                _ => 0,
            }
        }
    };
    (r, Effect::None)
}

/// GICR_IPRIORITYR<n> bytes `first..first + size` (one byte per INTID, at
/// `pa` onwards): the SGIs' from the virtual state, the guest's PPIs passed
/// to the hardware byte by byte, EL2's PPIs RAZ/WI. Safe on its own for any
/// `first` and `size`: INTIDs from 32 on do not exist in the SGI frame and
/// read as zero (the caller's alignment check keeps them out anyway, but an
/// access the fuzz found, a word at INTID 29, once shifted `1 << 32` here).
fn priority_bytes(
    v: &VirtRedist,
    hw: &mut dyn Hw,
    pa: u64,
    first: u32,
    size: u8,
    write: Option<u64>,
    guest_ppis: u32,
) -> u64 {
    let mut out = 0u64;
    for i in 0..u32::from(size.min(8)) {
        let Some(intid) = first.checked_add(i).filter(|&n| n < 32) else {
            break;
        };
        let byte_pa = pa + u64::from(i);
        let shift = 8 * i;
        if intid < 16 {
            let p = &v.sgi_priority[intid as usize];
            match write {
                Some(w) => p.store((w >> shift) as u8, Ordering::Relaxed),
                None => out |= (p.load(Ordering::Relaxed) as u64) << shift,
            }
        } else if guest_ppis & (1u32 << intid) != 0 {
            match write {
                Some(w) => hw.write(byte_pa, 1, (w >> shift) & 0xff),
                None => out |= hw.read(byte_pa, 1) << shift,
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The shift the fuzz found (`found_gic_misaligned_priority_word_overflows_shift`):
    /// a word of priorities starting at INTID 29 covers 29, 30, 31 and a
    /// 32nd that does not exist. Called directly, without the alignment
    /// check in front of it: no overflow (a panic in a debug build before),
    /// the three PPIs that exist are handled, nothing past INTID 31 is read
    /// or written.
    #[test]
    fn priority_word_past_intid_31_stops_at_31() {
        let v = VirtRedist::new();
        let mut hw = FakeHw::default();
        let base = 0x080a_0000 + 0x1_0400;
        let all = 0xffff_0000;
        priority_bytes(&v, &mut hw, base + 29, 29, 4, Some(0x4433_2211), all);
        assert_eq!(
            hw.writes,
            vec![
                (base + 29, 1, 0x11),
                (base + 30, 1, 0x22),
                (base + 31, 1, 0x33)
            ]
        );
        assert_eq!(
            priority_bytes(&v, &mut hw, base + 29, 29, 4, None, all),
            0x33_2211
        );
        assert_eq!(priority_bytes(&v, &mut hw, base + 32, 32, 4, None, all), 0);
        assert_eq!(
            priority_bytes(&v, &mut hw, 0, u32::MAX, 8, Some(!0), all),
            0
        );
        assert_eq!(hw.writes.len(), 3);
    }

    /// A byte-addressed fake GIC that records writes.
    #[derive(Default)]
    struct FakeHw {
        mem: HashMap<u64, u8>,
        writes: Vec<(u64, u8, u64)>,
    }

    impl Hw for FakeHw {
        fn read(&mut self, pa: u64, size: u8) -> u64 {
            (0..size as u64).fold(0, |acc, i| {
                acc | (*self.mem.get(&(pa + i)).unwrap_or(&0) as u64) << (8 * i)
            })
        }
        fn write(&mut self, pa: u64, size: u8, value: u64) {
            self.writes.push((pa, size, value));
            for i in 0..size as u64 {
                self.mem.insert(pa + i, (value >> (8 * i)) as u8);
            }
        }
    }

    fn layout() -> Layout {
        let mut redists = [0; MAX_CPUS];
        for (i, r) in redists.iter_mut().enumerate().take(4) {
            *r = 0x080a_0000 + i as u64 * REDIST_STRIDE;
        }
        Layout {
            gicd: Range::new(0x0800_0000, 0x1_0000),
            redists,
            cores: 4,
            trbe_intid: Some(31),
        }
    }

    fn rd(core: usize, offset: u64) -> Target {
        Target::Redistributor { core, offset }
    }

    #[test]
    fn locates_frames() {
        let l = layout();
        assert_eq!(l.locate(0x0800_0000), Some(Target::Distributor(0)));
        assert_eq!(l.locate(0x0800_ffff), Some(Target::Distributor(0xffff)));
        assert_eq!(l.locate(0x080a_0014), Some(rd(0, 0x14)));
        assert_eq!(l.locate(0x080c_0100 + 0x1_0000), Some(rd(1, 0x1_0100)));
        assert_eq!(
            l.locate(0x080a_0000 + 4 * REDIST_STRIDE),
            None,
            "no fifth core"
        );
        assert_eq!(l.locate(0x0900_0000), None);
    }

    #[test]
    fn the_hypervisor_sgi_cannot_be_disabled_or_regrouped() {
        let (l, v, mut hw) = (layout(), VirtGic::new(), FakeHw::default());
        emulate(&l, &v, &mut hw, rd(0, 0x1_0180), 4, Some(0xffff_ffff));
        emulate(&l, &v, &mut hw, rd(0, 0x1_0080), 4, Some(0));
        emulate(&l, &v, &mut hw, rd(0, 0x1_0400 + 12), 4, Some(0xffff_ffff));
        for (pa, size, value) in &hw.writes {
            let off = pa - 0x080a_0000;
            // No physical write touches SGI bits or SGI priority bytes.
            match off {
                0x1_0180 => assert_eq!(value & 0xffff, 0, "{value:#x}"),
                0x1_0400..=0x1_040f => panic!("SGI priority written: {off:#x} size {size}"),
                0x1_0080 => panic!("IGROUPR0 written"),
                _ => {}
            }
        }
        assert_eq!(
            emulate(&l, &v, &mut hw, rd(0, 0x1_0080), 4, None).0,
            0xffff_ffff
        );
        assert_eq!(
            emulate(&l, &v, &mut hw, rd(0, 0x1_0400 + 12), 4, None).0,
            0xffff_ffff
        );
    }

    #[test]
    fn maintenance_ppi_is_protected() {
        let (l, v, mut hw) = (layout(), VirtGic::new(), FakeHw::default());
        hw.write(0x080a_0000 + 0x1_0100, 4, 1 << 25);
        hw.writes.clear();
        emulate(&l, &v, &mut hw, rd(0, 0x1_0180), 4, Some(0xffff_0000));
        assert_eq!(
            hw.writes,
            vec![(
                0x080a_0000 + 0x1_0180,
                4,
                0xffff_0000 & !(1 << 25) & !(1 << 31)
            )]
        );
        emulate(&l, &v, &mut hw, rd(0, 0x1_0400 + 25), 1, Some(0xff));
        assert_eq!(hw.writes.len(), 1, "priority of PPI 25 untouched");
    }

    #[test]
    fn without_a_trbe_interrupt_no_ppi_is_taken_from_the_guest() {
        assert_eq!(guest_ppis(None), 0xffff_0000 & !(1 << MAINTENANCE_INTID));
        assert_eq!(guest_ppis(Some(31)) & (1 << 31), 0);
        let l = Layout {
            trbe_intid: None,
            ..layout()
        };
        let (v, mut hw) = (VirtGic::new(), FakeHw::default());
        for intid in [31u64, 22] {
            hw.writes.clear();
            emulate(&l, &v, &mut hw, rd(0, 0x1_0100), 4, Some(1 << intid));
            assert_eq!(hw.writes.len(), 1, "PPI {intid}'s enable is the guest's");
        }
    }

    #[test]
    fn trbe_ppi_is_protected() {
        // INTID 31 (FVP Base's binding), and one a device tree may name
        // instead (PPI 6): then INTID 31 is an ordinary guest PPI.
        for trbe in [31, 22] {
            let l = Layout {
                trbe_intid: Some(trbe),
                ..layout()
            };
            let (v, mut hw) = (VirtGic::new(), FakeHw::default());
            hw.write(0x080a_0000 + 0x1_0100, 4, 1 << trbe);
            hw.writes.clear();
            // Enable, disable, pending, active: the TRBE bit never reaches the GIC.
            for reg in [0x1_0100, 0x1_0180, 0x1_0200, 0x1_0280, 0x1_0300, 0x1_0380] {
                emulate(&l, &v, &mut hw, rd(0, reg), 4, Some(1 << trbe));
            }
            assert!(hw.writes.is_empty(), "{trbe}: {:x?}", hw.writes);
            // Priority and configuration.
            emulate(
                &l,
                &v,
                &mut hw,
                rd(0, 0x1_0400 + trbe as u64),
                1,
                Some(0x10),
            );
            assert!(hw.writes.is_empty(), "{trbe}: {:x?}", hw.writes);
            hw.write(0x080a_0000 + 0x1_0c04, 4, 0);
            hw.writes.clear();
            emulate(&l, &v, &mut hw, rd(0, 0x1_0c04), 4, Some(0xffff_ffff));
            let field = 0b11 << (2 * (trbe - 16));
            assert_eq!(hw.writes[0].2 & field, 0, "{trbe}: ICFGR1 field kept");
            // The guest does not see it enabled either.
            let (r, _) = emulate(&l, &v, &mut hw, rd(0, 0x1_0100), 4, None);
            assert_eq!(r & (1 << trbe), 0, "{trbe}");
            // Another PPI is the guest's to enable.
            let other = if trbe == 31 { 22 } else { 31 };
            hw.writes.clear();
            emulate(&l, &v, &mut hw, rd(0, 0x1_0100), 4, Some(1 << other));
            assert_eq!(hw.writes.len(), 1, "{trbe}: PPI {other} enable passed on");
        }
    }

    #[test]
    fn sgi_enable_is_virtual_and_ppi_enable_is_physical() {
        let (l, v, mut hw) = (layout(), VirtGic::new(), FakeHw::default());
        let (_, e) = emulate(&l, &v, &mut hw, rd(2, 0x1_0100), 4, Some((1 << 27) | 0xff));
        assert_eq!(e, Effect::SgiEnabled(2));
        assert_eq!(v.redist[2].sgi_enable.load(Ordering::Relaxed), 0xff);
        assert_eq!(
            hw.writes,
            vec![(0x080a_0000 + 2 * REDIST_STRIDE + 0x1_0100, 4, 1 << 27)]
        );
        let (r, _) = emulate(&l, &v, &mut hw, rd(2, 0x1_0100), 4, None);
        assert_eq!(r, (1 << 27) | 0xff);
        emulate(&l, &v, &mut hw, rd(2, 0x1_0180), 4, Some(0x0f));
        assert_eq!(v.redist[2].sgi_enable.load(Ordering::Relaxed), 0xf0);
    }

    #[test]
    fn waker_is_virtual() {
        let (l, v, mut hw) = (layout(), VirtGic::new(), FakeHw::default());
        assert_eq!(
            emulate(&l, &v, &mut hw, rd(1, 0x14), 4, None).0,
            0b110,
            "asleep at reset"
        );
        emulate(&l, &v, &mut hw, rd(1, 0x14), 4, Some(0));
        assert_eq!(emulate(&l, &v, &mut hw, rd(1, 0x14), 4, None).0, 0);
        emulate(&l, &v, &mut hw, rd(1, 0x14), 4, Some(0b10));
        assert_eq!(emulate(&l, &v, &mut hw, rd(1, 0x14), 4, None).0, 0b110);
        assert!(hw.writes.is_empty(), "the physical WAKER is never written");
    }

    #[test]
    fn distributor_ctlr_is_virtual_and_spis_pass_through() {
        let (l, v, mut hw) = (layout(), VirtGic::new(), FakeHw::default());
        emulate(&l, &v, &mut hw, Target::Distributor(0), 4, Some(0));
        assert_eq!(
            emulate(&l, &v, &mut hw, Target::Distributor(0), 4, None).0,
            (CTLR_ARE | CTLR_DS) as u64
        );
        emulate(&l, &v, &mut hw, Target::Distributor(0), 4, Some(0x12));
        assert_eq!(
            emulate(&l, &v, &mut hw, Target::Distributor(0), 4, None).0,
            0x52
        );
        assert!(hw.writes.is_empty());
        emulate(&l, &v, &mut hw, Target::Distributor(0x104), 4, Some(1 << 1)); // ISENABLER1: SPI 33
        emulate(
            &l,
            &v,
            &mut hw,
            Target::Distributor(0x6100 + 8),
            8,
            Some(0x3),
        ); // IROUTER33
        emulate(&l, &v, &mut hw, Target::Distributor(0x421), 1, Some(0xa0)); // IPRIORITYR byte of SPI 33
        assert_eq!(
            hw.writes,
            vec![
                (0x0800_0104, 4, 2),
                (0x0800_6108, 8, 3),
                (0x0800_0421, 1, 0xa0)
            ]
        );
        // Group registers never reach the hardware.
        emulate(&l, &v, &mut hw, Target::Distributor(0x84), 4, Some(0));
        assert_eq!(hw.writes.len(), 3);
    }

    #[test]
    fn lpis_are_hidden_and_odd_sizes_are_raz_wi() {
        let (l, v, mut hw) = (layout(), VirtGic::new(), FakeHw::default());
        hw.write(0x0800_0004, 4, 0x3_ffff);
        hw.write(0x080a_0008, 8, 0x0000_0001_0000_000b);
        hw.writes.clear();
        assert_eq!(
            emulate(&l, &v, &mut hw, Target::Distributor(4), 4, None).0,
            0xffff
        );
        assert_eq!(
            emulate(&l, &v, &mut hw, rd(0, 8), 8, None).0,
            0x0000_0001_0000_0000
        );
        assert_eq!(
            emulate(&l, &v, &mut hw, Target::Distributor(0x104), 2, Some(0xffff)).0,
            0
        );
        assert_eq!(
            emulate(&l, &v, &mut hw, rd(0, 0x70), 8, Some(0x1234)).0,
            0,
            "PROPBASER is WI"
        );
        assert!(hw.writes.is_empty());
    }
}

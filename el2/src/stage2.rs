//! Stage-2 translation tables: what of the machine the guest may touch.
//!
//! The guest's stage 2 is an identity map (IPA = PA) of its RAM and of the
//! devices passed through to it (`grant`), built with `aarch64-paging`'s
//! stage-2 regime. Everything else, above all the hypervisor's own memory,
//! the emulated devices (GIC, console UART) and every device that is not
//! granted, stays unmapped: the guest's access faults to EL2, which
//! emulates it or injects an abort.
//!
//! 4 KiB granule, 39-bit IPA (VTCR_EL2.T0SZ = 25), walk starting at level 1
//! (SL0 = 1). The crate picks 1 GiB or 2 MiB blocks where a range is
//! aligned and 4 KiB pages elsewhere, so a passed-through device that
//! shares a 2 MiB block with devices that are not (QEMU virt's RTC beside
//! its UART, fw_cfg and GPIO) is mapped as its own pages only.

extern crate alloc;

use aarch64_paging::descriptor::Stage2Attributes as A;
use aarch64_paging::idmap::IdMap;
use aarch64_paging::paging::{MemoryRegion, Stage2 as Regime};

use crate::platform::Range;

/// Largest IPA + 1 this layout translates (T0SZ = 25).
pub const IPA_LIMIT: u64 = 1 << 39;

/// VTCR_EL2 for this layout: T0SZ = 25, SL0 = 1 (start at level 1),
/// IRGN0/ORGN0 = write-back, SH0 = inner, TG0 = 4 KiB, PS = 40 bits,
/// RES1 bit 31.
pub const VTCR: u64 =
    25 | (1 << 6) | (1 << 8) | (1 << 10) | (0b11 << 12) | (0b010 << 16) | (1 << 31);

/// The level the walk starts at (VTCR_EL2.SL0 = 1 with a 4 KiB granule).
const ROOT_LEVEL: usize = 1;

/// How the guest sees a mapped range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memory {
    /// Normal write-back memory, inner shareable: RAM.
    Normal,
    /// Device-nGnRE, never executable: a passed-through device.
    Device,
}

impl Memory {
    fn attributes(self) -> A {
        let common = A::VALID | A::ACCESS_FLAG | A::S2AP_ACCESS_RW;
        match self {
            Memory::Normal => {
                common | A::MEMATTR_NORMAL_INNER_WB | A::MEMATTR_NORMAL_OUTER_WB | A::SH_INNER
            }
            Memory::Device => common | A::MEMATTR_DEVICE_nGnRE | A::XN,
        }
    }
}

/// Errors building the tables. Only the boot path builds them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The range is not 4 KiB aligned, is empty or leaves the IPA space.
    BadRange(Range),
    /// The range overlaps something already mapped (its first address).
    Overlap(u64),
    /// The table library refused the mapping (out of memory, for one).
    Refused(Range),
}

/// A stage-2 address space. Tables are never freed: the guest's map lives
/// as long as the hypervisor.
#[derive(Debug)]
pub struct Stage2 {
    map: IdMap<Regime>,
}

// SAFETY: a `Stage2` owns its tables (heap pages reached only through
// `map`), so moving it to another core moves sole ownership with it.
unsafe impl Send for Stage2 {}
// SAFETY: the only `&self` methods read descriptors, which the crate keeps
// as atomics; every change goes through `&mut self`, which the boot core
// alone holds, before the map is shared.
unsafe impl Sync for Stage2 {}

impl Default for Stage2 {
    fn default() -> Self {
        Self::new()
    }
}

impl Stage2 {
    /// An empty address space: every access faults.
    pub fn new() -> Stage2 {
        Stage2 {
            map: IdMap::new(ROOT_LEVEL, Regime),
        }
    }

    /// The physical address of the level-1 table, for VTTBR_EL2. Valid
    /// because the hypervisor's own memory is identity mapped.
    pub fn root_address(&self) -> u64 {
        self.map.root_address().0 as u64
    }

    /// Number of translation tables, the root included: the map's memory
    /// cost is this times 4 KiB.
    pub fn table_count(&self) -> usize {
        // The walk reports leaves (and empty entries) with their level; a
        // leaf below the root lives in a table that covers 512 entries of
        // its level: count those tables once each.
        let mut tables = alloc::collections::BTreeSet::new();
        let all = MemoryRegion::new(0, IPA_LIMIT as usize);
        let _ = self.map.walk_range(&all, &mut |r, _, level| {
            if level > ROOT_LEVEL {
                tables.insert((level, r.start().0 >> (12 + 9 * (4 - level))));
            }
            Ok(())
        });
        1 + tables.len()
    }

    /// Maps `range` to the same physical addresses with `memory` attributes.
    /// The range must be whole 4 KiB pages inside the IPA space and must not
    /// overlap anything mapped before.
    pub fn map(&mut self, range: Range, memory: Memory) -> Result<(), MapError> {
        let end = range
            .base
            .checked_add(range.size)
            .filter(|&end| end <= IPA_LIMIT);
        let Some(end) = end.filter(|_| {
            range.size != 0 && range.base.is_multiple_of(4096) && range.size.is_multiple_of(4096)
        }) else {
            return Err(MapError::BadRange(range));
        };
        if let Some(at) = self.first_mapped(range) {
            return Err(MapError::Overlap(at));
        }
        let region = MemoryRegion::new(range.base as usize, end as usize);
        self.map
            .map_range(&region, memory.attributes())
            .map_err(|_| MapError::Refused(range))
    }

    /// The first address of `range` that is already mapped, if any.
    fn first_mapped(&self, range: Range) -> Option<u64> {
        let region = MemoryRegion::new(range.base as usize, range.end() as usize);
        let mut first = None;
        let _ = self.map.walk_range(&region, &mut |r, d, level| {
            if d.is_valid() && (level == 3 || !d.is_table_or_page()) && first.is_none() {
                first = Some((r.start().0 as u64).max(range.base));
            }
            Ok(())
        });
        first
    }

    /// Walks the tables as the MMU would: the attributes `ipa` is mapped
    /// with, or `None` if an access to it faults.
    pub fn translate(&self, ipa: u64) -> Option<Memory> {
        if ipa >= IPA_LIMIT {
            return None;
        }
        let region = MemoryRegion::new(ipa as usize, ipa as usize + 1);
        let mut found = None;
        let _ = self.map.walk_range(&region, &mut |r, d, level| {
            let leaf = level == 3 || !d.is_table_or_page();
            if d.is_valid() && leaf {
                let block = 4096usize << (9 * (3 - level));
                debug_assert_eq!(d.output_address().0, r.start().0 & !(block - 1), "identity");
                let attrs = d.flags();
                found = Some(if attrs.contains(A::MEMATTR_NORMAL_INNER_WB) {
                    Memory::Normal
                } else {
                    Memory::Device
                });
            }
            Ok(())
        });
        found
    }
}

/// The guest's stage 2: its RAM (rounded out to pages) as Normal memory and
/// the devices `grant` passes through as Device memory; nothing else. The
/// hypervisor's memory is not in it (`dtb::validate_guest` checked the
/// guest's RAM does not overlap it), nor the emulated GIC and UART frames.
pub fn for_guest(ram: &[Range], grant: &crate::grant::Grant) -> Result<Stage2, MapError> {
    let mut s2 = Stage2::new();
    for r in ram {
        s2.map(page_aligned(*r), Memory::Normal)?;
    }
    for d in grant.passed_through() {
        s2.map(d.range, Memory::Device)?;
    }
    Ok(s2)
}

/// Rounds `r` out to whole 4 KiB pages.
pub fn page_aligned(r: Range) -> Range {
    let base = r.base & !0xfff;
    let end = r.end().saturating_add(0xfff) & !0xfff;
    Range::new(base, end - base)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn ram_and_devices_translate_and_holes_fault() {
        let mut s2 = Stage2::new();
        // Guest RAM after a 64 MiB hypervisor reservation, as on QEMU virt.
        s2.map(Range::new(0x4400_0000, 0x3c00_0000), Memory::Normal)
            .unwrap();
        // QEMU virt's RTC page, alone in the 2 MiB block it shares with the
        // UART, fw_cfg and the GPIO.
        s2.map(Range::new(0x0901_0000, 0x1000), Memory::Device)
            .unwrap();
        assert_eq!(s2.translate(0x4400_0000), Some(Memory::Normal));
        assert_eq!(s2.translate(0x7fff_ffff), Some(Memory::Normal));
        assert_eq!(s2.translate(0x4008_0000), None, "hypervisor image");
        assert_eq!(s2.translate(0x43ff_ffff), None, "hypervisor reservation");
        assert_eq!(s2.translate(0x8000_0000), None, "past RAM");
        assert_eq!(s2.translate(0x0901_0000), Some(Memory::Device));
        assert_eq!(s2.translate(0x0901_0fff), Some(Memory::Device));
        assert_eq!(s2.translate(0x0900_0000), None, "UART (emulated)");
        assert_eq!(s2.translate(0x0902_0000), None, "fw_cfg");
        assert_eq!(s2.translate(0x0902_0010), None, "fw_cfg DMA register");
        assert_eq!(s2.translate(0x0903_0000), None, "GPIO");
        assert_eq!(s2.translate(0x0800_0000), None, "GIC distributor");
        assert_eq!(s2.translate(0x0a00_0000), None, "virtio-mmio");
        assert_eq!(s2.translate(0), None, "flash");
        assert_eq!(s2.translate(IPA_LIMIT), None);
    }

    #[test]
    fn uses_large_blocks_where_aligned() {
        let mut s2 = Stage2::new();
        s2.map(Range::new(GIB, 2 * GIB), Memory::Normal).unwrap();
        assert_eq!(s2.table_count(), 1, "two 1 GiB blocks need only the root");
        s2.map(Range::new(3 * GIB + 2 * MIB, 4 * MIB), Memory::Normal)
            .unwrap();
        assert_eq!(s2.table_count(), 2, "2 MiB blocks need one level-2 table");
        s2.map(Range::new(3 * GIB + 8 * MIB + 4096, 4096), Memory::Device)
            .unwrap();
        assert_eq!(s2.table_count(), 3, "a page needs a level-3 table");
        assert_eq!(s2.translate(3 * GIB + 8 * MIB + 4096), Some(Memory::Device));
        assert_eq!(s2.translate(3 * GIB + 8 * MIB), None);
        assert_eq!(s2.translate(3 * GIB + 8 * MIB + 8192), None);
    }

    #[test]
    fn rejects_overlap_and_bad_ranges() {
        let mut s2 = Stage2::new();
        s2.map(Range::new(GIB, 2 * MIB), Memory::Normal).unwrap();
        assert_eq!(
            s2.map(Range::new(GIB + 4096, 4096), Memory::Normal),
            Err(MapError::Overlap(GIB + 4096))
        );
        assert_eq!(
            s2.map(Range::new(GIB - 4096, 8192), Memory::Device),
            Err(MapError::Overlap(GIB))
        );
        assert_eq!(
            s2.map(Range::new(GIB, 4096), Memory::Normal),
            Err(MapError::Overlap(GIB))
        );
        for bad in [
            Range::new(1, 4096),
            Range::new(0, 0),
            Range::new(0, 100),
            Range::new(IPA_LIMIT - 4096, 8192),
            Range::new(u64::MAX - 4095, 4096),
        ] {
            assert_eq!(s2.map(bad, Memory::Normal), Err(MapError::BadRange(bad)));
        }
        // Nothing of a refused range was mapped.
        assert_eq!(s2.translate(0), None);
        assert_eq!(s2.translate(GIB - 4096), None);
    }

    #[test]
    fn the_guest_gets_its_ram_and_passed_through_devices_only() {
        use crate::grant::{Access, Device, Grant};
        let mut g = Grant::new();
        for (device, access, r) in [
            (
                Device::Gic,
                Access::Emulated,
                Range::new(0x0800_0000, 0x1_0000),
            ),
            (
                Device::Gic,
                Access::Emulated,
                Range::new(0x080a_0000, 0xf6_0000),
            ),
            (
                Device::Uart,
                Access::Emulated,
                Range::new(0x0900_0000, 0x1000),
            ),
            (
                Device::Rtc,
                Access::PassThrough,
                Range::new(0x0901_0000, 0x1000),
            ),
        ] {
            g.add(device, access, r).unwrap();
        }
        let s2 = for_guest(&[Range::new(0x4400_0000, 0x3c00_0000)], &g).unwrap();
        assert_eq!(s2.translate(0x4400_0000), Some(Memory::Normal));
        assert_eq!(s2.translate(0x0901_0000), Some(Memory::Device));
        for emulated_or_not_granted in [0x0800_0000, 0x080a_0000, 0x0900_0000, 0x0902_0010, 0] {
            assert_eq!(s2.translate(emulated_or_not_granted), None);
        }
        // Guest RAM that overlaps a passed-through device cannot be built.
        let clash = for_guest(&[Range::new(0x0900_0000, 0x10_0000)], &g);
        assert_eq!(clash.err(), Some(MapError::Overlap(0x0901_0000)));
    }

    #[test]
    fn rounding_out_to_pages() {
        assert_eq!(
            page_aligned(Range::new(0x0901_0010, 0x10)),
            Range::new(0x0901_0000, 0x1000)
        );
        assert_eq!(
            page_aligned(Range::new(0x0901_0ff0, 0x20)),
            Range::new(0x0901_0000, 0x2000)
        );
        assert_eq!(
            page_aligned(Range::new(0x4000, 0x1000)),
            Range::new(0x4000, 0x1000)
        );
    }
}

//! Stage-2 translation tables: what of the machine the guest may touch.
//!
//! The guest's stage 2 is an identity map (IPA = PA) of its RAM and of the
//! MMIO it may use directly. Everything else, above all the hypervisor's own
//! memory and the GIC frames that EL2 filters, stays unmapped: the guest's
//! access faults to EL2, which emulates it or injects an abort.
//!
//! 4 KiB granule, 39-bit IPA (VTCR_EL2.T0SZ = 25), walk starting at level 1
//! (SL0 = 1). Blocks of 1 GiB or 2 MiB are used where a range is aligned,
//! 4 KiB pages elsewhere.

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::dtb::Range;

const VALID: u64 = 1 << 0;
const TABLE: u64 = 1 << 1;
const PAGE: u64 = 1 << 1;
const AF: u64 = 1 << 10;
const SH_INNER: u64 = 0b11 << 8;
const S2AP_RW: u64 = 0b11 << 6;
const XN: u64 = 1 << 54;
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;

/// Largest IPA + 1 this layout translates (T0SZ = 25).
pub const IPA_LIMIT: u64 = 1 << 39;

/// VTCR_EL2 for this layout: T0SZ = 25, SL0 = 1 (start at level 1),
/// IRGN0/ORGN0 = write-back, SH0 = inner, TG0 = 4 KiB, PS = 40 bits,
/// RES1 bit 31.
pub const VTCR: u64 =
    25 | (1 << 6) | (1 << 8) | (1 << 10) | (0b11 << 12) | (0b010 << 16) | (1 << 31);

/// How the guest sees a mapped range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memory {
    /// Normal write-back memory (stage 2 MemAttr 0b1111): RAM.
    Normal,
    /// Device-nGnRE, never executable (MemAttr 0b0001): MMIO.
    Device,
}

impl Memory {
    const fn attributes(self) -> u64 {
        match self {
            Memory::Normal => (0b1111 << 2) | S2AP_RW | SH_INNER | AF,
            Memory::Device => (0b0001 << 2) | S2AP_RW | AF | XN,
        }
    }
}

/// Errors building the tables. Only the boot path builds them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The range is not 4 KiB aligned, is empty or leaves the IPA space.
    BadRange(Range),
    /// The range overlaps something already mapped.
    Overlap(u64),
}

/// A translation table: 512 descriptors, 4 KiB aligned.
#[repr(C, align(4096))]
struct Table([u64; 512]);

impl Table {
    fn new() -> Box<Table> {
        Box::new(Table([0; 512]))
    }
}

/// A stage-2 address space under construction. Tables are never freed: the
/// guest's map lives as long as the hypervisor.
pub struct Stage2 {
    root: Box<Table>,
    /// Every table below the root, owned here so their addresses stay valid.
    tables: Vec<Box<Table>>,
}

impl core::fmt::Debug for Stage2 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Stage2 {{ root: {:#x}, tables: {} }}",
            self.root_address(),
            self.tables.len() + 1
        )
    }
}

const fn level_shift(level: usize) -> u32 {
    (12 + 9 * (3 - level)) as u32
}

impl Default for Stage2 {
    fn default() -> Self {
        Self::new()
    }
}

impl Stage2 {
    /// An empty address space: every access faults.
    pub fn new() -> Stage2 {
        Stage2 {
            root: Table::new(),
            tables: Vec::new(),
        }
    }

    /// The physical address of the level-1 table, for VTTBR_EL2. Valid
    /// because the hypervisor's own memory is identity mapped.
    pub fn root_address(&self) -> u64 {
        &*self.root as *const Table as u64
    }

    /// Number of tables, the root included: the map's memory cost is this
    /// times 4 KiB.
    pub fn table_count(&self) -> usize {
        self.tables.len() + 1
    }

    /// Maps `range` to the same physical addresses with `memory` attributes.
    pub fn map(&mut self, range: Range, memory: Memory) -> Result<(), MapError> {
        if range.size == 0
            || !range.base.is_multiple_of(4096)
            || !range.size.is_multiple_of(4096)
            || range
                .base
                .checked_add(range.size)
                .is_none_or(|end| end > IPA_LIMIT)
        {
            return Err(MapError::BadRange(range));
        }
        let mut addr = range.base;
        let end = range.base + range.size;
        while addr < end {
            // The largest block that is aligned and fits; level 1 is the root.
            let level = (1..=3)
                .find(|&l| {
                    let size = 1u64 << level_shift(l);
                    addr.is_multiple_of(size) && end - addr >= size
                })
                .unwrap_or(3);
            self.set(addr, level, memory)?;
            addr += 1 << level_shift(level);
        }
        Ok(())
    }

    fn set(&mut self, addr: u64, target: usize, memory: Memory) -> Result<(), MapError> {
        let mut table: *mut Table = &mut *self.root;
        for level in 1..=target {
            let index = ((addr >> level_shift(level)) & 0x1ff) as usize;
            // SAFETY: `table` is the root or a table owned by `self.tables`,
            // all live for `self`'s lifetime and reached only through `&mut self`.
            let entry = unsafe { &mut (*table).0[index] };
            if level == target {
                if *entry & VALID != 0 {
                    return Err(MapError::Overlap(addr));
                }
                let kind = if level == 3 { PAGE } else { 0 };
                *entry = addr | VALID | kind | memory.attributes();
                return Ok(());
            }
            if *entry & VALID == 0 {
                let mut next = Table::new();
                let pa = &mut *next as *mut Table;
                self.tables.push(next);
                *entry = pa as u64 | VALID | TABLE;
            } else if *entry & TABLE == 0 {
                return Err(MapError::Overlap(addr));
            }
            table = (*entry & ADDR_MASK) as *mut Table;
        }
        Ok(())
    }

    /// Walks the tables as the MMU would: the attributes `ipa` is mapped
    /// with, or `None` if an access to it faults.
    pub fn translate(&self, ipa: u64) -> Option<Memory> {
        if ipa >= IPA_LIMIT {
            return None;
        }
        let mut table: *const Table = &*self.root;
        for level in 1..=3 {
            // SAFETY: as in `set`: every table reachable from the root is
            // owned by `self` and alive while `&self` is.
            let d = unsafe { (*table).0[((ipa >> level_shift(level)) & 0x1ff) as usize] };
            if d & VALID == 0 {
                return None;
            }
            if level < 3 && d & TABLE != 0 {
                table = (d & ADDR_MASK) as *const Table;
                continue;
            }
            let out = d & ADDR_MASK & !((1u64 << level_shift(level)) - 1);
            debug_assert_eq!(out, ipa & !((1u64 << level_shift(level)) - 1));
            return Some(if (d >> 2) & 0xf == 0b1111 {
                Memory::Normal
            } else {
                Memory::Device
            });
        }
        None
    }
}

/// Subtracts `hole` from `range`, giving the parts before and after it.
pub fn split_around(range: Range, hole: Range) -> [Option<Range>; 2] {
    if !range.overlaps(&hole) {
        return [Some(range), None];
    }
    let before = (hole.base > range.base).then(|| Range::new(range.base, hole.base - range.base));
    let after =
        (hole.end() < range.end()).then(|| Range::new(hole.end(), range.end() - hole.end()));
    [before, after]
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
        // MMIO below the GIC and above it.
        s2.map(Range::new(0, 0x0800_0000), Memory::Device).unwrap();
        s2.map(Range::new(0x0900_0000, 0x3700_0000), Memory::Device)
            .unwrap();
        assert_eq!(s2.translate(0x4400_0000), Some(Memory::Normal));
        assert_eq!(s2.translate(0x7fff_ffff), Some(Memory::Normal));
        assert_eq!(s2.translate(0x4008_0000), None, "hypervisor image");
        assert_eq!(s2.translate(0x43ff_ffff), None, "hypervisor reservation");
        assert_eq!(s2.translate(0x8000_0000), None, "past RAM");
        assert_eq!(s2.translate(0x0900_0000), Some(Memory::Device));
        assert_eq!(s2.translate(0x0800_0000), None, "GIC distributor");
        assert_eq!(s2.translate(0x080a_0000), None, "GIC redistributors");
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
            s2.map(Range::new(GIB, 4096), Memory::Normal),
            Err(MapError::Overlap(GIB))
        );
        for bad in [
            Range::new(1, 4096),
            Range::new(0, 0),
            Range::new(0, 100),
            Range::new(IPA_LIMIT - 4096, 8192),
        ] {
            assert_eq!(s2.map(bad, Memory::Normal), Err(MapError::BadRange(bad)));
        }
    }

    #[test]
    fn split_around_a_hole() {
        let r = Range::new(0, 0x4000_0000);
        let gic = Range::new(0x0800_0000, 0x0020_0000);
        assert_eq!(
            split_around(r, gic),
            [
                Some(Range::new(0, 0x0800_0000)),
                Some(Range::new(0x0820_0000, 0x37e0_0000))
            ]
        );
        assert_eq!(
            split_around(r, Range::new(0x5000_0000, 4096)),
            [Some(r), None]
        );
        assert_eq!(split_around(gic, r), [None, None]);
    }
}

//! The hypervisor's own address space: a static identity map at EL2.
//!
//! boot/entry.S installs it before the first line of Rust runs, because
//! Rust code needs Normal memory (unaligned accesses, exclusives) which the
//! MMU-off state does not give. 4 KiB granule, 39-bit addresses (T0SZ = 25),
//! one level-1 table of 1 GiB blocks, laid out for the platform the image is
//! built for (the map must exist before any device tree can be read):
//!
//! | platform | Device-nGnRE, execute-never | Normal write-back |
//! |---|---|---|
//! | QEMU virt (default) | 0..1 GiB: GIC, PL011, flash, virtio | 1..16 GiB: RAM from 0x4000_0000 |
//! | FVP Base (`fvp`) | 0..2 GiB: flash, IOFPGA peripherals (PL011 at 0x1c09_0000), CoreSight, GIC (0x2f00_0000), PCIe windows | 2..4 GiB: DRAM from 0x8000_0000; 34..40 GiB: DRAM from 0x8_8000_0000 |
//!
//! The two cannot share one map: 1..2 GiB is RAM on QEMU and PCIe space on
//! FVP. Everything else is unmapped, so a stray EL2 access faults. At boot
//! the hypervisor checks its device tree against this map ([`covers`]): its
//! UART and GIC must be Device, its own memory, its device trees and the
//! guest's RAM Normal; an image built for the other platform stops with a
//! message instead of faulting later.
/// MAIR index of Device-nGnRE.
pub const ATTR_DEVICE: u64 = 0;
/// MAIR index of Normal, inner and outer write-back, read/write-allocate.
pub const ATTR_NORMAL: u64 = 1;

const VALID: u64 = 1 << 0;
const AF: u64 = 1 << 10;
const SH_INNER: u64 = 0b11 << 8;
const XN: u64 = 1 << 54;
const GIB: u64 = 1 << 30;

/// One stretch of the identity map: `count` 1 GiB blocks from block `first`,
/// all with MAIR index `attr`.
#[derive(Clone, Copy, Debug)]
pub struct Region {
    /// Index of the first 1 GiB block.
    pub first: usize,
    /// Number of blocks.
    pub count: usize,
    /// [`ATTR_DEVICE`] or [`ATTR_NORMAL`].
    pub attr: u64,
}

/// QEMU virt: MMIO below 1 GiB, RAM from 1 GiB (15 GiB of it mapped).
pub const QEMU_VIRT: [Region; 2] = [
    Region {
        first: 0,
        count: 1,
        attr: ATTR_DEVICE,
    },
    Region {
        first: 1,
        count: 15,
        attr: ATTR_NORMAL,
    },
];

/// FVP Base (Base Platform memory map): peripherals and PCIe windows below
/// 2 GiB, DRAM at 0x8000_0000 (2 GiB) and at 0x8_8000_0000 (up to 6 GiB).
pub const FVP_BASE: [Region; 3] = [
    Region {
        first: 0,
        count: 2,
        attr: ATTR_DEVICE,
    },
    Region {
        first: 2,
        count: 2,
        attr: ATTR_NORMAL,
    },
    Region {
        first: 34,
        count: 6,
        attr: ATTR_NORMAL,
    },
];

/// The layout this image is built with.
#[cfg(not(feature = "fvp"))]
pub const PLATFORM: &[Region] = &QEMU_VIRT;
/// The layout this image is built with.
#[cfg(feature = "fvp")]
pub const PLATFORM: &[Region] = &FVP_BASE;

/// A level-1 table, 4 KiB aligned as TTBR0_EL2 requires.
#[repr(C, align(4096))]
#[derive(Debug)]
pub struct Table(pub [u64; 512]);

const fn block_1g(index: usize, attr: u64) -> u64 {
    let pa = index as u64 * GIB;
    if attr == ATTR_DEVICE {
        pa | VALID | AF | (ATTR_DEVICE << 2) | XN
    } else {
        pa | VALID | AF | SH_INNER | (ATTR_NORMAL << 2)
    }
}

/// The level-1 table of `regions`.
pub const fn idmap(regions: &[Region]) -> Table {
    let mut t = [0u64; 512];
    let mut r = 0;
    while r < regions.len() {
        let mut i = regions[r].first;
        while i < regions[r].first + regions[r].count {
            t[i] = block_1g(i, regions[r].attr);
            i += 1;
        }
        r += 1;
    }
    Table(t)
}

/// The identity map TTBR0_EL2 points at.
#[no_mangle]
pub static EL2_IDMAP: Table = idmap(PLATFORM);

/// MAIR_EL2: index 0 Device-nGnRE (0x04), index 1 Normal WB RWA (0xff).
#[no_mangle]
pub static EL2_MAIR: u64 = 0x04 | (0xff << 8);

/// TCR_EL2: T0SZ = 25, IRGN0/ORGN0 = WB-RWA, SH0 = inner, TG0 = 4 KiB,
/// PS = 40 bits (1 TiB), RES1 bits 23 and 31.
#[no_mangle]
pub static EL2_TCR: u64 =
    25 | (1 << 8) | (1 << 10) | (0b11 << 12) | (0b010 << 16) | (1 << 23) | (1 << 31);

/// SCTLR_EL2: M, C, I, SA, with the RES1 bits of the E2H = 0 layout
/// (4, 5, 11, 16, 18, 22, 23, 28, 29). Alignment checking (A) stays off.
#[no_mangle]
pub static EL2_SCTLR: u64 = (1 << 0) | (1 << 2) | (1 << 3) | (1 << 12) | 0x30c5_0830;

/// Describes the attribute the identity map gives `pa`, for tests and logs.
pub fn attribute_of(pa: u64) -> Option<u64> {
    attribute_in(&EL2_IDMAP, pa)
}

fn attribute_in(table: &Table, pa: u64) -> Option<u64> {
    let d = table.0.get((pa / GIB) as usize).copied()?;
    if d & VALID == 0 {
        return None;
    }
    Some((d >> 2) & 0b111)
}

/// Whether every byte of `[base, base + size)` is mapped with MAIR index
/// `attr` by this image's identity map. An empty range is covered.
pub fn covers(base: u64, size: u64, attr: u64) -> bool {
    covers_in(&EL2_IDMAP, base, size, attr)
}

fn covers_in(table: &Table, base: u64, size: u64, attr: u64) -> bool {
    if size == 0 {
        return true;
    }
    let Some(last) = base.checked_add(size - 1) else {
        return false;
    };
    (base / GIB..=last / GIB).all(|b| attribute_in(table, b * GIB) == Some(attr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_virt_mmio_is_device_and_ram_is_normal() {
        let t = idmap(&QEMU_VIRT);
        assert_eq!(attribute_in(&t, 0x0900_0000), Some(ATTR_DEVICE)); // PL011
        assert_eq!(attribute_in(&t, 0x0800_0000), Some(ATTR_DEVICE)); // GICD
        assert_eq!(attribute_in(&t, 0x080a_0000), Some(ATTR_DEVICE)); // GICR
        assert_eq!(attribute_in(&t, 0x4008_0000), Some(ATTR_NORMAL));
        assert_eq!(attribute_in(&t, 0x3_ffff_ffff), Some(ATTR_NORMAL));
        assert_eq!(attribute_in(&t, 0x4_0000_0000), None);
        assert!(covers_in(&t, 0x4000_0000, 3 << 30, ATTR_NORMAL));
        assert!(!covers_in(&t, 0x3fff_f000, 0x2000, ATTR_NORMAL));
    }

    #[test]
    fn fvp_base_mmio_is_device_and_dram_is_normal() {
        let t = idmap(&FVP_BASE);
        assert_eq!(attribute_in(&t, 0x1c09_0000), Some(ATTR_DEVICE)); // PL011 UART0
        assert_eq!(attribute_in(&t, 0x2f00_0000), Some(ATTR_DEVICE)); // GICD
        assert_eq!(attribute_in(&t, 0x2f10_0000), Some(ATTR_DEVICE)); // GICR
        assert_eq!(attribute_in(&t, 0x4000_0000), Some(ATTR_DEVICE)); // PCIe, not RAM
        assert_eq!(attribute_in(&t, 0x8008_0000), Some(ATTR_NORMAL)); // the image
        assert!(covers_in(&t, 0x8000_0000, 0x7f00_0000, ATTR_NORMAL)); // DRAM below the secure 16 MiB
        assert!(covers_in(&t, 0x8_8000_0000, 6 << 30, ATTR_NORMAL));
        assert!(!covers_in(&t, 0x7fff_f000, 0x2000, ATTR_NORMAL));
        assert_eq!(attribute_in(&t, 0x1_0000_0000), None);
        // The QEMU image's RAM would be Device here: the boot check catches
        // an image run on the wrong platform.
        assert!(!covers_in(&t, 0x4008_0000, 0x1000, ATTR_NORMAL));
    }

    #[test]
    fn covers_is_exact_at_the_edges() {
        let t = idmap(&QEMU_VIRT);
        assert!(covers_in(&t, 0x1234, 0, ATTR_NORMAL));
        assert!(!covers_in(&t, u64::MAX - 4, 16, ATTR_NORMAL));
        assert!(covers_in(&t, 0x3_ffff_fff0, 16, ATTR_NORMAL));
        assert!(!covers_in(&t, 0x3_ffff_fff0, 17, ATTR_NORMAL));
    }

    #[test]
    fn blocks_are_identity_and_accessed() {
        for layout in [&QEMU_VIRT[..], &FVP_BASE[..]] {
            let t = idmap(layout);
            let mapped: usize = layout.iter().map(|r| r.count).sum();
            assert_eq!(t.0.iter().filter(|&&d| d != 0).count(), mapped);
            for (i, d) in t.0.iter().enumerate().filter(|(_, &d)| d != 0) {
                assert_eq!(d & 0x0000_ffff_c000_0000, i as u64 * GIB);
                assert_eq!(d & 0b11, 0b01, "level-1 block descriptor");
                assert_ne!(d & AF, 0);
                let device = (d >> 2) & 0b111 == ATTR_DEVICE;
                assert_eq!(device, d & XN != 0, "Device blocks are execute-never");
            }
        }
    }

    #[test]
    fn this_build_uses_its_platform() {
        assert_eq!(EL2_IDMAP.0, idmap(PLATFORM).0);
    }

    #[test]
    fn control_registers() {
        assert_eq!(EL2_TCR & 0x3f, 25);
        assert_eq!((EL2_TCR >> 14) & 0b11, 0, "4 KiB granule");
        assert_eq!(EL2_SCTLR & 0b1101, 0b1101, "M, C and SA on");
        assert_eq!(EL2_SCTLR & 0b10, 0, "no alignment faults");
        assert_ne!(EL2_SCTLR & (1 << 12), 0, "I-cache on");
    }
}

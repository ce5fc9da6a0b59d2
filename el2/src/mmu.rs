//! The hypervisor's own address space: a static identity map at EL2.
//!
//! boot/entry.S installs it before the first line of Rust runs, because
//! Rust code needs Normal memory (unaligned accesses, exclusives) which the
//! MMU-off state does not give. 4 KiB granule, 39-bit addresses (T0SZ = 25),
//! one level-1 table of 1 GiB blocks: the first GiB (QEMU virt's and most
//! SoCs' MMIO) as Device-nGnRE, the next 15 GiB (RAM) as Normal write-back.

/// MAIR index of Device-nGnRE.
pub const ATTR_DEVICE: u64 = 0;
/// MAIR index of Normal, inner and outer write-back, read/write-allocate.
pub const ATTR_NORMAL: u64 = 1;

const VALID: u64 = 1 << 0;
const AF: u64 = 1 << 10;
const SH_INNER: u64 = 0b11 << 8;
const XN: u64 = 1 << 54;
const GIB: u64 = 1 << 30;
/// How much of the address space is RAM-capable in the map: 1..16 GiB.
pub const MAPPED_GIB: usize = 16;

/// A level-1 table, 4 KiB aligned as TTBR0_EL2 requires.
#[repr(C, align(4096))]
#[derive(Debug)]
pub struct Table(pub [u64; 512]);

const fn block_1g(index: usize) -> u64 {
    let pa = index as u64 * GIB;
    if index == 0 {
        pa | VALID | AF | (ATTR_DEVICE << 2) | XN
    } else {
        pa | VALID | AF | SH_INNER | (ATTR_NORMAL << 2)
    }
}

const fn idmap() -> Table {
    let mut t = [0u64; 512];
    let mut i = 0;
    while i < MAPPED_GIB {
        t[i] = block_1g(i);
        i += 1;
    }
    Table(t)
}

/// The identity map TTBR0_EL2 points at.
#[no_mangle]
pub static EL2_IDMAP: Table = idmap();

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
    let d = EL2_IDMAP.0.get((pa / GIB) as usize).copied()?;
    if d & VALID == 0 {
        return None;
    }
    Some((d >> 2) & 0b111)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmio_is_device_and_ram_is_normal() {
        assert_eq!(attribute_of(0x0900_0000), Some(ATTR_DEVICE));
        assert_eq!(attribute_of(0x0800_0000), Some(ATTR_DEVICE));
        assert_eq!(attribute_of(0x4008_0000), Some(ATTR_NORMAL));
        assert_eq!(attribute_of(0x3_ffff_ffff), Some(ATTR_NORMAL));
        assert_eq!(attribute_of(0x4_0000_0000), None);
    }

    #[test]
    fn blocks_are_identity_and_accessed() {
        for (i, d) in EL2_IDMAP.0.iter().enumerate().take(MAPPED_GIB) {
            assert_eq!(d & 0x0000_ffff_c000_0000, i as u64 * GIB);
            assert_eq!(d & 0b11, 0b01, "level-1 block descriptor");
            assert_ne!(d & AF, 0);
        }
        assert!(EL2_IDMAP.0[MAPPED_GIB..].iter().all(|&d| d == 0));
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

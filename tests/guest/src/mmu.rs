//! The guest's stage-1 translation: a static identity map, one level-1
//! table of 1 GiB blocks (4 KiB granule, T0SZ = 25: 39-bit VA, the walk
//! starts at level 1).
//!
//! | VA = PA               | memory                                  |
//! |-----------------------|-----------------------------------------|
//! | 0 .. 1 GiB            | Device-nGnRE, execute-never (GIC, UART) |
//! | 1 GiB .. 4 GiB        | Normal write-back, inner shareable      |
//! | 4 GiB .. 512 GiB      | Device-nGnRE, execute-never             |
//!
//! The same map serves QEMU virt (RAM from 1 GiB) and FVP Base (peripherals
//! below 1 GiB, guest RAM from 0x8400_0000): on FVP the 1..2 GiB stretch is
//! PCIe space that the hypervisor's stage 2 maps as Device (the stricter
//! attribute wins) and the guest never touches.
//!
//! The table is built at compile time and lives in `.rodata`, so every core
//! can turn its MMU on before it has written anything to memory.

/// MAIR_EL1: attribute 0 = Device-nGnRE, attribute 1 = Normal, inner and
/// outer write-back non-transient, read- and write-allocate.
pub const MAIR: u64 = 0x04 | (0xff << 8);

const ATTR_DEVICE: u64 = 0 << 2;
const ATTR_NORMAL: u64 = 1 << 2;
/// Descriptor bits [1:0] = 0b01: a block.
const BLOCK: u64 = 0b01;
/// SH = 0b11: inner shareable.
const INNER_SHAREABLE: u64 = 0b11 << 8;
/// The access flag, set so that no access faults for it.
const AF: u64 = 1 << 10;
/// Privileged and unprivileged execute-never.
const XN: u64 = (1 << 53) | (1 << 54);

/// TCR_EL1 without IPS (filled in at boot from ID_AA64MMFR0_EL1.PARange):
/// T0SZ = 25, IRGN0 = ORGN0 = write-back write-allocate, SH0 = inner,
/// TG0 = 4 KiB; TTBR1 walks disabled (EPD1, with T1SZ = 25, TG1 = 4 KiB).
pub const TCR: u64 =
    25 | (0b01 << 8) | (0b01 << 10) | (0b11 << 12) | (25 << 16) | (1 << 23) | (0b10 << 30);

/// SCTLR_EL1 with the MMU and both caches on, alignment checks off
/// (A, SA, SA0 clear), WFI/WFE not trapped at EL0, and the bits that are
/// RES1 in Armv8.0 (EOS, TSCXT, EIS, SPAN, nTLSMD, LSMAOE) set.
pub const SCTLR: u64 = (1 << 0) // M
    | (1 << 2) // C
    | (1 << 11) // EOS
    | (1 << 12) // I
    | (1 << 16) // nTWI
    | (1 << 18) // nTWE
    | (1 << 20) // TSCXT
    | (1 << 22) // EIS
    | (1 << 23) // SPAN
    | (1 << 28) // nTLSMD
    | (1 << 29); // LSMAOE

/// A translation table: 512 descriptors, 4 KiB aligned.
#[repr(C, align(4096))]
#[derive(Debug)]
pub struct Table(pub [u64; 512]);

/// The level-1 table that TTBR0_EL1 points at on every core.
pub static PAGE_TABLE: Table = Table(identity_map());

const GIB: u64 = 1 << 30;

const fn identity_map() -> [u64; 512] {
    let mut t = [0u64; 512];
    t[0] = BLOCK | ATTR_DEVICE | AF | XN;
    let mut i = 1;
    while i < 4 {
        t[i] = (i as u64 * GIB) | BLOCK | ATTR_NORMAL | INNER_SHAREABLE | AF;
        i += 1;
    }
    // The rest of the 39-bit space as Device, so that `test=grant` can
    // reach every device window a machine has (QEMU virt's PCIe ECAM sits
    // at 256 GiB); what the hypervisor does not map faults at stage 2.
    while i < 512 {
        t[i] = (i as u64 * GIB) | BLOCK | ATTR_DEVICE | AF | XN;
        i += 1;
    }
    t
}

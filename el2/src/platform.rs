//! What the hypervisor knows of the machine that every part of it uses:
//! physical address ranges and the limits on CPUs and memory ranges. The
//! device tree reader ([`crate::dtb`]) fills them in; stage 2, the grant,
//! the GIC emulation, the trace buffers and the boot assembly (which sizes
//! its stacks by [`MAX_CPUS`]) read them. This module depends on nothing
//! else in the crate.

use core::fmt;

/// Most CPUs a [`Platform`](crate::dtb::Platform) or
/// [`GuestLayout`](crate::dtb::GuestLayout) describes.
pub const MAX_CPUS: usize = 8;
/// Most memory ranges a [`Platform`](crate::dtb::Platform) or
/// [`GuestLayout`](crate::dtb::GuestLayout) describes.
pub const MAX_MEMORY_RANGES: usize = 8;
/// The affinity fields of MPIDR_EL1 (Aff3 in bits 39:32, Aff2..Aff0 in bits
/// 23:0). The Arm CPU binding puts exactly these bits in a cpu node's `reg`.
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// A physical address range `[base, base + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Range {
    /// First address of the range.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

impl Range {
    /// The range `[base, base + size)`.
    pub const fn new(base: u64, size: u64) -> Self {
        Self { base, size }
    }

    /// One past the last address, saturating at `u64::MAX`.
    pub const fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }

    /// Whether `addr` lies inside the range.
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr < self.end()
    }

    /// Whether all of `other` lies inside this range.
    pub fn contains_range(&self, other: &Range) -> bool {
        other.base >= self.base && other.end() <= self.end()
    }

    /// Whether the two ranges share at least one address; empty ranges
    /// overlap nothing.
    pub fn overlaps(&self, other: &Range) -> bool {
        self.size != 0 && other.size != 0 && self.base < other.end() && other.base < self.end()
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.base, self.end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_helpers() {
        let r = Range::new(0x1000, 0x1000);
        assert_eq!(r.end(), 0x2000);
        assert!(
            r.contains(0x1000) && r.contains(0x1fff) && !r.contains(0x2000) && !r.contains(0xfff)
        );
        assert!(r.contains_range(&r));
        assert!(r.contains_range(&Range::new(0x1800, 0x800)));
        assert!(!r.contains_range(&Range::new(0x1800, 0x801)));
        assert!(!r.contains_range(&Range::new(0xfff, 0x10)));
        assert!(r.overlaps(&Range::new(0x1fff, 1)) && r.overlaps(&Range::new(0, 0x1001)));
        assert!(!r.overlaps(&Range::new(0x2000, 1)) && !r.overlaps(&Range::new(0, 0x1000)));
        assert!(
            !r.overlaps(&Range::new(0x1800, 0)),
            "empty ranges overlap nothing"
        );
        assert_eq!(Range::new(u64::MAX - 1, 10).end(), u64::MAX);
        assert_eq!(format!("{r}"), "[0x1000, 0x2000)");
    }
}

//! Decoding of the guest's SGI requests (ICC_SGI1R_EL1 writes).

/// The hypervisor's own SGI. Linux uses SGIs 0..7 (up to 15 on newer
/// kernels for its own purposes only when free), and the guest's SGIs are
/// virtual here, so the physical SGI 15 is EL2's alone.
pub const HYP_SGI: u32 = 15;

/// The cores an ICC_SGI1R_EL1 value targets, as a bit mask of core indices
/// in `cpus` (MPIDRs in platform order), and the SGI's INTID. `me` is the
/// sender's index (excluded when IRM asks for "all but self").
pub fn targets(value: u64, cpus: &[u64], me: usize) -> (u32, u32) {
    let intid = ((value >> 24) & 0xf) as u32;
    let mut mask = 0u32;
    if value & (1 << 40) != 0 {
        for i in 0..cpus.len().min(32) {
            if i != me {
                mask |= 1 << i;
            }
        }
        return (intid, mask);
    }
    let aff3 = (value >> 48) & 0xff;
    let aff2 = (value >> 32) & 0xff;
    let aff1 = (value >> 16) & 0xff;
    let rs = (value >> 44) & 0xf;
    let list = value & 0xffff;
    for (i, &mpidr) in cpus.iter().enumerate().take(32) {
        let (c3, c2, c1, c0) = (
            (mpidr >> 32) & 0xff,
            (mpidr >> 16) & 0xff,
            (mpidr >> 8) & 0xff,
            mpidr & 0xff,
        );
        if c3 == aff3 && c2 == aff2 && c1 == aff1 && c0 >> 4 == rs && list & (1 << (c0 & 0xf)) != 0
        {
            mask |= 1 << i;
        }
    }
    (intid, mask)
}

/// The ICC_SGI1R_EL1 value that sends SGI `intid` to the core `mpidr`.
pub const fn sgi1r_for(mpidr: u64, intid: u32) -> u64 {
    let aff0 = mpidr & 0xff;
    ((mpidr >> 32) & 0xff) << 48
        | ((aff0 >> 4) << 44)
        | ((mpidr >> 16) & 0xff) << 32
        | ((intid as u64 & 0xf) << 24)
        | ((mpidr >> 8) & 0xff) << 16
        | (1 << (aff0 & 0xf))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPUS: [u64; 4] = [0x0, 0x1, 0x2, 0x3];

    #[test]
    fn target_list_selects_cores() {
        assert_eq!(targets(sgi1r_for(2, 1), &CPUS, 0), (1, 0b0100));
        assert_eq!(targets((3 << 24) | 0b1011, &CPUS, 0), (3, 0b1011));
        assert_eq!(targets(0b1_0000, &CPUS, 0), (0, 0), "Aff0 4 is no core");
    }

    #[test]
    fn broadcast_excludes_the_sender() {
        assert_eq!(targets((1 << 40) | (7 << 24), &CPUS, 2), (7, 0b1011));
    }

    #[test]
    fn affinity_levels_must_match() {
        let cpus = [0x0, 0x100, 0x1_0000_0000, 0x12];
        for (i, &m) in cpus.iter().enumerate() {
            assert_eq!(targets(sgi1r_for(m, 5), &cpus, 0), (5, 1 << i), "{m:#x}");
        }
    }
}

//! The guest's general-purpose registers as saved by the EL2 vectors.

/// The frame `boot/vectors.S` pushes on every exception from the guest and
/// restores before returning to it. The layout is fixed by that file.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestRegs {
    /// x0..x30.
    pub x: [u64; 31],
    /// ELR_EL2: where the guest resumes.
    pub elr: u64,
    /// SPSR_EL2: the guest's PSTATE.
    pub spsr: u64,
    _pad: u64,
}

/// PSTATE for entering the guest per the Linux arm64 boot protocol: EL1h,
/// D, A, I and F masked.
pub const SPSR_EL1H_MASKED: u64 = 0x3c5;

impl GuestRegs {
    /// A frame that enters the guest at `pc` in EL1h, interrupts masked,
    /// with `x0 = arg` and every other register zero.
    pub const fn entry(pc: u64, arg: u64) -> GuestRegs {
        let mut x = [0; 31];
        x[0] = arg;
        GuestRegs {
            x,
            elr: pc,
            spsr: SPSR_EL1H_MASKED,
            _pad: 0,
        }
    }

    /// Reads register `n` as an instruction names it: 31 is the zero register.
    pub const fn get(&self, n: u8) -> u64 {
        if n < 31 {
            self.x[n as usize]
        } else {
            0
        }
    }

    /// Writes register `n`; writes to 31 (the zero register) are discarded.
    pub fn set(&mut self, n: u8, value: u64) {
        if n < 31 {
            self.x[n as usize] = value;
        }
    }

    /// The function ID and first five arguments of an SMCCC call (x0..x5).
    pub const fn smccc_args(&self) -> [u64; 6] {
        [
            self.x[0], self.x[1], self.x[2], self.x[3], self.x[4], self.x[5],
        ]
    }
}

const _: () = assert!(core::mem::size_of::<GuestRegs>() == 34 * 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_register_reads_zero_and_ignores_writes() {
        let mut r = GuestRegs::entry(0x4420_0000, 0x4400_0000);
        r.set(31, 5);
        assert_eq!(r.get(31), 0);
        r.set(30, 7);
        assert_eq!(r.get(30), 7);
        assert_eq!(r.get(0), 0x4400_0000);
        assert_eq!(r.elr, 0x4420_0000);
    }
}

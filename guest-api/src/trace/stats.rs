//! TRACE_STATS: what a core's trace buffer took, lost and holds.

use crate::hyp;

/// TRACE_STATS x4: the buffer filled and collection stopped.
pub const STATS_FULL: u64 = 1 << 0;
/// TRACE_STATS x4: the buffer stopped on an error (TRBSR.EC in [`STATS_EC_MASK`]).
pub const STATS_ERROR: u64 = 1 << 1;
/// TRACE_STATS x4: the data comes from the QEMU model's instruction
/// source (every instruction the guest executed, `trace.source=insn`);
/// clear for the model's exceptions-only source and for real hardware.
pub const STATS_INSTRUCTIONS: u64 = 1 << 2;
/// TRACE_STATS x4: TRBSR_EL1.EC of the error, in bits `[13:8]`.
pub const STATS_EC_SHIFT: u32 = 8;
/// TRACE_STATS x4: mask of the EC field.
pub const STATS_EC_MASK: u64 = 0x3f << STATS_EC_SHIFT;

/// TRACE_STATS's answer (x1..x5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes the buffer took since TRACE_ENABLE.
    pub written: u64,
    /// Times the buffer wrapped (0 in fill mode).
    pub wraps: u64,
    /// Bytes lost because the buffer was full (where countable).
    pub lost: u64,
    /// [`STATS_FULL`], [`STATS_ERROR`] and the EC.
    pub flags: u64,
    /// Bytes TRACE_READ can return.
    pub available: u64,
}

impl Stats {
    /// x0..x5 of the successful answer.
    pub const fn to_registers(&self) -> [u64; 6] {
        [
            0,
            self.written,
            self.wraps,
            self.lost,
            self.flags,
            self.available,
        ]
    }

    /// Decodes x0..x5 as the guest receives them.
    pub fn from_registers(r: [u64; 6]) -> Result<Stats, hyp::Error> {
        if r[0] != 0 {
            return Err(hyp::Error::from_code(r[0] as i64).unwrap_or(hyp::Error::InvalidParameter));
        }
        Ok(Stats {
            written: r[1],
            wraps: r[2],
            lost: r[3],
            flags: r[4],
            available: r[5],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_round_trip_and_errors() {
        let s = Stats {
            written: 100,
            wraps: 0,
            lost: 7,
            flags: STATS_FULL,
            available: 100,
        };
        assert_eq!(s.to_registers(), [0, 100, 0, 7, STATS_FULL, 100]);
        assert_eq!(Stats::from_registers(s.to_registers()), Ok(s));
        assert_eq!(
            Stats::from_registers([(-5i64) as u64, 0, 0, 0, 0, 0]),
            Err(hyp::Error::TargetOff)
        );
        assert_eq!(
            STATS_EC_MASK & (STATS_FULL | STATS_ERROR | STATS_INSTRUCTIONS),
            0
        );
        assert_eq!((STATS_FULL | STATS_ERROR) & STATS_INSTRUCTIONS, 0);
    }
}

//! TRACE_READ: copying a core's trace data out to the guest (the crate's
//! documentation, "Trace data", has the rules).

use crate::hyp;

/// Largest TRACE_READ buffer (x4): 1 MiB.
pub const READ_MAX: u64 = 1 << 20;
/// Required alignment of TRACE_READ's guest buffer IPA (x3).
pub const READ_ALIGN: u64 = 8;

/// TRACE_READ's answer (x1..x3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadResult {
    /// Bytes copied into the guest buffer.
    pub copied: u64,
    /// The offset to read from next.
    pub next: u64,
    /// Bytes after `next` not yet read.
    pub remaining: u64,
}

impl ReadResult {
    /// x0..x3 of the successful answer.
    pub const fn to_registers(&self) -> [u64; 6] {
        [0, self.copied, self.next, self.remaining, 0, 0]
    }

    /// Decodes x0..x3 as the guest receives them.
    pub fn from_registers(r: [u64; 6]) -> Result<ReadResult, hyp::Error> {
        if r[0] != 0 {
            return Err(hyp::Error::from_code(r[0] as i64).unwrap_or(hyp::Error::InvalidParameter));
        }
        Ok(ReadResult {
            copied: r[1],
            next: r[2],
            remaining: r[3],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_round_trip_and_errors() {
        let r = ReadResult {
            copied: 4096,
            next: 8192,
            remaining: 12,
        };
        assert_eq!(r.to_registers(), [0, 4096, 8192, 12, 0, 0]);
        assert_eq!(ReadResult::from_registers(r.to_registers()), Ok(r));
        assert_eq!(
            ReadResult::from_registers([(-3i64) as u64, 1, 2, 3, 0, 0]),
            Err(hyp::Error::InvalidParameter)
        );
    }
}

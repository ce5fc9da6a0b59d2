//! What one core asks of another through its mailbox, as plain words.
//!
//! The caller validates and decodes the guest's call once (guest-api), so
//! a request that reaches the target is always well-formed; the target only
//! trusts words it can decode and answers NOT_SUPPORTED to anything else.

use guest_api::hyp::Error;
use guest_api::trace::TraceConfig;

/// A request to the core that owns the state it touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// PING, from core `from`.
    Ping {
        /// The requesting core.
        from: u64,
    },
    /// TRACE_ENABLE with a validated configuration.
    TraceEnable(TraceConfig),
    /// TRACE_DISABLE.
    TraceDisable,
    /// TRACE_STATUS.
    TraceStatus,
    /// TRACE_READ: copy trace data from `offset` to the guest's buffer
    /// (already checked against the guest's RAM by the caller).
    TraceRead { offset: u64, ipa: u64, size: u64 },
    /// TRACE_STATS.
    TraceStats,
    /// TRACE_IDREGS: the unit's ID registers, read by its own core.
    TraceIdRegs,
}

const PING: u64 = 1;
const ENABLE: u64 = 2;
const DISABLE: u64 = 3;
const STATUS: u64 = 4;
const READ: u64 = 5;
const STATS: u64 = 6;
const IDREGS: u64 = 7;

impl Request {
    /// The guest call's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Ping { .. } => "PING",
            Request::TraceEnable(_) => "TRACE_ENABLE",
            Request::TraceDisable => "TRACE_DISABLE",
            Request::TraceStatus => "TRACE_STATUS",
            Request::TraceRead { .. } => "TRACE_READ",
            Request::TraceStats => "TRACE_STATS",
            Request::TraceIdRegs => "TRACE_IDREGS",
        }
    }

    /// The four mailbox words.
    pub fn to_words(self) -> [u64; 4] {
        match self {
            Request::Ping { from } => [PING, from, 0, 0],
            Request::TraceEnable(cfg) => {
                let (c, start, end) = cfg.encode();
                [ENABLE, c, start, end]
            }
            Request::TraceDisable => [DISABLE, 0, 0, 0],
            Request::TraceStatus => [STATUS, 0, 0, 0],
            Request::TraceRead { offset, ipa, size } => [READ, offset, ipa, size],
            Request::TraceStats => [STATS, 0, 0, 0],
            Request::TraceIdRegs => [IDREGS, 0, 0, 0],
        }
    }

    /// Decodes mailbox words.
    pub fn from_words(w: [u64; 4]) -> Result<Request, Error> {
        Ok(match w[0] {
            PING => Request::Ping { from: w[1] },
            ENABLE => {
                Request::TraceEnable(TraceConfig::decode(w[1], w[2], w[3]).map_err(|e| e.error())?)
            }
            DISABLE => Request::TraceDisable,
            STATUS => Request::TraceStatus,
            READ => Request::TraceRead {
                offset: w[1],
                ipa: w[2],
                size: w[3],
            },
            STATS => Request::TraceStats,
            IDREGS => Request::TraceIdRegs,
            _ => return Err(Error::NotSupported),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let cfgs = [
            TraceConfig {
                el1: true,
                ..TraceConfig::default()
            },
            TraceConfig {
                el0: true,
                el1: true,
                timestamps: true,
                cycles: true,
                context_id: true,
                filter: Some((0x4420_0000, 0x4430_0000)),
                wrap: false,
            },
        ];
        let mut all = vec![
            Request::Ping { from: 3 },
            Request::TraceDisable,
            Request::TraceStatus,
            Request::TraceStats,
            Request::TraceIdRegs,
            Request::TraceRead {
                offset: 0x100,
                ipa: 0x4800_0000,
                size: 4096,
            },
        ];
        all.extend(cfgs.map(Request::TraceEnable));
        for r in all {
            assert_eq!(Request::from_words(r.to_words()), Ok(r));
        }
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(Request::from_words([0, 0, 0, 0]), Err(Error::NotSupported));
        assert_eq!(Request::from_words([99, 1, 2, 3]), Err(Error::NotSupported));
        assert_eq!(
            Request::from_words([ENABLE, 0, 0, 0]),
            Err(Error::InvalidParameter),
            "no exception level"
        );
    }
}

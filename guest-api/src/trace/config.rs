//! TRACE_ENABLE's config word and address filter (x2..x4), which
//! TRACE_STATUS also returns (x3..x5) for the active config.

use crate::hyp;

/// Config bit: trace the guest's EL0.
pub const CONFIG_EL0: u64 = 1 << 0;
/// Config bit: trace the guest's EL1.
pub const CONFIG_EL1: u64 = 1 << 1;
/// Config bit: timestamps.
pub const CONFIG_TIMESTAMPS: u64 = 1 << 2;
/// Config bit: cycle counting.
pub const CONFIG_CYCLES: u64 = 1 << 3;
/// Config bit: context-ID tracing.
pub const CONFIG_CONTEXT_ID: u64 = 1 << 4;
/// Config bit: trace only inside [x3, x4).
pub const CONFIG_ADDR_FILTER: u64 = 1 << 5;
/// Config bit: the core's trace buffer wraps (TRBE circular-buffer mode):
/// it keeps the newest data and never stops for being full; TRACE_STATS
/// counts the wraps and TRACE_READ returns the data oldest first. Without
/// it the buffer fills and stops (fill mode): the oldest data is kept,
/// TRACE_STATS sets [`STATS_FULL`](super::STATS_FULL) and counts what was lost where it can.
pub const CONFIG_WRAP: u64 = 1 << 6;
/// Every defined config bit.
pub const CONFIG_ALL: u64 = 0x7f;

/// Address filter bounds must be multiples of this (A64 instructions are 4 bytes).
pub const FILTER_ALIGN: u64 = 4;
/// The highest address filter end allowed: 2^48 (end is exclusive).
pub const FILTER_END_MAX: u64 = 1 << 48;

/// A validated trace configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TraceConfig {
    /// Trace the guest's EL0.
    pub el0: bool,
    /// Trace the guest's EL1.
    pub el1: bool,
    /// Emit timestamps.
    pub timestamps: bool,
    /// Emit cycle counts.
    pub cycles: bool,
    /// Trace context IDs (CONTEXTIDR_EL1).
    pub context_id: bool,
    /// Trace only addresses in [start, end).
    pub filter: Option<(u64, u64)>,
    /// The buffer wraps instead of filling and stopping ([`CONFIG_WRAP`]).
    pub wrap: bool,
}

/// Why a config word (with its filter bounds) is invalid. Every variant is
/// answered with INVALID_PARAMETER ([`ConfigError::error`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Bits outside [`CONFIG_ALL`] are set; the value holds those bits.
    UnknownBits(u64),
    /// Neither [`CONFIG_EL0`] nor [`CONFIG_EL1`] is set.
    NoExceptionLevel,
    /// [`CONFIG_ADDR_FILTER`] with start >= end, a bound not a multiple of
    /// [`FILTER_ALIGN`], or end > [`FILTER_END_MAX`].
    BadFilter,
}

impl ConfigError {
    /// The error returned in x0: always INVALID_PARAMETER.
    pub const fn error(self) -> hyp::Error {
        hyp::Error::InvalidParameter
    }
}

/// Is `[start, end)` a valid address filter?
pub const fn filter_valid(start: u64, end: u64) -> bool {
    start < end
        && start.is_multiple_of(FILTER_ALIGN)
        && end.is_multiple_of(FILTER_ALIGN)
        && end <= FILTER_END_MAX
}

impl TraceConfig {
    /// Decodes and validates TRACE_ENABLE's x2 (`config`), x3 (`start`) and
    /// x4 (`end`). `start` and `end` are ignored unless `config` has
    /// [`CONFIG_ADDR_FILTER`]. Checked in this order: unknown bits, no
    /// exception level, filter.
    pub const fn decode(config: u64, start: u64, end: u64) -> Result<TraceConfig, ConfigError> {
        let unknown = config & !CONFIG_ALL;
        if unknown != 0 {
            return Err(ConfigError::UnknownBits(unknown));
        }
        if config & (CONFIG_EL0 | CONFIG_EL1) == 0 {
            return Err(ConfigError::NoExceptionLevel);
        }
        let filter = if config & CONFIG_ADDR_FILTER != 0 {
            if !filter_valid(start, end) {
                return Err(ConfigError::BadFilter);
            }
            Some((start, end))
        } else {
            None
        };
        Ok(TraceConfig {
            el0: config & CONFIG_EL0 != 0,
            el1: config & CONFIG_EL1 != 0,
            timestamps: config & CONFIG_TIMESTAMPS != 0,
            cycles: config & CONFIG_CYCLES != 0,
            context_id: config & CONFIG_CONTEXT_ID != 0,
            filter,
            wrap: config & CONFIG_WRAP != 0,
        })
    }

    /// The registers that carry this config: (config word, filter start,
    /// filter end); start and end are 0 when there is no filter. These are
    /// x2..x4 of TRACE_ENABLE and x3..x5 of TRACE_STATUS.
    pub const fn encode(&self) -> (u64, u64, u64) {
        let mut word = 0;
        if self.el0 {
            word |= CONFIG_EL0;
        }
        if self.el1 {
            word |= CONFIG_EL1;
        }
        if self.timestamps {
            word |= CONFIG_TIMESTAMPS;
        }
        if self.cycles {
            word |= CONFIG_CYCLES;
        }
        if self.context_id {
            word |= CONFIG_CONTEXT_ID;
        }
        if self.wrap {
            word |= CONFIG_WRAP;
        }
        match self.filter {
            Some((start, end)) => (word | CONFIG_ADDR_FILTER, start, end),
            None => (word, 0, 0),
        }
    }

    /// Does the config trace anything: EL0 or EL1? Always true for a config
    /// that [`TraceConfig::decode`] returned.
    pub fn traces_anything(&self) -> bool {
        self.el0 || self.el1
    }

    /// Would the hypervisor accept this config (does it survive
    /// `encode` then `decode`)?
    pub const fn is_valid(&self) -> bool {
        let (word, start, end) = self.encode();
        TraceConfig::decode(word, start, end).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BITS: [u64; 7] = [
        CONFIG_EL0,
        CONFIG_EL1,
        CONFIG_TIMESTAMPS,
        CONFIG_CYCLES,
        CONFIG_CONTEXT_ID,
        CONFIG_ADDR_FILTER,
        CONFIG_WRAP,
    ];

    #[test]
    fn config_bits_are_distinct_and_make_up_config_all() {
        let mut all = 0;
        for (i, b) in BITS.into_iter().enumerate() {
            assert_eq!(b, 1 << i);
            assert_eq!(all & b, 0);
            all |= b;
        }
        assert_eq!(all, CONFIG_ALL);
    }

    #[test]
    fn every_single_bit() {
        let (s, e) = (0x4000_0000, 0x4000_1000);
        assert_eq!(
            TraceConfig::decode(CONFIG_EL0, s, e),
            Ok(TraceConfig {
                el0: true,
                ..Default::default()
            })
        );
        assert_eq!(
            TraceConfig::decode(CONFIG_EL1, s, e),
            Ok(TraceConfig {
                el1: true,
                ..Default::default()
            })
        );
        // The other bits alone trace no exception level.
        for b in [
            CONFIG_TIMESTAMPS,
            CONFIG_CYCLES,
            CONFIG_CONTEXT_ID,
            CONFIG_ADDR_FILTER,
            CONFIG_WRAP,
        ] {
            assert_eq!(
                TraceConfig::decode(b, s, e),
                Err(ConfigError::NoExceptionLevel),
                "{b:#x}"
            );
        }
        // Each with EL1 sets exactly its own field.
        let with = |b| TraceConfig::decode(CONFIG_EL1 | b, s, e).unwrap();
        let base = TraceConfig {
            el1: true,
            ..Default::default()
        };
        assert_eq!(
            with(CONFIG_TIMESTAMPS),
            TraceConfig {
                timestamps: true,
                ..base
            }
        );
        assert_eq!(
            with(CONFIG_CYCLES),
            TraceConfig {
                cycles: true,
                ..base
            }
        );
        assert_eq!(
            with(CONFIG_CONTEXT_ID),
            TraceConfig {
                context_id: true,
                ..base
            }
        );
        assert_eq!(
            with(CONFIG_ADDR_FILTER),
            TraceConfig {
                filter: Some((s, e)),
                ..base
            }
        );
        assert_eq!(with(CONFIG_WRAP), TraceConfig { wrap: true, ..base });
        for b in BITS {
            let (word, _, _) = with(b).encode();
            assert_eq!(word, CONFIG_EL1 | b);
        }
    }

    #[test]
    fn unknown_bits_are_refused_and_reported() {
        for bit in 7..64 {
            let b = 1u64 << bit;
            assert_eq!(
                TraceConfig::decode(CONFIG_EL1 | b, 0, 4),
                Err(ConfigError::UnknownBits(b))
            );
            // Unknown bits are reported before anything else.
            assert_eq!(
                TraceConfig::decode(b | CONFIG_ADDR_FILTER, 8, 4),
                Err(ConfigError::UnknownBits(b))
            );
        }
        assert_eq!(
            TraceConfig::decode(u64::MAX, 0, 4),
            Err(ConfigError::UnknownBits(!CONFIG_ALL))
        );
        assert_eq!(
            ConfigError::UnknownBits(1 << 6).error(),
            hyp::Error::InvalidParameter
        );
    }

    #[test]
    fn no_exception_level_is_refused() {
        for word in 0..=CONFIG_ALL {
            let r = TraceConfig::decode(word, 0x1000, 0x2000);
            if word & (CONFIG_EL0 | CONFIG_EL1) == 0 {
                assert_eq!(r, Err(ConfigError::NoExceptionLevel), "{word:#x}");
            } else {
                assert!(r.unwrap().traces_anything());
            }
        }
        assert_eq!(
            ConfigError::NoExceptionLevel.error(),
            hyp::Error::InvalidParameter
        );
        assert!(!TraceConfig::default().traces_anything());
        assert!(!TraceConfig::default().is_valid());
    }

    #[test]
    fn filter_bounds() {
        let f = CONFIG_EL0 | CONFIG_ADDR_FILTER;
        let ok = |s, e| TraceConfig::decode(f, s, e).map(|c| c.filter);
        assert_eq!(ok(0, 4), Ok(Some((0, 4))));
        assert_eq!(ok(0, FILTER_END_MAX), Ok(Some((0, FILTER_END_MAX))));
        assert_eq!(
            ok(FILTER_END_MAX - 4, FILTER_END_MAX),
            Ok(Some((FILTER_END_MAX - 4, FILTER_END_MAX)))
        );
        let bad = [
            (0, 0),                                   // empty
            (0x1000, 0x1000),                         // empty
            (0x2000, 0x1000),                         // start > end
            (0x1001, 0x2000),                         // start unaligned
            (0x1002, 0x2000),                         // start unaligned
            (0x1003, 0x2000),                         // start unaligned
            (0x1000, 0x2001),                         // end unaligned
            (0x1000, 0x2002),                         // end unaligned
            (0x1000, 0x2003),                         // end unaligned
            (0, FILTER_END_MAX + 4),                  // end > 2^48
            (FILTER_END_MAX, FILTER_END_MAX + 4),     // end > 2^48
            (0, !3u64),                               // end > 2^48
            (!3u64, !3u64),                           // empty and too high
            (FILTER_END_MAX - 4, FILTER_END_MAX - 4), // empty
        ];
        for (s, e) in bad {
            assert_eq!(ok(s, e), Err(ConfigError::BadFilter), "[{s:#x}, {e:#x})");
            assert!(!filter_valid(s, e));
        }
        assert_eq!(ConfigError::BadFilter.error(), hyp::Error::InvalidParameter);
    }

    #[test]
    fn x3_x4_are_ignored_without_filter() {
        for (s, e) in [(0, 0), (3, 1), (u64::MAX, 0), (0, u64::MAX), (8, 4)] {
            let c = TraceConfig::decode(CONFIG_EL1 | CONFIG_CYCLES, s, e).unwrap();
            assert_eq!(c.filter, None);
            assert_eq!(c.encode(), (CONFIG_EL1 | CONFIG_CYCLES, 0, 0));
        }
    }

    #[test]
    fn round_trip_over_every_combination() {
        let (s, e) = (0x4020_0000, 0x4040_0000);
        let mut valid = 0;
        for word in 0..=CONFIG_ALL {
            match TraceConfig::decode(word, s, e) {
                Ok(c) => {
                    valid += 1;
                    let (w, cs, ce) = c.encode();
                    assert_eq!(w, word);
                    if word & CONFIG_ADDR_FILTER != 0 {
                        assert_eq!((cs, ce), (s, e));
                    } else {
                        assert_eq!((cs, ce), (0, 0));
                    }
                    assert_eq!(TraceConfig::decode(w, cs, ce), Ok(c));
                    assert!(c.is_valid());
                    assert_eq!(c.el0, word & CONFIG_EL0 != 0);
                    assert_eq!(c.el1, word & CONFIG_EL1 != 0);
                    assert_eq!(c.timestamps, word & CONFIG_TIMESTAMPS != 0);
                    assert_eq!(c.cycles, word & CONFIG_CYCLES != 0);
                    assert_eq!(c.context_id, word & CONFIG_CONTEXT_ID != 0);
                    assert_eq!(c.wrap, word & CONFIG_WRAP != 0);
                }
                Err(err) => {
                    assert_eq!(err, ConfigError::NoExceptionLevel);
                    assert_eq!(word & (CONFIG_EL0 | CONFIG_EL1), 0);
                }
            }
        }
        // 3 of the 4 EL combinations are valid, times 32 for the other bits.
        assert_eq!(valid, 96);
    }

    #[test]
    fn invalid_structs_are_not_valid() {
        let c = TraceConfig {
            el1: true,
            filter: Some((8, 4)),
            ..Default::default()
        };
        assert!(!c.is_valid());
        let c = TraceConfig {
            el0: true,
            filter: Some((0, FILTER_END_MAX + 4)),
            ..Default::default()
        };
        assert!(!c.is_valid());
    }
}

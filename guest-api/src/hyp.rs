//! The vendor-specific hypervisor service (SMCCC owner 6): this hypervisor's
//! own calls, their function IDs, the service's error codes and the decoder
//! of every call. The table of calls, the errors, the revision history and
//! PING's path are in the crate's ABI document (`ABI.md`, the [crate]'s
//! documentation); the TRACE calls' codecs are in [`crate::trace`].

use crate::smccc::{FunctionId, Owner, Uid};
use crate::trace::{self, ConfigError, TraceConfig};

/// CALL_COUNT query of the service.
pub const CALL_COUNT: u32 = 0x8600_FF00;
/// CALL_UID query of the service.
pub const CALL_UID: u32 = 0x8600_FF01;
/// REVISION query of the service.
pub const REVISION: u32 = 0x8600_FF03;

/// Function number of ABI_VERSION (SMC64/HVC64 fast call, owner 6).
pub const ABI_VERSION: u32 = FunctionId::fast(true, Owner::VendorHyp, 0x0000).encode();
/// Function number of FEATURES.
pub const FEATURES: u32 = FunctionId::fast(true, Owner::VendorHyp, 0x0001).encode();
/// Function number of PING.
pub const PING: u32 = FunctionId::fast(true, Owner::VendorHyp, 0x0002).encode();

/// The calls of the service, for CALL_COUNT and FEATURES.
pub const CALLS: [u32; 9] = [
    ABI_VERSION,
    FEATURES,
    PING,
    trace::TRACE_ENABLE,
    trace::TRACE_DISABLE,
    trace::TRACE_STATUS,
    trace::TRACE_READ,
    trace::TRACE_STATS,
    trace::TRACE_IDREGS,
];

/// This hypervisor's identity: 08f433e7-b7bf-4fc8-b7aa-ccd84170f67c.
pub const UID: Uid = Uid([
    0x08, 0xf4, 0x33, 0xe7, 0xb7, 0xbf, 0x4f, 0xc8, 0xb7, 0xaa, 0xcc, 0xd8, 0x41, 0x70, 0xf6, 0x7c,
]);

/// Service revision reported by REVISION.
pub const REVISION_MAJOR: u64 = 1;
/// Service revision reported by REVISION.
pub const REVISION_MINOR: u64 = 2;
/// ABI_VERSION's answer: major 1, minor 2 (1.2 added TRACE_IDREGS and the
/// legacy per-CPU trace IDs; 1.1 added TRACE_READ, TRACE_STATS and
/// CONFIG_WRAP).
pub const ABI_VERSION_VALUE: u64 = (REVISION_MAJOR << 16) | REVISION_MINOR;

/// How long, in milliseconds of the generic counter, a call about another
/// core waits for that core before it gives up with TARGET_OFF (the
/// request was withdrawn, or never posted: nothing was done) or
/// HARDWARE_FAULT (the target took it and did not answer). A healthy
/// target answers in microseconds; this bound is for a core that stopped
/// answering (powered off behind PSCI's back, or stuck), and is generous
/// so that an 8-core QEMU on a loaded 2-CPU host never reaches it: there
/// the counter follows the host's clock while a vCPU may not run for over
/// a second (measured: with 1 s, healthy targets of the 8-core trace
/// stress timed out while two QEMUs and a build shared the host).
pub const TARGET_ANSWER_BOUND_MS: u64 = 10_000;

/// Errors of the service, returned as negative values in x0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
pub enum Error {
    /// Unknown function ID.
    NotSupported = -1,
    /// An argument names nothing valid (an unknown MPIDR, a bad address,
    /// an invalid trace config).
    InvalidParameter = -3,
    /// The call is valid but not allowed for this caller. Reserved: not
    /// produced yet.
    Denied = -4,
    /// The target core is powered off, going off, or did not take the
    /// request within [`TARGET_ANSWER_BOUND_MS`] (nothing was done).
    TargetOff = -5,
    /// The trace hardware did not do what was asked (a bounded wait gave
    /// up, or it refused a write); the core's trace is left disabled. Also:
    /// the target took the request but did not answer within
    /// [`TARGET_ANSWER_BOUND_MS`] (it may have been applied).
    HardwareFault = -6,
}

impl Error {
    /// The value returned in x0.
    pub const fn code(self) -> i64 {
        self as i64
    }

    /// The error a negative x0 stands for, if it is one of ours.
    pub const fn from_code(code: i64) -> Option<Error> {
        Some(match code {
            -1 => Error::NotSupported,
            -3 => Error::InvalidParameter,
            -4 => Error::Denied,
            -5 => Error::TargetOff,
            -6 => Error::HardwareFault,
            _ => return None,
        })
    }
}

/// A call of the service, decoded once from `x0..x5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// CALL_COUNT.
    CallCount,
    /// CALL_UID.
    CallUid,
    /// REVISION.
    Revision,
    /// ABI_VERSION.
    AbiVersion,
    /// FEATURES(function).
    Features { function: u32 },
    /// PING(target MPIDR).
    Ping { target: u64 },
    /// TRACE_ENABLE(target MPIDR, config). `config` is x2..x4 decoded; an
    /// `Err` is answered with INVALID_PARAMETER, whether or not the target
    /// is powered on (INVALID_PARAMETER takes precedence over TARGET_OFF).
    TraceEnable {
        target: u64,
        config: Result<TraceConfig, ConfigError>,
    },
    /// TRACE_DISABLE(target MPIDR).
    TraceDisable { target: u64 },
    /// TRACE_STATUS(target MPIDR).
    TraceStatus { target: u64 },
    /// TRACE_READ(target MPIDR, offset, guest IPA, size): arguments as
    /// given, validated by the hypervisor.
    TraceRead {
        target: u64,
        offset: u64,
        ipa: u64,
        size: u64,
    },
    /// TRACE_STATS(target MPIDR).
    TraceStats { target: u64 },
    /// TRACE_IDREGS(target MPIDR).
    TraceIdRegs { target: u64 },
}

impl Call {
    /// Decodes an owner-6 call from the guest's `x0..x5`; `None` for
    /// anything this ABI does not define.
    pub const fn decode(x: [u64; 6]) -> Option<Call> {
        if x[0] >> 32 != 0 {
            // SMCCC: bits [63:32] of a function ID are zero for 32-bit IDs;
            // tolerate nothing else for our own service.
            return None;
        }
        Some(match x[0] as u32 {
            CALL_COUNT => Call::CallCount,
            CALL_UID => Call::CallUid,
            REVISION => Call::Revision,
            ABI_VERSION => Call::AbiVersion,
            FEATURES => Call::Features {
                function: x[1] as u32,
            },
            PING => Call::Ping { target: x[1] },
            trace::TRACE_ENABLE => Call::TraceEnable {
                target: x[1],
                config: TraceConfig::decode(x[2], x[3], x[4]),
            },
            trace::TRACE_DISABLE => Call::TraceDisable { target: x[1] },
            trace::TRACE_STATUS => Call::TraceStatus { target: x[1] },
            trace::TRACE_READ => Call::TraceRead {
                target: x[1],
                offset: x[2],
                ipa: x[3],
                size: x[4],
            },
            trace::TRACE_STATS => Call::TraceStats { target: x[1] },
            trace::TRACE_IDREGS => Call::TraceIdRegs { target: x[1] },
            _ => return None,
        })
    }
}

impl Call {
    /// How many result registers, from x0 up, the call writes when it
    /// answers `x0`: the ones its row in the ABI lists, or x0 alone for an
    /// error (TRACE_ENABLE and TRACE_DISABLE always write x1, 0 on an
    /// error). The others keep the caller's values.
    pub const fn result_registers(&self, x0: u64) -> usize {
        let ok = x0 == 0;
        match self {
            Call::CallCount | Call::AbiVersion | Call::Features { .. } => 1,
            Call::Revision => 2,
            Call::CallUid => 4,
            Call::TraceEnable { config: Err(_), .. } => 1,
            Call::TraceEnable { .. } | Call::TraceDisable { .. } => 2,
            Call::Ping { .. } | Call::TraceRead { .. } if ok => 4,
            Call::TraceIdRegs { .. } if ok => 5,
            Call::TraceStatus { .. } | Call::TraceStats { .. } if ok => 6,
            Call::Ping { .. }
            | Call::TraceRead { .. }
            | Call::TraceStatus { .. }
            | Call::TraceStats { .. }
            | Call::TraceIdRegs { .. } => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_owner_six_fast_calls() {
        for id in CALLS {
            let f = FunctionId::decode(id as u64).unwrap();
            assert_eq!(f.owner, Owner::VendorHyp);
            assert!(f.fast && f.is_64);
        }
        assert_eq!(ABI_VERSION, 0xC600_0000);
        assert_eq!(FEATURES, 0xC600_0001);
        assert_eq!(PING, 0xC600_0002);
        assert_eq!(
            CALLS[3..],
            [
                0xC600_0010,
                0xC600_0011,
                0xC600_0012,
                0xC600_0013,
                0xC600_0014,
                0xC600_0015
            ]
        );
    }

    #[test]
    fn result_widths_follow_the_abi_table() {
        let ok = |x: [u64; 6]| Call::decode(x).unwrap().result_registers(0);
        let err = |x: [u64; 6]| {
            Call::decode(x)
                .unwrap()
                .result_registers(Error::InvalidParameter.code() as u64)
        };
        let id = |f: u32| [f as u64, 0, 0, 0, 0, 0];
        assert_eq!(ok(id(CALL_COUNT)), 1);
        assert_eq!(ok(id(CALL_UID)), 4);
        assert_eq!(ok(id(REVISION)), 2);
        assert_eq!(ok(id(ABI_VERSION)), 1);
        assert_eq!(ok(id(FEATURES)), 1);
        assert_eq!((ok(id(PING)), err(id(PING))), (4, 1));
        assert_eq!(
            (ok(id(trace::TRACE_READ)), err(id(trace::TRACE_READ))),
            (4, 1)
        );
        assert_eq!(
            (ok(id(trace::TRACE_STATUS)), err(id(trace::TRACE_STATUS))),
            (6, 1)
        );
        assert_eq!(
            (ok(id(trace::TRACE_STATS)), err(id(trace::TRACE_STATS))),
            (6, 1)
        );
        assert_eq!(
            (ok(id(trace::TRACE_IDREGS)), err(id(trace::TRACE_IDREGS))),
            (5, 1)
        );
        assert_eq!(
            (ok(id(trace::TRACE_DISABLE)), err(id(trace::TRACE_DISABLE))),
            (2, 2)
        );
        // A config word with reserved bits set does not decode: x0 only.
        let bad = [trace::TRACE_ENABLE as u64, 0, u64::MAX, 0, 0, 0];
        assert_eq!(err(bad), 1);
        let good = [trace::TRACE_ENABLE as u64, 0, 0b1, 0, 0, 0];
        assert!(
            matches!(
                Call::decode(good),
                Some(Call::TraceEnable { config: Ok(_), .. })
            ),
            "config 1 must decode"
        );
        assert_eq!((ok(good), err(good)), (2, 2));
    }

    #[test]
    fn decode_each_call() {
        assert_eq!(
            Call::decode([CALL_COUNT as u64, 0, 0, 0, 0, 0]),
            Some(Call::CallCount)
        );
        assert_eq!(
            Call::decode([CALL_UID as u64, 0, 0, 0, 0, 0]),
            Some(Call::CallUid)
        );
        assert_eq!(
            Call::decode([REVISION as u64, 0, 0, 0, 0, 0]),
            Some(Call::Revision)
        );
        assert_eq!(
            Call::decode([ABI_VERSION as u64, 0, 0, 0, 0, 0]),
            Some(Call::AbiVersion)
        );
        assert_eq!(
            Call::decode([FEATURES as u64, PING as u64, 0, 0, 0, 0]),
            Some(Call::Features { function: PING })
        );
        assert_eq!(
            Call::decode([PING as u64, 0x8000_0003, 0, 0, 0, 0]),
            Some(Call::Ping {
                target: 0x8000_0003
            })
        );
        assert_eq!(Call::decode([0xC600_0003, 0, 0, 0, 0, 0]), None);
        assert_eq!(Call::decode([0x1_C600_0000, 0, 0, 0, 0, 0]), None);
    }

    #[test]
    fn decode_trace_calls() {
        use crate::trace::{CONFIG_ADDR_FILTER, CONFIG_EL0, CONFIG_EL1, CONFIG_TIMESTAMPS};
        let cfg = CONFIG_EL1 | CONFIG_TIMESTAMPS | CONFIG_ADDR_FILTER;
        assert_eq!(
            Call::decode([trace::TRACE_ENABLE as u64, 0x100, cfg, 0x1000, 0x2000, 9]),
            Some(Call::TraceEnable {
                target: 0x100,
                config: Ok(TraceConfig {
                    el1: true,
                    timestamps: true,
                    filter: Some((0x1000, 0x2000)),
                    ..Default::default()
                })
            })
        );
        // x3/x4 are not read without ADDR_FILTER; x5 is never read.
        assert_eq!(
            Call::decode([trace::TRACE_ENABLE as u64, 1, CONFIG_EL0, 7, 3, 9]),
            Some(Call::TraceEnable {
                target: 1,
                config: Ok(TraceConfig {
                    el0: true,
                    ..Default::default()
                })
            })
        );
        // A bad config is still the TRACE_ENABLE call, carrying the error.
        assert_eq!(
            Call::decode([trace::TRACE_ENABLE as u64, 2, 1 << 7 | CONFIG_EL1, 0, 0, 0]),
            Some(Call::TraceEnable {
                target: 2,
                config: Err(ConfigError::UnknownBits(1 << 7))
            })
        );
        assert_eq!(
            Call::decode([trace::TRACE_ENABLE as u64, 2, CONFIG_TIMESTAMPS, 0, 0, 0]),
            Some(Call::TraceEnable {
                target: 2,
                config: Err(ConfigError::NoExceptionLevel)
            })
        );
        assert_eq!(
            Call::decode([trace::TRACE_ENABLE as u64, 2, cfg, 0x2000, 0x1000, 0]),
            Some(Call::TraceEnable {
                target: 2,
                config: Err(ConfigError::BadFilter)
            })
        );
        assert_eq!(
            Call::decode([trace::TRACE_DISABLE as u64, 0x8000_0101, 5, 5, 5, 5]),
            Some(Call::TraceDisable {
                target: 0x8000_0101
            })
        );
        assert_eq!(
            Call::decode([trace::TRACE_STATUS as u64, 3, 0, 0, 0, 0]),
            Some(Call::TraceStatus { target: 3 })
        );
        assert_eq!(
            Call::decode([trace::TRACE_IDREGS as u64, 0x101, 7, 7, 7, 7]),
            Some(Call::TraceIdRegs { target: 0x101 })
        );
        // Neighbours of the trace IDs, and the 32-bit forms, are not calls.
        for id in [0xC600_000Fu64, 0xC600_0016, 0x8600_0010, 0x8600_0015] {
            assert_eq!(Call::decode([id, 0, CONFIG_EL1, 0, 0, 0]), None, "{id:#x}");
        }
        assert_eq!(
            Call::decode([1 << 32 | trace::TRACE_STATUS as u64, 0, 0, 0, 0, 0]),
            None
        );
    }

    #[test]
    fn every_listed_call_decodes_and_nothing_else_in_range() {
        let mut count = 0;
        for n in 0..=0xffffu64 {
            for base in [0x8600_0000u64, 0xC600_0000] {
                let id = base | n;
                let known = Call::decode([id, 0, trace::CONFIG_EL1, 0, 0, 0]).is_some();
                let listed = CALLS.contains(&(id as u32))
                    || [CALL_COUNT, CALL_UID, REVISION].contains(&(id as u32));
                assert_eq!(known, listed, "{id:#x}");
                count += known as usize;
            }
        }
        assert_eq!(count, CALLS.len() + 3);
    }

    #[test]
    fn revision_is_1_2() {
        assert_eq!((REVISION_MAJOR, REVISION_MINOR), (1, 2));
        assert_eq!(ABI_VERSION_VALUE, 0x1_0002);
        assert_eq!(CALLS.len(), 9);
    }

    #[test]
    fn error_codes_round_trip() {
        for e in [
            Error::NotSupported,
            Error::InvalidParameter,
            Error::Denied,
            Error::TargetOff,
            Error::HardwareFault,
        ] {
            assert_eq!(Error::from_code(e.code()), Some(e));
        }
        assert_eq!(Error::from_code(0), None);
    }

    #[test]
    fn uid_is_not_all_zero_and_is_version_4() {
        assert_ne!(UID.0, [0; 16]);
        assert_eq!(UID.0[6] >> 4, 4);
    }
}

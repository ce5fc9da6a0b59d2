//! Property tests (host fuzzing) of the guest ABI decoders.
//!
//! Everything a guest can put in `x0..x5` goes through these decoders at
//! EL2, so each one must be total (no panic, whatever the registers) and
//! consistent: what it accepts re-encodes to the same registers, and what
//! an encoder produces decodes back to the same value.
//!
//! Each property runs a fixed number of generated inputs (the `*_CASES`
//! constants below) from a fixed seed, so runs are reproducible;
//! `PROPTEST_RNG_SEED=<u64>` explores another seed. Each property prints
//! one `fuzz:` line with the inputs it ran and passed on stderr (written
//! past the test harness's capture, so it shows in `cargo test`), and fails
//! unless exactly its `*_CASES` inputs passed (`tests/fuzz_harness.rs`).

use guest_api::hyp::{self, Error};
use guest_api::psci::{self, PowerState, PowerStateFormat, StateType};
use guest_api::smccc::{FunctionId, Owner, Uid};
use guest_api::trace::{
    self, filter_valid, parse_state, state_word, Backend, ConfigError, Hardware, Mode, Status,
    TraceConfig, CONFIG_ADDR_FILTER, CONFIG_ALL, CONFIG_EL0, CONFIG_EL1, FILTER_END_MAX,
    STATE_RESERVED_MASK,
};
use proptest::prelude::*;
use proptest::sample::select;

// ---------------------------------------------------------------- counts

/// `FunctionId::decode` over arbitrary x0.
const SMCCC_DECODE_CASES: u32 = 20_000;
/// `FunctionId::encode` then `decode`, over every owner, width and number.
const SMCCC_ROUND_TRIP_CASES: u32 = 10_000;
/// `Owner::from_number` / `number` over every u8.
const SMCCC_OWNER_CASES: u32 = 2_000;
/// `Uid::to_registers` / `from_registers`.
const SMCCC_UID_CASES: u32 = 5_000;
/// `psci::Call::decode` over arbitrary x0..x3.
const PSCI_DECODE_CASES: u32 = 20_000;
/// A PSCI call encoded into registers decodes back to itself.
const PSCI_ROUND_TRIP_CASES: u32 = 10_000;
/// `PowerState::parse` over arbitrary u32 in both formats.
const PSCI_POWER_STATE_CASES: u32 = 10_000;
/// `hyp::Call::decode` over arbitrary x0..x5.
const HYP_DECODE_CASES: u32 = 20_000;
/// A vendor-service call encoded into registers decodes back to itself.
const HYP_ROUND_TRIP_CASES: u32 = 10_000;
/// `hyp::Error::from_code` over arbitrary i64.
const HYP_ERROR_CASES: u32 = 5_000;
/// `TraceConfig::decode` over arbitrary x2..x4.
const TRACE_CONFIG_DECODE_CASES: u32 = 20_000;
/// Any `TraceConfig` value: `is_valid` and `encode` then `decode`.
const TRACE_CONFIG_ROUND_TRIP_CASES: u32 = 10_000;
/// `filter_valid` against the ABI's rule.
const TRACE_FILTER_CASES: u32 = 10_000;
/// `parse_state` / `state_word` over arbitrary state words.
const TRACE_STATE_WORD_CASES: u32 = 10_000;
/// `Status::from_registers` over arbitrary x0..x5.
const TRACE_STATUS_DECODE_CASES: u32 = 20_000;
/// Any `Status`: `to_registers` then `from_registers`.
const TRACE_STATUS_ROUND_TRIP_CASES: u32 = 10_000;

/// The default seed: a run is reproducible unless `PROPTEST_RNG_SEED` is set.
const SEED: u64 = 0x6775_6573_7461_7069; // "guestapi"

// ---------------------------------------------------------------- runner

#[path = "../../tests/fuzz_harness.rs"]
mod harness;
use harness::{fuzz, Hits};

// ---------------------------------------------------------------- inputs

/// A register value: uniformly random, or one of the values decoders
/// treat specially (0, small numbers, negative error codes, all ones,
/// single bits, filter bounds).
fn reg() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![
        4 => any::<u64>(),
        2 => 0u64..64,
        1 => (-8i64..0).prop_map(|v| v as u64),
        1 => (0u32..64).prop_map(|b| 1u64 << b),
        1 => select(vec![0, u64::MAX, u32::MAX as u64, FILTER_END_MAX, FILTER_END_MAX + 4]),
        1 => (0u64..=FILTER_END_MAX / 4).prop_map(|v| v * 4),
    ]
}

/// Every PSCI function ID this ABI knows.
const PSCI_IDS: [u32; 12] = psci::FUNCTION_IDS;

/// Every function ID of the vendor hypervisor service.
fn hyp_ids() -> Vec<u32> {
    let mut ids = hyp::CALLS.to_vec();
    ids.extend([hyp::CALL_COUNT, hyp::CALL_UID, hyp::REVISION]);
    ids
}

/// x0: random, a known ID (with or without junk in bits [63:32]), or a
/// known ID with one bit flipped (its neighbours in the ID space).
fn function_id(known: Vec<u32>) -> impl Strategy<Value = u64> + Clone {
    let ids = select(known);
    prop_oneof![
        2 => reg(),
        3 => ids.clone().prop_map(u64::from),
        1 => (ids.clone(), any::<u32>()).prop_map(|(id, hi)| u64::from(id) | u64::from(hi) << 32),
        2 => (ids, 0u32..64).prop_map(|(id, bit)| u64::from(id) ^ (1u64 << bit)),
    ]
}

/// A config word: random, any combination of the defined bits, or one of
/// those with an unknown bit added.
fn config_word() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![
        1 => any::<u64>(),
        4 => 0u64..=CONFIG_ALL,
        1 => (0u64..=CONFIG_ALL, 7u32..64).prop_map(|(w, b)| w | 1 << b),
    ]
}

/// Filter bounds: random, aligned anywhere below 2^48 (so valid pairs
/// are common), or at the edges.
fn bound() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![
        1 => any::<u64>(),
        3 => (0u64..=FILTER_END_MAX / 4).prop_map(|v| v * 4),
        1 => (0u64..64).prop_map(|d| FILTER_END_MAX.wrapping_add(d).wrapping_sub(32)),
        1 => 0u64..64,
    ]
}

/// Any `TraceConfig` value, valid or not.
fn any_trace_config() -> impl Strategy<Value = TraceConfig> + Clone {
    (any::<[bool; 5]>(), proptest::option::of((bound(), bound()))).prop_map(|(b, filter)| {
        TraceConfig {
            el0: b[0],
            el1: b[1],
            timestamps: b[2],
            cycles: b[3],
            context_id: b[4],
            filter,
            wrap: false,
        }
    })
}

/// A config `TraceConfig::decode` accepts.
fn valid_trace_config() -> impl Strategy<Value = TraceConfig> + Clone {
    (
        1u8..4,
        any::<[bool; 3]>(),
        proptest::option::of((0u64..FILTER_END_MAX / 4, 1u64..=FILTER_END_MAX / 4)),
    )
        .prop_map(|(els, b, filter)| TraceConfig {
            el0: els & 1 != 0,
            el1: els & 2 != 0,
            timestamps: b[0],
            cycles: b[1],
            context_id: b[2],
            filter: filter.map(|(a, b)| {
                let (lo, hi) = if a < b { (a, b) } else { (b, a + 1) };
                (lo * 4, hi.min(FILTER_END_MAX / 4) * 4)
            }),
            wrap: false,
        })
        .prop_filter("valid", TraceConfig::is_valid)
}

fn mode() -> impl Strategy<Value = Mode> + Clone {
    select(vec![Mode::Disabled, Mode::Enabled])
}

fn hardware() -> impl Strategy<Value = Hardware> + Clone {
    select(vec![Hardware::Stopped, Hardware::Tracing])
}

fn backend() -> impl Strategy<Value = Backend> + Clone {
    select(vec![Backend::Model, Backend::EteTrbe])
}

// ---------------------------------------------------------------- smccc

#[test]
fn smccc_function_id_decode() {
    let mut known = PSCI_IDS.to_vec();
    known.extend(hyp_ids());
    known.extend([
        guest_api::smccc::SMCCC_VERSION,
        guest_api::smccc::SMCCC_ARCH_FEATURES,
    ]);
    fuzz(
        "smccc::FunctionId::decode",
        SMCCC_DECODE_CASES,
        function_id(known),
        |x0| {
            let d = FunctionId::decode(x0);
            // SMCCC: bits [63:32] of x0 are ignored.
            prop_assert_eq!(d, FunctionId::decode(x0 & 0xffff_ffff));
            // Refused exactly when the reserved bits [23:16] are set.
            prop_assert_eq!(d.is_none(), x0 & 0x00ff_0000 != 0);
            if let Some(f) = d {
                // Lossless: encode gives back the low 32 bits.
                prop_assert_eq!(f.encode(), x0 as u32);
                prop_assert_eq!(f.fast, x0 & (1 << 31) != 0);
                prop_assert_eq!(f.is_64, x0 & (1 << 30) != 0);
                prop_assert_eq!(u64::from(f.owner.number()), (x0 >> 24) & 0x3f);
                prop_assert_eq!(f.number, x0 as u16);
            }
            Ok(())
        },
    );
}

#[test]
fn smccc_function_id_round_trip() {
    fuzz(
        "smccc::FunctionId round trip",
        SMCCC_ROUND_TRIP_CASES,
        (
            any::<bool>(),
            any::<bool>(),
            0u8..64,
            any::<u16>(),
            any::<u32>(),
        ),
        |(fast, is_64, owner, number, hi)| {
            let f = FunctionId {
                fast,
                is_64,
                owner: Owner::from_number(owner),
                number,
            };
            let id = f.encode();
            prop_assert_eq!(id & 0x00ff_0000, 0, "reserved bits stay clear");
            prop_assert_eq!(FunctionId::decode(u64::from(id)), Some(f));
            prop_assert_eq!(
                FunctionId::decode(u64::from(id) | u64::from(hi) << 32),
                Some(f)
            );
            if fast {
                prop_assert_eq!(FunctionId::fast(is_64, f.owner, number), f);
            }
            Ok(())
        },
    );
}

#[test]
fn smccc_owner_numbers() {
    fuzz(
        "smccc::Owner numbers",
        SMCCC_OWNER_CASES,
        any::<u8>(),
        |n| {
            let o = Owner::from_number(n);
            prop_assert_eq!(o.number(), n & 0x3f);
            prop_assert_eq!(Owner::from_number(o.number()), o);
            // Owners 0..=6 are named; `Other` only carries the rest.
            if let Owner::Other(m) = o {
                prop_assert!((7..64).contains(&m), "{:?}", o);
            } else {
                prop_assert!(n & 0x3f <= 6);
            }
            Ok(())
        },
    );
}

#[test]
fn smccc_uid_round_trip() {
    fuzz(
        "smccc::Uid round trip",
        SMCCC_UID_CASES,
        (any::<[u8; 16]>(), any::<[u32; 4]>()),
        |(bytes, hi)| {
            let uid = Uid(bytes);
            let regs = uid.to_registers();
            // The upper halves of x0..x3 are ignored.
            let wide: [u64; 4] =
                std::array::from_fn(|i| u64::from(regs[i]) | u64::from(hi[i]) << 32);
            prop_assert_eq!(Uid::from_registers(wide), uid);
            prop_assert_eq!(Uid::from_registers(wide).to_registers(), regs);
            Ok(())
        },
    );
}

// ---------------------------------------------------------------- psci

/// What `psci::Call::decode` must return, from the PSCI function table.
fn psci_reference(x: [u64; 4]) -> Option<psci::Call> {
    use psci::Call::*;
    let lo = |v: u64| v & 0xffff_ffff;
    Some(match x[0] as u32 {
        psci::VERSION => Version,
        psci::CPU_SUSPEND_32 => CpuSuspend {
            power_state: x[1] as u32,
            entry: lo(x[2]),
            context: lo(x[3]),
        },
        psci::CPU_SUSPEND_64 => CpuSuspend {
            power_state: x[1] as u32,
            entry: x[2],
            context: x[3],
        },
        psci::CPU_OFF => CpuOff,
        psci::CPU_ON_32 => CpuOn {
            target: lo(x[1]),
            entry: lo(x[2]),
            context: lo(x[3]),
        },
        psci::CPU_ON_64 => CpuOn {
            target: x[1],
            entry: x[2],
            context: x[3],
        },
        psci::AFFINITY_INFO_32 => AffinityInfo {
            target: lo(x[1]),
            lowest_level: x[2] as u32,
        },
        psci::AFFINITY_INFO_64 => AffinityInfo {
            target: x[1],
            lowest_level: x[2] as u32,
        },
        psci::MIGRATE_INFO_TYPE => MigrateInfoType,
        psci::SYSTEM_OFF => SystemOff,
        psci::SYSTEM_RESET => SystemReset,
        psci::FEATURES => Features {
            function: x[1] as u32,
        },
        _ => return None,
    })
}

#[test]
fn psci_call_decode() {
    let known = Hits::default();
    fuzz(
        "psci::Call::decode",
        PSCI_DECODE_CASES,
        (function_id(PSCI_IDS.to_vec()), reg(), reg(), reg()),
        |(x0, x1, x2, x3)| {
            let x = [x0, x1, x2, x3];
            let c = psci::Call::decode(x);
            if c.is_some() {
                known.hit();
            }
            prop_assert_eq!(c.is_some(), PSCI_IDS.contains(&(x0 as u32)));
            prop_assert_eq!(c, psci_reference(x));
            // The upper half of x0 never matters.
            prop_assert_eq!(c, psci::Call::decode([x0 & 0xffff_ffff, x1, x2, x3]));
            // SMC32 forms never carry more than 32 bits of an argument.
            if x0 as u32 & (1 << 30) == 0 {
                match c {
                    Some(psci::Call::CpuOn {
                        target,
                        entry,
                        context,
                    }) => prop_assert!((target | entry | context) >> 32 == 0),
                    Some(psci::Call::CpuSuspend { entry, context, .. }) => {
                        prop_assert!((entry | context) >> 32 == 0)
                    }
                    Some(psci::Call::AffinityInfo { target, .. }) => {
                        prop_assert!(target >> 32 == 0)
                    }
                    _ => {}
                }
            }
            Ok(())
        },
    );
    known.at_least(PSCI_DECODE_CASES, 4, "PSCI calls");
}

/// Any PSCI call, with argument values a guest could pass.
fn psci_call() -> impl Strategy<Value = psci::Call> + Clone {
    use psci::Call::*;
    prop_oneof![
        Just(Version),
        Just(CpuOff),
        Just(MigrateInfoType),
        Just(SystemOff),
        Just(SystemReset),
        any::<u32>().prop_map(|function| Features { function }),
        (any::<u32>(), reg(), reg()).prop_map(|(power_state, entry, context)| CpuSuspend {
            power_state,
            entry,
            context
        }),
        (reg(), reg(), reg()).prop_map(|(target, entry, context)| CpuOn {
            target,
            entry,
            context
        }),
        (reg(), any::<u32>()).prop_map(|(target, lowest_level)| AffinityInfo {
            target,
            lowest_level
        }),
    ]
}

/// The registers a guest loads for `c` (the SMC64 form when there is one,
/// the SMC32 form when `smc32` and every argument fits), with `junk` in
/// the registers the call does not use.
fn psci_encode(c: psci::Call, smc32: bool, junk: [u64; 3]) -> [u64; 4] {
    use psci::Call::*;
    let fits = |v: &[u64]| v.iter().all(|v| v >> 32 == 0);
    match c {
        Version => [psci::VERSION.into(), junk[0], junk[1], junk[2]],
        CpuOff => [psci::CPU_OFF.into(), junk[0], junk[1], junk[2]],
        MigrateInfoType => [psci::MIGRATE_INFO_TYPE.into(), junk[0], junk[1], junk[2]],
        SystemOff => [psci::SYSTEM_OFF.into(), junk[0], junk[1], junk[2]],
        SystemReset => [psci::SYSTEM_RESET.into(), junk[0], junk[1], junk[2]],
        Features { function } => [psci::FEATURES.into(), function.into(), junk[1], junk[2]],
        CpuSuspend {
            power_state,
            entry,
            context,
        } => {
            let id = if smc32 && fits(&[entry, context]) {
                psci::CPU_SUSPEND_32
            } else {
                psci::CPU_SUSPEND_64
            };
            [id.into(), power_state.into(), entry, context]
        }
        CpuOn {
            target,
            entry,
            context,
        } => {
            let id = if smc32 && fits(&[target, entry, context]) {
                psci::CPU_ON_32
            } else {
                psci::CPU_ON_64
            };
            [id.into(), target, entry, context]
        }
        AffinityInfo {
            target,
            lowest_level,
        } => {
            let id = if smc32 && fits(&[target]) {
                psci::AFFINITY_INFO_32
            } else {
                psci::AFFINITY_INFO_64
            };
            [id.into(), target, lowest_level.into(), junk[2]]
        }
    }
}

#[test]
fn psci_call_round_trip() {
    fuzz(
        "psci::Call round trip",
        PSCI_ROUND_TRIP_CASES,
        (psci_call(), any::<bool>(), any::<[u64; 3]>()),
        |(c, smc32, junk)| {
            prop_assert_eq!(psci::Call::decode(psci_encode(c, smc32, junk)), Some(c));
            Ok(())
        },
    );
}

#[test]
fn psci_power_state_parse() {
    fuzz(
        "psci::PowerState::parse",
        PSCI_POWER_STATE_CASES,
        (
            prop_oneof![
                any::<u32>(),
                0u32..0x1_0000,
                (0u32..32).prop_map(|b| 1 << b)
            ],
            any::<bool>(),
        ),
        |(raw, extended)| {
            let (format, valid, power_down) = if extended {
                (PowerStateFormat::Extended, 0x4fff_ffffu32, 1u32 << 30)
            } else {
                (PowerStateFormat::Original, 0x0301_ffff, 1 << 16)
            };
            match PowerState::parse(raw, format) {
                Some(s) => {
                    prop_assert_eq!(raw & !valid, 0);
                    prop_assert_eq!(s.raw, raw, "passed on unchanged");
                    let kind = if raw & power_down != 0 {
                        StateType::PowerDown
                    } else {
                        StateType::Standby
                    };
                    prop_assert_eq!(s.kind, kind);
                }
                None => prop_assert_ne!(raw & !valid, 0),
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------- hyp

#[test]
fn hyp_call_decode() {
    let ids = hyp_ids();
    let (known, enable_ok) = (Hits::default(), Hits::default());
    fuzz(
        "hyp::Call::decode",
        HYP_DECODE_CASES,
        (
            function_id(ids.clone()),
            reg(),
            config_word(),
            bound(),
            bound(),
            reg(),
            reg(),
        ),
        |(x0, x1, x2, x3, x4, x5, other_x5)| {
            let x = [x0, x1, x2, x3, x4, x5];
            let c = hyp::Call::decode(x);
            // Only the service's own IDs, with bits [63:32] clear.
            prop_assert_eq!(c.is_some(), x0 >> 32 == 0 && ids.contains(&(x0 as u32)));
            // x5 is never read.
            prop_assert_eq!(c, hyp::Call::decode([x0, x1, x2, x3, x4, other_x5]));
            let Some(c) = c else { return Ok(()) };
            known.hit();
            if let hyp::Call::TraceEnable { config: Ok(_), .. } = c {
                enable_ok.hit();
            }
            let expected = match x0 as u32 {
                hyp::CALL_COUNT => hyp::Call::CallCount,
                hyp::CALL_UID => hyp::Call::CallUid,
                hyp::REVISION => hyp::Call::Revision,
                hyp::ABI_VERSION => hyp::Call::AbiVersion,
                hyp::FEATURES => hyp::Call::Features {
                    function: x1 as u32,
                },
                hyp::PING => hyp::Call::Ping { target: x1 },
                trace::TRACE_ENABLE => hyp::Call::TraceEnable {
                    target: x1,
                    config: TraceConfig::decode(x2, x3, x4),
                },
                trace::TRACE_DISABLE => hyp::Call::TraceDisable { target: x1 },
                trace::TRACE_STATUS => hyp::Call::TraceStatus { target: x1 },
                trace::TRACE_READ => hyp::Call::TraceRead {
                    target: x1,
                    offset: x2,
                    ipa: x3,
                    size: x4,
                },
                trace::TRACE_STATS => hyp::Call::TraceStats { target: x1 },
                trace::TRACE_IDREGS => hyp::Call::TraceIdRegs { target: x1 },
                id => return Err(TestCaseError::fail(format!("{id:#x} decoded to {c:?}"))),
            };
            prop_assert_eq!(c, expected);
            // Every decodable ID is an owner-6 (vendor hypervisor) call.
            let f = FunctionId::decode(x0).expect("decodable ID");
            prop_assert_eq!(f.owner, Owner::VendorHyp);
            Ok(())
        },
    );
    known.at_least(HYP_DECODE_CASES, 4, "vendor-service calls");
    enable_ok.at_least(HYP_DECODE_CASES, 200, "valid TRACE_ENABLE calls");
}

/// Any vendor-service call; TRACE_ENABLE carries what its config
/// registers decode to, valid or not.
fn hyp_call() -> impl Strategy<Value = hyp::Call> + Clone {
    use hyp::Call::*;
    prop_oneof![
        Just(CallCount),
        Just(CallUid),
        Just(Revision),
        Just(AbiVersion),
        any::<u32>().prop_map(|function| Features { function }),
        reg().prop_map(|target| Ping { target }),
        reg().prop_map(|target| TraceDisable { target }),
        reg().prop_map(|target| TraceStatus { target }),
        reg().prop_map(|target| TraceStats { target }),
        reg().prop_map(|target| TraceIdRegs { target }),
        (reg(), reg(), reg(), reg()).prop_map(|(target, offset, ipa, size)| TraceRead {
            target,
            offset,
            ipa,
            size
        }),
        (reg(), valid_trace_config()).prop_map(|(target, c)| TraceEnable {
            target,
            config: Ok(c)
        }),
        (reg(), config_word(), bound(), bound()).prop_map(|(target, w, s, e)| TraceEnable {
            target,
            config: TraceConfig::decode(w, s, e)
        }),
    ]
}

/// The registers a guest loads for `c`, with `junk` where the call reads
/// nothing. A TRACE_ENABLE whose config was refused is re-encoded with a
/// config word that gives the same error.
fn hyp_encode(c: hyp::Call, junk: [u64; 5]) -> [u64; 6] {
    use hyp::Call::*;
    let plain = |id: u32| [u64::from(id), junk[0], junk[1], junk[2], junk[3], junk[4]];
    let with_target = |id: u32, t: u64| [u64::from(id), t, junk[1], junk[2], junk[3], junk[4]];
    match c {
        CallCount => plain(hyp::CALL_COUNT),
        CallUid => plain(hyp::CALL_UID),
        Revision => plain(hyp::REVISION),
        AbiVersion => plain(hyp::ABI_VERSION),
        Features { function } => with_target(hyp::FEATURES, function.into()),
        Ping { target } => with_target(hyp::PING, target),
        TraceDisable { target } => with_target(trace::TRACE_DISABLE, target),
        TraceStatus { target } => with_target(trace::TRACE_STATUS, target),
        TraceStats { target } => with_target(trace::TRACE_STATS, target),
        TraceIdRegs { target } => with_target(trace::TRACE_IDREGS, target),
        TraceRead {
            target,
            offset,
            ipa,
            size,
        } => [
            u64::from(trace::TRACE_READ),
            target,
            offset,
            ipa,
            size,
            junk[4],
        ],
        TraceEnable { target, config } => {
            let (w, s, e) = match config {
                Ok(cfg) => {
                    let (w, s, e) = cfg.encode();
                    // Without a filter, x3/x4 are not read: junk is fine.
                    if w & CONFIG_ADDR_FILTER == 0 {
                        (w, junk[2], junk[3])
                    } else {
                        (w, s, e)
                    }
                }
                Err(ConfigError::UnknownBits(b)) => (b | CONFIG_EL1, junk[2], junk[3]),
                Err(ConfigError::NoExceptionLevel) => (0, junk[2], junk[3]),
                Err(ConfigError::BadFilter) => (CONFIG_EL0 | CONFIG_ADDR_FILTER, 8, 4),
            };
            [u64::from(trace::TRACE_ENABLE), target, w, s, e, junk[4]]
        }
    }
}

#[test]
fn hyp_call_round_trip() {
    fuzz(
        "hyp::Call round trip",
        HYP_ROUND_TRIP_CASES,
        (hyp_call(), any::<[u64; 5]>()),
        |(c, junk)| {
            prop_assert_eq!(hyp::Call::decode(hyp_encode(c, junk)), Some(c));
            Ok(())
        },
    );
}

#[test]
fn hyp_error_from_code() {
    fuzz(
        "hyp::Error::from_code",
        HYP_ERROR_CASES,
        prop_oneof![any::<i64>(), -16i64..16],
        |code| {
            match Error::from_code(code) {
                Some(e) => prop_assert_eq!(e.code(), code),
                None => prop_assert!(![-1, -3, -4, -5, -6].contains(&code)),
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------- trace

#[test]
fn trace_config_decode() {
    let outcomes: [Hits; 4] = Default::default();
    fuzz(
        "trace::TraceConfig::decode",
        TRACE_CONFIG_DECODE_CASES,
        (config_word(), bound(), bound()),
        |(w, s, e)| {
            let r = TraceConfig::decode(w, s, e);
            // The documented order: unknown bits, no exception level, filter.
            let expected_err = if w & !CONFIG_ALL != 0 {
                Some(ConfigError::UnknownBits(w & !CONFIG_ALL))
            } else if w & (CONFIG_EL0 | CONFIG_EL1) == 0 {
                Some(ConfigError::NoExceptionLevel)
            } else if w & CONFIG_ADDR_FILTER != 0 && !filter_valid(s, e) {
                Some(ConfigError::BadFilter)
            } else {
                None
            };
            outcomes[match r {
                Ok(_) => 0,
                Err(ConfigError::UnknownBits(_)) => 1,
                Err(ConfigError::NoExceptionLevel) => 2,
                Err(ConfigError::BadFilter) => 3,
            }]
            .hit();
            match r {
                Err(err) => {
                    prop_assert_eq!(Some(err), expected_err);
                    prop_assert_eq!(err.error(), Error::InvalidParameter);
                }
                Ok(c) => {
                    prop_assert_eq!(expected_err, None);
                    prop_assert!(c.traces_anything());
                    // A decoded config always re-encodes to an accepted value...
                    prop_assert!(c.is_valid());
                    let (cw, cs, ce) = c.encode();
                    prop_assert_eq!(TraceConfig::decode(cw, cs, ce), Ok(c));
                    // ...and to the very words it came from.
                    prop_assert_eq!(cw, w);
                    if w & CONFIG_ADDR_FILTER != 0 {
                        prop_assert_eq!((cs, ce), (s, e));
                        prop_assert_eq!(c.filter, Some((s, e)));
                    } else {
                        prop_assert_eq!((cs, ce), (0, 0));
                        prop_assert_eq!(c.filter, None);
                    }
                }
            }
            Ok(())
        },
    );
    for (hits, what) in
        outcomes
            .iter()
            .zip(["accepted", "UnknownBits", "NoExceptionLevel", "BadFilter"])
    {
        hits.at_least(TRACE_CONFIG_DECODE_CASES, 20, what);
    }
}

#[test]
fn trace_config_round_trip() {
    fuzz(
        "trace::TraceConfig round trip",
        TRACE_CONFIG_ROUND_TRIP_CASES,
        any_trace_config(),
        |c| {
            let (w, s, e) = c.encode();
            prop_assert_eq!(w & !CONFIG_ALL, 0);
            let valid = (c.el0 || c.el1) && c.filter.is_none_or(|(s, e)| filter_valid(s, e));
            prop_assert_eq!(c.is_valid(), valid);
            let back = TraceConfig::decode(w, s, e);
            if valid {
                prop_assert_eq!(back, Ok(c));
            } else {
                prop_assert!(back.is_err());
            }
            Ok(())
        },
    );
}

#[test]
fn trace_filter_valid() {
    fuzz(
        "trace::filter_valid",
        TRACE_FILTER_CASES,
        (bound(), bound()),
        |(s, e)| {
            let spec = s < e && s % 4 == 0 && e % 4 == 0 && e <= 1 << 48;
            prop_assert_eq!(filter_valid(s, e), spec);
            Ok(())
        },
    );
}

/// A state word: random, valid, or valid with one bit flipped.
fn state_word_input() -> impl Strategy<Value = u64> + Clone {
    let valid = (mode(), hardware(), any::<bool>(), backend())
        .prop_map(|(m, h, p, b)| state_word(m, h, p, b));
    prop_oneof![
        1 => any::<u64>(),
        2 => valid.clone(),
        2 => (valid, 0u32..64).prop_map(|(w, bit)| w ^ 1 << bit),
    ]
}

#[test]
fn trace_state_word() {
    let parsed = Hits::default();
    fuzz(
        "trace::parse_state",
        TRACE_STATE_WORD_CASES,
        (
            state_word_input(),
            (mode(), hardware(), any::<bool>(), backend()),
        ),
        |(w, (m, h, p, b))| {
            match parse_state(w) {
                // Lossless: only canonical words are accepted.
                Some((m2, h2, p2, b2)) => {
                    parsed.hit();
                    prop_assert_eq!(state_word(m2, h2, p2, b2), w)
                }
                None => prop_assert!(
                    w & STATE_RESERVED_MASK != 0
                        || trace::state_mode(w) > 1
                        || trace::state_hw(w) > 1
                        || trace::state_backend(w) > 1
                ),
            }
            let word = state_word(m, h, p, b);
            prop_assert_eq!(word & STATE_RESERVED_MASK, 0);
            prop_assert_eq!(parse_state(word), Some((m, h, p, b)));
            Ok(())
        },
    );
    parsed.at_least(TRACE_STATE_WORD_CASES, 4, "valid state words");
}

/// Any `Status`, its config valid, invalid or absent.
fn any_status() -> impl Strategy<Value = Status> + Clone {
    (
        mode(),
        hardware(),
        any::<bool>(),
        backend(),
        any::<u64>(),
        prop_oneof![
            1 => Just(None),
            2 => valid_trace_config().prop_map(Some),
            1 => any_trace_config().prop_map(Some),
        ],
    )
        .prop_map(
            |(mode, hardware, powered, backend, generation, config)| Status {
                mode,
                hardware,
                powered,
                backend,
                generation,
                config,
            },
        )
}

/// TRACE_STATUS's x0..x5 as a guest might receive them: a real answer,
/// a real answer with one register replaced, or pieces put together.
fn status_registers() -> impl Strategy<Value = [u64; 6]> + Clone {
    let x0 = prop_oneof![
        4 => Just(0u64),
        2 => (-8i64..0).prop_map(|v| v as u64),
        1 => any::<u64>(),
    ];
    let filter = prop_oneof![
        2 => Just((0u64, 0u64)),
        2 => (bound(), bound()),
    ];
    let pieces = (x0, state_word_input(), any::<u64>(), config_word(), filter).prop_map(
        |(x0, state, generation, word, (start, end))| [x0, state, generation, word, start, end],
    );
    let answer = any_status().prop_map(|s| s.to_registers());
    prop_oneof![
        2 => answer.clone(),
        2 => (answer, 0usize..6, reg()).prop_map(|(mut r, i, v)| {
            r[i] = v;
            r
        }),
        2 => pieces,
    ]
}

#[test]
fn trace_status_from_registers() {
    let (accepted, with_filter) = (Hits::default(), Hits::default());
    fuzz(
        "trace::Status::from_registers",
        TRACE_STATUS_DECODE_CASES,
        status_registers(),
        |r| {
            match Status::from_registers(r) {
                // Lossless: an accepted answer is exactly what the
                // hypervisor would have sent for that status.
                Ok(s) => {
                    accepted.hit();
                    if s.config.is_some_and(|c| c.filter.is_some()) {
                        with_filter.hit();
                    }
                    prop_assert_eq!(s.to_registers(), r);
                    prop_assert_eq!(s.generation, r[2]);
                    if let Some(c) = s.config {
                        prop_assert!(c.is_valid());
                    }
                }
                Err(e) => {
                    let x0 = r[0] as i64;
                    if x0 != 0 {
                        prop_assert_eq!(e, Error::from_code(x0).unwrap_or(Error::InvalidParameter));
                    } else {
                        prop_assert_eq!(e, Error::InvalidParameter);
                    }
                }
            }
            Ok(())
        },
    );
    accepted.at_least(TRACE_STATUS_DECODE_CASES, 20, "accepted");
    with_filter.at_least(TRACE_STATUS_DECODE_CASES, 200, "accepted with a filter");
}

#[test]
fn trace_status_round_trip() {
    fuzz(
        "trace::Status round trip",
        TRACE_STATUS_ROUND_TRIP_CASES,
        any_status(),
        |s| {
            let r = s.to_registers();
            prop_assert_eq!(r[0], 0);
            prop_assert_eq!(r[1], s.state_word());
            let back = Status::from_registers(r);
            if s.config.is_none_or(|c| c.is_valid()) {
                prop_assert_eq!(back, Ok(s));
            } else {
                // An invalid config cannot be sent, so it cannot come back.
                prop_assert_ne!(back, Ok(s));
            }
            prop_assert_eq!(
                s.consistent(),
                (s.mode == Mode::Enabled) == (s.hardware == Hardware::Tracing)
            );
            Ok(())
        },
    );
}

//! PSCI (Arm DEN0022) as seen by a guest: function IDs, return codes, the
//! decoded calls the hypervisor relays, and the `power_state` parameter.

use smccc::psci;
use smccc::psci::error as code;

/// PSCI_VERSION.
pub const VERSION: u32 = psci::PSCI_VERSION;
/// CPU_SUSPEND, SMC32 form.
pub const CPU_SUSPEND_32: u32 = psci::PSCI_CPU_SUSPEND_32;
/// CPU_SUSPEND, SMC64 form.
pub const CPU_SUSPEND_64: u32 = psci::PSCI_CPU_SUSPEND_64;
/// CPU_OFF.
pub const CPU_OFF: u32 = psci::PSCI_CPU_OFF;
/// CPU_ON, SMC32 form.
pub const CPU_ON_32: u32 = psci::PSCI_CPU_ON_32;
/// CPU_ON, SMC64 form.
pub const CPU_ON_64: u32 = psci::PSCI_CPU_ON_64;
/// AFFINITY_INFO, SMC32 form.
pub const AFFINITY_INFO_32: u32 = psci::PSCI_AFFINITY_INFO_32;
/// AFFINITY_INFO, SMC64 form.
pub const AFFINITY_INFO_64: u32 = psci::PSCI_AFFINITY_INFO_64;
/// MIGRATE_INFO_TYPE.
pub const MIGRATE_INFO_TYPE: u32 = psci::PSCI_MIGRATE_INFO_TYPE;
/// SYSTEM_OFF.
pub const SYSTEM_OFF: u32 = psci::PSCI_SYSTEM_OFF;
/// SYSTEM_RESET.
pub const SYSTEM_RESET: u32 = psci::PSCI_SYSTEM_RESET;
/// PSCI_FEATURES.
pub const FEATURES: u32 = psci::PSCI_FEATURES;

/// Every PSCI function ID this ABI knows ([`Call::decode`] decodes each).
pub const FUNCTION_IDS: [u32; 12] = [
    VERSION,
    CPU_SUSPEND_32,
    CPU_SUSPEND_64,
    CPU_OFF,
    CPU_ON_32,
    CPU_ON_64,
    AFFINITY_INFO_32,
    AFFINITY_INFO_64,
    MIGRATE_INFO_TYPE,
    SYSTEM_OFF,
    SYSTEM_RESET,
    FEATURES,
];

/// PSCI return codes, as the `i64` a guest reads from `x0` (the numbers
/// are smccc's).
pub mod ret {
    use super::code;
    /// Success.
    pub const SUCCESS: i64 = code::SUCCESS as i64;
    /// The function is not implemented.
    pub const NOT_SUPPORTED: i64 = code::NOT_SUPPORTED as i64;
    /// An argument is invalid (for example an unknown MPIDR or power_state).
    pub const INVALID_PARAMETERS: i64 = code::INVALID_PARAMETERS as i64;
    /// The call is not allowed.
    pub const DENIED: i64 = code::DENIED as i64;
    /// CPU_ON: the target is already on.
    pub const ALREADY_ON: i64 = code::ALREADY_ON as i64;
    /// CPU_ON: a CPU_ON for the target is still in progress.
    pub const ON_PENDING: i64 = code::ON_PENDING as i64;
    /// The implementation failed internally.
    pub const INTERNAL_FAILURE: i64 = code::INTERNAL_FAILURE as i64;
    /// Not present.
    pub const NOT_PRESENT: i64 = code::NOT_PRESENT as i64;
    /// Disabled.
    pub const DISABLED: i64 = code::DISABLED as i64;
    /// The entry point address is not valid.
    pub const INVALID_ADDRESS: i64 = code::INVALID_ADDRESS as i64;
}

/// AFFINITY_INFO results, as the `i64` in `x0` (smccc's [`psci::AffinityState`]).
pub mod affinity {
    use smccc::psci::AffinityState;
    /// The target is on.
    pub const ON: i64 = AffinityState::On as i64;
    /// The target is off.
    pub const OFF: i64 = AffinityState::Off as i64;
    /// The target is being turned on.
    pub const ON_PENDING: i64 = AffinityState::OnPending as i64;
}

/// A PSCI call, decoded once from `x0..x3`.
///
/// For SMC32 forms the arguments are the low 32 bits of the registers, as
/// SMCCC requires; the upper halves are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// PSCI_VERSION.
    Version,
    /// CPU_SUSPEND(power_state, entry_point, context_id).
    CpuSuspend {
        power_state: u32,
        entry: u64,
        context: u64,
    },
    /// CPU_OFF.
    CpuOff,
    /// CPU_ON(target_cpu, entry_point, context_id).
    CpuOn {
        target: u64,
        entry: u64,
        context: u64,
    },
    /// AFFINITY_INFO(target_affinity, lowest_affinity_level).
    AffinityInfo { target: u64, lowest_level: u32 },
    /// MIGRATE_INFO_TYPE.
    MigrateInfoType,
    /// SYSTEM_OFF.
    SystemOff,
    /// SYSTEM_RESET.
    SystemReset,
    /// PSCI_FEATURES(psci_function_id).
    Features { function: u32 },
}

/// The low 32 bits: the argument of an SMC32 call.
const fn lo32(v: u64) -> u64 {
    v & 0xffff_ffff
}

impl Call {
    /// Decodes a PSCI call from the guest's `x0..x3`; `None` if `x0` is not
    /// a PSCI function this hypervisor knows.
    pub const fn decode(x: [u64; 4]) -> Option<Call> {
        Some(match x[0] as u32 {
            VERSION => Call::Version,
            CPU_SUSPEND_32 => Call::CpuSuspend {
                power_state: x[1] as u32,
                entry: lo32(x[2]),
                context: lo32(x[3]),
            },
            CPU_SUSPEND_64 => Call::CpuSuspend {
                power_state: x[1] as u32,
                entry: x[2],
                context: x[3],
            },
            CPU_OFF => Call::CpuOff,
            CPU_ON_32 => Call::CpuOn {
                target: lo32(x[1]),
                entry: lo32(x[2]),
                context: lo32(x[3]),
            },
            CPU_ON_64 => Call::CpuOn {
                target: x[1],
                entry: x[2],
                context: x[3],
            },
            AFFINITY_INFO_32 => Call::AffinityInfo {
                target: lo32(x[1]),
                lowest_level: x[2] as u32,
            },
            AFFINITY_INFO_64 => Call::AffinityInfo {
                target: x[1],
                lowest_level: x[2] as u32,
            },
            MIGRATE_INFO_TYPE => Call::MigrateInfoType,
            SYSTEM_OFF => Call::SystemOff,
            SYSTEM_RESET => Call::SystemReset,
            FEATURES => Call::Features {
                function: x[1] as u32,
            },
            _ => return None,
        })
    }
}

/// Is a PSCI call a request for a power-down (as opposed to standby)?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateType {
    /// The core keeps its context; the call returns.
    Standby,
    /// The core may lose its context; it resumes at the given entry point.
    PowerDown,
}

/// The two encodings of CPU_SUSPEND's `power_state` (PSCI 1.0, 5.4.2).
/// PSCI_FEATURES(CPU_SUSPEND) bit 1 says which one the firmware uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerStateFormat {
    /// StateID `[15:0]`, StateType `[16]`, PowerLevel `[25:24]`; other bits zero.
    Original,
    /// StateID `[27:0]`, StateType `[30]`; other bits zero.
    Extended,
}

/// A validated `power_state` parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PowerState {
    /// The raw value, passed on to firmware unchanged.
    pub raw: u32,
    /// Standby or power-down.
    pub kind: StateType,
}

impl PowerState {
    /// Validates `raw` in `format`; `None` (INVALID_PARAMETERS) if a bit
    /// outside the format's fields is set.
    pub const fn parse(raw: u32, format: PowerStateFormat) -> Option<PowerState> {
        let (valid, type_bit) = match format {
            PowerStateFormat::Original => (0x0301_ffff, 1 << 16),
            PowerStateFormat::Extended => (0x4fff_ffff, 1 << 30),
        };
        if raw & !valid != 0 {
            return None;
        }
        let kind = if raw & type_bit != 0 {
            StateType::PowerDown
        } else {
            StateType::Standby
        };
        Some(PowerState { raw, kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_id_decodes() {
        for id in FUNCTION_IDS {
            assert!(Call::decode([id as u64, 0, 0, 0]).is_some(), "{id:#x}");
        }
    }

    #[test]
    fn smc32_arguments_drop_the_upper_halves() {
        let c = Call::decode([CPU_ON_32 as u64, 0xffff_0000_0000_0001, 0x1_4000_0000, 7]);
        assert_eq!(
            c,
            Some(Call::CpuOn {
                target: 1,
                entry: 0x4000_0000,
                context: 7
            })
        );
        let c = Call::decode([CPU_ON_64 as u64, 0x100, 0x1_4000_0000, 7]);
        assert_eq!(
            c,
            Some(Call::CpuOn {
                target: 0x100,
                entry: 0x1_4000_0000,
                context: 7
            })
        );
    }

    #[test]
    fn every_function_decodes() {
        let ids = [
            (VERSION, Call::Version),
            (CPU_OFF, Call::CpuOff),
            (MIGRATE_INFO_TYPE, Call::MigrateInfoType),
            (SYSTEM_OFF, Call::SystemOff),
            (SYSTEM_RESET, Call::SystemReset),
        ];
        for (id, call) in ids {
            assert_eq!(Call::decode([id as u64, 0, 0, 0]), Some(call));
        }
        assert_eq!(
            Call::decode([FEATURES as u64, CPU_SUSPEND_64 as u64, 0, 0]),
            Some(Call::Features {
                function: CPU_SUSPEND_64
            })
        );
        assert_eq!(
            Call::decode([CPU_SUSPEND_64 as u64, 0x1_0000, 0x4020_0000, 9]),
            Some(Call::CpuSuspend {
                power_state: 0x1_0000,
                entry: 0x4020_0000,
                context: 9
            })
        );
        assert_eq!(
            Call::decode([AFFINITY_INFO_64 as u64, 3, 0, 0]),
            Some(Call::AffinityInfo {
                target: 3,
                lowest_level: 0
            })
        );
    }

    #[test]
    fn unknown_ids_are_not_psci() {
        for id in [
            0x8400_0005u64,
            0x8400_000B,
            0x8400_00FF,
            0xC400_0002,
            0x8600_0000,
        ] {
            assert_eq!(Call::decode([id, 0, 0, 0]), None, "{id:#x}");
        }
    }

    #[test]
    fn power_state_original_format() {
        let s = PowerState::parse(0x0001_0000, PowerStateFormat::Original).unwrap();
        assert_eq!(s.kind, StateType::PowerDown);
        let s = PowerState::parse(0x0100_0003, PowerStateFormat::Original).unwrap();
        assert_eq!(s.kind, StateType::Standby);
        // Bit 30 means power-down only in the extended format.
        assert_eq!(
            PowerState::parse(0x4000_0000, PowerStateFormat::Original),
            None
        );
        assert_eq!(
            PowerState::parse(0x0002_0000, PowerStateFormat::Original),
            None
        );
        assert_eq!(
            PowerState::parse(0x8000_0000, PowerStateFormat::Original),
            None
        );
    }

    #[test]
    fn power_state_extended_format() {
        let s = PowerState::parse(0x4000_0001, PowerStateFormat::Extended).unwrap();
        assert_eq!(s.kind, StateType::PowerDown);
        let s = PowerState::parse(0x0fff_ffff, PowerStateFormat::Extended).unwrap();
        assert_eq!(s.kind, StateType::Standby);
        assert_eq!(
            PowerState::parse(0x1000_0000, PowerStateFormat::Extended),
            None
        );
        assert_eq!(
            PowerState::parse(0x8000_0000, PowerStateFormat::Extended),
            None
        );
    }
}

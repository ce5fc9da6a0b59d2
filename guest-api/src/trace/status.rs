//! TRACE_STATUS: a core's trace state word and the whole answer.

use super::config::{ConfigError, TraceConfig};
use crate::hyp;

/// State word: the mode field, bits `[7:0]`.
pub const STATE_MODE_SHIFT: u32 = 0;
/// State word: mask of the mode field, in place.
pub const STATE_MODE_MASK: u64 = 0xff << STATE_MODE_SHIFT;
/// State word: the hardware field, bits `[15:8]`.
pub const STATE_HW_SHIFT: u32 = 8;
/// State word: mask of the hardware field, in place.
pub const STATE_HW_MASK: u64 = 0xff << STATE_HW_SHIFT;
/// State word: bit 16, set when the core is powered on (running).
pub const STATE_POWERED: u64 = 1 << 16;
/// State word: the backend field, bits `[31:24]`.
pub const STATE_BACKEND_SHIFT: u32 = 24;
/// State word: mask of the backend field, in place.
pub const STATE_BACKEND_MASK: u64 = 0xff << STATE_BACKEND_SHIFT;
/// State word: bits that must be zero (`[23:17]` and `[63:32]`).
pub const STATE_RESERVED_MASK: u64 =
    !(STATE_MODE_MASK | STATE_HW_MASK | STATE_POWERED | STATE_BACKEND_MASK);

/// STATUS mode field: no trace requested.
pub const MODE_DISABLED: u64 = 0;
/// STATUS mode field: trace requested and committed.
pub const MODE_ENABLED: u64 = 1;
/// STATUS hardware field: trace unit and buffer stopped.
pub const HW_STOPPED: u64 = 0;
/// STATUS hardware field: trace unit and buffer running.
pub const HW_TRACING: u64 = 1;
/// STATUS backend field: a software model of ETE/TRBE, used where the CPU
/// has no trace unit (QEMU).
pub const BACKEND_MODEL: u64 = 0;
/// STATUS backend field: the CPU's own ETE trace unit and TRBE buffer.
pub const BACKEND_ETE_TRBE: u64 = 1;

/// The mode field of a state word (unchecked).
pub const fn state_mode(state: u64) -> u64 {
    (state & STATE_MODE_MASK) >> STATE_MODE_SHIFT
}

/// The hardware field of a state word (unchecked).
pub const fn state_hw(state: u64) -> u64 {
    (state & STATE_HW_MASK) >> STATE_HW_SHIFT
}

/// The powered bit of a state word.
pub const fn state_powered(state: u64) -> bool {
    state & STATE_POWERED != 0
}

/// The backend field of a state word (unchecked).
pub const fn state_backend(state: u64) -> u64 {
    (state & STATE_BACKEND_MASK) >> STATE_BACKEND_SHIFT
}

/// A state word from its fields.
pub const fn state_word(mode: Mode, hardware: Hardware, powered: bool, backend: Backend) -> u64 {
    (mode.field() << STATE_MODE_SHIFT)
        | (hardware.field() << STATE_HW_SHIFT)
        | if powered { STATE_POWERED } else { 0 }
        | (backend.field() << STATE_BACKEND_SHIFT)
}

/// A state word's fields; `None` if a reserved bit is set or a field holds
/// an undefined value.
pub const fn parse_state(state: u64) -> Option<(Mode, Hardware, bool, Backend)> {
    if state & STATE_RESERVED_MASK != 0 {
        return None;
    }
    let Some(mode) = Mode::from_field(state_mode(state)) else {
        return None;
    };
    let Some(hardware) = Hardware::from_field(state_hw(state)) else {
        return None;
    };
    let Some(backend) = Backend::from_field(state_backend(state)) else {
        return None;
    };
    Some((mode, hardware, state_powered(state), backend))
}

/// What the guest asked for on a core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No trace requested ([`MODE_DISABLED`]).
    Disabled,
    /// Trace requested and committed ([`MODE_ENABLED`]).
    Enabled,
}

impl Mode {
    /// The value of the state word's mode field.
    pub const fn field(self) -> u64 {
        match self {
            Mode::Disabled => MODE_DISABLED,
            Mode::Enabled => MODE_ENABLED,
        }
    }

    /// The mode a field value stands for.
    pub const fn from_field(v: u64) -> Option<Mode> {
        match v {
            MODE_DISABLED => Some(Mode::Disabled),
            MODE_ENABLED => Some(Mode::Enabled),
            _ => None,
        }
    }
}

/// What a core's trace hardware is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hardware {
    /// Trace unit and buffer stopped ([`HW_STOPPED`]).
    Stopped,
    /// Trace unit and buffer running ([`HW_TRACING`]).
    Tracing,
}

impl Hardware {
    /// The value of the state word's hardware field.
    pub const fn field(self) -> u64 {
        match self {
            Hardware::Stopped => HW_STOPPED,
            Hardware::Tracing => HW_TRACING,
        }
    }

    /// The hardware state a field value stands for.
    pub const fn from_field(v: u64) -> Option<Hardware> {
        match v {
            HW_STOPPED => Some(Hardware::Stopped),
            HW_TRACING => Some(Hardware::Tracing),
            _ => None,
        }
    }
}

/// What implements a core's trace hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The hypervisor's software model of ETE/TRBE ([`BACKEND_MODEL`]),
    /// used where the CPU has no trace unit (QEMU).
    Model,
    /// The CPU's ETE trace unit and TRBE buffer ([`BACKEND_ETE_TRBE`]).
    EteTrbe,
}

impl Backend {
    /// The value of the state word's backend field.
    pub const fn field(self) -> u64 {
        match self {
            Backend::Model => BACKEND_MODEL,
            Backend::EteTrbe => BACKEND_ETE_TRBE,
        }
    }

    /// The backend a field value stands for.
    pub const fn from_field(v: u64) -> Option<Backend> {
        match v {
            BACKEND_MODEL => Some(Backend::Model),
            BACKEND_ETE_TRBE => Some(Backend::EteTrbe),
            _ => None,
        }
    }
}

/// A core's trace state, as TRACE_STATUS reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// What the guest asked for.
    pub mode: Mode,
    /// What the hardware is doing.
    pub hardware: Hardware,
    /// The core is powered on.
    pub powered: bool,
    /// What implements the trace hardware.
    pub backend: Backend,
    /// The core's count of committed transitions.
    pub generation: u64,
    /// The active config; `None` when disabled.
    pub config: Option<TraceConfig>,
}

impl Status {
    /// The state word (x1 of TRACE_STATUS).
    pub const fn state_word(&self) -> u64 {
        state_word(self.mode, self.hardware, self.powered, self.backend)
    }

    /// TRACE_STATUS's successful answer, x0..x5: 0, state word, generation,
    /// config word, filter start, filter end (the last three 0 when
    /// `config` is `None`).
    pub fn to_registers(&self) -> [u64; 6] {
        let (word, start, end) = match self.config {
            Some(c) => c.encode(),
            None => (0, 0, 0),
        };
        [0, self.state_word(), self.generation, word, start, end]
    }

    /// Decodes TRACE_STATUS's x0..x5 as a guest receives them.
    ///
    /// A negative x0 that is one of [`hyp::Error`] is returned as that
    /// error. Anything malformed is `Err(InvalidParameter)`: any other
    /// non-zero x0, a state word with a reserved bit set or an undefined
    /// field value, or a non-zero config word that is not a valid config
    /// (with its filter in x4/x5). A zero config word is `config: None`.
    /// The fields are not cross-checked: see [`Status::consistent`].
    pub fn from_registers(r: [u64; 6]) -> Result<Status, hyp::Error> {
        let x0 = r[0] as i64;
        if x0 != 0 {
            return Err(match hyp::Error::from_code(x0) {
                Some(e) => e,
                None => hyp::Error::InvalidParameter,
            });
        }
        let (mode, hardware, powered, backend) =
            parse_state(r[1]).ok_or(hyp::Error::InvalidParameter)?;
        let config = if r[3] == 0 {
            if r[4] != 0 || r[5] != 0 {
                return Err(hyp::Error::InvalidParameter);
            }
            None
        } else {
            let c = TraceConfig::decode(r[3], r[4], r[5]).map_err(ConfigError::error)?;
            if c.filter.is_none() && (r[4] != 0 || r[5] != 0) {
                return Err(hyp::Error::InvalidParameter);
            }
            Some(c)
        };
        Ok(Status {
            mode,
            hardware,
            powered,
            backend,
            generation: r[2],
            config,
        })
    }

    /// The invariant: mode Enabled <=> hardware Tracing.
    pub fn consistent(&self) -> bool {
        (self.mode == Mode::Enabled) == (self.hardware == Hardware::Tracing)
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::{CONFIG_ADDR_FILTER, CONFIG_EL1, CONFIG_TIMESTAMPS, FILTER_END_MAX};
    use super::*;

    #[test]
    fn state_word_layout() {
        assert_eq!(STATE_MODE_MASK, 0xff);
        assert_eq!(STATE_HW_MASK, 0xff00);
        assert_eq!(STATE_POWERED, 0x1_0000);
        assert_eq!(STATE_BACKEND_MASK, 0xff00_0000);
        assert_eq!(STATE_RESERVED_MASK, 0xffff_ffff_00fe_0000);
        assert_eq!(
            state_word(Mode::Enabled, Hardware::Tracing, true, Backend::EteTrbe),
            0x0101_0101
        );
        assert_eq!(
            state_word(Mode::Disabled, Hardware::Stopped, false, Backend::Model),
            0
        );
        assert_eq!(
            state_word(Mode::Disabled, Hardware::Stopped, true, Backend::Model),
            STATE_POWERED
        );
        assert_eq!(state_mode(0x0101_0101), MODE_ENABLED);
        assert_eq!(state_hw(0x0101_0101), HW_TRACING);
        assert!(state_powered(0x0101_0101));
        assert_eq!(state_backend(0x0101_0101), BACKEND_ETE_TRBE);
        for m in [Mode::Disabled, Mode::Enabled] {
            assert_eq!(Mode::from_field(m.field()), Some(m));
        }
        for h in [Hardware::Stopped, Hardware::Tracing] {
            assert_eq!(Hardware::from_field(h.field()), Some(h));
        }
        for b in [Backend::Model, Backend::EteTrbe] {
            assert_eq!(Backend::from_field(b.field()), Some(b));
        }
        assert_eq!(Mode::from_field(2), None);
        assert_eq!(Hardware::from_field(0xff), None);
        assert_eq!(Backend::from_field(2), None);
    }

    fn all_statuses() -> impl Iterator<Item = Status> {
        let configs = [
            None,
            Some(TraceConfig {
                el1: true,
                ..Default::default()
            }),
            Some(TraceConfig {
                el0: true,
                el1: true,
                timestamps: true,
                cycles: true,
                context_id: true,
                filter: Some((0xffff_0000_0000, FILTER_END_MAX)),
                wrap: false,
            }),
        ];
        let mut v = Vec::new();
        for mode in [Mode::Disabled, Mode::Enabled] {
            for hardware in [Hardware::Stopped, Hardware::Tracing] {
                for powered in [false, true] {
                    for backend in [Backend::Model, Backend::EteTrbe] {
                        for generation in [0, 1, 0x1234_5678_9abc, u64::MAX] {
                            for config in configs {
                                v.push(Status {
                                    mode,
                                    hardware,
                                    powered,
                                    backend,
                                    generation,
                                    config,
                                });
                            }
                        }
                    }
                }
            }
        }
        v.into_iter()
    }

    #[test]
    fn status_round_trip() {
        let mut n = 0;
        for s in all_statuses() {
            let r = s.to_registers();
            assert_eq!(r[0], 0);
            assert_eq!(r[1], s.state_word());
            assert_eq!(r[2], s.generation);
            if s.config.is_none() {
                assert_eq!(&r[3..], &[0, 0, 0]);
            }
            assert_eq!(Status::from_registers(r), Ok(s));
            n += 1;
        }
        assert_eq!(n, 2 * 2 * 2 * 2 * 4 * 3);
    }

    #[test]
    fn status_registers_of_an_enabled_core() {
        let s = Status {
            mode: Mode::Enabled,
            hardware: Hardware::Tracing,
            powered: true,
            backend: Backend::Model,
            generation: 7,
            config: Some(TraceConfig {
                el0: true,
                el1: true,
                timestamps: true,
                filter: Some((0x4000_0000, 0x4010_0000)),
                ..Default::default()
            }),
        };
        assert_eq!(
            s.to_registers(),
            [0, 0x0001_0101, 7, 0x27, 0x4000_0000, 0x4010_0000]
        );
    }

    #[test]
    fn from_registers_maps_errors() {
        for e in [
            hyp::Error::NotSupported,
            hyp::Error::InvalidParameter,
            hyp::Error::Denied,
            hyp::Error::TargetOff,
            hyp::Error::HardwareFault,
        ] {
            // The other registers do not matter when x0 is an error.
            let r = [e.code() as u64, u64::MAX, 1, u64::MAX, 1, 2];
            assert_eq!(Status::from_registers(r), Err(e));
        }
        // Codes that are not ours, and positive values, are malformed.
        for x0 in [-2i64, -7, i64::MIN, 1, i64::MAX] {
            assert_eq!(
                Status::from_registers([x0 as u64, STATE_POWERED, 0, 0, 0, 0]),
                Err(hyp::Error::InvalidParameter),
                "{x0}"
            );
        }
    }

    #[test]
    fn from_registers_refuses_malformed_answers() {
        let good = Status {
            mode: Mode::Enabled,
            hardware: Hardware::Tracing,
            powered: true,
            backend: Backend::EteTrbe,
            generation: 3,
            config: Some(TraceConfig {
                el1: true,
                ..Default::default()
            }),
        }
        .to_registers();
        assert!(Status::from_registers(good).is_ok());
        let bad = |i: usize, v: u64| {
            let mut r = good;
            r[i] = v;
            Status::from_registers(r)
        };
        // Every reserved bit of the state word.
        for bit in 0..64 {
            let b = 1u64 << bit;
            if b & STATE_RESERVED_MASK != 0 {
                assert_eq!(
                    bad(1, good[1] | b),
                    Err(hyp::Error::InvalidParameter),
                    "bit {bit}"
                );
            }
        }
        // Undefined field values.
        for v in 2..=0xff {
            let w = good[1];
            for (mask, shift) in [
                (STATE_MODE_MASK, STATE_MODE_SHIFT),
                (STATE_HW_MASK, STATE_HW_SHIFT),
                (STATE_BACKEND_MASK, STATE_BACKEND_SHIFT),
            ] {
                assert_eq!(
                    bad(1, (w & !mask) | (v << shift)),
                    Err(hyp::Error::InvalidParameter)
                );
            }
        }
        // Invalid config words and filters.
        assert_eq!(bad(3, CONFIG_TIMESTAMPS), Err(hyp::Error::InvalidParameter));
        assert_eq!(
            bad(3, 1 << 7 | CONFIG_EL1),
            Err(hyp::Error::InvalidParameter)
        );
        assert_eq!(
            bad(3, CONFIG_EL1 | CONFIG_ADDR_FILTER),
            Err(hyp::Error::InvalidParameter)
        );
        // Filter registers without a filter.
        assert_eq!(bad(4, 0x1000), Err(hyp::Error::InvalidParameter));
        assert_eq!(bad(5, 0x2000), Err(hyp::Error::InvalidParameter));
        let mut r = good;
        r[3] = 0;
        r[5] = 4;
        assert_eq!(Status::from_registers(r), Err(hyp::Error::InvalidParameter));
    }

    #[test]
    fn consistent_is_mode_enabled_iff_hardware_tracing() {
        for s in all_statuses() {
            let expect = matches!(
                (s.mode, s.hardware),
                (Mode::Enabled, Hardware::Tracing) | (Mode::Disabled, Hardware::Stopped)
            );
            assert_eq!(s.consistent(), expect, "{s:?}");
        }
    }
}

//! The trace manager's calls (`guest_api::trace`) as the test guest makes
//! them, what their answers mean, and how the guest prints a core's status.
//!
//! A core's status is printed as one line of `key=value` fields:
//!
//! ```text
//! mode=ENABLED hw=TRACING gen=1 config=EL1|TS|CTXID|FILTER filter=0x44200000..0x44300000 backend=model
//! ```
//!
//! (`config=-` when disabled; `filter=` only with an address filter;
//! `powered=no` only if the state word says so, which the ABI never does.)

use core::fmt::{self, Write};

use guest_api::hyp;
use guest_api::trace::{self as abi, Backend, Hardware, Mode, Status};

use crate::calls::{self, Ret6};
use crate::console::Text;
use crate::report::Msg;
use crate::trap::Caught;

/// TRACE_ENABLE(target, config word, filter start, filter end).
pub fn enable(mpidr: u64, config: u64, start: u64, end: u64) -> Ret6 {
    calls::hyp6(abi::TRACE_ENABLE, [mpidr, config, start, end])
}

/// TRACE_DISABLE(target).
pub fn disable(mpidr: u64) -> Ret6 {
    calls::hyp6(abi::TRACE_DISABLE, [mpidr, 0, 0, 0])
}

/// TRACE_STATUS(target).
pub fn status(mpidr: u64) -> Ret6 {
    calls::hyp6(abi::TRACE_STATUS, [mpidr, 0, 0, 0])
}

/// x0 of an answer as a signed code.
pub fn code(r: &[u64; 6]) -> i64 {
    r[0] as i64
}

/// TARGET_OFF's x0.
pub const TARGET_OFF: i64 = hyp::Error::TargetOff.code();
/// INVALID_PARAMETER's x0.
pub const INVALID_PARAMETER: i64 = hyp::Error::InvalidParameter.code();
/// NOT_SUPPORTED's x0.
pub const NOT_SUPPORTED: i64 = hyp::Error::NotSupported.code();

/// Why a TRACE_STATUS did not give a status.
#[derive(Clone, Copy, Debug)]
pub enum StatusError {
    /// The call raised an exception.
    Caught(Caught),
    /// x0 was a negative code.
    Code(i64),
    /// x0 was 0 but the rest is not a well-formed status (all six registers).
    Malformed([u64; 6]),
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusError::Caught(c) => write!(f, "{c}"),
            StatusError::Code(x0) => write!(f, "x0 = {x0} ({})", error_name(*x0)),
            StatusError::Malformed(r) => write!(
                f,
                "malformed answer: x1 = {:#x}, x2 = {}, x3 = {:#x}, x4 = {:#x}, x5 = {:#x}",
                r[1], r[2], r[3], r[4], r[5]
            ),
        }
    }
}

/// Decodes a TRACE_STATUS answer.
pub fn decode_status(r: Ret6) -> Result<Status, StatusError> {
    let r = r.map_err(StatusError::Caught)?;
    if r[0] != 0 {
        return Err(StatusError::Code(code(&r)));
    }
    Status::from_registers(r).map_err(|_| StatusError::Malformed(r))
}

/// TRACE_STATUS(target), decoded.
pub fn status_of(mpidr: u64) -> Result<Status, StatusError> {
    decode_status(status(mpidr))
}

/// The name of an x0 the service may answer.
pub fn error_name(x0: i64) -> &'static str {
    match x0 {
        0 => "SUCCESS",
        -1 => "NOT_SUPPORTED",
        -3 => "INVALID_PARAMETER",
        -4 => "DENIED",
        -5 => "TARGET_OFF",
        -6 => "HARDWARE_FAULT",
        _ => "not a code of the service",
    }
}

/// Does a status hold together: mode ENABLED <=> hardware TRACING
/// ([`Status::consistent`]) and a config exactly when enabled?
pub fn coherent(s: &Status) -> bool {
    s.consistent() && (s.mode == Mode::Enabled) == s.config.is_some()
}

/// A config word as `EL0|EL1|TS|CC|CTXID|FILTER` (`-` for none).
pub fn config_name(word: u64) -> Text<64> {
    const NAMES: [(u64, &str); 6] = [
        (abi::CONFIG_EL0, "EL0"),
        (abi::CONFIG_EL1, "EL1"),
        (abi::CONFIG_TIMESTAMPS, "TS"),
        (abi::CONFIG_CYCLES, "CC"),
        (abi::CONFIG_CONTEXT_ID, "CTXID"),
        (abi::CONFIG_ADDR_FILTER, "FILTER"),
    ];
    let mut t = Text::new();
    if word == 0 {
        let _ = t.write_str("-");
        return t;
    }
    let mut first = true;
    for (bit, name) in NAMES {
        if word & bit != 0 {
            let _ = write!(t, "{}{name}", if first { "" } else { "|" });
            first = false;
        }
    }
    let unknown = word & !abi::CONFIG_ALL;
    if unknown != 0 {
        let _ = write!(t, "{}{unknown:#x}", if first { "" } else { "|" });
    }
    t
}

/// Displays a status as `mode=... hw=... gen=... config=... backend=...`.
#[derive(Debug)]
pub struct Show<'a>(pub &'a Status);

impl fmt::Display for Show<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let (word, start, end) = s.config.map(|c| c.encode()).unwrap_or((0, 0, 0));
        write!(
            f,
            "mode={} hw={} gen={} config={}",
            match s.mode {
                Mode::Enabled => "ENABLED",
                Mode::Disabled => "DISABLED",
            },
            match s.hardware {
                Hardware::Tracing => "TRACING",
                Hardware::Stopped => "STOPPED",
            },
            s.generation,
            config_name(word)
        )?;
        if word & abi::CONFIG_ADDR_FILTER != 0 {
            write!(f, " filter={start:#x}..{end:#x}")?;
        }
        write!(
            f,
            " backend={}",
            match s.backend {
                Backend::Model => "model",
                Backend::EteTrbe => "ete-trbe",
            }
        )?;
        if !s.powered {
            write!(f, " powered=no")?;
        }
        Ok(())
    }
}

/// What a status is expected to be, for checks that know.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    /// Mode (and with it the hardware: ENABLED <=> TRACING).
    pub mode: Mode,
    /// The generation, if known.
    pub generation: Option<u64>,
    /// The config registers (word, start, end): x3..x5.
    pub config: (u64, u64, u64),
}

impl Expect {
    /// Disabled, stopped, no config.
    pub fn disabled(generation: Option<u64>) -> Expect {
        Expect {
            mode: Mode::Disabled,
            generation,
            config: (0, 0, 0),
        }
    }

    /// Enabled, tracing, with this config.
    pub fn enabled(generation: Option<u64>, config: (u64, u64, u64)) -> Expect {
        Expect {
            mode: Mode::Enabled,
            generation,
            config,
        }
    }
}

/// Checks a status against what is expected: the mode, the hardware that
/// goes with it, powered, the generation (if given) and the config.
pub fn check(s: &Status, want: &Expect) -> Result<(), Msg> {
    let hw = match want.mode {
        Mode::Enabled => Hardware::Tracing,
        Mode::Disabled => Hardware::Stopped,
    };
    let config = s.config.map(|c| c.encode()).unwrap_or((0, 0, 0));
    let ok = s.mode == want.mode
        && s.hardware == hw
        && s.powered
        && want.generation.is_none_or(|g| g == s.generation)
        && config == want.config;
    if ok {
        return Ok(());
    }
    let mut w = Text::<64>::new();
    if let Some(g) = want.generation {
        let _ = write!(w, " gen={g}");
    }
    Err(crate::report::msg(format_args!(
        "status {}; want mode={:?} hw={:?}{w} config={} ({:#x}..{:#x})",
        Show(s),
        want.mode,
        hw,
        config_name(want.config.0),
        want.config.1,
        want.config.2
    )))
}

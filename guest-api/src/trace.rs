//! The trace manager's calls (part of the vendor hypervisor service, owner 6).
//!
//! The hypervisor owns each core's trace hardware (the ETE trace unit and
//! the TRBE trace buffer). A guest asks for tracing of one of its cores with
//! the calls below, issued with `hvc #0` as SMCCC fast SMC64/HVC64 calls.
//! The hypervisor carries out every transition on the target core itself,
//! committing the core's trace *mode* (what the guest asked for) and its
//! trace *hardware* (what the trace unit is doing) together.
//!
//! | call          | function ID   | in                                                                    | out                                                                                                   |
//! |---------------|---------------|-----------------------------------------------------------------------|-------------------------------------------------------------------------------------------------------|
//! | TRACE_ENABLE  | `0xC600_0010` | x1 = target MPIDR, x2 = config word, x3 = filter start, x4 = filter end | x0 = 0 or error, x1 = the target's generation after the commit                                        |
//! | TRACE_DISABLE | `0xC600_0011` | x1 = target MPIDR                                                     | x0 = 0 or error, x1 = the target's generation after the call                                          |
//! | TRACE_STATUS  | `0xC600_0012` | x1 = target MPIDR                                                     | x0 = 0 or error, x1 = state word, x2 = generation, x3 = active config word (0 when disabled), x4 = active filter start, x5 = active filter end (both 0 when there is no filter) |
//!
//! | TRACE_READ    | `0xC600_0013` | x1 = target MPIDR, x2 = offset in the target's trace data, x3 = guest buffer IPA, x4 = buffer size | x0 = 0 or error, x1 = bytes copied, x2 = next offset, x3 = bytes remaining after it |
//! | TRACE_STATS   | `0xC600_0014` | x1 = target MPIDR                                                     | x0 = 0 or error, x1 = bytes written, x2 = wraps, x3 = bytes lost, x4 = flags ([`STATS_FULL`], [`STATS_ERROR`], EC), x5 = bytes available to TRACE_READ |
//!
//! x3 and x4 of TRACE_ENABLE are read only when the config word has
//! [`CONFIG_ADDR_FILTER`]; otherwise they are ignored. On an error only x0
//! is defined.
//!
//! # Trace data (TRACE_READ, TRACE_STATS)
//!
//! Each core's trace buffer belongs to the hypervisor (64 KiB per core,
//! never mapped for the guest). TRACE_ENABLE starts a new capture: the
//! buffer restarts empty and the statistics at zero. The capture survives
//! TRACE_DISABLE, CPU_SUSPEND (with or without power loss) and stays
//! readable until the next TRACE_ENABLE of that core. By default the
//! buffer runs in fill mode: when it is full, collection stops
//! ([`STATS_FULL`]) and what the trace unit goes on producing is lost
//! (counted in bytes where the backend can count it: the QEMU model does,
//! real TRBE cannot and reports 0 with the flag set). With [`CONFIG_WRAP`]
//! it wraps instead and keeps the newest data (circular-buffer mode).
//! Real TRBE does not count wraps either: there TRACE_STATS' wraps is 0 or
//! 1 (whether the buffer has wrapped) and bytes written equals bytes
//! available.
//!
//! The data is the raw ETE packet stream the TRBE wrote, oldest byte at
//! offset 0: a CoreSight "source_data" buffer for one trace unit (no
//! formatter frames). TRACE_READ copies up to x4 bytes from offset x2 into
//! guest memory at IPA x3 and returns how many it copied, the offset to ask
//! for next, and how many bytes remain after it; a guest loops until x3 is
//! 0. The read is served by the target core itself (its trace hardware is
//! drained first, so a read of a tracing core sees everything up to the
//! call), never by another core while the target may be writing. Offsets
//! stay valid while a core traces in fill mode (data is only appended);
//! in wrap mode the oldest data moves with every wrap, so a consistent
//! multi-call read of a wrapping core is made after TRACE_DISABLE. A
//! TRACE_ENABLE between two calls starts a new capture: an offset past its
//! data is then INVALID_PARAMETER.
//!
//! TRACE_READ's arguments are INVALID_PARAMETER when: the buffer is empty
//! (x4 = 0) or larger than [`READ_MAX`]; the IPA is not a multiple of
//! [`READ_ALIGN`]; [x3, x3 + x4) is not inside one region of the guest's
//! RAM (so never the hypervisor's memory); or the offset is past the end of
//! the data. All are checked before anything is copied.
//!
//! # Errors (x0)
//!
//! | error             | x0   | when                                                                                   |
//! |-------------------|------|----------------------------------------------------------------------------------------|
//! | NOT_SUPPORTED     | `-1` | the function ID is not one of the service's (a hypervisor older than ABI 1.0)          |
//! | INVALID_PARAMETER | `-3` | the MPIDR names no core of the guest (only the affinity fields, bits [39:32] and [23:0], may be set); or (TRACE_ENABLE) the config is invalid, see below |
//! | DENIED            | `-4` | reserved: the caller may not trace that core. Not produced yet; guests must handle it   |
//! | TARGET_OFF        | `-5` | the target core is powered off (its trace state is Disabled)                           |
//! | HARDWARE_FAULT    | `-6` | the trace hardware did not complete the commit (a bounded wait gave up or a write was refused); the target's trace is left Disabled |
//!
//! These are the values of [`hyp::Error`]. An invalid argument (unknown
//! MPIDR, bad config) is INVALID_PARAMETER even when the target is powered
//! off: INVALID_PARAMETER takes precedence over TARGET_OFF.
//!
//! # Config word (x2 of TRACE_ENABLE)
//!
//! | bit | name                   | meaning                                                      |
//! |-----|------------------------|--------------------------------------------------------------|
//! | 0   | [`CONFIG_EL0`]         | trace the guest's EL0                                        |
//! | 1   | [`CONFIG_EL1`]         | trace the guest's EL1                                        |
//! | 2   | [`CONFIG_TIMESTAMPS`]  | emit timestamps                                              |
//! | 3   | [`CONFIG_CYCLES`]      | emit cycle counts                                            |
//! | 4   | [`CONFIG_CONTEXT_ID`]  | trace context IDs (`CONTEXTIDR_EL1`)                         |
//! | 5   | [`CONFIG_ADDR_FILTER`] | trace only addresses in \[x3, x4)                            |
//! | 6   | [`CONFIG_WRAP`]        | the buffer wraps, keeping the newest data (else fills, stops) |
//!
//! EL2 is never traced: there is no bit for it. A config is invalid
//! (INVALID_PARAMETER) when it sets any bit above bit 6, when it sets
//! neither EL0 nor EL1, or when it sets ADDR_FILTER with start >= end,
//! with start or end not a multiple of 4, or with end > 2^48.
//!
//! # State word (x1 of TRACE_STATUS)
//!
//! | bits      | field    | values                                                  |
//! |-----------|----------|---------------------------------------------------------|
//! | `[7:0]`   | mode     | 0 = [`MODE_DISABLED`], 1 = [`MODE_ENABLED`]             |
//! | `[15:8]`  | hardware | 0 = [`HW_STOPPED`], 1 = [`HW_TRACING`]                  |
//! | 16        | powered  | [`STATE_POWERED`]: 1 when the core is running           |
//! | `[23:17]` | -        | zero                                                    |
//! | `[31:24]` | backend  | 0 = [`BACKEND_MODEL`]: the hypervisor's software model of ETE/TRBE, used where the CPU has no trace unit (QEMU); 1 = [`BACKEND_ETE_TRBE`]: the CPU's own trace hardware |
//! | `[63:32]` | -        | zero                                                    |
//!
//! A powered-off core's TRACE_STATUS is TARGET_OFF, so a state word the
//! hypervisor returns always has `powered` set today.
//!
//! # The invariant
//!
//! On every core, at every moment a guest can observe:
//! **mode ENABLED <=> hardware TRACING**. The hypervisor never lets a guest
//! see one without the other ([`Status::consistent`]).
//!
//! # Semantics
//!
//! - **Reconfiguration.** TRACE_ENABLE on a core that is already enabled
//!   reconfigures it: the hypervisor stops the trace unit, programs the new
//!   config and starts it again, all in one commit on the target core.
//!   TRACE_ENABLE with the config already active still commits (and bumps
//!   the generation).
//! - **Disable.** TRACE_DISABLE on an enabled core stops it and commits.
//!   On a disabled core it is a successful no-op that leaves the generation
//!   alone.
//! - **Generation.** Each core has a 64-bit generation counter, 0 at boot,
//!   incremented by every committed transition (enable, reconfigure, disable
//!   of an enabled core). It counts commits, not power cycles: it survives
//!   CPU_OFF/CPU_ON and CPU_SUSPEND. A guest that reads the same generation
//!   twice knows no transition happened in between.
//! - **Cores that are off.** A powered-off core is Disabled; every trace
//!   call that names it answers TARGET_OFF. Turning a core off (CPU_OFF)
//!   while it traces disables it (a committed transition); it comes back
//!   from CPU_ON Disabled.

use crate::hyp;
use crate::smccc::{FunctionId, Owner};

/// TRACE_ENABLE(x1 = target MPIDR, x2 = config, x3 = filter start, x4 = filter end).
pub const TRACE_ENABLE: u32 = FunctionId::fast(true, Owner::VendorHyp, 0x0010).encode();
/// TRACE_DISABLE(x1 = target MPIDR).
pub const TRACE_DISABLE: u32 = FunctionId::fast(true, Owner::VendorHyp, 0x0011).encode();
/// TRACE_STATUS(x1 = target MPIDR).
pub const TRACE_STATUS: u32 = FunctionId::fast(true, Owner::VendorHyp, 0x0012).encode();
/// TRACE_READ(x1 = target MPIDR, x2 = offset, x3 = guest IPA, x4 = size).
pub const TRACE_READ: u32 = FunctionId::fast(true, Owner::VendorHyp, 0x0013).encode();
/// TRACE_STATS(x1 = target MPIDR).
pub const TRACE_STATS: u32 = FunctionId::fast(true, Owner::VendorHyp, 0x0014).encode();

/// Largest TRACE_READ buffer (x4): 1 MiB.
pub const READ_MAX: u64 = 1 << 20;
/// Required alignment of TRACE_READ's guest buffer IPA (x3).
pub const READ_ALIGN: u64 = 8;

/// TRACE_STATS x4: the buffer filled and collection stopped.
pub const STATS_FULL: u64 = 1 << 0;
/// TRACE_STATS x4: the buffer stopped on an error (TRBSR.EC in [`STATS_EC_MASK`]).
pub const STATS_ERROR: u64 = 1 << 1;
/// TRACE_STATS x4: TRBSR_EL1.EC of the error, in bits [13:8].
pub const STATS_EC_SHIFT: u32 = 8;
/// TRACE_STATS x4: mask of the EC field.
pub const STATS_EC_MASK: u64 = 0x3f << STATS_EC_SHIFT;

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
/// TRACE_STATS sets [`STATS_FULL`] and counts what was lost where it can.
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
    fn ids_are_owner_six_fast_64_bit_calls() {
        assert_eq!(TRACE_ENABLE, 0xC600_0010);
        assert_eq!(TRACE_DISABLE, 0xC600_0011);
        assert_eq!(TRACE_STATUS, 0xC600_0012);
        for id in [TRACE_ENABLE, TRACE_DISABLE, TRACE_STATUS] {
            let f = FunctionId::decode(id as u64).unwrap();
            assert!(f.fast && f.is_64);
            assert_eq!(f.owner, Owner::VendorHyp);
        }
    }

    #[test]
    fn trace_data_ids_and_answers() {
        assert_eq!(TRACE_READ, 0xC600_0013);
        assert_eq!(TRACE_STATS, 0xC600_0014);
        let r = ReadResult {
            copied: 4096,
            next: 8192,
            remaining: 12,
        };
        assert_eq!(ReadResult::from_registers(r.to_registers()), Ok(r));
        assert_eq!(
            ReadResult::from_registers([(-3i64) as u64, 1, 2, 3, 0, 0]),
            Err(hyp::Error::InvalidParameter)
        );
        let s = Stats {
            written: 100,
            wraps: 0,
            lost: 7,
            flags: STATS_FULL,
            available: 100,
        };
        assert_eq!(Stats::from_registers(s.to_registers()), Ok(s));
        assert_eq!(
            Stats::from_registers([(-5i64) as u64, 0, 0, 0, 0, 0]),
            Err(hyp::Error::TargetOff)
        );
        assert_eq!(STATS_EC_MASK & (STATS_FULL | STATS_ERROR), 0);
    }

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

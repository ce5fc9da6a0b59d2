//! A host fake that records every access in order and answers reads from a
//! small scripted model: the last value written, the ID registers of the
//! model unit, TRCSTATR following TRCPRGCTLR at each ISB and TRCOSLSR
//! following OSLAR_EL1. Knobs make the unit misbehave.

use std::vec::Vec;

use super::model::{
    MODEL_TRBIDR, MODEL_TRCIDR0, MODEL_TRCIDR2, MODEL_TRCIDR3, MODEL_TRCIDR4, MODEL_TRCIDR5,
};
use super::regs::{Access, Reg, SysRegs};

/// The recording fake.
#[derive(Clone, Debug)]
pub struct Recorder {
    /// Every access, in order.
    pub log: Vec<Access>,
    /// Register values (last written, or the scripted ID values).
    pub values: [u64; Reg::COUNT],
    /// TRCPRGCTLR.EN as of the last ISB.
    enabled: bool,
    os_lock: bool,
    /// Knob: TRCSTATR.IDLE never changes from this value.
    pub stuck_idle: Option<bool>,
    /// Knob: the OS lock ignores writes and stays locked.
    pub stuck_os_lock: bool,
    /// The generic counter: `counter()` returns it, then adds `tick`.
    pub now: u64,
    /// Counts the counter advances per read of it.
    pub tick: u64,
    /// CNTFRQ_EL0 as the fake reports it.
    pub freq: u64,
    /// Knob: TRCSTATR reports a change of TRCPRGCTLR only at the ISB after
    /// the one that made it effective, so only a wait that synchronizes
    /// between reads sees it.
    pub stale_until_second_isb: bool,
    /// ISBs since TRCPRGCTLR last changed (for `stale_until_second_isb`).
    isbs_since_change: u32,
    seen_enabled: bool,
}

impl Recorder {
    /// A unit like the model's, powered up: OS lock set, disabled.
    pub fn new() -> Self {
        let mut values = [0; Reg::COUNT];
        values[Reg::TrcIdR(0).index()] = MODEL_TRCIDR0;
        values[Reg::TrcIdR(2).index()] = MODEL_TRCIDR2;
        values[Reg::TrcIdR(3).index()] = MODEL_TRCIDR3;
        values[Reg::TrcIdR(4).index()] = MODEL_TRCIDR4;
        values[Reg::TrcIdR(5).index()] = MODEL_TRCIDR5;
        values[Reg::TrbIdR.index()] = MODEL_TRBIDR;
        Recorder {
            log: Vec::new(),
            values,
            enabled: false,
            os_lock: true,
            stuck_idle: None,
            stuck_os_lock: false,
            now: 0,
            tick: 1,
            freq: 1_000_000,
            stale_until_second_isb: false,
            isbs_since_change: 0,
            seen_enabled: false,
        }
    }

    /// Sets a register's value without logging.
    pub fn set(&mut self, r: Reg, v: u64) {
        self.values[r.index()] = v;
    }

    /// Takes the log, leaving it empty.
    pub fn take(&mut self) -> Vec<Access> {
        std::mem::take(&mut self.log)
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl SysRegs for Recorder {
    fn read(&mut self, r: Reg) -> u64 {
        self.log.push(Access::Read(r));
        match r {
            Reg::TrcStatR => {
                let enabled = if self.stale_until_second_isb {
                    self.seen_enabled
                } else {
                    self.enabled
                };
                let idle = self.stuck_idle.unwrap_or(!enabled);
                if idle {
                    0b11
                } else {
                    0
                }
            }
            Reg::TrcOsLsR => (1 << 4) | if self.os_lock { 1 << 1 } else { 0 },
            r if r.is_valid() => self.values[r.index()],
            _ => 0,
        }
    }

    fn write(&mut self, r: Reg, v: u64) {
        self.log.push(Access::Write(r, v));
        if r == Reg::OslarEl1 {
            self.os_lock = self.stuck_os_lock || v & 1 != 0;
        }
        if r.is_valid() {
            self.values[r.index()] = v;
        }
    }

    fn isb(&mut self) {
        self.log.push(Access::Isb);
        let en = self.values[Reg::TrcPrgCtlr.index()] & 1 != 0;
        if en != self.enabled {
            self.isbs_since_change = 0;
        } else {
            self.isbs_since_change = self.isbs_since_change.saturating_add(1);
        }
        self.enabled = en;
        if self.isbs_since_change >= 1 {
            self.seen_enabled = en;
        }
    }

    fn dsb(&mut self) {
        self.log.push(Access::Dsb);
    }

    fn tsb_csync(&mut self) {
        self.log.push(Access::TsbCsync);
    }

    fn counter(&mut self) -> u64 {
        let t = self.now;
        self.now = self.now.wrapping_add(self.tick);
        t
    }

    fn counter_freq(&mut self) -> u64 {
        self.freq
    }
}

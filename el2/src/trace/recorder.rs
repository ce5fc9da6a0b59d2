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
                let idle = self.stuck_idle.unwrap_or(!self.enabled);
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
        self.enabled = self.values[Reg::TrcPrgCtlr.index()] & 1 != 0;
    }

    fn dsb(&mut self) {
        self.log.push(Access::Dsb);
    }

    fn tsb_csync(&mut self) {
        self.log.push(Access::TsbCsync);
    }
}

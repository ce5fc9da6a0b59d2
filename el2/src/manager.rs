//! The per-core trace state machine: mode and hardware committed together.
//!
//! One `CoreTrace` per core, owned by that core's EL2 and touched by no
//! other core: a request from elsewhere arrives through the core's mailbox
//! and is served here, on the owning core, with interrupts masked (EL2 never
//! unmasks them). Every transition programs the hardware first and records
//! the mode in the same step; if the hardware refuses, the mode records what
//! the hardware actually does. So no code path, on this core or another, can
//! observe a mode that disagrees with the hardware: the race of Linux's
//! CoreSight ETMv4 driver (mode set on one CPU, hardware on another, an idle
//! save in between) has no place to happen.
//!
//! ```text
//!            enable(cfg)                 enable(cfg') (reconfigure)
//!  Disabled ------------> Enabled(cfg) ----------------------------+
//!     ^  <---------------     |   ^ <------------------------------+
//!     |      disable          |   |
//!     |                 suspend_save (power-down): hardware quiesced,
//!     |                 dynamic state saved, core may lose power;
//!     |                 resume_restore: hardware as before, one function
//!     |                 for "firmware returned" and "warm boot"
//!     +-- power_off (CPU_OFF) from any state; power_on (CPU_ON) starts Disabled
//! ```

use guest_api::trace::TraceConfig;

/// What the hardware is doing, as read back from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hardware {
    /// Trace unit and buffer stopped.
    Stopped,
    /// Trace unit and buffer running.
    Tracing,
    /// Unit and buffer disagree: never expected, reported as such.
    Inconsistent,
}

/// Why the hardware did not do what it was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HwFault {
    /// A bounded wait for the unit's status gave up.
    Timeout,
    /// The unit refused a register write.
    Refused,
}

/// One core's trace hardware, real or modelled.
pub trait TraceBackend {
    /// The dynamic state a power-down loses and EL2 cannot rebuild.
    type Saved: Copy;
    /// Programs `cfg` into a stopped unit and starts it.
    fn start(&mut self, cfg: &TraceConfig) -> Result<(), HwFault>;
    /// Stops the unit and drains the buffer. Stopping a stopped unit is fine.
    fn stop(&mut self) -> Result<(), HwFault>;
    /// Reads the hardware's state.
    fn hardware(&mut self) -> Hardware;
    /// Quiesces a running unit and reads its dynamic state.
    fn save(&mut self) -> Self::Saved;
    /// Rebuilds a running unit from EL2's copy of `cfg` and `saved`.
    fn restore(&mut self, cfg: &TraceConfig, saved: &Self::Saved) -> Result<(), HwFault>;
}

/// The mode a guest asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No trace.
    Disabled,
    /// Trace with this configuration.
    Enabled(TraceConfig),
}

/// How a core came back from a power-down CPU_SUSPEND.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Firmware returned: the core never lost power (a wake-up came first,
    /// or the state did not power down), so it kept every register.
    Returned,
    /// The core lost power and came back through the warm-boot entry.
    PowerLost,
}

/// A core's committed trace state.
#[derive(Debug)]
pub struct CoreTrace<B: TraceBackend> {
    mode: Mode,
    generation: u64,
    saved: Option<B::Saved>,
    /// The core's trace hardware.
    pub backend: B,
}

/// A snapshot for TRACE_STATUS, taken on the owning core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The committed mode.
    pub mode: Mode,
    /// The hardware, read back at the same moment.
    pub hardware: Hardware,
    /// Committed transitions so far.
    pub generation: u64,
}

impl Snapshot {
    /// Mode enabled exactly when the hardware traces.
    pub fn consistent(&self) -> bool {
        matches!(
            (self.mode, self.hardware),
            (Mode::Disabled, Hardware::Stopped) | (Mode::Enabled(_), Hardware::Tracing)
        )
    }
}

impl<B: TraceBackend> CoreTrace<B> {
    /// A core whose trace is disabled.
    pub const fn new(backend: B) -> Self {
        CoreTrace {
            mode: Mode::Disabled,
            generation: 0,
            saved: None,
            backend,
        }
    }

    /// The committed mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Committed transitions so far.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Enables (or reconfigures) trace with `cfg`. On a hardware fault the
    /// unit is stopped and the mode left Disabled, matching it.
    pub fn enable(&mut self, cfg: TraceConfig) -> Result<u64, HwFault> {
        if let Mode::Enabled(_) = self.mode {
            // Reconfigure: the unit must be stopped before it is programmed.
            if let Err(e) = self.backend.stop() {
                return self.fail(e);
            }
        }
        match self.backend.start(&cfg) {
            Ok(()) => {
                self.mode = Mode::Enabled(cfg);
                self.generation += 1;
                Ok(self.generation)
            }
            Err(e) => self.fail(e),
        }
    }

    fn fail(&mut self, e: HwFault) -> Result<u64, HwFault> {
        let _ = self.backend.stop();
        if self.mode != Mode::Disabled {
            self.mode = Mode::Disabled;
            self.generation += 1;
        }
        Err(e)
    }

    /// Disables trace. A disabled core stays as it is (no new generation).
    pub fn disable(&mut self) -> Result<u64, HwFault> {
        if self.mode == Mode::Disabled {
            return Ok(self.generation);
        }
        let r = self.backend.stop();
        self.mode = Mode::Disabled;
        self.generation += 1;
        r.map(|()| self.generation)
    }

    /// Mode and hardware, read together on the owning core.
    pub fn snapshot(&mut self) -> Snapshot {
        Snapshot {
            mode: self.mode,
            hardware: self.backend.hardware(),
            generation: self.generation,
        }
    }

    /// Before a power-down suspend: quiesce and keep the dynamic state.
    /// The mode stays what the guest asked for; nothing can observe the
    /// core until `resume_restore` has run, because requests to it are
    /// served only after it.
    pub fn suspend_save(&mut self) {
        self.saved = match self.mode {
            Mode::Enabled(_) => Some(self.backend.save()),
            Mode::Disabled => None,
        };
    }

    /// After the suspend, whether firmware returned or the core came back
    /// through the warm-boot entry (`wake`): rebuild exactly what was
    /// running. A disabled core whose firmware returned kept its (stopped)
    /// unit: nothing to do. After a power loss the unit comes back reset,
    /// and is stopped in full so that every register is as EL2 left it.
    pub fn resume_restore(&mut self, wake: Wake) -> Result<(), HwFault> {
        let saved = self.saved.take();
        match (self.mode, saved) {
            (Mode::Disabled, _) if wake == Wake::Returned => Ok(()),
            (Mode::Enabled(cfg), Some(s)) => match self.backend.restore(&cfg, &s) {
                Ok(()) => Ok(()),
                Err(e) => self.fail(e).map(|_| ()),
            },
            (Mode::Enabled(_), None) => self.fail(HwFault::Refused).map(|_| ()),
            (Mode::Disabled, _) => self.backend.stop(),
        }
    }

    /// CPU_OFF: trace stops and the mode becomes Disabled.
    pub fn power_off(&mut self) {
        let _ = self.disable();
        self.saved = None;
    }

    /// CPU_ON: the core starts with trace disabled and its unit stopped
    /// (whatever the unit held before power-up is gone).
    pub fn power_on(&mut self) {
        self.mode = Mode::Disabled;
        self.saved = None;
        let _ = self.backend.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend that remembers what it runs and can be told to fail.
    #[derive(Debug, Default)]
    struct Fake {
        running: Option<TraceConfig>,
        fail_start: bool,
        powered_down: bool,
        ptr: u64,
        calls: Vec<&'static str>,
    }

    impl TraceBackend for Fake {
        type Saved = u64;
        fn start(&mut self, cfg: &TraceConfig) -> Result<(), HwFault> {
            self.calls.push("start");
            assert!(self.running.is_none(), "programmed while running");
            if self.fail_start {
                return Err(HwFault::Timeout);
            }
            self.running = Some(*cfg);
            Ok(())
        }
        fn stop(&mut self) -> Result<(), HwFault> {
            self.calls.push("stop");
            self.running = None;
            Ok(())
        }
        fn hardware(&mut self) -> Hardware {
            if self.running.is_some() {
                Hardware::Tracing
            } else {
                Hardware::Stopped
            }
        }
        fn save(&mut self) -> u64 {
            self.calls.push("save");
            self.running = None;
            self.ptr
        }
        fn restore(&mut self, cfg: &TraceConfig, saved: &u64) -> Result<(), HwFault> {
            self.calls.push("restore");
            self.running = Some(*cfg);
            self.ptr = *saved;
            Ok(())
        }
    }

    fn cfg(el1: bool) -> TraceConfig {
        TraceConfig {
            el0: true,
            el1,
            ..TraceConfig::default()
        }
    }

    #[test]
    fn enable_disable_commit_mode_and_hardware_together() {
        let mut t = CoreTrace::new(Fake::default());
        assert!(t.snapshot().consistent());
        assert_eq!(t.enable(cfg(true)), Ok(1));
        let s = t.snapshot();
        assert_eq!(
            (s.mode, s.hardware, s.generation),
            (Mode::Enabled(cfg(true)), Hardware::Tracing, 1)
        );
        assert_eq!(t.enable(cfg(false)), Ok(2), "reconfigure");
        assert_eq!(
            t.backend.calls,
            ["start", "stop", "start"],
            "stopped before reprogramming"
        );
        assert_eq!(t.disable(), Ok(3));
        assert_eq!(
            t.disable(),
            Ok(3),
            "disabling a disabled core commits nothing"
        );
        assert!(t.snapshot().consistent());
    }

    #[test]
    fn a_hardware_fault_leaves_the_mode_matching_the_hardware() {
        let mut t = CoreTrace::new(Fake {
            fail_start: true,
            ..Fake::default()
        });
        assert_eq!(t.enable(cfg(true)), Err(HwFault::Timeout));
        assert_eq!(t.mode(), Mode::Disabled);
        assert!(t.snapshot().consistent());
        t.backend.fail_start = false;
        t.enable(cfg(true)).unwrap();
        t.backend.fail_start = true;
        assert_eq!(t.enable(cfg(false)), Err(HwFault::Timeout));
        assert_eq!(t.mode(), Mode::Disabled, "failed reconfigure ends disabled");
        assert!(t.snapshot().consistent());
    }

    #[test]
    fn suspend_restores_what_ran() {
        let mut t = CoreTrace::new(Fake::default());
        t.enable(cfg(true)).unwrap();
        t.backend.ptr = 0x1234;
        t.suspend_save();
        // Power-down: the unit loses everything.
        t.backend.running = None;
        t.backend.ptr = 0xdead;
        t.backend.powered_down = true;
        t.resume_restore(Wake::PowerLost).unwrap();
        assert_eq!(t.backend.ptr, 0x1234, "buffer resumes where it was");
        let s = t.snapshot();
        assert_eq!(
            (s.mode, s.hardware, s.generation),
            (Mode::Enabled(cfg(true)), Hardware::Tracing, 1)
        );
    }

    #[test]
    fn suspend_of_a_disabled_core_saves_nothing() {
        let mut t = CoreTrace::new(Fake::default());
        t.suspend_save();
        t.resume_restore(Wake::PowerLost).unwrap();
        assert!(!t.backend.calls.contains(&"save"));
        assert!(!t.backend.calls.contains(&"restore"));
        assert!(t.snapshot().consistent());
    }

    /// With trace off and firmware returning, the suspend costs the trace
    /// unit nothing: no call reaches the backend (what `make bench`'s
    /// trace-off suspend measures against the bare relay).
    #[test]
    fn a_disabled_core_whose_firmware_returned_touches_nothing() {
        let mut t = CoreTrace::new(Fake::default());
        t.enable(cfg(true)).unwrap();
        t.disable().unwrap();
        t.backend.calls.clear();
        t.suspend_save();
        t.resume_restore(Wake::Returned).unwrap();
        assert!(t.backend.calls.is_empty(), "{:?}", t.backend.calls);
        // After a power loss the reset unit is stopped in full.
        t.suspend_save();
        t.resume_restore(Wake::PowerLost).unwrap();
        assert_eq!(t.backend.calls, ["stop"]);
        assert!(t.snapshot().consistent());
    }

    #[test]
    fn off_and_on_leave_trace_disabled_and_keep_the_generation() {
        let mut t = CoreTrace::new(Fake::default());
        t.enable(cfg(true)).unwrap();
        t.power_off();
        assert_eq!(t.mode(), Mode::Disabled);
        assert_eq!(t.generation(), 2);
        t.power_on();
        assert_eq!(
            t.snapshot(),
            Snapshot {
                mode: Mode::Disabled,
                hardware: Hardware::Stopped,
                generation: 2
            }
        );
    }

    /// Every sequence of operations keeps mode and hardware in agreement.
    #[test]
    fn random_sequences_stay_consistent() {
        let mut t = CoreTrace::new(Fake::default());
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t.backend.fail_start = x.is_multiple_of(17);
            match x % 6 {
                0 | 1 => {
                    let _ = t.enable(cfg(x & 64 != 0));
                }
                2 => {
                    let _ = t.disable();
                }
                3 => {
                    t.suspend_save();
                    t.backend.running = None;
                    let _ = t.resume_restore(Wake::PowerLost);
                }
                4 => {
                    t.power_off();
                    t.power_on();
                }
                _ => {}
            }
            assert!(t.snapshot().consistent(), "{:?}", t.snapshot());
        }
    }
}

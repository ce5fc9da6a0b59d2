//! A core's power as the hypervisor sees it, and the orders that keep it
//! honest: CPU_ON's claim and its failure, CPU_OFF's close-then-stop, and
//! the bound on every wait for another core.
//!
//! Plain Rust over atomics, tested on the host; `hv::psci` drives it with
//! the real mailbox, trace state and generic counter.

use core::sync::atomic::{AtomicU8, Ordering};

use guest_api::hyp::TARGET_ANSWER_BOUND_MS;

use crate::mailbox::{AnswerWords, Bound, Closed, Mailbox, RequestWords};

/// Off: its mailbox is closed.
pub const OFF: u8 = 0;
/// CPU_ON was sent to firmware; the core has not reached EL2 yet.
pub const ON_PENDING: u8 = 1;
/// Running.
pub const ON: u8 = 2;

/// Why a CPU_ON may not start a core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnRefused {
    /// The core runs (PSCI ALREADY_ON).
    AlreadyOn,
    /// Another CPU_ON of it is in progress (PSCI ON_PENDING).
    OnPending,
}

/// One core's power state, shared by all cores.
#[derive(Debug)]
pub struct CorePower(AtomicU8);

impl Default for CorePower {
    fn default() -> Self {
        Self::new()
    }
}

impl CorePower {
    /// Off (cores start off).
    pub const fn new() -> CorePower {
        CorePower(AtomicU8::new(OFF))
    }

    /// The state (`OFF`, `ON_PENDING`, `ON`).
    pub fn get(&self) -> u8 {
        self.0.load(Ordering::Acquire)
    }

    /// Is the core running?
    pub fn is_on(&self) -> bool {
        self.get() == ON
    }

    /// CPU_ON, before firmware is called: claims the core, so that two
    /// CPU_ONs of it cannot both reach firmware.
    pub fn begin_on(&self) -> Result<(), OnRefused> {
        match self
            .0
            .compare_exchange(OFF, ON_PENDING, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(()),
            Err(ON) => Err(OnRefused::AlreadyOn),
            Err(_) => Err(OnRefused::OnPending),
        }
    }

    /// Firmware refused the CPU_ON claimed by `begin_on`: the claim is
    /// given back, but only if it is still ours. A compare-exchange, not a
    /// store: if the core reached EL2 meanwhile (it was started after all,
    /// and `online` ran), it is ON and stays so; storing OFF would hide a
    /// running core (no SGIs for it, and a second CPU_ON let through).
    pub fn on_failed(&self) {
        let _ = self
            .0
            .compare_exchange(ON_PENDING, OFF, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The core reached EL2 and takes requests.
    pub fn online(&self) {
        self.0.store(ON, Ordering::Release);
    }

    /// The core is going off (its mailbox is closed).
    pub fn off(&self) {
        self.0.store(OFF, Ordering::Release);
    }

    /// Another core found this one gone (firmware says it is off, yet the
    /// hypervisor never saw its CPU_OFF): from now on it is off, so that a
    /// CPU_ON may start it again. Only ON becomes OFF: a CPU_ON already in
    /// progress is left alone.
    pub fn vanished(&self) -> bool {
        self.0
            .compare_exchange(ON, OFF, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// CPU_OFF's part in EL2, in the only safe order:
///
/// 1. the mailbox closes (`Mailbox::close`): new requests are refused from
///    its first instruction on, and the one already posted, if any, is
///    served by `serve` while the trace may still be on;
/// 2. only then `stop_trace` stops the trace unit and records Disabled.
///
/// The other way round (trace stopped first, mailbox closed after), a
/// TRACE_ENABLE posted in between was applied after the stop: the core
/// went through CPU_OFF tracing, and a TRACE_STATUS answered Enabled for a
/// core going off. `wait` and `bound` are the close's (see there).
pub fn cpu_off<T>(
    mailbox: &Mailbox,
    core: &mut T,
    serve: &mut dyn FnMut(&mut T, RequestWords) -> AnswerWords,
    stop_trace: &mut dyn FnMut(&mut T),
    wait: &mut dyn FnMut(),
    bound: &mut Bound,
) -> Closed {
    let closed = mailbox.close(&mut |w| serve(core, w), wait, bound);
    stop_trace(core);
    closed
}

/// The bound on a wait for another core in ticks of a counter running at
/// `freq` Hz: [`TARGET_ANSWER_BOUND_MS`], at least one tick. A counter
/// frequency of 0 (CNTFRQ not programmed by firmware) gives the bound of a
/// 1 GHz counter, the fastest the architecture allows (Armv8.6 fixes it at
/// 1 GHz), so the wait still ends.
pub fn bound_ticks(freq: u64) -> u64 {
    let freq = if freq == 0 { 1_000_000_000 } else { freq };
    (freq.saturating_mul(TARGET_ANSWER_BOUND_MS) / 1000).max(1)
}

/// CNTHCTL_EL2 bits (with HCR_EL2.E2H = 0) that turn on this core's event
/// stream at about 10 kHz of a counter running at `freq` Hz: EVNTEN (bit 2)
/// and EVNTI (bits [7:4]), the counter bit whose 0 -> 1 transition
/// (EVNTDIR = 0) generates an event, so one event every 2^(EVNTI + 1)
/// ticks.
///
/// Why: EL2 waits for other cores in WFE with interrupts masked, and a
/// masked interrupt does not wake WFE. A core that waits for a target that
/// vanished gets no SEV from it; without the event stream it would sleep
/// until some unrelated core's SEV, and never look at its bound. The events
/// also reach the guest's WFE, which may always wake spuriously.
pub fn event_stream_bits(freq: u64) -> u64 {
    const EVNTEN: u64 = 1 << 2;
    let freq = if freq == 0 { 1_000_000_000 } else { freq };
    let period = (freq / 10_000).max(2);
    // The largest EVNTI with 2^(EVNTI + 1) <= period, at most 15.
    let evnti = (63 - u64::from(period.leading_zeros()))
        .saturating_sub(1)
        .min(15);
    EVNTEN | (evnti << 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::SendError;
    use crate::manager::{CoreTrace, Hardware, HwFault, Mode, TraceBackend};
    use crate::request::Request;
    use guest_api::hyp::Error;
    use guest_api::trace::TraceConfig;
    use std::sync::Arc;

    #[test]
    fn cpu_on_claims_once() {
        let p = CorePower::new();
        assert_eq!(p.begin_on(), Ok(()));
        assert_eq!(p.begin_on(), Err(OnRefused::OnPending));
        p.online();
        assert_eq!(p.begin_on(), Err(OnRefused::AlreadyOn));
    }

    /// The CPU_ON race: firmware's CPU_ON fails for core A's call, but the
    /// core came up meanwhile (it reached EL2 and went ON). Giving the claim
    /// back must not turn a running core OFF.
    #[test]
    fn failed_cpu_on_does_not_turn_a_running_core_off() {
        let p = CorePower::new();
        p.begin_on().unwrap();
        p.online(); // the core, on its own, between firmware's start and its error
        p.on_failed(); // the caller, seeing firmware's error
        assert_eq!(p.get(), ON, "a running core marked off");
        // And the ordinary failure still gives the claim back.
        let q = CorePower::new();
        q.begin_on().unwrap();
        q.on_failed();
        assert_eq!(q.get(), OFF);
        assert_eq!(q.begin_on(), Ok(()));
    }

    /// The same race with real threads: whatever the interleaving of the
    /// failing caller and the core coming up, a core that came up is ON.
    #[test]
    fn failed_cpu_on_races_the_core_coming_up() {
        for _ in 0..2000 {
            let p = Arc::new(CorePower::new());
            p.begin_on().unwrap();
            let core = {
                let p = p.clone();
                std::thread::spawn(move || p.online())
            };
            p.on_failed();
            core.join().unwrap();
            assert_eq!(p.get(), ON);
        }
    }

    #[test]
    fn only_a_running_core_vanishes() {
        let p = CorePower::new();
        assert!(!p.vanished());
        p.begin_on().unwrap();
        assert!(!p.vanished());
        assert_eq!(p.get(), ON_PENDING);
        p.online();
        assert!(p.vanished());
        assert_eq!(p.get(), OFF);
    }

    #[test]
    fn bounds_and_event_stream() {
        // QEMU virt's counter: 62.5 MHz.
        assert_eq!(TARGET_ANSWER_BOUND_MS, 10_000);
        assert_eq!(bound_ticks(62_500_000), 625_000_000);
        assert_eq!(bound_ticks(0), 10_000_000_000);
        assert_eq!(bound_ticks(1), 10);
        assert_eq!(bound_ticks(u64::MAX), u64::MAX / 1000);
        for (freq, evnti) in [
            (62_500_000, 11),
            (1_000_000_000, 15),
            (24_000_000, 10),
            (1, 0),
        ] {
            let bits = event_stream_bits(freq);
            assert_eq!(bits & 0b1111, 0b0100, "{freq}: EVNTEN only, EVNTDIR 0");
            assert_eq!(bits >> 4, evnti, "{freq} Hz");
            assert!(bits >> 8 == 0);
        }
        // Period 2^(EVNTI+1) ticks: between 50 µs and 100 µs at 62.5 MHz.
        let period = 1u64 << ((event_stream_bits(62_500_000) >> 4) + 1);
        assert!((3125..=6250).contains(&period), "{period}");
    }

    /// A trace unit that is either running a config or stopped.
    #[derive(Debug, Default)]
    struct Unit {
        running: Option<TraceConfig>,
    }

    impl TraceBackend for Unit {
        type Saved = ();
        fn start(&mut self, cfg: &TraceConfig) -> Result<(), HwFault> {
            self.running = Some(*cfg);
            Ok(())
        }
        fn stop(&mut self) -> Result<(), HwFault> {
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
        fn save(&mut self) {}
        fn restore(&mut self, cfg: &TraceConfig, _: &()) -> Result<(), HwFault> {
            self.running = Some(*cfg);
            Ok(())
        }
    }

    /// What the target core does with a request (a cut-down `hv::tracing::serve`).
    fn serve(t: &mut CoreTrace<Unit>, w: RequestWords) -> AnswerWords {
        match Request::from_words(w) {
            Ok(Request::TraceEnable(cfg)) => [0, t.enable(cfg).unwrap(), 0, 0, 0, 0],
            Ok(Request::TraceDisable) => [0, t.disable().unwrap(), 0, 0, 0, 0],
            Ok(Request::TraceStatus) => {
                let s = t.snapshot();
                let enabled = matches!(s.mode, Mode::Enabled(_));
                [0, enabled as u64, s.generation, 0, 0, 0]
            }
            _ => [Error::NotSupported.code() as u64, 0, 0, 0, 0, 0],
        }
    }

    fn enable_words() -> RequestWords {
        Request::TraceEnable(TraceConfig {
            el1: true,
            ..TraceConfig::default()
        })
        .to_words()
    }

    fn unbounded() -> Bound<'static> {
        Bound {
            now: Box::leak(Box::new(|| 0)),
            ticks: u64::MAX,
        }
    }

    /// The CPU_OFF ordering: a TRACE_ENABLE that is posted when CPU_OFF
    /// begins is served, but the unit ends stopped and Disabled; one sent
    /// once CPU_OFF has begun is answered TARGET_OFF and never applied.
    #[test]
    fn cpu_off_serves_what_was_posted_then_stops_the_unit() {
        let m = Arc::new(Mailbox::new());
        m.open();
        let mut trace = CoreTrace::new(Unit::default());
        // A requester posts an enable; the target has not seen it yet.
        let (posted_tx, posted_rx) = std::sync::mpsc::channel();
        let early = {
            let m = m.clone();
            std::thread::spawn(move || {
                m.send(
                    enable_words(),
                    &mut || posted_tx.send(()).unwrap(),
                    &mut std::thread::yield_now,
                    &mut unbounded(),
                )
            })
        };
        posted_rx.recv().unwrap();
        let mut late = None;
        let closed = cpu_off(
            &m,
            &mut trace,
            &mut |t, w| {
                // While the posted request is served, another core sends:
                // the mailbox is already closing, so it is refused at once.
                let m2 = m.clone();
                late = Some(
                    std::thread::spawn(move || {
                        m2.send(
                            enable_words(),
                            &mut || panic!("posted into a closing mailbox"),
                            &mut std::thread::yield_now,
                            &mut unbounded(),
                        )
                    })
                    .join()
                    .unwrap(),
                );
                serve(t, w)
            },
            &mut |t| t.power_off(),
            &mut std::thread::yield_now,
            &mut unbounded(),
        );
        assert_eq!(closed.served, 1);
        assert!(
            early.join().unwrap().is_ok(),
            "the posted request is answered"
        );
        assert_eq!(late, Some(Err(SendError::TargetOff)));
        let s = trace.snapshot();
        assert_eq!(s.mode, Mode::Disabled, "a core going off left tracing");
        assert_eq!(
            s.hardware,
            Hardware::Stopped,
            "the unit traces through CPU_OFF"
        );
        // And after it, every request is refused, none applied.
        let r = m.send(
            enable_words(),
            &mut || panic!("posted after CPU_OFF"),
            &mut || panic!("waited after CPU_OFF"),
            &mut unbounded(),
        );
        assert_eq!(r, Err(SendError::TargetOff));
        assert_eq!(trace.snapshot().hardware, Hardware::Stopped);
    }

    /// The old order (stop the trace, then close) fails the same check: the
    /// enable posted in between is applied after the stop. Kept as a test so
    /// that the check above is known to be able to fail.
    #[test]
    fn stopping_before_closing_leaves_the_unit_tracing() {
        let m = Mailbox::new();
        m.open();
        let mut trace = CoreTrace::new(Unit::default());
        trace.power_off();
        // The enable arrives between the stop and the close.
        let mut posted = false;
        let r = m.send(
            enable_words(),
            &mut || posted = true,
            &mut || {
                // The old CPU_OFF's close, serving what was posted.
                m.serve(&mut |w| serve(&mut trace, w));
            },
            &mut unbounded(),
        );
        assert!(posted && r.is_ok());
        assert_eq!(trace.snapshot().hardware, Hardware::Tracing);
    }
}

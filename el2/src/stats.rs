//! Per-core event counters: what the hypervisor did for its guest.
//!
//! Each core counts only its own events (one writer per counter, so relaxed
//! atomics are exact); any core may read them all, as SYSTEM_OFF does to log
//! the totals that the Linux test and the benchmarks report.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

/// Something the hypervisor counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// An SMC or HVC from the guest (any function ID).
    GuestCall,
    /// A CPU_SUSPEND that passed validation.
    Suspend,
    /// ... of which power-down requests relayed to firmware.
    SuspendPowerDown,
    /// ... of which standby requests relayed to firmware.
    SuspendStandby,
    /// ... of which with the core's trace enabled: its trace context was
    /// saved before the power-down and restored after it.
    TraceSaved,
    /// A warm boot: the core came back through the warm entry after a
    /// power-down (real or simulated), restoring its trace context there.
    WarmBoot,
    /// A CPU_ON that firmware accepted.
    CpuOn,
    /// A CPU_OFF about to be relayed.
    CpuOff,
    /// A trace-manager request served on the calling core.
    RequestLocal,
    /// A trace-manager request posted to another core.
    RequestRemote,
    /// ... of which answered TARGET_OFF.
    RequestTargetOff,
    /// A request from another core served here (through the mailbox).
    RequestServed,
    /// A request posted to another core that did not answer within the
    /// bound (`guest_api::hyp::TARGET_ANSWER_BOUND_MS`).
    RequestTimeout,
    /// A guest instruction EL2 observed by stepping it (the instruction
    /// source, `trace.source=insn`).
    Step,
    /// ... a stretch the trace could not follow (an exclusive sequence EL2
    /// could not bound or an exception inside one, an instruction EL2
    /// could not read, EL0 reached through an ERET the fence did not hold):
    /// the instruction trace has a gap.
    Gap,
    /// A stay of the guest in its EL1, which its trace leaves out, run
    /// unstepped (parked) up to its ERET to EL0 or its next trap.
    Parked,
}

impl Event {
    /// Every event, in the order the summary prints them.
    pub const ALL: [Event; 16] = [
        Event::GuestCall,
        Event::Suspend,
        Event::SuspendPowerDown,
        Event::SuspendStandby,
        Event::TraceSaved,
        Event::WarmBoot,
        Event::CpuOn,
        Event::CpuOff,
        Event::RequestLocal,
        Event::RequestRemote,
        Event::RequestTargetOff,
        Event::RequestServed,
        Event::RequestTimeout,
        Event::Step,
        Event::Gap,
        Event::Parked,
    ];

    /// The key in the summary line.
    pub const fn name(self) -> &'static str {
        match self {
            Event::GuestCall => "guest_calls",
            Event::Suspend => "cpu_suspend",
            Event::SuspendPowerDown => "powerdown",
            Event::SuspendStandby => "standby",
            Event::TraceSaved => "trace_saved",
            Event::WarmBoot => "warm_boots",
            Event::CpuOn => "cpu_on",
            Event::CpuOff => "cpu_off",
            Event::RequestLocal => "trace_local",
            Event::RequestRemote => "trace_remote",
            Event::RequestTargetOff => "target_off",
            Event::RequestServed => "served_for_others",
            Event::RequestTimeout => "timeouts",
            Event::Step => "stepped",
            Event::Gap => "gaps",
            Event::Parked => "parked",
        }
    }
}

const N: usize = Event::ALL.len();

/// One core's counters.
#[derive(Debug)]
pub struct Counters([AtomicU64; N]);

impl Counters {
    /// All zero.
    pub const fn new() -> Counters {
        Counters([const { AtomicU64::new(0) }; N])
    }

    /// Counts one `event`. Only the owning core calls this.
    pub fn count(&self, event: Event) {
        self.0[event as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The current value for `event`.
    pub fn get(&self, event: Event) -> u64 {
        self.0[event as usize].load(Ordering::Relaxed)
    }
}

impl Default for Counters {
    fn default() -> Self {
        Counters::new()
    }
}

/// Totals over several cores, printed as `key=value` pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Totals([u64; N]);

impl Totals {
    /// Sums the counters of `cores`.
    pub fn of<'a>(cores: impl IntoIterator<Item = &'a Counters>) -> Totals {
        let mut t = [0u64; N];
        for c in cores {
            for e in Event::ALL {
                t[e as usize] = t[e as usize].wrapping_add(c.get(e));
            }
        }
        Totals(t)
    }

    /// The total for `event`.
    pub fn get(&self, event: Event) -> u64 {
        self.0[event as usize]
    }
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in Event::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}={}", e.name(), self.get(*e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_index_their_own_counter() {
        for (i, e) in Event::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i, "{e:?} out of order");
        }
        let c = Counters::new();
        c.count(Event::SuspendPowerDown);
        c.count(Event::SuspendPowerDown);
        c.count(Event::CpuOff);
        for e in Event::ALL {
            let want = match e {
                Event::SuspendPowerDown => 2,
                Event::CpuOff => 1,
                _ => 0,
            };
            assert_eq!(c.get(e), want, "{e:?}");
        }
    }

    #[test]
    fn totals_sum_cores_and_print_every_key() {
        let cores = [Counters::new(), Counters::new(), Counters::new()];
        cores[0].count(Event::GuestCall);
        cores[1].count(Event::GuestCall);
        cores[2].count(Event::RequestServed);
        let t = Totals::of(&cores);
        assert_eq!(t.get(Event::GuestCall), 2);
        assert_eq!(t.get(Event::RequestServed), 1);
        assert_eq!(
            t.to_string(),
            "guest_calls=2 cpu_suspend=0 powerdown=0 standby=0 trace_saved=0 warm_boots=0 cpu_on=0 \
             cpu_off=0 trace_local=0 trace_remote=0 target_off=0 served_for_others=1 timeouts=0 stepped=0 gaps=0 parked=0"
        );
    }
}

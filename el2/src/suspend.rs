//! The order of a CPU_SUSPEND on the suspending core, kept apart from the
//! registers so the host can test it: validate, then (power-down) save,
//! firmware, restore; the restore is one for both ways back, firmware
//! returning ([`Wake::Returned`]) and the warm boot after a real power loss
//! ([`Wake::PowerLost`], [`warm_boot`]).
//!
//! `hv::psci` runs it with the machine's [`SuspendingCore`]; the tests run
//! it with a fake that records every step and whose firmware returns,
//! refuses, or powers the core down.

use guest_api::psci::{ret, PowerState, PowerStateFormat, StateType};

use crate::manager::Wake;
use crate::stats::Event;

/// What a suspend does to the core, one step each, in the order it does
/// them.
pub trait SuspendingCore {
    /// Counts `event` for this core.
    fn count(&mut self, event: Event);
    /// Whether a virtual interrupt is already pending for the guest (it
    /// would not wake the physical core).
    fn virtual_interrupt_pending(&mut self) -> bool;
    /// Keeps the guest's resume entry point and context_id for the warm
    /// boot.
    fn keep_entry(&mut self, entry: u64, context: u64);
    /// Quiesces trace and saves what a power-down loses of it.
    fn save_trace(&mut self);
    /// Saves the guest's virtual CPU interface.
    fn save_vcpu(&mut self);
    /// Calls firmware's CPU_SUSPEND with `state` and EL2's own entry point.
    /// Returns firmware's answer when it returns; a core that loses power
    /// does not return, and comes back through [`warm_boot`].
    fn firmware_suspend(&mut self, state: PowerState) -> i64;
    /// Puts back the virtual CPU interface.
    fn restore_vcpu(&mut self);
    /// Puts back trace.
    fn restore_trace(&mut self, wake: Wake);
}

/// How the guest's CPU_SUSPEND ends (when the core did not lose power).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Return to the caller with this PSCI result.
    Answer(i64),
    /// Resume the guest at its entry point with its context_id, as after
    /// a power-down (PSCI: a guest that asked for one expects it, and Linux
    /// counts a plain return as a failed idle entry).
    ResumeAtEntry { entry: u64, context: u64 },
}

/// A CPU_SUSPEND from the guest. `entry_valid` says whether `entry` is a
/// valid guest entry point (only a power-down needs one).
pub fn cpu_suspend(
    core: &mut impl SuspendingCore,
    power_state: u32,
    format: PowerStateFormat,
    entry: u64,
    context: u64,
    entry_valid: bool,
) -> Outcome {
    let Some(state) = PowerState::parse(power_state, format) else {
        return Outcome::Answer(ret::INVALID_PARAMETERS);
    };
    if state.kind == StateType::PowerDown && !entry_valid {
        return Outcome::Answer(ret::INVALID_ADDRESS);
    }
    core.count(Event::Suspend);
    if core.virtual_interrupt_pending() {
        // What a wake-up would do, at once.
        return Outcome::Answer(ret::SUCCESS);
    }
    if state.kind == StateType::Standby {
        core.count(Event::SuspendStandby);
        return Outcome::Answer(core.firmware_suspend(state));
    }
    core.count(Event::SuspendPowerDown);
    core.keep_entry(entry, context);
    core.save_trace();
    core.save_vcpu();
    let r = core.firmware_suspend(state);
    // Firmware returned: a wake-up came before power went, or the state
    // never powers down here. The core kept its state.
    core.restore_vcpu();
    core.restore_trace(Wake::Returned);
    if r == ret::SUCCESS {
        Outcome::ResumeAtEntry { entry, context }
    } else {
        Outcome::Answer(r)
    }
}

/// The warm boot after a power-down: the same restore, for a core that
/// lost power (the caller then enters the guest at the kept entry point).
pub fn warm_boot(core: &mut impl SuspendingCore) {
    core.restore_vcpu();
    core.restore_trace(Wake::PowerLost);
    core.count(Event::WarmBoot);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Step {
        Count(Event),
        Pending,
        KeepEntry(u64, u64),
        SaveTrace,
        SaveVcpu,
        Firmware(u32),
        RestoreVcpu,
        RestoreTrace(Wake),
    }

    /// What the fake firmware does with a CPU_SUSPEND.
    #[derive(Clone, Copy)]
    enum Firmware {
        /// Returns this code (a wake-up came first, or a refusal).
        Returns(i64),
        /// Powers the core down: the call never returns.
        PowersDown,
    }

    struct Fake {
        steps: Vec<Step>,
        pending: bool,
        firmware: Firmware,
    }

    /// A core whose firmware powered it down: the call does not come back.
    struct PoweredDown;

    impl Fake {
        fn new(firmware: Firmware) -> Fake {
            Fake {
                steps: Vec::new(),
                pending: false,
                firmware,
            }
        }
    }

    impl SuspendingCore for Fake {
        fn count(&mut self, event: Event) {
            self.steps.push(Step::Count(event));
        }
        fn virtual_interrupt_pending(&mut self) -> bool {
            self.steps.push(Step::Pending);
            self.pending
        }
        fn keep_entry(&mut self, entry: u64, context: u64) {
            self.steps.push(Step::KeepEntry(entry, context));
        }
        fn save_trace(&mut self) {
            self.steps.push(Step::SaveTrace);
        }
        fn save_vcpu(&mut self) {
            self.steps.push(Step::SaveVcpu);
        }
        fn firmware_suspend(&mut self, state: PowerState) -> i64 {
            self.steps.push(Step::Firmware(state.raw));
            match self.firmware {
                Firmware::Returns(r) => r,
                // As on the machine, nothing after the call runs.
                Firmware::PowersDown => std::panic::panic_any(PoweredDown),
            }
        }
        fn restore_vcpu(&mut self) {
            self.steps.push(Step::RestoreVcpu);
        }
        fn restore_trace(&mut self, wake: Wake) {
            self.steps.push(Step::RestoreTrace(wake));
        }
    }

    /// Original-format power_state: bit 16 is the power-down type.
    const POWER_DOWN: u32 = 1 << 16;
    const STANDBY: u32 = 0;
    const ENTRY: u64 = 0x4020_0000;
    const CONTEXT: u64 = 0x1234;

    fn suspend(fake: &mut Fake, power_state: u32, entry_valid: bool) -> Outcome {
        cpu_suspend(
            fake,
            power_state,
            PowerStateFormat::Original,
            ENTRY,
            CONTEXT,
            entry_valid,
        )
    }

    fn saved_then_firmware() -> Vec<Step> {
        vec![
            Step::Count(Event::Suspend),
            Step::Pending,
            Step::Count(Event::SuspendPowerDown),
            Step::KeepEntry(ENTRY, CONTEXT),
            Step::SaveTrace,
            Step::SaveVcpu,
            Step::Firmware(POWER_DOWN),
        ]
    }

    #[test]
    fn firmware_returns_restores_once_then_resumes_at_entry() {
        let mut f = Fake::new(Firmware::Returns(ret::SUCCESS));
        let out = suspend(&mut f, POWER_DOWN, true);
        let mut want = saved_then_firmware();
        want.extend([Step::RestoreVcpu, Step::RestoreTrace(Wake::Returned)]);
        assert_eq!(f.steps, want);
        assert_eq!(
            out,
            Outcome::ResumeAtEntry {
                entry: ENTRY,
                context: CONTEXT
            }
        );
    }

    #[test]
    fn firmware_refusal_restores_and_relays_the_code() {
        let mut f = Fake::new(Firmware::Returns(ret::DENIED));
        let out = suspend(&mut f, POWER_DOWN, true);
        let mut want = saved_then_firmware();
        want.extend([Step::RestoreVcpu, Step::RestoreTrace(Wake::Returned)]);
        assert_eq!(f.steps, want);
        assert_eq!(out, Outcome::Answer(ret::DENIED));
    }

    #[test]
    fn power_loss_saves_everything_first_and_warm_boot_restores_the_same() {
        let mut f = Fake::new(Firmware::PowersDown);
        let lost = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            suspend(&mut f, POWER_DOWN, true)
        }));
        assert!(lost.is_err_and(|p| p.is::<PoweredDown>()));
        // Everything was saved before firmware, nothing restored after.
        assert_eq!(f.steps, saved_then_firmware());
        f.steps.clear();
        warm_boot(&mut f);
        assert_eq!(
            f.steps,
            [
                Step::RestoreVcpu,
                Step::RestoreTrace(Wake::PowerLost),
                Step::Count(Event::WarmBoot)
            ]
        );
    }

    #[test]
    fn invalid_requests_change_nothing() {
        // A power-down to an invalid entry point.
        let mut f = Fake::new(Firmware::Returns(ret::SUCCESS));
        assert_eq!(
            suspend(&mut f, POWER_DOWN, false),
            Outcome::Answer(ret::INVALID_ADDRESS)
        );
        assert!(f.steps.is_empty(), "{:?}", f.steps);
        // A power_state with a reserved bit set.
        assert_eq!(
            suspend(&mut f, 1 << 31, true),
            Outcome::Answer(ret::INVALID_PARAMETERS)
        );
        assert!(f.steps.is_empty(), "{:?}", f.steps);
    }

    #[test]
    fn standby_needs_no_entry_and_saves_nothing() {
        let mut f = Fake::new(Firmware::Returns(ret::SUCCESS));
        assert_eq!(
            suspend(&mut f, STANDBY, false),
            Outcome::Answer(ret::SUCCESS)
        );
        assert_eq!(
            f.steps,
            [
                Step::Count(Event::Suspend),
                Step::Pending,
                Step::Count(Event::SuspendStandby),
                Step::Firmware(STANDBY)
            ]
        );
    }

    #[test]
    fn pending_virtual_interrupt_returns_at_once() {
        let mut f = Fake::new(Firmware::Returns(ret::SUCCESS));
        f.pending = true;
        assert_eq!(
            suspend(&mut f, POWER_DOWN, true),
            Outcome::Answer(ret::SUCCESS)
        );
        assert_eq!(f.steps, [Step::Count(Event::Suspend), Step::Pending]);
    }
}

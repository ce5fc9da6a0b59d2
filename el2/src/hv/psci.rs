//! The guest's PSCI calls, relayed to firmware.
//!
//! Every argument is validated before any state changes (TF-A's rule);
//! firmware is only ever called with the hypervisor's own entry point, so a
//! core that firmware starts or wakes always arrives in EL2 first. Around a
//! power-down each core saves and restores its own trace and vCPU state:
//! validate, save, firmware, restore, on the way back firmware returns and
//! on the warm boot (`boot`'s entry) alike.

use core::sync::atomic::Ordering;

use guest_api::psci::{self, ret, Call, PowerState, StateType};
use guest_api::smccc;

use super::state::{self, machine, me, CORES, WARM_BOOT};
use super::{tracing, vcpu};
use crate::arch::{self, Readable};
use crate::mailbox::Bound;
use crate::manager::Wake;
use crate::power::{self, OnRefused};
use crate::stats::{Event, Totals};
use crate::suspend::{self, Outcome, SuspendingCore};

/// Relays `[function, x1, x2, x3]` to firmware through smccc's SMC64
/// conduit and returns firmware's x0 unchanged: the guest gets firmware's
/// own answer, whatever it is, so the relay does not decode it.
fn fw(args: [u64; 4]) -> i64 {
    let mut regs = [0u64; 17];
    regs[..3].copy_from_slice(&args[1..]);
    <::smccc::Smc as ::smccc::Call>::call64(args[0] as u32, regs)[0] as i64
}

/// Logs what every core counted (`stats:` line; the Linux test and the
/// benchmarks read it).
pub fn log_totals() {
    log::info!("stats: {}", Totals::of(CORES.iter().map(|c| &c.stats)));
    log::info!(
        "requests: longest wait for another core {} us (bound {} ms)",
        tracing::longest_wait_us(),
        guest_api::hyp::TARGET_ANSWER_BOUND_MS
    );
}

/// A guest entry point: 4-byte aligned, in the guest's RAM.
fn valid_entry(addr: u64) -> bool {
    machine().guest.valid_entry(addr)
}

/// A PSCI call from the guest, decoded ([`Call::decode`]): its result.
pub fn call(call: Call) -> i64 {
    let m = machine();
    match call {
        Call::Version => fw([psci::VERSION as u64, 0, 0, 0]),
        Call::Features { function } => {
            if function == smccc::SMCCC_VERSION {
                0
            } else if Call::decode([function as u64, 0, 0, 0]).is_some() {
                fw([psci::FEATURES as u64, function as u64, 0, 0])
            } else {
                ret::NOT_SUPPORTED
            }
        }
        Call::CpuOn {
            target,
            entry,
            context,
        } => {
            let Some(idx) = m.guest_cpu_index(target) else {
                return ret::INVALID_PARAMETERS;
            };
            if !valid_entry(entry) {
                return ret::INVALID_ADDRESS;
            }
            let core = &CORES[idx];
            if let Err(refused) = core.power.begin_on() {
                return match refused {
                    OnRefused::AlreadyOn => ret::ALREADY_ON,
                    OnRefused::OnPending => ret::ON_PENDING,
                };
            }
            core.entry.store(entry, Ordering::Relaxed);
            core.context.store(context, Ordering::Relaxed);
            let r = fw([
                psci::CPU_ON_64 as u64,
                m.platform.cpus()[idx],
                arch::secondary_entry_address(),
                idx as u64,
            ]);
            if r == ret::SUCCESS {
                state::count(Event::CpuOn);
            } else {
                // Only our claim is given back (see `CorePower::on_failed`).
                core.power.on_failed();
            }
            r
        }
        Call::CpuOff => {
            let me = me();
            if m.vanish_on_cpu_off {
                // Test switch: the core goes off behind the other cores'
                // back, its mailbox open and its power ON in their view.
                log::info!("test.vanish: CPU_OFF straight to firmware, mailbox left open");
                state::count(Event::CpuOff);
                let r = fw([psci::CPU_OFF as u64, 0, 0, 0]);
                return r;
            }
            // The mailbox closes first (refusing new requests at once and
            // serving the one already posted), then trace stops and the
            // mode becomes Disabled: no request can re-enable trace after
            // the stop (see `power::cpu_off`).
            let closed = power::cpu_off(
                &me.mailbox,
                &mut (),
                &mut |_, words| tracing::serve_words(words),
                &mut |_| tracing::power_off(),
                &mut || arch::wfe(),
                &mut Bound {
                    now: &mut || arch::CNTPCT_EL0.get(),
                    ticks: m.request_bound_ticks,
                },
            );
            if closed.forced {
                log::warn!(
                    "CPU_OFF: a requester stopped in the middle of a request for {} ms: mailbox closed under it",
                    guest_api::hyp::TARGET_ANSWER_BOUND_MS
                );
            }
            me.power.off();
            arch::sev();
            log::debug!("CPU_OFF");
            state::count(Event::CpuOff);
            let r = fw([psci::CPU_OFF as u64, 0, 0, 0]);
            // Only a refusal returns: the core stays on, trace disabled.
            state::come_online();
            r
        }
        Call::CpuSuspend {
            power_state,
            entry,
            context,
        } => match suspend::cpu_suspend(
            &mut ThisCore,
            power_state,
            m.power_state_format,
            entry,
            context,
            valid_entry(entry),
        ) {
            Outcome::Answer(r) => r,
            Outcome::ResumeAtEntry { entry, context } => vcpu::resume_at_entry(entry, context),
        },
        Call::AffinityInfo {
            target,
            lowest_level,
        } => {
            if m.guest_cpu_index(target).is_none() {
                return ret::INVALID_PARAMETERS;
            }
            fw([
                psci::AFFINITY_INFO_64 as u64,
                target,
                lowest_level as u64,
                0,
            ])
        }
        Call::MigrateInfoType => fw([psci::MIGRATE_INFO_TYPE as u64, 0, 0, 0]),
        Call::SystemOff => {
            log::info!("guest asked for SYSTEM_OFF");
            log_totals();
            fw([psci::SYSTEM_OFF as u64, 0, 0, 0])
        }
        Call::SystemReset => {
            log::info!("guest asked for SYSTEM_RESET");
            log_totals();
            fw([psci::SYSTEM_RESET as u64, 0, 0, 0])
        }
    }
}

/// The core running this code, as CPU_SUSPEND's steps see it
/// (`suspend::cpu_suspend` decides their order).
#[derive(Debug)]
pub struct ThisCore;

impl SuspendingCore for ThisCore {
    fn count(&mut self, event: Event) {
        state::count(event);
    }
    fn virtual_interrupt_pending(&mut self) -> bool {
        vcpu::any_pending()
    }
    fn keep_entry(&mut self, entry: u64, context: u64) {
        me().entry.store(entry, Ordering::Relaxed);
        me().context.store(context, Ordering::Relaxed);
    }
    fn save_trace(&mut self) {
        tracing::save_for_power_down();
    }
    fn save_vcpu(&mut self) {
        vcpu::save_for_power_down();
    }
    fn firmware_suspend(&mut self, state: PowerState) -> i64 {
        let context = arch::core_index() as u64 | WARM_BOOT;
        let r = fw([
            psci::CPU_SUSPEND_64 as u64,
            state.raw as u64,
            arch::secondary_entry_address(),
            context,
        ]);
        if r == ret::SUCCESS && state.kind == StateType::PowerDown && machine().simulate_power_loss
        {
            // Test switch `test.powerdown`: what a real power-down does.
            tracing::lose_power();
            arch::simulate_power_loss(context);
        }
        r
    }
    fn restore_vcpu(&mut self) {
        vcpu::restore_after_power_down();
    }
    fn restore_trace(&mut self, wake: Wake) {
        tracing::restore_after_suspend(wake);
    }
}

//! The SMCCC router: every call the guest makes (HVC, or a trapped SMC)
//! arrives here decoded once, and goes to the service that owns it: PSCI
//! (`psci`), the Arm architecture calls (answered here), or this
//! hypervisor's vendor service (`guest_api::hyp`; its trace calls go to
//! `tracing`). How many result registers a call writes is the ABI's
//! ([`hyp::Call::result_registers`]); the others keep the guest's values.

use guest_api::hyp;
use guest_api::psci::Call as PsciCall;
use guest_api::smccc;

use super::state::{self, machine};
use super::{psci, tracing};
use crate::arch;
use crate::regs::GuestRegs;
use crate::request::Request;
use crate::stats::Event;

/// An SMCCC call with immediate `imm` from the guest: answered in `regs`.
pub fn call(regs: &mut GuestRegs, imm: u16) {
    if imm != 0 {
        regs.x[0] = smccc::NOT_SUPPORTED as u64;
        return;
    }
    state::count(Event::GuestCall);
    let (r, n) = dispatch(regs.smccc_args());
    regs.x[..n].copy_from_slice(&r[..n]);
}

/// Routes one call: x0..x5 of the answer and how many of them it defines.
fn dispatch(x: [u64; 6]) -> ([u64; 6], usize) {
    let word = |v: i64| [v as u64, 0, 0, 0, 0, 0];
    if let Some(call) = PsciCall::decode([x[0], x[1], x[2], x[3]]) {
        return (word(psci::call(call)), 1);
    }
    match x[0] as u32 {
        smccc::SMCCC_VERSION => return (word(smccc::VERSION_1_2 as i64), 1),
        smccc::SMCCC_ARCH_FEATURES => {
            // SMCCC_VERSION needs no discovery; no workaround is offered.
            let r = if x[1] as u32 == smccc::SMCCC_VERSION {
                0
            } else {
                smccc::NOT_SUPPORTED
            };
            return (word(r), 1);
        }
        _ => {}
    }
    match hyp::Call::decode(x) {
        Some(call) => {
            let r = vendor(call);
            (r, call.result_registers(r[0]))
        }
        None => (word(smccc::NOT_SUPPORTED), 1),
    }
}

/// A call of this hypervisor's vendor service.
fn vendor(call: hyp::Call) -> [u64; 6] {
    let word = |v: i64| [v as u64, 0, 0, 0, 0, 0];
    match call {
        hyp::Call::CallCount => word(hyp::CALLS.len() as i64),
        hyp::Call::CallUid => {
            let w = hyp::UID.to_registers().map(u64::from);
            [w[0], w[1], w[2], w[3], 0, 0]
        }
        hyp::Call::Revision => [hyp::REVISION_MAJOR, hyp::REVISION_MINOR, 0, 0, 0, 0],
        hyp::Call::AbiVersion => [hyp::ABI_VERSION_VALUE, 0, 0, 0, 0, 0],
        hyp::Call::Features { function } => word(if hyp::CALLS.contains(&function) {
            0
        } else {
            hyp::Error::NotSupported.code()
        }),
        hyp::Call::Ping { target } => tracing::call(
            target,
            Request::Ping {
                from: arch::core_index() as u64,
            },
        ),
        hyp::Call::TraceEnable { target, config } => match config {
            Ok(cfg) => tracing::call(target, Request::TraceEnable(cfg)),
            Err(e) => word(e.error().code()),
        },
        hyp::Call::TraceDisable { target } => tracing::call(target, Request::TraceDisable),
        hyp::Call::TraceRead {
            target,
            offset,
            ipa,
            size,
        } => {
            // The guest's buffer is checked here, before anything is sent;
            // the owning core checks the offset against its data.
            let ram = machine().guest.memory();
            match crate::trace::data::check_guest_buffer(ipa, size, ram) {
                Ok(()) => tracing::call(target, Request::TraceRead { offset, ipa, size }),
                Err(e) => word(e.code()),
            }
        }
        hyp::Call::TraceStats { target } => tracing::call(target, Request::TraceStats),
        hyp::Call::TraceIdRegs { target } => tracing::call(target, Request::TraceIdRegs),
        // An invalid MPIDR is refused before anything is sent.
        hyp::Call::TraceStatus { target } => tracing::call(target, Request::TraceStatus),
    }
}

//! The trace manager on the machine: guest requests travel to the core that
//! owns the trace hardware they touch, and that core commits them.
//!
//! Caller side (`call`): validate, then serve inline when the target is the
//! calling core, or post the request in the target's mailbox and send EL2's
//! SGI. Target side (`serve`): on the owning core, interrupts masked, the
//! request is applied to `manager::CoreTrace`, which programs the hardware
//! and records the mode in one step.
//!
//! The suspend path (`save_for_power_down`, `restore_after_suspend`) runs on
//! the suspending core only and touches only its own state.
//!
//! Each core's `CoreTrace` is a [`PerCore`] cell of this module's: nothing
//! outside it reaches a core's trace state but through these functions.

use core::cell::RefCell;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use guest_api::hyp::Error;
use guest_api::trace::{self as abi, Status};

use super::gic;
use super::state::{self, machine, me, PerCore, CORES};
use crate::arch::{self, Readable};
use crate::bootargs::TraceSource;
use crate::dtb::MAX_CPUS;
use crate::mailbox::{AnswerWords, Bound, RequestWords, SendError, Timeout};
use crate::manager::{self, CoreTrace, Hardware, Mode};
use crate::request::Request;
use crate::stats::Event;

mod buffers;
mod metered;
#[cfg(feature = "naive-strategy")]
mod naive;

pub use buffers::{buffer, BUFFER_SIZE, GUARD_SIZE};
use buffers::{copy_to_guest, store_trace};
use metered::{metered, Metered};

/// Each core's trace state, created at the core's first use.
static TRACE: PerCore<Option<CoreTrace<Metered>>> =
    PerCore::new([const { percore::ExceptionLock::new(RefCell::new(None)) }; MAX_CPUS]);

/// Bytes of per-core state this module keeps.
pub const STATE_SIZE: usize = core::mem::size_of::<Option<CoreTrace<Metered>>>();

/// [`ACTIVE`]: trace is enabled on this core.
const ENABLED: u8 = 1 << 0;
/// [`ACTIVE`]: trace is enabled on the QEMU model with the exceptions-only
/// source, which is fed the guest's exceptions ([`guest_event`]).
const MODEL_FED: u8 = 1 << 1;
/// [`ACTIVE`]: trace is enabled on the QEMU model with the instruction
/// source: EL2 steps the guest (`hv::step`) and feeds [`observe`].
const STEPPED: u8 = 1 << 2;
/// [`ACTIVE`], with [`STEPPED`]: the configuration leaves EL1 out, so EL2
/// need not step the guest's EL1 (`hv::step` parks it).
const EL1_UNTRACED: u8 = 1 << 3;

/// Each core's mode, as two bits the paths that run with trace off (every
/// trap, every suspend) read without borrowing [`TRACE`]: with trace
/// disabled they cost a load and a branch, and on real hardware the model
/// hook costs the same. Only the owning core (index TPIDR_EL2) writes its element, at the
/// end of every borrow of its trace state ([`with_trace`]), so it always
/// says what the last commit left.
static ACTIVE: [AtomicU8; MAX_CPUS] = [const { AtomicU8::new(0) }; MAX_CPUS];

#[inline(always)]
fn active() -> u8 {
    ACTIVE[arch::core_index()].load(Ordering::Relaxed)
}

/// Runs `f` on this core's trace state (probing the backend the first time).
fn with_trace<R>(f: impl FnOnce(&mut CoreTrace<Metered>) -> R) -> R {
    state::with(&TRACE, |t| {
        let t = t.get_or_insert_with(|| {
            let idx = arch::core_index();
            let mut b = crate::trace::Backend::probe(idx, buffer(idx), GUARD_SIZE as u64);
            b.set_model_writer(store_trace);
            CoreTrace::new(Metered(b))
        });
        let r = f(t);
        let bits = match t.mode() {
            Mode::Enabled(cfg) if t.backend.kind() == abi::Backend::Model => {
                if machine().trace_source == TraceSource::Instructions {
                    ENABLED | STEPPED | if cfg.el1 { 0 } else { EL1_UNTRACED }
                } else {
                    ENABLED | MODEL_FED
                }
            }
            Mode::Enabled(_) => ENABLED,
            Mode::Disabled => 0,
        };
        ACTIVE[arch::core_index()].store(bits, Ordering::Relaxed);
        r
    })
}

/// False in the `bare-relay` build (the benchmarks' baseline): no trace
/// manager, so the trace calls answer NOT_SUPPORTED and suspend saves and
/// restores only what any hypervisor must (the guest's virtual CPU
/// interface).
const TRACE_MANAGER: bool = !cfg!(feature = "bare-relay");

fn error(e: Error) -> [u64; 6] {
    [e.code() as u64, 0, 0, 0, 0, 0]
}

/// A guest's request about core `target` (an MPIDR), from the calling core.
pub fn call(target: u64, req: Request) -> [u64; 6] {
    if !TRACE_MANAGER {
        return error(Error::NotSupported);
    }
    let m = machine();
    let Some(idx) = m.guest_cpu_index(target) else {
        return error(Error::InvalidParameter);
    };
    #[cfg(feature = "naive-strategy")]
    if let Some(answer) = naive::call(idx, req) {
        return answer;
    }
    if idx == arch::core_index() {
        state::count(Event::RequestLocal);
        return serve(req);
    }
    state::count(Event::RequestRemote);
    let mpidr = m.platform.cpus()[idx];
    let start = arch::CNTPCT_EL0.get();
    let r = CORES[idx].mailbox.send(
        req.to_words(),
        &mut || {
            gic::send_hyp_sgi(mpidr);
            arch::sev();
        },
        &mut || {
            serve_mailbox();
            // Woken by the target's SEV, or by EL2's event stream (see
            // `power::event_stream_bits`) when it sends none.
            arch::wfe();
        },
        &mut Bound {
            now: &mut || arch::CNTPCT_EL0.get(),
            ticks: m.request_bound_ticks,
        },
    );
    LONGEST_WAIT.fetch_max(
        arch::CNTPCT_EL0.get().wrapping_sub(start),
        Ordering::Relaxed,
    );
    arch::sev();
    match r {
        Ok(answer) => answer,
        Err(SendError::TargetOff) => {
            state::count(Event::RequestTargetOff);
            error(Error::TargetOff)
        }
        Err(SendError::Timeout(t)) => timed_out(idx, req, t),
    }
}

/// Longest wait of a cross-core request so far, in counter ticks (logged
/// at SYSTEM_OFF: the margin to the bound in a healthy run).
static LONGEST_WAIT: AtomicU64 = AtomicU64::new(0);

/// The longest cross-core wait so far, in microseconds.
pub fn longest_wait_us() -> u64 {
    let freq = arch::CNTFRQ_EL0.get().max(1);
    LONGEST_WAIT
        .load(Ordering::Relaxed)
        .saturating_mul(1_000_000)
        / freq
}

/// Core `idx` did not answer `req` within the bound: one log line for the
/// event, and the guest's answer. If firmware says the core is off although
/// it never went through CPU_OFF (it vanished: powered off behind PSCI's
/// back), it is marked off and its mailbox closed, so the next request is
/// refused at once and a CPU_ON may start it again.
fn timed_out(idx: usize, req: Request, t: Timeout) -> [u64; 6] {
    state::count(Event::RequestTimeout);
    let m = machine();
    use smccc::psci::{affinity_info, AffinityState, LowestAffinityLevel};
    let fw = affinity_info::<smccc::Smc>(m.platform.cpus()[idx], LowestAffinityLevel::All);
    let vanished = fw == Ok(AffinityState::Off);
    let marked = vanished && {
        let target = &CORES[idx];
        let closed = target.mailbox.close_for_vanished_owner();
        target.power.vanished() || closed
    };
    let (answer, what) = match t {
        Timeout::Unclaimed => (Error::TargetOff, "its mailbox stayed busy: nothing posted"),
        Timeout::Withdrawn => (Error::TargetOff, "never taken: withdrawn"),
        Timeout::Abandoned => (Error::HardwareFault, "taken, not answered: abandoned"),
    };
    log::warn!(
        "cpu{idx} did not answer {} within {} ms ({what}); firmware says {}{}; answered {:?}",
        req.name(),
        guest_api::hyp::TARGET_ANSWER_BOUND_MS,
        match fw {
            Ok(AffinityState::On) => "ON",
            Ok(AffinityState::Off) => "OFF",
            Ok(AffinityState::OnPending) => "ON_PENDING",
            Err(_) => "an error",
        },
        if marked {
            ": it vanished, marked off"
        } else {
            ""
        },
        answer
    );
    error(answer)
}

/// Executes request words posted to this core's mailbox. Runs on the
/// owning core only.
pub fn serve_words(words: RequestWords) -> AnswerWords {
    state::count(Event::RequestServed);
    match Request::from_words(words) {
        Ok(req) => serve(req),
        Err(e) => error(e),
    }
}

/// Serves this core's mailbox, if something is posted. Runs on the owning
/// core only, from its SGI handler or while it waits itself.
pub fn serve_mailbox() {
    let served = me().mailbox.serve(&mut serve_words);
    if served {
        arch::sev();
    }
    #[cfg(feature = "naive-strategy")]
    naive::apply_pending();
}

/// Cores that have logged their trace unit's ID registers, one bit each.
static DECODER_IDS_LOGGED: AtomicU32 = AtomicU32::new(0);

/// Logs, once per core, the ID registers a trace decoder needs for this
/// core's unit, so a runner can describe real hardware's trace in its
/// snapshot (tests/runner/src/snapshot.rs parses the line):
///
/// `trace unit ids: backend=ete traceid=1 TRCIDR0=0x... TRCIDR1=0x... TRCIDR2=0x... TRCIDR8=0x... TRCDEVARCH=0x...`
///
/// It runs after the core's first successful enable, when the driver has
/// released the OS lock (Linux's ETM driver, too, reads the ID registers
/// only after unlocking). Info level for the real ETE; the QEMU model's
/// line, with its fixed values, is debug level (`log=debug`), so it costs
/// nothing in normal runs and benchmarks.
fn log_decoder_ids_once(idx: usize) {
    let bit = 1u32 << (idx & 31);
    if DECODER_IDS_LOGGED.fetch_or(bit, Ordering::Relaxed) & bit != 0 {
        return;
    }
    let (level, name) = match backend_kind() {
        abi::Backend::Model => (log::Level::Debug, "model"),
        _ => (log::Level::Info, "ete"),
    };
    if !log::log_enabled!(level) {
        return;
    }
    let ids = with_trace(|t| t.backend.decoder_ids());
    log::log!(
        level,
        "trace unit ids: backend={name} traceid={} TRCIDR0={:#x} TRCIDR1={:#x} TRCIDR2={:#x} TRCIDR8={:#x} TRCDEVARCH={:#x}",
        crate::trace::trace_id(idx),
        ids.idr0,
        ids.idr1,
        ids.idr2,
        ids.idr8,
        ids.devarch
    );
}

/// Applies a request to this core's state. Runs on the owning core only.
pub fn serve(req: Request) -> [u64; 6] {
    let me_idx = arch::core_index();
    if machine().gic.trbe_intid.is_none()
        && !matches!(req, Request::Ping { .. })
        && backend_kind() == abi::Backend::EteTrbe
    {
        // A real TRBE but no interrupt for it on this machine (its device
        // tree names none, and the architecture fixes no PPI): the buffer's
        // management events (full, error) are taken here, before the
        // request looks at the buffer, instead of when they happen. A full
        // fill-mode buffer stays stopped until then; TRACE_STATS reports it.
        // (The model raises its events itself, as it records them.)
        buffer_interrupt();
    }
    match req {
        Request::Ping { .. } => {
            let n = me().pings.fetch_add(1, Ordering::Relaxed) + 1;
            [0, me_idx as u64, machine().platform.cpus()[me_idx], n, 0, 0]
        }
        Request::TraceEnable(cfg) => {
            let result = with_trace(|t| t.enable(cfg));
            match result {
                Ok(generation) => {
                    log_decoder_ids_once(me_idx);
                    [0, generation, 0, 0, 0, 0]
                }
                Err(e) => hardware_fault(e),
            }
        }
        Request::TraceDisable => match with_trace(|t| t.disable()) {
            Ok(generation) => [0, generation, 0, 0, 0, 0],
            Err(e) => hardware_fault(e),
        },
        Request::TraceRead { offset, ipa, size } => {
            let view = with_trace(|t| t.backend.view());
            match crate::trace::data::plan(&view, offset, size) {
                Ok((chunks, result)) => {
                    for c in chunks.iter().filter(|c| c.len != 0) {
                        // SAFETY: `plan` keeps each chunk inside this core's
                        // buffer and inside [0, size) of the guest's buffer,
                        // which the caller checked against the guest's RAM.
                        unsafe { copy_to_guest(view.buffer.base + c.from, ipa + c.to, c.len) };
                    }
                    result.to_registers()
                }
                Err(e) => error(e),
            }
        }
        Request::TraceStats => {
            let mut stats = with_trace(|t| t.backend.stats());
            if backend_kind() == abi::Backend::Model
                && machine().trace_source == TraceSource::Instructions
            {
                stats.flags |= abi::STATS_INSTRUCTIONS;
            }
            stats.to_registers()
        }
        // The ID registers are per core: only the core itself reads its own.
        Request::TraceIdRegs => with_trace(|t| t.backend.id_regs()).to_registers(),
        Request::TraceStatus => {
            let (snap, kind) = with_trace(|t| (t.snapshot(), t.backend.kind()));
            #[cfg(feature = "naive-strategy")]
            let snap = manager::Snapshot {
                mode: naive::mode(me_idx),
                ..snap
            };
            status(snap, kind).to_registers()
        }
    }
}

fn hardware_fault(e: manager::HwFault) -> [u64; 6] {
    log::warn!("trace hardware fault: {e:?}; trace left disabled");
    error(Error::HardwareFault)
}

fn status(snap: manager::Snapshot, backend: abi::Backend) -> Status {
    let (mode, config) = match snap.mode {
        Mode::Disabled => (abi::Mode::Disabled, None),
        Mode::Enabled(cfg) => (abi::Mode::Enabled, Some(cfg)),
    };
    let hardware = match snap.hardware {
        Hardware::Tracing => abi::Hardware::Tracing,
        // An inconsistent unit is not tracing as configured: report it
        // stopped, which a checker flags against an enabled mode.
        Hardware::Stopped | Hardware::Inconsistent => abi::Hardware::Stopped,
    };
    Status {
        mode,
        hardware,
        powered: true,
        backend,
        generation: snap.generation,
        config,
    }
}

/// A guest exception EL2 took on this core, for the trace (the QEMU model
/// records it; real trace hardware needs nothing). `spsr` gives the guest's
/// exception level.
#[inline(always)]
pub fn guest_event(kind: crate::trace::packet::ExceptionType, elr: u64, spsr: u64) {
    // Real trace hardware sees the guest itself: only the model is fed.
    // The check is inlined into every trap; the rest is not.
    if TRACE_MANAGER && active() & MODEL_FED != 0 {
        feed_model(kind, elr, spsr);
    }
}

#[inline(never)]
fn feed_model(kind: crate::trace::packet::ExceptionType, elr: u64, spsr: u64) {
    with_trace(|t| {
        let Mode::Enabled(cfg) = t.mode() else {
            return;
        };
        let ev = crate::trace::GuestEvent {
            kind,
            el: ((spsr >> 2) & 0b11) as u8,
            address: elr,
            timestamp: arch::CNTVCT_EL0.get(),
            context_id: arch::CONTEXTIDR_EL1.get() as u32,
            vmid: 0,
        };
        metered(|| t.backend.guest_event(&ev, Some(&cfg)));
    });
}

/// Whether EL2 is to step this core's guest: trace is enabled on the model
/// with the instruction source.
#[inline(always)]
pub fn stepping() -> bool {
    TRACE_MANAGER && active() & STEPPED != 0
}

/// Whether the stepped trace leaves the guest's EL1 out.
#[inline(always)]
pub fn el1_untraced() -> bool {
    TRACE_MANAGER && active() & EL1_UNTRACED != 0
}

/// What the instruction observer (`hv::step`) saw the guest do, for the
/// model's instruction-trace encoder.
pub fn observe(ev: &crate::trace::observe::Observed, s: &crate::trace::observe::Sample) {
    if !stepping() {
        return;
    }
    // Trace is enabled (STEPPED), so the state exists, and an observation
    // changes no mode: the plain borrow, without `with_trace`'s ACTIVE
    // update (this runs for every instruction of a stepped guest).
    state::with(&TRACE, |t| {
        let Some(t) = t.as_mut() else {
            return;
        };
        let Mode::Enabled(cfg) = t.mode() else {
            return;
        };
        metered(|| t.backend.observe(ev, s, Some(&cfg)));
    });
}

/// The TRBE interrupt (real hardware): handled on this core, never
/// forwarded to the guest.
pub fn buffer_interrupt() {
    if !TRACE_MANAGER {
        return;
    }
    let ev = with_trace(|t| {
        let cfg = match t.mode() {
            Mode::Enabled(cfg) => Some(cfg),
            Mode::Disabled => None,
        };
        t.backend.buffer_interrupt(cfg.as_ref())
    });
    if let Some(ev) = ev {
        log::debug!("trace buffer interrupt: {ev:?}");
    }
}

/// The kind of trace backend this core drives.
pub fn backend_kind() -> abi::Backend {
    with_trace(|t| t.backend.kind())
}

/// CPU_ON: the core starts with trace disabled.
pub fn power_on() {
    if TRACE_MANAGER {
        with_trace(|t| t.power_on());
    }
}

/// CPU_OFF: trace stops and the mode becomes Disabled.
pub fn power_off() {
    if TRACE_MANAGER {
        with_trace(|t| t.power_off());
    }
}

/// Before a power-down CPU_SUSPEND: quiesce trace and save what the core
/// will lose (the trace unit's dynamic state). Nothing is observable until
/// `restore_after_suspend`.
#[inline(always)]
pub fn save_for_power_down() {
    // A disabled core has nothing to save (`CoreTrace::suspend_save`).
    if TRACE_MANAGER && active() & ENABLED != 0 {
        save_enabled();
    }
}

#[inline(never)]
fn save_enabled() {
    state::count(Event::TraceSaved);
    with_trace(|t| t.suspend_save());
}

/// After a power-down CPU_SUSPEND, on both paths (firmware returned, or the
/// core came back through the warm-boot entry): put back what was saved.
#[inline(always)]
pub fn restore_after_suspend(wake: crate::manager::Wake) {
    // A disabled core whose firmware returned kept its stopped unit
    // (`CoreTrace::resume_restore`): nothing to do.
    if TRACE_MANAGER && (active() & ENABLED != 0 || wake != crate::manager::Wake::Returned) {
        restore(wake);
    }
}

#[inline(never)]
fn restore(wake: crate::manager::Wake) {
    if let Err(e) = with_trace(|t| t.resume_restore(wake)) {
        log::warn!("trace could not be restored after suspend ({e:?}): left disabled");
    }
}

/// What a real power-down does to the trace unit (model only).
pub fn lose_power() {
    if TRACE_MANAGER {
        with_trace(|t| t.backend.power_loss());
    }
}

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

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use guest_api::hyp::Error;
use guest_api::trace::{self as abi, Status};

use super::core_state::{self, machine, me, CORES};
use super::gic;
use crate::arch;
use crate::mailbox::{AnswerWords, Bound, RequestWords, SendError, Timeout};
use crate::manager::{self, CoreTrace, Hardware, Mode};
use crate::request::Request;
use crate::stats::Event;

pub use crate::trace::Backend;

/// Size of each core's trace buffer, owned by EL2.
pub const BUFFER_SIZE: usize = 64 << 10;
/// The guard page after each core's buffer (so also between two cores'
/// buffers, and after the last one): it holds nothing and nothing reads
/// it. A TRBE with erratum 2224489/2253138 may write up to 64 bytes past
/// LIMIT; they land here instead of in the next core's buffer or in EL2's
/// own data.
pub const GUARD_SIZE: usize = 4096;

#[repr(C, align(4096))]
struct Slot {
    data: [u8; BUFFER_SIZE],
    guard: [u8; GUARD_SIZE],
}

#[repr(C, align(4096))]
struct Buffers([Slot; crate::dtb::MAX_CPUS]);

/// The trace buffers: the hypervisor's memory, never mapped for the guest.
static mut BUFFERS: Buffers = Buffers(
    [const {
        Slot {
            data: [0; BUFFER_SIZE],
            guard: [0; GUARD_SIZE],
        }
    }; crate::dtb::MAX_CPUS],
);

/// Cores whose guard page has caught a write, one bit each (logged once).
static GUARD_HIT: AtomicU32 = AtomicU32::new(0);

/// Stores trace bytes into EL2's trace buffers and their guard pages, and
/// nowhere else: the model's writer. Bytes outside every core's slot are
/// dropped; bytes in a guard page are logged once per core, since only a
/// part with the write-out-of-range erratum (or the model behaving like
/// one, `test.midr`) writes there.
fn store_trace(addr: u64, bytes: &[u8]) {
    let start = buffer(0).base;
    let slot = (BUFFER_SIZE + GUARD_SIZE) as u64;
    let end = start + slot * crate::dtb::MAX_CPUS as u64;
    let Some(last) = addr.checked_add(bytes.len() as u64) else {
        return;
    };
    if addr < start || last > end {
        return;
    }
    if (addr - start) % slot + bytes.len() as u64 > BUFFER_SIZE as u64 {
        let idx = ((addr - start) / slot) as usize;
        let bit = 1u32 << (idx & 31);
        if GUARD_HIT.fetch_or(bit, Ordering::Relaxed) & bit == 0 {
            log::warn!(
                "trace: a write past cpu{idx}'s buffer LIMIT ({:#x}+{}) landed in its guard page",
                addr,
                bytes.len()
            );
        }
    }
    // SAFETY: [addr, last) lies inside BUFFERS (checked above), which only
    // the trace hardware or model of the owning core writes, and this runs
    // on that core (the model belongs to it).
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len()) };
}

/// Copies `len` bytes of EL2's trace buffer at `from` to guest RAM at `to`.
///
/// # Safety
/// `[from, from + len)` is inside the calling core's trace buffer and
/// `[to, to + len)` inside the guest's RAM (checked by
/// `trace::data::check_guest_buffer`), which EL2 maps as Normal memory and
/// never uses itself.
unsafe fn copy_to_guest(from: u64, to: u64, len: u64) {
    // SAFETY: the caller's promise; the two ranges cannot overlap (the
    // guest's RAM never includes the hypervisor's).
    unsafe { core::ptr::copy_nonoverlapping(from as *const u8, to as *mut u8, len as usize) };
    arch::clean_dcache_to_poc(to, len);
}

/// The buffer of core `idx`.
pub fn buffer(idx: usize) -> crate::dtb::Range {
    // SAFETY: only the address is taken; the buffer is written by the trace
    // hardware (or its model) of core `idx` alone.
    let base = unsafe { core::ptr::addr_of!(BUFFERS.0[idx].data) } as u64;
    crate::dtb::Range::new(base, BUFFER_SIZE as u64)
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
        core_state::count(Event::RequestLocal);
        return serve(req);
    }
    core_state::count(Event::RequestRemote);
    let mpidr = m.platform.cpus()[idx];
    let start = arch::cntpct_el0::read();
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
            now: &mut || arch::cntpct_el0::read(),
            ticks: m.request_bound_ticks,
        },
    );
    LONGEST_WAIT.fetch_max(
        arch::cntpct_el0::read().wrapping_sub(start),
        Ordering::Relaxed,
    );
    arch::sev();
    match r {
        Ok(answer) => answer,
        Err(SendError::TargetOff) => {
            core_state::count(Event::RequestTargetOff);
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
    let freq = arch::cntfrq_el0::read().max(1);
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
    core_state::count(Event::RequestTimeout);
    let m = machine();
    let fw = arch::smc([
        guest_api::psci::AFFINITY_INFO_64 as u64,
        m.platform.cpus()[idx],
        0,
        0,
    ])[0] as i64;
    let vanished = fw == guest_api::psci::affinity::OFF;
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
            guest_api::psci::affinity::ON => "ON",
            guest_api::psci::affinity::OFF => "OFF",
            guest_api::psci::affinity::ON_PENDING => "ON_PENDING",
            _ => "an error",
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
    core_state::count(Event::RequestServed);
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
    let t = trace();
    let (level, name) = match t.backend.kind() {
        abi::Backend::Model => (log::Level::Debug, "model"),
        _ => (log::Level::Info, "ete"),
    };
    if !log::log_enabled!(level) {
        return;
    }
    let ids = t.backend.decoder_ids();
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
            let result = trace().enable(cfg);
            match result {
                Ok(generation) => {
                    log_decoder_ids_once(me_idx);
                    [0, generation, 0, 0, 0, 0]
                }
                Err(e) => hardware_fault(e),
            }
        }
        Request::TraceDisable => match trace().disable() {
            Ok(generation) => [0, generation, 0, 0, 0, 0],
            Err(e) => hardware_fault(e),
        },
        Request::TraceRead { offset, ipa, size } => {
            let t = trace();
            let view = t.backend.view();
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
        Request::TraceStats => trace().backend.stats().to_registers(),
        Request::TraceStatus => {
            let t = trace();
            let snap = t.snapshot();
            #[cfg(feature = "naive-strategy")]
            let snap = manager::Snapshot {
                mode: naive::mode(me_idx),
                ..snap
            };
            status(snap, t.backend.kind()).to_registers()
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

/// This core's trace state.
fn trace() -> &'static mut CoreTrace<Backend> {
    // SAFETY: EL2 on this core, interrupts masked; callers hold no other
    // reference from `local()` while they use this one.
    let local = unsafe { core_state::local() };
    local.trace.get_or_insert_with(|| {
        let mut b = Backend::probe(arch::core_index());
        b.set_model_writer(store_trace);
        CoreTrace::new(b)
    })
}

/// A guest exception EL2 took on this core, for the trace (the QEMU model
/// records it; real trace hardware needs nothing). `spsr` gives the guest's
/// exception level.
pub fn guest_event(kind: crate::trace::packet::ExceptionType, elr: u64, spsr: u64) {
    if !TRACE_MANAGER {
        return;
    }
    let t = trace();
    let Mode::Enabled(cfg) = t.mode() else {
        return;
    };
    // Real trace hardware sees the guest itself: only the model is fed.
    if t.backend.kind() != abi::Backend::Model {
        return;
    }
    let ev = crate::trace::GuestEvent {
        kind,
        el: ((spsr >> 2) & 0b11) as u8,
        address: elr,
        timestamp: arch::cntvct_el0::read(),
        context_id: arch::contextidr_el1::read() as u32,
        vmid: 0,
    };
    t.backend.guest_event(&ev, Some(&cfg));
}

/// The TRBE interrupt (real hardware): handled on this core, never
/// forwarded to the guest.
pub fn buffer_interrupt() {
    if !TRACE_MANAGER {
        return;
    }
    let t = trace();
    let cfg = match t.mode() {
        Mode::Enabled(cfg) => Some(cfg),
        Mode::Disabled => None,
    };
    if let Some(ev) = t.backend.buffer_interrupt(cfg.as_ref()) {
        log::debug!("trace buffer interrupt: {ev:?}");
    }
}

/// The kind of trace backend this core drives.
pub fn backend_kind() -> abi::Backend {
    trace().backend.kind()
}

/// CPU_ON: the core starts with trace disabled.
pub fn power_on() {
    if TRACE_MANAGER {
        trace().power_on();
    }
}

/// CPU_OFF: trace stops and the mode becomes Disabled.
pub fn power_off() {
    if TRACE_MANAGER {
        trace().power_off();
    }
}

/// Before a power-down CPU_SUSPEND: quiesce trace and save what the core
/// will lose (the trace unit's dynamic state, the guest's virtual CPU
/// interface). Nothing is observable until `restore_after_suspend`.
pub fn save_for_power_down() {
    if TRACE_MANAGER {
        trace().suspend_save();
    }
    // SAFETY: as in `trace`.
    let local = unsafe { core_state::local() };
    local.vcpu_if = Some(gic::VcpuInterface::save(machine().list_registers));
}

/// After a power-down CPU_SUSPEND, on both paths (firmware returned, or the
/// core came back through the warm-boot entry): put back what was saved.
pub fn restore_after_suspend(wake: crate::manager::Wake) {
    // SAFETY: as in `trace`.
    let local = unsafe { core_state::local() };
    if let Some(v) = local.vcpu_if.take() {
        v.restore();
    }
    if !TRACE_MANAGER {
        return;
    }
    if let Err(e) = trace().resume_restore(wake) {
        log::warn!("trace could not be restored after suspend ({e:?}): left disabled");
    }
}

/// What a real power-down does to the trace unit (model only).
pub fn lose_power() {
    if TRACE_MANAGER {
        trace().backend.power_loss();
    }
}

/// The deliberately wrong strategy of the seed's race, for tests only: the
/// caller writes the target's mode, and the target programs its hardware
/// later. The same checker that finds nothing wrong with ours catches it.
#[cfg(feature = "naive-strategy")]
mod naive {
    use core::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    const NONE: u64 = u64::MAX;
    /// The mode, as written by whichever core asked (config word, 0 = disabled).
    static MODE: [AtomicU64; crate::dtb::MAX_CPUS] =
        [const { AtomicU64::new(0) }; crate::dtb::MAX_CPUS];
    /// Hardware programming the target has yet to do (config word, 0 = stop).
    static PENDING: [AtomicU64; crate::dtb::MAX_CPUS] =
        [const { AtomicU64::new(NONE) }; crate::dtb::MAX_CPUS];

    pub(super) fn call(idx: usize, req: Request) -> Option<[u64; 6]> {
        let word = match req {
            Request::TraceEnable(cfg) => cfg.encode().0,
            Request::TraceDisable => 0,
            _ => return None,
        };
        MODE[idx].store(word, Ordering::Release);
        PENDING[idx].store(word, Ordering::Release);
        gic::send_hyp_sgi(machine().platform.cpus()[idx]);
        Some([0, 0, 0, 0, 0, 0])
    }

    pub(super) fn apply_pending() {
        let idx = arch::core_index();
        let word = PENDING[idx].swap(NONE, Ordering::AcqRel);
        if word == NONE {
            return;
        }
        let _ = match guest_api::trace::TraceConfig::decode(word, 0, 0) {
            Ok(cfg) => trace().enable(cfg),
            Err(_) => trace().disable(),
        };
    }

    pub(super) fn mode(idx: usize) -> Mode {
        match guest_api::trace::TraceConfig::decode(MODE[idx].load(Ordering::Acquire), 0, 0) {
            Ok(cfg) => Mode::Enabled(cfg),
            Err(_) => Mode::Disabled,
        }
    }
}

//! One core's trace backend as `manager::CoreTrace` drives it: the real
//! ETE and TRBE where the core has them, the model elsewhere (QEMU). Each
//! backend owns its core's buffer, so the manager's calls need no addresses.

// On the host only the model variant exists, so `if let Backend::Model`
// cannot fail there; on the target it can.
#![allow(irrefutable_let_patterns)]

use guest_api::trace::{Backend as AbiBackend, Stats, TraceConfig};
use guest_api::trace::{STATS_EC_SHIFT, STATS_ERROR, STATS_FULL};

use super::data::BufferView;
use super::errata::Errata;
use super::ete::{Ete, HwState, SavedState, TraceError};
use super::model::{GuestEvent, TraceModel, TRBSR_BSC_FULL, TRBSR_IRQ, TRBSR_S, TRBSR_WRAP};
use super::Probe;
use crate::manager::{Hardware, HwFault, TraceBackend};
use crate::platform::Range;

#[cfg(target_os = "none")]
use crate::arch::trace_regs::{HwTraceRegs, TraceAccess};

/// One core's trace hardware, real or modelled, with its buffer.
// The model variant is the larger (its register file, about 1.6 KiB); a
// backend lives in its core's static state, once, and EL2 has no heap to
// box it on, so the size difference costs nothing that matters.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Backend {
    /// The core's own ETE + TRBE.
    #[cfg(target_os = "none")]
    Hardware {
        /// The driver.
        ete: Ete<HwTraceRegs>,
        /// The core's trace buffer.
        buffer: Range,
        /// What EL2 knows of the capture.
        log: BufferLog,
    },
    /// The model, for a core without usable trace hardware.
    Model {
        /// The driver, over the model.
        ete: Ete<TraceModel>,
        /// The core's trace buffer.
        buffer: Range,
        /// What EL2 knows of the capture.
        log: BufferLog,
        /// The model's complaints already logged (see `audit`).
        audited: ModelAudit,
    },
}

/// EL2's record of the current capture: where the buffer stood when it was
/// last stopped, and the TRBE events seen. Updated on the owning core only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferLog {
    /// A capture exists (TRACE_ENABLE since power-up).
    pub started: bool,
    /// TRBPTR when the buffer was last stopped.
    pub ptr: u64,
    /// TRBSR when the buffer was last stopped.
    pub sr: u64,
    /// TRBE interrupts handled.
    pub irqs: u64,
    /// Where the capture's data lies: the buffer, less what an erratum
    /// workaround keeps out of it.
    pub data: Range,
    /// The buffer filled (fill mode) and stopped collecting.
    pub full: bool,
    /// TRBSR.EC of an error that stopped the buffer.
    pub error: Option<u8>,
}

/// What the model has counted against the driver: broken rules, and the
/// harm an affected part's defects did (`TraceModel::set_defects`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelAudit {
    /// `TraceModel::violations`.
    pub violations: u32,
    /// `TraceModel::dropped_writes`.
    pub dropped: u32,
    /// `TraceModel::stale_pointer_reads`.
    pub stale: u32,
}

/// TRBSR_EL1.EC [31:26].
const TRBSR_EC_SHIFT: u32 = 26;

/// What a TRBE interrupt reported, from TRBSR_EL1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferEvent {
    /// EC 0, MSS.BSC = full: the buffer filled and stopped (fill mode).
    Full,
    /// EC 0, the pointer wrapped (wrap mode).
    Wrapped,
    /// EC 0 without a known cause (e.g. a trigger event).
    Management,
    /// Any other EC: a fault on the buffer's memory (stage 1 or 2 abort,
    /// granule protection) or an IMPLEMENTATION DEFINED error; collection
    /// stopped.
    Error(u8),
}

impl BufferEvent {
    /// Classifies TRBSR_EL1.
    pub fn classify(sr: u64) -> BufferEvent {
        let ec = ((sr >> TRBSR_EC_SHIFT) & 0x3f) as u8;
        if ec != 0 {
            BufferEvent::Error(ec)
        } else if sr & TRBSR_S != 0 && sr & 0x3f == TRBSR_BSC_FULL {
            BufferEvent::Full
        } else if sr & TRBSR_WRAP != 0 {
            BufferEvent::Wrapped
        } else {
            BufferEvent::Management
        }
    }
}

/// The trace ID of core `idx`: CoreSight's legacy per-CPU ID, `0x10 +
/// 2 * idx` (`guest_api::trace::trace_id`), which perf assumes for CPU
/// `idx`; unique per core and valid (never 0, below 0x70) for every core
/// the hypervisor supports.
pub const fn trace_id(idx: usize) -> u8 {
    guest_api::trace::trace_id(idx) as u8
}

const _: () = assert!(super::valid_trace_id(trace_id(
    crate::platform::MAX_CPUS - 1
)));

/// Runs `f` on the driver, with the trace-unit trap opened on hardware.
macro_rules! with_ete {
    ($self:ident, |$ete:ident, $buffer:ident| $body:expr) => {
        match $self {
            #[cfg(target_os = "none")]
            Backend::Hardware {
                ete: $ete,
                buffer: $buffer,
                ..
            } => {
                let _open = TraceAccess::open();
                #[allow(unused_variables)]
                let $buffer = *$buffer;
                $body
            }
            Backend::Model {
                ete: $ete,
                buffer: $buffer,
                ..
            } => {
                #[allow(unused_variables)]
                let $buffer = *$buffer;
                $body
            }
        }
    };
}

impl Backend {
    /// A backend of the kind `probe` chose. `Probe::Hardware` gives the model
    /// on the host, where there is no hardware.
    pub fn new(probe: Probe, trace_id: u8, buffer: Range) -> Backend {
        Backend::with_errata(probe, trace_id, buffer, Errata::NONE, 0)
    }

    /// As `new`, for a core with `errata`, whose buffer is followed by
    /// `guard` bytes EL2 keeps free. The model then behaves like a part
    /// with those errata (QEMU's MIDR has none, so this is what the
    /// `test.midr` switch exercises).
    pub fn with_errata(
        probe: Probe,
        trace_id: u8,
        buffer: Range,
        errata: Errata,
        guard: u64,
    ) -> Backend {
        let mut b = Backend::plain(probe, trace_id, buffer);
        match &mut b {
            #[cfg(target_os = "none")]
            Backend::Hardware { ete, .. } => {
                ete.set_errata(errata);
                ete.set_guard(guard);
            }
            Backend::Model { ete, .. } => {
                ete.set_errata(errata);
                ete.set_guard(guard);
                ete.regs.set_defects(errata);
            }
        }
        b
    }

    fn plain(probe: Probe, trace_id: u8, buffer: Range) -> Backend {
        match probe {
            #[cfg(target_os = "none")]
            Probe::Hardware => Backend::Hardware {
                ete: Ete::new(HwTraceRegs, trace_id),
                buffer,
                log: BufferLog::default(),
            },
            _ => Backend::Model {
                ete: Ete::new(TraceModel::new(), trace_id),
                buffer,
                log: BufferLog::default(),
                audited: ModelAudit::default(),
            },
        }
    }

    /// Probes this core (core `idx`, on the core itself) and makes its
    /// backend, with the buffer EL2 reserved for it and the size of the
    /// guard page after it.
    #[cfg(target_os = "none")]
    pub fn probe(idx: usize, buffer: crate::dtb::Range, guard: u64) -> Backend {
        use crate::arch::Readable;
        let midr = super::errata::Midr(super::effective_midr(crate::arch::MIDR_EL1.get()));
        let errata = Errata::for_midr(midr);
        super::log_errata(idx, midr);
        Backend::with_errata(
            super::probe_core(errata),
            trace_id(idx),
            buffer,
            errata,
            guard,
        )
    }

    /// The model's counts against the driver so far (zero for hardware).
    pub fn model_audit(&self) -> ModelAudit {
        match self {
            Backend::Model { ete, .. } => ModelAudit {
                violations: ete.regs.violations(),
                dropped: ete.regs.dropped_writes(),
                stale: ete.regs.stale_pointer_reads(),
            },
            #[cfg(target_os = "none")]
            Backend::Hardware { .. } => ModelAudit::default(),
        }
    }

    /// Logs what the model newly counted against the driver: a broken
    /// hardware rule, or harm a defect of the part it plays did (a dropped
    /// TRB* write, a pointer read that a failed TSB left stale). Each is a
    /// missing workaround or a driver bug, so tests look for these lines.
    fn audit(&mut self) {
        let now = self.model_audit();
        if let Backend::Model { ete, audited, .. } = self {
            if now.violations > audited.violations {
                log::warn!(
                    "trace model: the driver broke a hardware rule ({} so far, last {:?})",
                    now.violations,
                    ete.regs.last_violation()
                );
            }
            if now.dropped > audited.dropped {
                log::warn!(
                    "trace model: {} TRB* writes dropped after a TRBE disable (erratum 2064142 behaviour)",
                    now.dropped
                );
            }
            if now.stale > audited.stale {
                log::warn!(
                    "trace model: {} TRBPTR reads after a TSB CSYNC that flushed nothing (erratum 2054223 behaviour)",
                    now.stale
                );
            }
            *audited = now;
        }
    }

    /// Which kind this is, for TRACE_STATUS.
    pub fn kind(&self) -> AbiBackend {
        match self {
            #[cfg(target_os = "none")]
            Backend::Hardware { .. } => AbiBackend::EteTrbe,
            Backend::Model { .. } => AbiBackend::Model,
        }
    }

    /// The unit's ID registers a decoder needs (see `tracing::power_on`).
    pub fn decoder_ids(&mut self) -> super::DecoderIds {
        with_ete!(self, |ete, buffer| ete.decoder_ids())
    }

    /// TRACE_IDREGS' answer: the decoder's ID registers, read now, and the
    /// trace ID this core's enables program. Runs on the core itself.
    pub fn id_regs(&mut self) -> guest_api::trace::IdRegs {
        let (ids, traceid) = with_ete!(self, |ete, buffer| (ete.decoder_ids(), ete.trace_id()));
        // The registers are 32 bits wide (MRS zero-extends them).
        guest_api::trace::IdRegs {
            idr0: ids.idr0 as u32,
            idr1: ids.idr1 as u32,
            idr2: ids.idr2 as u32,
            idr8: ids.idr8 as u32,
            authstatus: ids.authstatus as u32,
            devarch: ids.devarch as u32,
            traceid: traceid.into(),
        }
    }

    /// What a core power-down does to the trace hardware. Real hardware
    /// loses its state by itself; the model is told.
    pub fn power_loss(&mut self) {
        match self {
            Backend::Model { ete, .. } => ete.regs.power_loss(),
            #[cfg(target_os = "none")]
            Backend::Hardware { .. } => {}
        }
    }

    /// The model with a writer installed, for EL2's own buffers.
    pub fn set_model_writer(&mut self, w: super::model::Writer) {
        if let Backend::Model { ete, .. } = self {
            ete.regs.set_writer(w);
        }
    }

    fn log(&mut self) -> &mut BufferLog {
        match self {
            #[cfg(target_os = "none")]
            Backend::Hardware { log, .. } => log,
            Backend::Model { log, .. } => log,
        }
    }

    /// The core's trace buffer.
    pub fn buffer(&self) -> Range {
        match self {
            #[cfg(target_os = "none")]
            Backend::Hardware { buffer, .. } => *buffer,
            Backend::Model { buffer, .. } => *buffer,
        }
    }

    /// Records where the stopped buffer stands.
    fn record_stopped(&mut self) {
        let (ptr, sr) = with_ete!(self, |ete, buffer| ete.buffer_state());
        let log = self.log();
        if log.started {
            log.ptr = ptr;
            log.sr = sr;
        }
    }

    /// A guest exception EL2 took (QEMU's model traces it; real trace
    /// hardware sees the guest by itself). Then handles the buffer's
    /// interrupt if the model raised it: the model drives no interrupt
    /// line, so EL2 looks right after each emission.
    pub fn guest_event(&mut self, ev: &GuestEvent, cfg: Option<&TraceConfig>) {
        if let Backend::Model { ete, .. } = self {
            if !ete.is_running() {
                return;
            }
            ete.regs.event(ev);
            if ete.regs.peek(super::Reg::TrbSR) & TRBSR_IRQ != 0 {
                self.buffer_interrupt(cfg);
            }
        }
    }

    /// What the guest executed, as the observer that steps it reports it
    /// (`super::observe`): the model encodes it as instruction trace into
    /// the same FIFO and buffer as `guest_event`, under the same rules (a
    /// stopped unit, a disabled or full buffer take nothing), then EL2
    /// handles the buffer's interrupt if it was raised, restarting with
    /// `cfg` as `guest_event` does. Real trace hardware sees the guest by
    /// itself: nothing to do there.
    pub fn observe(
        &mut self,
        ev: &super::observe::Observed,
        s: &super::observe::Sample,
        cfg: Option<&TraceConfig>,
    ) {
        if let Backend::Model { ete, .. } = self {
            if !ete.is_running() {
                return;
            }
            ete.regs.observe(ev, s);
            if ete.regs.peek(super::Reg::TrbSR) & TRBSR_IRQ != 0 {
                self.buffer_interrupt(cfg);
            }
        }
    }

    /// The TRBE interrupt, on the owning core: classify TRBSR, record it,
    /// and lower the interrupt (TRBSR may only be written with the buffer
    /// disabled). A tracing core goes through the full stop and restart,
    /// keeping the pointer and TRBSR.S: a full buffer stays stopped (fill
    /// mode: what follows is lost) and the hardware stays as the mode says.
    /// Returns what happened, or `None` if TRBSR.IRQ was not set.
    pub fn buffer_interrupt(&mut self, cfg: Option<&TraceConfig>) -> Option<BufferEvent> {
        let (_, sr) = with_ete!(self, |ete, buffer| ete.buffer_state());
        if sr & TRBSR_IRQ == 0 {
            return None;
        }
        let event = BufferEvent::classify(sr);
        let log = self.log();
        log.irqs += 1;
        match event {
            BufferEvent::Full => log.full = true,
            BufferEvent::Error(ec) => log.error = Some(ec),
            _ => {}
        }
        match cfg {
            Some(cfg) => {
                let r = with_ete!(self, |ete, buffer| {
                    let mut saved = ete.save();
                    saved.trbsr &= !TRBSR_IRQ;
                    ete.restore(cfg, buffer, &saved)
                });
                if let Err(e) = r {
                    log::warn!("trace buffer could not be restarted after its interrupt: {e:?}");
                }
            }
            None => with_ete!(self, |ete, buffer| ete
                .write_status_stopped(sr & !TRBSR_IRQ)),
        }
        Some(event)
    }

    /// Drains the unit so the buffer holds everything traced so far, and
    /// returns the buffer as TRACE_READ sees it. On the owning core.
    pub fn view(&mut self) -> BufferView {
        let running = with_ete!(self, |ete, buffer| ete.is_running());
        let (ptr, sr) = if running {
            with_ete!(self, |ete, buffer| {
                ete.drain();
                ete.buffer_state()
            })
        } else {
            let l = *self.log();
            (l.ptr, l.sr)
        };
        self.audit();
        let log = *self.log();
        if !log.started {
            let buffer = self.buffer();
            return BufferView {
                buffer,
                ptr: buffer.base,
                wrapped: false,
            };
        }
        BufferView {
            buffer: log.data,
            ptr,
            wrapped: sr & TRBSR_WRAP != 0,
        }
    }

    /// TRACE_STATS's answer. On the owning core.
    pub fn stats(&mut self) -> Stats {
        let view = self.view();
        let log = *self.log();
        let mut flags = 0;
        if log.full {
            flags |= STATS_FULL;
        }
        if let Some(ec) = log.error {
            flags |= STATS_ERROR | ((ec as u64) << STATS_EC_SHIFT);
        }
        let (written, wraps, lost) = match self {
            Backend::Model { ete, .. } => {
                let c = ete.regs.counts();
                (c.written, c.wraps, c.lost)
            }
            // Real TRBE counts nothing: in fill mode the data held is all
            // that was written, and what followed a full buffer is unknown.
            #[cfg(target_os = "none")]
            Backend::Hardware { .. } => (view.len(), u64::from(view.wrapped), 0),
        };
        Stats {
            written,
            wraps,
            lost,
            flags,
            available: view.len(),
        }
    }

    /// The model, if this is one (tests and diagnostics).
    pub fn model(&self) -> Option<&TraceModel> {
        match self {
            Backend::Model { ete, .. } => Some(&ete.regs),
            #[cfg(target_os = "none")]
            Backend::Hardware { .. } => None,
        }
    }
}

fn fault(e: TraceError) -> HwFault {
    match e {
        TraceError::Timeout(_) => HwFault::Timeout,
        _ => HwFault::Refused,
    }
}

impl TraceBackend for Backend {
    type Saved = SavedState;

    fn start(&mut self, cfg: &TraceConfig) -> Result<(), HwFault> {
        // A new capture: the buffer restarts empty, the record with it.
        let data = with_ete!(self, |ete, buffer| ete.capture_range(buffer, cfg.wrap));
        *self.log() = BufferLog {
            started: true,
            ptr: data.base,
            data,
            ..BufferLog::default()
        };
        if let Backend::Model { ete, .. } = self {
            ete.regs.reset_counts();
        }
        let r = with_ete!(self, |ete, buffer| ete.start(cfg, buffer).map_err(fault));
        self.audit();
        r
    }

    fn stop(&mut self) -> Result<(), HwFault> {
        // Only a unit that was running has a buffer position worth keeping:
        // stopping an idle unit (CPU_ON, a resume while disabled) must not
        // overwrite the record with registers that a power-down scrambled.
        let was_running = with_ete!(self, |ete, buffer| ete.is_running());
        let r = with_ete!(self, |ete, buffer| ete.stop().map_err(fault));
        if was_running {
            self.record_stopped();
        }
        self.audit();
        r
    }

    fn hardware(&mut self) -> Hardware {
        with_ete!(self, |ete, buffer| match ete.hardware() {
            HwState::Stopped => Hardware::Stopped,
            HwState::Tracing => Hardware::Tracing,
            HwState::Inconsistent => Hardware::Inconsistent,
        })
    }

    fn save(&mut self) -> SavedState {
        let saved = with_ete!(self, |ete, buffer| ete.save());
        if saved.was_tracing {
            let log = self.log();
            log.ptr = saved.trbptr;
            log.sr = saved.trbsr;
        }
        saved
    }

    fn restore(&mut self, cfg: &TraceConfig, saved: &SavedState) -> Result<(), HwFault> {
        let r = with_ete!(self, |ete, buffer| ete
            .restore(cfg, buffer, saved)
            .map_err(fault));
        self.audit();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::{CoreTrace, Mode};

    const BUF: Range = Range::new(0x4800_0000, 0x1_0000);

    fn core() -> CoreTrace<Backend> {
        CoreTrace::new(Backend::new(Probe::Model, trace_id(3), BUF))
    }

    #[test]
    fn trace_backend_ids_are_unique_and_valid() {
        for i in 0..crate::platform::MAX_CPUS {
            assert!(super::super::valid_trace_id(trace_id(i)));
            for j in 0..i {
                assert_ne!(trace_id(i), trace_id(j));
            }
        }
        // What perf 6.1 records for CPU n (coresight_get_trace_id).
        assert_eq!(trace_id(0), 0x10);
        assert_eq!(trace_id(3), 0x16);
    }

    #[test]
    fn trace_backend_id_regs_are_the_models_and_the_programmed_trace_id() {
        use super::super::model::*;
        let mut t = core();
        let before = t.backend.id_regs();
        assert_eq!(
            before,
            guest_api::trace::IdRegs {
                idr0: MODEL_TRCIDR0 as u32,
                idr1: MODEL_TRCIDR1 as u32,
                idr2: MODEL_TRCIDR2 as u32,
                idr8: 0,
                authstatus: MODEL_TRCAUTHSTATUS as u32,
                devarch: MODEL_TRCDEVARCH as u32,
                traceid: 0x16,
            }
        );
        assert!(before.is_ete(), "perf must take the model for an ETE");
        // The trace ID it reports is the one an enable writes.
        t.enable(TraceConfig {
            el1: true,
            ..TraceConfig::default()
        })
        .unwrap();
        let Backend::Model { ete, .. } = &t.backend else {
            unreachable!()
        };
        assert_eq!(ete.regs.peek(super::super::regs::Reg::TrcTraceIdR), 0x16);
        // Asking changes nothing, and answers the same while tracing.
        assert_eq!(t.backend.id_regs(), before);
        assert!(matches!(t.mode(), Mode::Enabled(_)));
    }

    #[test]
    fn trace_backend_drives_the_model_through_the_manager() {
        let mut t = core();
        assert_eq!(t.backend.kind(), AbiBackend::Model);
        let cfg = TraceConfig {
            el0: true,
            el1: true,
            timestamps: true,
            ..TraceConfig::default()
        };
        t.enable(cfg).unwrap();
        assert_eq!(t.mode(), Mode::Enabled(cfg));
        assert!(t.snapshot().consistent());
        assert!(t.backend.model().unwrap().tracing());

        // Power-down with real state loss, then the one restore path.
        t.suspend_save();
        t.backend.power_loss();
        t.resume_restore(crate::manager::Wake::PowerLost).unwrap();
        assert!(t.snapshot().consistent());
        assert_eq!(
            t.backend.model().unwrap().peek(crate::trace::Reg::TrbPtr),
            BUF.base + crate::trace::START_BYTES
        );

        t.disable().unwrap();
        assert!(t.snapshot().consistent());
        t.power_off();
        t.power_on();
        assert!(t.snapshot().consistent());
        assert_eq!(t.backend.model().unwrap().violations(), 0);
    }

    #[test]
    fn trace_backend_reports_a_bad_buffer_as_a_refusal() {
        let mut b = Backend::new(Probe::Model, 1, Range::new(0x4800_0010, 0x1000));
        assert_eq!(
            b.start(&TraceConfig {
                el1: true,
                ..TraceConfig::default()
            }),
            Err(HwFault::Refused)
        );
        assert_eq!(b.hardware(), Hardware::Stopped);
    }

    fn hvc(i: u64) -> GuestEvent {
        GuestEvent {
            kind: crate::trace::packet::ExceptionType::Call,
            el: 1,
            address: 0x4420_0000 + 4 * i,
            timestamp: 1000 + i,
            context_id: 0,
            vmid: 0,
        }
    }

    #[test]
    fn trace_backend_fill_mode_full_is_handled_and_counted() {
        let mut t = core();
        let cfg = TraceConfig {
            el1: true,
            timestamps: true,
            ..TraceConfig::default()
        };
        t.enable(cfg).unwrap();
        // 64 KiB hold a few thousand exception groups.
        let mut irqs = 0;
        for i in 0..10_000 {
            t.backend.guest_event(&hvc(i), Some(&cfg));
            if let Backend::Model { log, .. } = &t.backend {
                irqs = log.irqs;
            }
        }
        assert_eq!(irqs, 1, "one buffer-full interrupt");
        let s = t.backend.stats();
        assert_eq!(s.flags, STATS_FULL);
        assert_eq!(s.available, BUF.size);
        assert_eq!(s.written, BUF.size);
        assert!(s.lost > 0);
        // The interrupt was lowered, the hardware still matches the mode.
        let m = t.backend.model().unwrap();
        assert_eq!(m.peek(crate::trace::Reg::TrbSR) & TRBSR_IRQ, 0);
        assert_ne!(m.peek(crate::trace::Reg::TrbSR) & TRBSR_S, 0);
        assert_eq!(m.violations(), 0, "{:?}", m.last_violation());
        assert!(t.snapshot().consistent());
        // The data stays readable after disable; a new enable starts over.
        t.disable().unwrap();
        assert_eq!(t.backend.view().len(), BUF.size);
        t.enable(cfg).unwrap();
        let s = t.backend.stats();
        assert_eq!((s.flags, s.lost), (0, 0));
        assert_eq!(
            s.available,
            crate::trace::START_BYTES,
            "only the start sync"
        );
    }

    #[test]
    fn trace_backend_wrap_mode_keeps_the_newest_data_without_interrupts() {
        let mut t = core();
        let cfg = TraceConfig {
            el1: true,
            timestamps: true,
            wrap: true,
            ..TraceConfig::default()
        };
        t.enable(cfg).unwrap();
        let limitr = t
            .backend
            .model()
            .unwrap()
            .peek(crate::trace::Reg::TrbLimitR);
        assert_eq!((limitr >> 1) & 0b11, 0b11, "circular-buffer mode");
        let mut irqs = 0;
        for i in 0..10_000 {
            t.backend.guest_event(&hvc(i), Some(&cfg));
            if let Backend::Model { log, .. } = &t.backend {
                irqs = log.irqs;
            }
        }
        assert_eq!(irqs, 0, "circular mode raises no interrupt");
        let s = t.backend.stats();
        assert_eq!(s.flags, 0, "never full, no error");
        assert_eq!(s.lost, 0);
        assert!(s.wraps >= 1, "{s:?}");
        assert!(s.written > BUF.size, "{s:?}");
        assert_eq!(s.available, BUF.size, "a wrapped buffer is all data");
        let v = t.backend.view();
        assert!(v.wrapped);
        // Collection never stopped: the unit still runs and matches the mode.
        let m = t.backend.model().unwrap();
        assert_eq!(m.peek(crate::trace::Reg::TrbSR) & TRBSR_S, 0);
        assert_eq!(m.violations(), 0, "{:?}", m.last_violation());
        assert!(t.snapshot().consistent());
        // The same stream in fill mode stops and loses data instead.
        t.disable().unwrap();
        let fill = TraceConfig { wrap: false, ..cfg };
        t.enable(fill).unwrap();
        for i in 0..10_000 {
            t.backend.guest_event(&hvc(i), Some(&fill));
        }
        let s = t.backend.stats();
        assert_eq!((s.flags, s.wraps), (STATS_FULL, 0));
        assert!(s.lost > 0);
    }

    #[test]
    fn trace_backend_observe_traces_instructions_until_the_buffer_is_full() {
        use crate::trace::observe::{Observed, Sample};
        let mut t = core();
        let cfg = TraceConfig {
            el1: true,
            ..TraceConfig::default()
        };
        // Before any enable nothing is traced.
        let nop = Observed::Executed {
            pc: 0x4420_0000,
            word: 0xd503_201f,
            next: 0x4420_0004,
            el: 1,
        };
        t.backend.observe(&nop, &Sample::default(), Some(&cfg));
        assert!(t.backend.view().is_empty());
        t.enable(cfg).unwrap();
        t.backend.observe(&nop, &Sample::default(), Some(&cfg));
        // The start, then the encoder's sync point: A-Sync, Trace Info,
        // context, address.
        assert_eq!(
            t.backend.view().len(),
            crate::trace::START_BYTES + 12 + 3 + 2 + 9
        );
        // A loop (nop; b .-4) fills the 64 KiB buffer: one interrupt, FULL,
        // the rest counted as lost, the unit as the mode says.
        let b = Observed::Executed {
            pc: 0x4420_0004,
            word: 0x17ff_ffff,
            next: 0x4420_0000,
            el: 1,
        };
        for _ in 0..80_000 {
            t.backend.observe(&nop, &Sample::default(), Some(&cfg));
            t.backend.observe(&b, &Sample::default(), Some(&cfg));
        }
        let s = t.backend.stats();
        assert_eq!(s.flags, STATS_FULL);
        assert_eq!(s.available, BUF.size);
        assert!(s.lost > 0);
        if let Backend::Model { log, .. } = &t.backend {
            assert_eq!(log.irqs, 1);
        }
        let m = t.backend.model().unwrap();
        assert_eq!(m.violations(), 0, "{:?}", m.last_violation());
        assert!(t.snapshot().consistent());
        // Disabled: observations are dropped.
        t.disable().unwrap();
        let n = t.backend.view().len();
        t.backend.observe(&b, &Sample::default(), None);
        assert_eq!(t.backend.view().len(), n);
    }

    #[test]
    fn trace_backend_view_drains_a_running_unit_and_survives_suspend() {
        let mut t = core();
        let cfg = TraceConfig {
            el1: true,
            ..TraceConfig::default()
        };
        assert!(
            t.backend.view().is_empty(),
            "nothing before the first enable"
        );
        t.enable(cfg).unwrap();
        t.backend.guest_event(&hvc(1), Some(&cfg));
        let one = t.backend.view().len();
        assert_eq!(
            one,
            crate::trace::START_BYTES + 2 + 11,
            "start, context, exception"
        );
        t.suspend_save();
        t.backend.power_loss();
        t.resume_restore(crate::manager::Wake::PowerLost).unwrap();
        // The restart's sync point follows the data kept across power-down.
        assert_eq!(t.backend.view().len(), one + crate::trace::START_BYTES);
        assert_eq!(t.backend.model().unwrap().violations(), 0);
        // Events while disabled are not traced.
        t.disable().unwrap();
        let n = t.backend.view().len();
        t.backend.guest_event(&hvc(2), None);
        assert_eq!(t.backend.view().len(), n);
    }

    #[test]
    fn trace_backend_keeps_an_exact_record_across_many_power_losses() {
        let mut t = core();
        let cfg = TraceConfig {
            el0: true,
            el1: true,
            timestamps: true,
            context_id: true,
            ..TraceConfig::default()
        };
        t.enable(cfg).unwrap();
        let mut i = 0;
        for cycle in 0..200 {
            for _ in 0..(cycle % 7) {
                t.backend.guest_event(&hvc(i), Some(&cfg));
                i += 1;
            }
            t.suspend_save();
            t.backend.power_loss();
            t.resume_restore(crate::manager::Wake::PowerLost).unwrap();
            let v = t.backend.view();
            assert!(!v.wrapped, "cycle {cycle}: {v:?}");
        }
        t.disable().unwrap();
        let s = t.backend.stats();
        let v = t.backend.view();
        assert!(!v.wrapped, "{v:?}");
        assert_eq!(s.available, v.len());
        assert_eq!(s.flags, 0, "{s:?}");
        assert_eq!(s.available, s.written, "{s:?}");
        // Disabled, the core keeps idling through power-downs (and may be
        // turned off and on): the data and its record stay as they were.
        for _ in 0..20 {
            t.suspend_save();
            t.backend.power_loss();
            t.resume_restore(crate::manager::Wake::PowerLost).unwrap();
        }
        t.backend.power_loss();
        t.power_on();
        assert_eq!(t.backend.stats(), s);
        assert_eq!(t.backend.view(), v);
        assert_eq!(t.backend.model().unwrap().violations(), 0);
    }

    #[test]
    fn trace_backend_classifies_trbsr() {
        assert_eq!(
            BufferEvent::classify(TRBSR_IRQ | TRBSR_S | TRBSR_BSC_FULL),
            BufferEvent::Full
        );
        assert_eq!(
            BufferEvent::classify(TRBSR_IRQ | TRBSR_WRAP),
            BufferEvent::Wrapped
        );
        assert_eq!(BufferEvent::classify(TRBSR_IRQ), BufferEvent::Management);
        // EC 0b100101: stage 2 data abort on the buffer's memory.
        assert_eq!(
            BufferEvent::classify(TRBSR_IRQ | TRBSR_S | (0x25 << 26)),
            BufferEvent::Error(0x25)
        );
        assert_eq!(
            BufferEvent::classify((0x24 << 26) | TRBSR_S),
            BufferEvent::Error(0x24)
        );
    }

    #[test]
    fn trace_backend_error_interrupt_is_reported_in_stats() {
        let mut t = core();
        let cfg = TraceConfig {
            el1: true,
            ..TraceConfig::default()
        };
        t.enable(cfg).unwrap();
        // A stage-1 abort on the buffer, as hardware would report it: set
        // TRBSR with the buffer stopped, then enabled again.
        t.disable().unwrap();
        if let Backend::Model { ete, .. } = &mut t.backend {
            crate::trace::SysRegs::write(
                &mut ete.regs,
                crate::trace::Reg::TrbSR,
                TRBSR_IRQ | TRBSR_S | (0x24 << 26),
            );
        }
        assert_eq!(
            t.backend.buffer_interrupt(None),
            Some(BufferEvent::Error(0x24))
        );
        let s = t.backend.stats();
        assert_eq!(s.flags, STATS_ERROR | (0x24 << STATS_EC_SHIFT));
        assert_eq!(t.backend.buffer_interrupt(None), None, "lowered");
    }
}

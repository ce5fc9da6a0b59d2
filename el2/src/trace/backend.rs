//! One core's trace backend as `manager::CoreTrace` drives it: the real
//! ETE and TRBE where the core has them, the model elsewhere (QEMU). Each
//! backend owns its core's buffer, so the manager's calls need no addresses.

use guest_api::trace::{Backend as AbiBackend, TraceConfig};

use super::ete::{Ete, HwState, SavedState, TraceError};
use super::model::TraceModel;
use super::Probe;
use crate::dtb::Range;
use crate::manager::{Hardware, HwFault, TraceBackend};

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
    },
    /// The model, for a core without usable trace hardware.
    Model {
        /// The driver, over the model.
        ete: Ete<TraceModel>,
        /// The core's trace buffer.
        buffer: Range,
    },
}

/// The trace ID of core `idx`: unique per core, never 0.
pub const fn trace_id(idx: usize) -> u8 {
    (idx as u8 & 0x3f) + 1
}

impl Backend {
    /// A backend of the kind `probe` chose. `Probe::Hardware` gives the model
    /// on the host, where there is no hardware.
    pub fn new(probe: Probe, trace_id: u8, buffer: Range) -> Backend {
        match probe {
            #[cfg(target_os = "none")]
            Probe::Hardware => Backend::Hardware {
                ete: Ete::new(HwTraceRegs, trace_id),
                buffer,
            },
            _ => Backend::Model {
                ete: Ete::new(TraceModel::new(), trace_id),
                buffer,
            },
        }
    }

    /// Probes this core (core `idx`, on the core itself) and makes its
    /// backend, with the buffer EL2 reserved for it.
    #[cfg(target_os = "none")]
    pub fn probe(idx: usize) -> Backend {
        use crate::arch::trace_regs::{id_aa64dfr0, trbidr};
        let dfr0 = id_aa64dfr0();
        let trb = if super::has_trace_buffer(dfr0) {
            Some(trbidr())
        } else {
            None
        };
        Backend::new(
            super::probe(dfr0, trb),
            trace_id(idx),
            crate::hv::tracing::buffer(idx),
        )
    }

    /// Which kind this is, for TRACE_STATUS.
    pub fn kind(&self) -> AbiBackend {
        match self {
            #[cfg(target_os = "none")]
            Backend::Hardware { .. } => AbiBackend::EteTrbe,
            Backend::Model { .. } => AbiBackend::Model,
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

    /// The model, if this is one (tests and diagnostics).
    pub fn model(&self) -> Option<&TraceModel> {
        match self {
            Backend::Model { ete, .. } => Some(&ete.regs),
            #[cfg(target_os = "none")]
            Backend::Hardware { .. } => None,
        }
    }
}

/// Runs `f` on the driver, with the trace-unit trap opened on hardware.
macro_rules! with_ete {
    ($self:ident, |$ete:ident, $buffer:ident| $body:expr) => {
        match $self {
            #[cfg(target_os = "none")]
            Backend::Hardware {
                ete: $ete,
                buffer: $buffer,
            } => {
                let _open = TraceAccess::open();
                #[allow(unused_variables)]
                let $buffer = *$buffer;
                $body
            }
            Backend::Model {
                ete: $ete,
                buffer: $buffer,
            } => {
                #[allow(unused_variables)]
                let $buffer = *$buffer;
                $body
            }
        }
    };
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
        with_ete!(self, |ete, buffer| ete.start(cfg, buffer).map_err(fault))
    }

    fn stop(&mut self) -> Result<(), HwFault> {
        with_ete!(self, |ete, buffer| ete.stop().map_err(fault))
    }

    fn hardware(&mut self) -> Hardware {
        with_ete!(self, |ete, buffer| match ete.hardware() {
            HwState::Stopped => Hardware::Stopped,
            HwState::Tracing => Hardware::Tracing,
            HwState::Inconsistent => Hardware::Inconsistent,
        })
    }

    fn save(&mut self) -> SavedState {
        with_ete!(self, |ete, buffer| ete.save())
    }

    fn restore(&mut self, cfg: &TraceConfig, saved: &SavedState) -> Result<(), HwFault> {
        with_ete!(self, |ete, buffer| ete
            .restore(cfg, buffer, saved)
            .map_err(fault))
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
        for i in 0..crate::dtb::MAX_CPUS {
            assert!(super::super::valid_trace_id(trace_id(i)));
            for j in 0..i {
                assert_ne!(trace_id(i), trace_id(j));
            }
        }
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
        t.resume_restore().unwrap();
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
}

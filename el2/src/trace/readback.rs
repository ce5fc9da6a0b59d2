//! The yardstick: what a driver that does not know what it programmed pays
//! around a power-down. Linux's `etm4_cpu_save` reads back every register
//! the unit implements (all comparators, counters, sequencer, single-shot
//! and context comparators, ...) whatever was programmed, and its restore
//! writes every one of them back. EL2 is the only writer of the unit, so it
//! already holds the configuration and saves only TRBPTR and TRBSR.
//!
//! Both sides here drive the same unit with the same quiesce, drain, buffer
//! and TRFCR steps; they differ only in the trace-unit registers they read
//! and write. Counts are system-register reads and writes (barriers are not
//! counted), each wait counted as the reads it made.

use guest_api::trace::TraceConfig;

use super::ete::{Ete, SavedState, TraceError};
use super::model::TraceModel;
use super::regs::{Reg, SysRegs};
use crate::platform::Range;

impl<S: SysRegs> Ete<S> {
    /// Calls `f` with every trace-unit register a full save would read on
    /// this unit, in the order Linux's `etm4_cpu_save` reads them.
    fn for_each_implemented(&mut self, mut f: impl FnMut(&mut Self, Reg)) {
        let c = self.caps();
        let fixed = [
            (Reg::TrcPrgCtlr, true),
            (Reg::TrcConfigR, true),
            (Reg::TrcAuxCtlR, true),
            (Reg::TrcEventCtl0R, c.resource_pairs() != 0),
            (Reg::TrcEventCtl1R, true),
            (Reg::TrcStallCtlR, c.stall_control()),
            (Reg::TrcTsCtlR, c.timestamps()),
            (Reg::TrcSyncPR, true),
            (Reg::TrcCcCtlR, c.cycle_counting()),
            (
                Reg::TrcBbCtlR,
                c.branch_broadcast() && c.address_pairs() != 0,
            ),
            (Reg::TrcTraceIdR, true),
            (Reg::TrcQCtlR, c.q_filter()),
            (Reg::TrcViCtlR, true),
            (Reg::TrcViIeCtlR, c.address_pairs() != 0),
            (Reg::TrcViSsCtlR, c.address_pairs() != 0),
            (Reg::TrcViPcSsCtlR, c.pe_comparators() != 0),
        ];
        for (r, present) in fixed {
            if present {
                f(self, r);
            }
        }
        if c.seq_states() != 0 {
            for n in 0..c.seq_states() - 1 {
                f(self, Reg::TrcSeqEvR(n));
            }
            f(self, Reg::TrcSeqRstEvR);
            f(self, Reg::TrcSeqStR);
        }
        for n in 0..c.ext_in_selectors() {
            f(self, Reg::TrcExtInSelR(n));
        }
        for n in 0..c.counters() {
            f(self, Reg::TrcCntRldVR(n));
            f(self, Reg::TrcCntCtlR(n));
            f(self, Reg::TrcCntVR(n));
        }
        // Resource selectors 0 and 1 are the fixed FALSE and TRUE.
        for n in 2..c.resource_pairs() * 2 {
            f(self, Reg::TrcRsCtlR(n));
        }
        for n in 0..c.single_shots() {
            f(self, Reg::TrcSsCcR(n));
            f(self, Reg::TrcSsCsR(n));
            if c.pe_comparators() != 0 {
                f(self, Reg::TrcSsPcIcR(n));
            }
        }
        for n in 0..c.address_pairs() * 2 {
            f(self, Reg::TrcAcVR(n));
            f(self, Reg::TrcAcAtR(n));
        }
        for n in 0..c.cid_comparators() {
            f(self, Reg::TrcCidCvR(n));
        }
        for n in 0..c.vmid_comparators() {
            f(self, Reg::TrcVmidCvR(n));
        }
        if c.cid_comparators() != 0 {
            f(self, Reg::TrcCidCCtlR0);
        }
        if c.cid_comparators() > 4 {
            f(self, Reg::TrcCidCCtlR1);
        }
        if c.vmid_comparators() != 0 {
            f(self, Reg::TrcVmidCCtlR0);
        }
        if c.vmid_comparators() > 4 {
            f(self, Reg::TrcVmidCCtlR1);
        }
        f(self, Reg::TrcRsR);
        f(self, Reg::TrcClaimClr);
    }

    /// For comparison only: a Linux-style save of the same unit. Quiesces
    /// and drains it as `save` does, then reads back every implemented
    /// trace-unit register, every trace buffer register and TRFCR_EL1.
    /// Returns the number of system-register accesses it made.
    pub fn save_full_readback(&mut self) -> usize {
        self.caps();
        let before = self.accesses();
        let _ = self.stop();
        self.for_each_implemented(|e, r| {
            e.rd(r);
        });
        for r in [
            Reg::TrbLimitR,
            Reg::TrbBaseR,
            Reg::TrbPtr,
            Reg::TrbSR,
            Reg::TrbMaR,
            Reg::TrbTrgR,
            Reg::TrfcrEl1,
        ] {
            self.rd(r);
        }
        self.accesses() - before
    }

    /// For comparison only: the matching Linux-style restore, which writes
    /// back every register `save_full_readback` read (those `cfg` does not
    /// use with the reset value a full driver would hold, 0), the buffer
    /// registers including TRBMAR and TRBTRG, then enables as `restore`
    /// does. Returns the number of system-register accesses it made.
    pub fn restore_full_writeback(
        &mut self,
        cfg: &TraceConfig,
        buffer: Range,
        saved: &SavedState,
    ) -> Result<usize, TraceError> {
        let before = self.accesses();
        let (program, plan) = self.plan(cfg, buffer, saved.trbptr, saved.trbsr)?;
        if self.is_running() {
            self.stop()?;
        }
        self.open_idle()?;
        self.for_each_implemented(|e, r| {
            if r != Reg::TrcPrgCtlr && r != Reg::TrcClaimClr {
                e.wr(r, program.value(r).unwrap_or(0));
            }
        });
        self.wr(Reg::TrbMaR, 0);
        self.wr(Reg::TrbTrgR, 0);
        self.program_buffer(&plan);
        self.enable(cfg)?;
        Ok(self.accesses() - before)
    }
}

/// The configuration the comparison uses: everything on, one filter range.
pub const COMPARISON_CONFIG: TraceConfig = TraceConfig {
    el0: true,
    el1: true,
    timestamps: true,
    cycles: true,
    context_id: true,
    filter: Some((0x4020_0000, 0x4030_0000)),
    wrap: false,
};

/// The buffer the comparison uses.
pub const COMPARISON_BUFFER: Range = Range::new(0x4800_0000, 0x10_0000);

/// System-register accesses of one power-down cycle on the model unit
/// (8 address comparator pairs, 2 counters, a 4-state sequencer, 16
/// resource selectors, ...) traced with `COMPARISON_CONFIG`:
/// `(ours, full)`, where ours is `save` + `restore` and full is
/// `save_full_readback` + `restore_full_writeback`. Needs no std and no
/// heap: the lead can print it at boot.
pub fn access_counts() -> (usize, usize) {
    let cfg = COMPARISON_CONFIG;
    let buf = COMPARISON_BUFFER;

    let mut ours = Ete::new(TraceModel::new(), 0x10);
    let _ = ours.start(&cfg, buf);
    let before = ours.accesses();
    let saved = ours.save();
    ours.regs.power_loss();
    let _ = ours.restore(&cfg, buf, &saved);
    let ours_count = ours.accesses() - before;

    let mut full = Ete::new(TraceModel::new(), 0x10);
    let _ = full.start(&cfg, buf);
    let save_count = full.save_full_readback();
    let saved = SavedState {
        trbptr: full.regs.peek(Reg::TrbPtr),
        trbsr: full.regs.peek(Reg::TrbSR),
        was_tracing: true,
    };
    full.regs.power_loss();
    let restore_count = full.restore_full_writeback(&cfg, buf, &saved).unwrap_or(0);
    (ours_count, save_count + restore_count)
}

//! The driver for one core's ETE trace unit, TRBE trace buffer and FEAT_TRF
//! filter, generic over `SysRegs` so the same code drives the hardware, the
//! model and the host tests.
//!
//! Sequences (from the Arm ARM and Linux's ETE and TRBE drivers):
//!
//! - start / restore: OS unlock; TRCPRGCTLR = 0; ISB; wait IDLE; program;
//!   TRCRSR; TRBE (disabled, base, pointer, status, ISB, enabled); TRFCR;
//!   ISB; TRCPRGCTLR = 1; ISB; wait !IDLE. The buffer is enabled before the
//!   unit: restoring ETE without TRBE hangs some cores.
//! - stop: TRFCR prohibits trace; DSB; ISB; TSB CSYNC; TRCPRGCTLR = 0; ISB;
//!   wait PMSTABLE and IDLE; then drain the buffer: TSB CSYNC; DSB;
//!   TRBLIMITR.E = 0; ISB.
//!
//! Where this differs from the bare outline of those sequences (OS unlock
//! through TRCOSLAR; TRCPRGCTLR = 0, ISB, wait IDLE; program; TRCRSR; TRFCR;
//! ISB; TRCPRGCTLR = 1; ISB; wait !IDLE; drain with TSB CSYNC; DSB NSH;
//! TRBLIMITR.E = 0; ISB), and why:
//! - The OS lock is OSLAR_EL1, not TRCOSLAR: ETE has no Trace OS Lock
//!   (TRCOSLSR.OSLM = 0b100), and the TRCOSLAR encoding is UNDEFINED on ETE.
//!   An ISB follows the unlock (a change of the lock is only guaranteed to
//!   affect later instructions after a context synchronization event) and
//!   TRCOSLSR is read back so a lock that does not open is reported.
//! - An ISB sits between writing TRBBASER/TRBPTR/TRBSR and setting
//!   TRBLIMITR.E: the buffer reads those registers indirectly, and only a
//!   context synchronization event guarantees it sees the new values.
//! - TRBLIMITR.TM = 0b11 (ignore triggers): EL2 programs no trigger, so a
//!   stray trigger event must not stop the buffer.
//! - TRFCR_EL1.TS stays 0b01 (virtual timestamps) even without timestamps,
//!   and stop writes TS alone instead of 0: TS = 0b00 in both TRFCR_EL1 and
//!   TRFCR_EL2 is a reserved combination (Arm ARM table D3-2).
//! - The filter's inclusive upper bound is `end - 1`, not `end - 4`: the
//!   range comparator matches A <= TRCACVR1, so `end - 1` is exactly
//!   [start, end) for any `end`, aligned or not.
//! - Registers that do not exist on every ETE are written only when the ID
//!   registers say they exist (TRCSTALLCTLR, TRCEVENTCTL0R, TRCTSCTLR,
//!   TRCVIIECTLR, TRCVISSCTLR, TRCCCCTLR): the others are UNDEFINED. The ID
//!   registers are read once, on first use, and kept.
//! - TRCVICTLR also excludes every implemented Secure Exception level
//!   (TRCIDR3.EXLEVEL_S), as Linux does: the guest's buffer must never hold
//!   Secure-world trace, whatever EL3 allows.
//! - Bounded waits are bounded in time (about 100 us of the generic
//!   counter, as Linux's ETE driver), with an ISB between TRCSTATR reads:
//!   the Arm ARM only guarantees that a read of TRCSTATR sees a change of
//!   the unit's state after a context synchronization event, so reads back
//!   to back may all return the stale value.
//! - A drain (TSB CSYNC, DSB) is followed by an ISB before TRBPTR or TRBSR
//!   is read: the direct read observes what the drain wrote only after a
//!   context synchronization event.
//! - TRCAUXCTLR is written 0 (as Linux does: its bits are IMPLEMENTATION
//!   DEFINED and could change the trace) and TRCVIPCSSCTLR 0 whenever
//!   TRCIDR4.NUMPC says it exists (it resets UNKNOWN, and stray STOP bits
//!   would end ViewInst at a PE comparator).
//! - TRBPTR must lie in [BASE, LIMIT) when the buffer is enabled: the Arm
//!   ARM treats a pointer equal to LIMIT as out of range. A full buffer
//!   (fill mode stopped it with TRBSR.S set and the pointer at LIMIT) is
//!   resumed "parked": TRBPTR = BASE with TRBSR.S still set, so the buffer
//!   writes nothing, and the driver reports the real pointer itself.
//! - Errata (`super::errata`) change the sequences where a core needs it.

use guest_api::trace::TraceConfig;

use super::errata::{Errata, Workaround};
use super::regs::{Reg, SysRegs};
use crate::platform::Range;

/// TRCPRGCTLR.EN.
const PRGCTLR_EN: u64 = 1;
/// TRCSTATR.IDLE.
const STATR_IDLE: u64 = 1 << 0;
/// TRCSTATR.PMSTABLE.
const STATR_PMSTABLE: u64 = 1 << 1;
/// TRCOSLSR.OSLK.
const OSLSR_OSLK: u64 = 1 << 1;
/// TRCCONFIGR bit 0 is RES1.
const CONFIGR_RES1: u64 = 1 << 0;
/// TRCCONFIGR.CCI: cycle counting.
const CONFIGR_CCI: u64 = 1 << 4;
/// TRCCONFIGR.CID: context ID tracing.
const CONFIGR_CID: u64 = 1 << 6;
/// TRCCONFIGR.TS: global timestamps.
const CONFIGR_TS: u64 = 1 << 11;
/// TRCVICTLR.EVENT: single resource selector 1, which is always TRUE.
const VICTLR_EVENT_TRUE: u64 = 0x01;
/// TRCVICTLR.SSSTATUS: the start/stop function starts "started" (it is
/// not used, and the Arm ARM says to set it then).
const VICTLR_SSSTATUS: u64 = 1 << 9;
/// TRCVICTLR.EXLEVEL_S [19:16], the same bits as TRCIDR3.EXLEVEL_S.
const EXLEVEL_S_MASK: u64 = 0xf << 16;
/// TRCVICTLR.EXLEVEL_NS_EL0: no trace of EL0.
const VICTLR_EXCLUDE_EL0: u64 = 1 << 20;
/// TRCVICTLR.EXLEVEL_NS_EL1: no trace of EL1.
const VICTLR_EXCLUDE_EL1: u64 = 1 << 21;
/// TRCVICTLR.EXLEVEL_NS_EL2: no trace of EL2 (ever: EL2 is the hypervisor).
const VICTLR_EXCLUDE_EL2: u64 = 1 << 22;
/// TRCSYNCPR.PERIOD: a trace sync every 2^8 = 256 bytes.
const SYNC_PERIOD_256: u64 = 8;
/// TRCCCCTLR.THRESHOLD when cycle counting.
const CC_THRESHOLD: u64 = 0x100;
/// TRBLIMITR.E.
const TRB_E: u64 = 1 << 0;
/// TRBLIMITR.FM = 0b00: fill mode, the buffer stops when full.
const TRB_FM_FILL: u64 = 0b00 << 1;
/// TRBLIMITR.FM = 0b11: circular-buffer mode, the pointer wraps to the base
/// with no buffer-management event (TRBSR.WRAP records it). Chosen over
/// wrap mode (0b01), which interrupts at every wrap: the guest asked to keep
/// the newest data, not to be told.
const TRB_FM_CIRCULAR: u64 = 0b11 << 1;
/// TRBLIMITR.TM = 0b11: ignore trigger events.
const TRB_TM_IGNORE: u64 = 0b11 << 3;
/// TRFCR_EL1.E0TRE.
const TRFCR_E0TRE: u64 = 1 << 0;
/// TRFCR_EL1.E1TRE.
const TRFCR_E1TRE: u64 = 1 << 1;
/// TRFCR_EL1.TS = 0b01: virtual timestamps (physical count - CNTVOFF_EL2).
const TRFCR_TS_VIRTUAL: u64 = 0b01 << 5;
/// TRBIDR_EL1.P: the buffer is not programmable from this EL.
const TRBIDR_P: u64 = 1 << 4;
/// Buffer granule: TRBBASER and TRBLIMITR hold addresses [63:12].
const PAGE: u64 = 4096;

/// TRBSR_EL1.S: collection stopped.
const TRBSR_S: u64 = 1 << 17;
/// Bytes a fill-mode capture skips at BASE on a core with erratum
/// 2119858/2139208 (the TRBE may overwrite that much at BASE on a FILL).
pub const FILL_SKIP: u64 = 256;

/// How long a bounded wait on TRCSTATR lasts, in microseconds of the
/// generic counter.
pub const POLL_US: u64 = 100;
/// Reads a wait makes at most, whatever the counter does: a counter that
/// never advances (broken firmware, a fake) must not hang EL2.
pub const POLL_BACKSTOP: usize = 1 << 20;
/// CNTFRQ_EL0 assumed when firmware left it 0.
const FALLBACK_FREQ: u64 = 1_000_000_000;

/// Opens the PE's OS lock (OSLAR_EL1.OSLK = 0) and synchronizes. EL2 does
/// it on every entry path of a core (cold boot, CPU_ON, warm boot), before
/// the guest runs: a cold reset and a power-down leave OSLSR_EL1.OSLK = 1,
/// and while it is set no breakpoint, watchpoint or software-step
/// exception is generated for the guest, whose own OS lock is virtual.
pub fn open_os_lock<S: SysRegs>(regs: &mut S) {
    regs.write(Reg::OslarEl1, 0);
    regs.isb();
}

/// A feature a configuration asks for and the unit lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// TRCIDR0.TSSIZE is 0.
    Timestamps,
    /// TRCIDR0.TRCCCI is 0.
    CycleCounting,
    /// TRCIDR2.CIDSIZE is 0.
    ContextId,
    /// TRCIDR4.NUMACPAIRS is 0.
    AddressFilter,
}

/// Why a sequence did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceError {
    /// A bounded wait on this register gave up.
    Timeout(Reg),
    /// The OS lock stayed locked after EL2 cleared it.
    OsLocked,
    /// TRBIDR_EL1.P: the trace buffer is not programmable from EL2.
    NotProgrammable,
    /// The configuration needs a feature the unit lacks.
    Unsupported(Feature),
    /// The buffer is empty, not 4 KiB aligned at both ends, wraps the
    /// address space, or the resume pointer lies outside it.
    BadBuffer,
    /// The address filter is empty (end <= start).
    BadFilter,
    /// The trace ID is 0 or 0x70..=0x7f (reserved) or wider than 7 bits.
    BadTraceId,
}

/// What the hardware is doing, read from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HwState {
    /// TRCPRGCTLR.EN and TRBLIMITR.E both clear.
    Stopped,
    /// TRCPRGCTLR.EN and TRBLIMITR.E both set.
    Tracing,
    /// One set, the other clear.
    Inconsistent,
}

/// The dynamic state a power-down loses and EL2 does not already hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SavedState {
    /// TRBPTR_EL1 after the drain: where trace resumes.
    pub trbptr: u64,
    /// TRBSR_EL1 after the drain.
    pub trbsr: u64,
    /// Whether the unit was running (if not, the other fields are 0 and a
    /// restore does nothing).
    pub was_tracing: bool,
}

/// The trace unit's ID registers, read once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// TRCIDR0.
    pub idr0: u64,
    /// TRCIDR2.
    pub idr2: u64,
    /// TRCIDR3.
    pub idr3: u64,
    /// TRCIDR4.
    pub idr4: u64,
    /// TRCIDR5.
    pub idr5: u64,
    /// TRBIDR_EL1.
    pub trbidr: u64,
}

/// The ID registers a trace decoder needs to read this unit's packets (the
/// ones a CoreSight snapshot's ETE device section lists).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderIds {
    /// TRCIDR0.
    pub idr0: u64,
    /// TRCIDR1.
    pub idr1: u64,
    /// TRCIDR2.
    pub idr2: u64,
    /// TRCIDR8.
    pub idr8: u64,
    /// TRCDEVARCH.
    pub devarch: u64,
    /// TRCAUTHSTATUS.
    pub authstatus: u64,
}

const fn field(v: u64, lsb: u32, width: u32) -> u64 {
    (v >> lsb) & ((1 << width) - 1)
}

impl Caps {
    /// TRCIDR0.TSSIZE != 0.
    pub const fn timestamps(&self) -> bool {
        field(self.idr0, 24, 5) != 0
    }
    /// TRCIDR0.TRCCCI.
    pub const fn cycle_counting(&self) -> bool {
        field(self.idr0, 7, 1) != 0
    }
    /// TRCIDR0.TRCBB.
    pub const fn branch_broadcast(&self) -> bool {
        field(self.idr0, 5, 1) != 0
    }
    /// TRCIDR0.QFILT.
    pub const fn q_filter(&self) -> bool {
        field(self.idr0, 14, 1) != 0
    }
    /// TRCIDR2.CIDSIZE != 0.
    pub const fn context_id(&self) -> bool {
        field(self.idr2, 5, 5) != 0
    }
    /// TRCIDR3.CCITMIN.
    pub const fn ccitmin(&self) -> u64 {
        field(self.idr3, 0, 12)
    }
    /// TRCIDR3.EXLEVEL_S, in place ([19:16]).
    pub const fn secure_levels(&self) -> u64 {
        self.idr3 & EXLEVEL_S_MASK
    }
    /// TRCIDR3.SYNCPR: the sync period is fixed (TRCSYNCPR read-only).
    pub const fn sync_period_fixed(&self) -> bool {
        field(self.idr3, 25, 1) != 0
    }
    /// TRCIDR3.STALLCTL: TRCSTALLCTLR exists.
    pub const fn stall_control(&self) -> bool {
        field(self.idr3, 26, 1) != 0
    }
    /// TRCIDR4.NUMACPAIRS.
    pub const fn address_pairs(&self) -> u8 {
        field(self.idr4, 0, 4) as u8
    }
    /// TRCIDR4.NUMPC.
    pub const fn pe_comparators(&self) -> u8 {
        field(self.idr4, 12, 4) as u8
    }
    /// Resource selector pairs (TRCIDR4.NUMRSPAIR + 1, or 0).
    pub const fn resource_pairs(&self) -> u8 {
        let n = field(self.idr4, 16, 4) as u8;
        if n == 0 {
            0
        } else {
            n + 1
        }
    }
    /// TRCIDR4.NUMSSCC.
    pub const fn single_shots(&self) -> u8 {
        field(self.idr4, 20, 4) as u8
    }
    /// TRCIDR4.NUMCIDC.
    pub const fn cid_comparators(&self) -> u8 {
        field(self.idr4, 24, 4) as u8
    }
    /// TRCIDR4.NUMVMIDC.
    pub const fn vmid_comparators(&self) -> u8 {
        field(self.idr4, 28, 4) as u8
    }
    /// TRCIDR5.NUMEXTINSEL.
    pub const fn ext_in_selectors(&self) -> u8 {
        field(self.idr5, 9, 3) as u8
    }
    /// TRCIDR5.NUMSEQSTATE.
    pub const fn seq_states(&self) -> u8 {
        field(self.idr5, 25, 3) as u8
    }
    /// TRCIDR5.NUMCNTR.
    pub const fn counters(&self) -> u8 {
        field(self.idr5, 28, 3) as u8
    }
    /// TRBIDR_EL1.P clear.
    pub const fn buffer_programmable(&self) -> bool {
        self.trbidr & TRBIDR_P == 0
    }
}

/// The trace-unit register writes of one configuration, in order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Program {
    writes: [(Reg, u64); 22],
    len: usize,
}

impl Program {
    fn push(&mut self, r: Reg, v: u64) {
        self.writes[self.len] = (r, v);
        self.len += 1;
    }

    /// The writes, in order.
    pub(crate) fn writes(&self) -> &[(Reg, u64)] {
        &self.writes[..self.len]
    }

    #[cfg(not(target_os = "none"))]
    /// The value this program writes to `r`, if it writes it.
    pub(crate) fn value(&self, r: Reg) -> Option<u64> {
        self.writes().iter().find(|(w, _)| *w == r).map(|&(_, v)| v)
    }

    /// Validates `cfg` against the unit and lays out its writes.
    pub(crate) fn build(
        cfg: &TraceConfig,
        caps: &Caps,
        trace_id: u8,
    ) -> Result<Program, TraceError> {
        if cfg.timestamps && !caps.timestamps() {
            return Err(TraceError::Unsupported(Feature::Timestamps));
        }
        if cfg.cycles && !caps.cycle_counting() {
            return Err(TraceError::Unsupported(Feature::CycleCounting));
        }
        if cfg.context_id && !caps.context_id() {
            return Err(TraceError::Unsupported(Feature::ContextId));
        }
        let filter = match cfg.filter {
            Some((start, end)) if end <= start => return Err(TraceError::BadFilter),
            Some(_) if caps.address_pairs() == 0 => {
                return Err(TraceError::Unsupported(Feature::AddressFilter))
            }
            Some((start, end)) => Some((start, end - 1)),
            None => None,
        };

        let mut p = Program {
            writes: [(Reg::TrcConfigR, 0); 22],
            len: 0,
        };
        let mut configr = CONFIGR_RES1;
        if cfg.cycles {
            configr |= CONFIGR_CCI;
        }
        if cfg.context_id {
            configr |= CONFIGR_CID;
        }
        if cfg.timestamps {
            configr |= CONFIGR_TS;
        }
        p.push(Reg::TrcConfigR, configr);
        p.push(Reg::TrcAuxCtlR, 0);
        p.push(Reg::TrcTraceIdR, trace_id as u64);
        if caps.resource_pairs() != 0 {
            p.push(Reg::TrcEventCtl0R, 0);
        }
        p.push(Reg::TrcEventCtl1R, 0);
        if caps.stall_control() {
            p.push(Reg::TrcStallCtlR, 0);
        }
        if caps.timestamps() {
            // No event-driven timestamps: resource 0 (FALSE).
            p.push(Reg::TrcTsCtlR, 0);
        }
        if !caps.sync_period_fixed() {
            p.push(Reg::TrcSyncPR, SYNC_PERIOD_256);
        }
        if cfg.cycles {
            let threshold = if CC_THRESHOLD < caps.ccitmin() {
                caps.ccitmin()
            } else {
                CC_THRESHOLD
            };
            p.push(Reg::TrcCcCtlR, threshold);
        }
        let mut victlr =
            VICTLR_EVENT_TRUE | VICTLR_SSSTATUS | caps.secure_levels() | VICTLR_EXCLUDE_EL2;
        if !cfg.el0 {
            victlr |= VICTLR_EXCLUDE_EL0;
        }
        if !cfg.el1 {
            victlr |= VICTLR_EXCLUDE_EL1;
        }
        p.push(Reg::TrcViCtlR, victlr);
        if caps.address_pairs() != 0 {
            // INCLUDE bit 0: address range comparator pair 0 (comparators 0, 1).
            p.push(Reg::TrcViIeCtlR, if filter.is_some() { 1 } else { 0 });
            p.push(Reg::TrcViSsCtlR, 0);
        }
        if caps.pe_comparators() != 0 {
            p.push(Reg::TrcViPcSsCtlR, 0);
        }
        if let Some((start, last)) = filter {
            p.push(Reg::TrcAcVR(0), start);
            p.push(Reg::TrcAcVR(1), last);
            // Instruction address, no context, every Exception level.
            p.push(Reg::TrcAcAtR(0), 0);
            p.push(Reg::TrcAcAtR(1), 0);
        }
        // ETE: clear the saved resource status (TA and the sticky events).
        p.push(Reg::TrcRsR, 0);
        Ok(p)
    }
}

/// The trace buffer registers of one start or restore.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BufferPlan {
    pub(crate) base: u64,
    pub(crate) ptr: u64,
    pub(crate) status: u64,
    pub(crate) limitr: u64,
    /// The real pointer of a full buffer resumed parked at BASE.
    pub(crate) parked: Option<u64>,
}

impl BufferPlan {
    /// The registers for `buffer` resuming at `ptr` with `status`. `guard`
    /// is how many bytes after the buffer EL2 keeps free; a core with the
    /// write-out-of-range erratum and no guard page gets LIMIT a page
    /// lower instead.
    pub(crate) fn new(
        buffer: Range,
        ptr: u64,
        status: u64,
        wrap: bool,
        guard: u64,
        errata: Errata,
    ) -> Result<BufferPlan, TraceError> {
        let end = buffer
            .base
            .checked_add(buffer.size)
            .ok_or(TraceError::BadBuffer)?;
        if buffer.size == 0 || !buffer.base.is_multiple_of(PAGE) || !end.is_multiple_of(PAGE) {
            return Err(TraceError::BadBuffer);
        }
        let limit = if errata.has(Workaround::GuardBeyondLimit) && guard < PAGE {
            if buffer.size <= PAGE {
                return Err(TraceError::BadBuffer);
            }
            end - PAGE
        } else {
            end
        };
        // Arm ARM: TRBPTR is in range iff BASE <= TRBPTR < LIMIT. The one
        // pointer at LIMIT EL2 resumes is a full fill-mode buffer's, which
        // TRBSR.S keeps from writing: it is parked at BASE.
        let (ptr, parked) = if ptr == limit && status & TRBSR_S != 0 {
            (buffer.base, Some(limit))
        } else if ptr < buffer.base || ptr >= limit {
            return Err(TraceError::BadBuffer);
        } else {
            (ptr, None)
        };
        Ok(BufferPlan {
            base: buffer.base,
            ptr,
            status,
            limitr: limit
                | TRB_TM_IGNORE
                | if wrap { TRB_FM_CIRCULAR } else { TRB_FM_FILL }
                | TRB_E,
            parked,
        })
    }
}

/// TRFCR_EL1 for `cfg`: trace only the guest's selected levels.
pub(crate) fn trfcr_el1(cfg: &TraceConfig) -> u64 {
    let mut v = TRFCR_TS_VIRTUAL;
    if cfg.el0 {
        v |= TRFCR_E0TRE;
    }
    if cfg.el1 {
        v |= TRFCR_E1TRE;
    }
    v
}

/// Whether `id` is a usable TRCTRACEIDR.TRACEID.
pub const fn valid_trace_id(id: u8) -> bool {
    id != 0 && id < 0x70
}

/// The driver of one core's ETE + TRBE.
#[derive(Debug)]
pub struct Ete<S: SysRegs> {
    /// The core's registers.
    pub regs: S,
    trace_id: u8,
    caps: Option<Caps>,
    running: bool,
    accesses: usize,
    errata: Errata,
    guard: u64,
    parked: Option<u64>,
}

impl<S: SysRegs> Ete<S> {
    /// A driver for a unit EL2 has not touched yet. Nothing is read until
    /// the first sequence.
    pub const fn new(regs: S, trace_id: u8) -> Self {
        Ete {
            regs,
            trace_id,
            caps: None,
            running: false,
            accesses: 0,
            errata: Errata::NONE,
            guard: 0,
            parked: None,
        }
    }

    /// Applies the workarounds of `errata` from now on.
    pub fn set_errata(&mut self, errata: Errata) {
        self.errata = errata;
    }

    /// The workarounds applied.
    pub fn errata(&self) -> Errata {
        self.errata
    }

    /// Declares that `bytes` after every buffer this driver is given are
    /// EL2's and unused (a guard region).
    pub fn set_guard(&mut self, bytes: u64) {
        self.guard = bytes;
    }

    /// Where a new capture in `buffer` starts: BASE, or past the bytes a
    /// FILL may overwrite on a core with erratum 2119858/2139208.
    pub fn capture_start(&self, buffer: Range, wrap: bool) -> u64 {
        if !wrap && self.errata.has(Workaround::SkipBaseInFill) && buffer.size > FILL_SKIP {
            buffer.base + FILL_SKIP
        } else {
            buffer.base
        }
    }

    /// The part of `buffer` a capture fills and TRACE_READ reads:
    /// [`capture_start`, LIMIT). LIMIT is the buffer's end unless the
    /// write-out-of-range workaround had to lower it (no guard page).
    pub fn capture_range(&self, buffer: Range, wrap: bool) -> Range {
        let start = self.capture_start(buffer, wrap);
        let end = buffer.base + buffer.size;
        let limit = if self.errata.has(Workaround::GuardBeyondLimit)
            && self.guard < PAGE
            && buffer.size > PAGE
        {
            end - PAGE
        } else {
            end
        };
        Range::new(start, limit.saturating_sub(start))
    }

    /// TSB CSYNC, twice on a core with erratum 2054223/2067961.
    fn tsb(&mut self) {
        self.regs.tsb_csync();
        if self.errata.has(Workaround::DoubleTsb) {
            self.regs.tsb_csync();
        }
    }

    /// After a write that clears TRBLIMITR.E: on a core with erratum
    /// 2064142, TSB CSYNC and DSB before any other TRB* write, or the
    /// write may be dropped.
    fn after_trbe_disable(&mut self) {
        if self.errata.has(Workaround::DrainAfterDisable) {
            self.tsb();
            self.regs.dsb();
        }
    }

    /// The trace ID this unit's packets carry.
    pub fn trace_id(&self) -> u8 {
        self.trace_id
    }

    /// Whether EL2 left the unit running (its own record, not a read).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// System register reads and writes made through this driver so far.
    pub fn accesses(&self) -> usize {
        self.accesses
    }

    pub(crate) fn rd(&mut self, r: Reg) -> u64 {
        self.accesses = self.accesses.wrapping_add(1);
        self.regs.read(r)
    }

    pub(crate) fn wr(&mut self, r: Reg, v: u64) {
        self.accesses = self.accesses.wrapping_add(1);
        self.regs.write(r, v)
    }

    /// The unit's ID registers: read on first use (six reads), then kept.
    /// ID registers survive power-down, so a restore never rereads them.
    pub fn caps(&mut self) -> Caps {
        if let Some(c) = self.caps {
            return c;
        }
        let c = Caps {
            idr0: self.rd(Reg::TrcIdR(0)),
            idr2: self.rd(Reg::TrcIdR(2)),
            idr3: self.rd(Reg::TrcIdR(3)),
            idr4: self.rd(Reg::TrcIdR(4)),
            idr5: self.rd(Reg::TrcIdR(5)),
            trbidr: self.rd(Reg::TrbIdR),
        };
        self.caps = Some(c);
        c
    }

    /// The ID registers a decoder needs, read now (six reads). ID
    /// registers are readable whatever the OS lock and the unit's state.
    pub fn decoder_ids(&mut self) -> DecoderIds {
        DecoderIds {
            idr0: self.rd(Reg::TrcIdR(0)),
            idr1: self.rd(Reg::TrcIdR(1)),
            idr2: self.rd(Reg::TrcIdR(2)),
            idr8: self.rd(Reg::TrcIdR(8)),
            devarch: self.rd(Reg::TrcDevArch),
            authstatus: self.rd(Reg::TrcAuthStatus),
        }
    }

    /// Waits until `TRCSTATR & mask == want`, for about `POLL_US` of the
    /// generic counter, with an ISB before every read after the first
    /// (the caller's ISB precedes the first).
    fn wait_status(&mut self, mask: u64, want: u64) -> Result<(), TraceError> {
        if self.rd(Reg::TrcStatR) & mask == want {
            return Ok(());
        }
        let freq = match self.regs.counter_freq() {
            0 => FALLBACK_FREQ,
            f => f,
        };
        let ticks = (freq.saturating_mul(POLL_US) / 1_000_000).max(1);
        let start = self.regs.counter();
        for _ in 0..POLL_BACKSTOP {
            self.regs.isb();
            if self.rd(Reg::TrcStatR) & mask == want {
                return Ok(());
            }
            if self.regs.counter().wrapping_sub(start) > ticks {
                break;
            }
        }
        Err(TraceError::Timeout(Reg::TrcStatR))
    }

    /// Validates `cfg` and `buffer` against this unit without touching any
    /// register but the ID registers (read once).
    pub(crate) fn plan(
        &mut self,
        cfg: &TraceConfig,
        buffer: Range,
        ptr: u64,
        status: u64,
    ) -> Result<(Program, BufferPlan), TraceError> {
        if !valid_trace_id(self.trace_id) {
            return Err(TraceError::BadTraceId);
        }
        let plan = BufferPlan::new(buffer, ptr, status, cfg.wrap, self.guard, self.errata)?;
        let caps = self.caps();
        if !caps.buffer_programmable() {
            return Err(TraceError::NotProgrammable);
        }
        Ok((Program::build(cfg, &caps, self.trace_id)?, plan))
    }

    /// Opens the OS lock, disables the unit and waits until it is idle: the
    /// state in which programming registers may be written.
    pub(crate) fn open_idle(&mut self) -> Result<(), TraceError> {
        self.accesses = self.accesses.wrapping_add(1);
        open_os_lock(&mut self.regs);
        if self.rd(Reg::TrcOsLsR) & OSLSR_OSLK != 0 {
            return Err(TraceError::OsLocked);
        }
        self.wr(Reg::TrcPrgCtlr, 0);
        self.regs.isb();
        self.wait_status(STATR_IDLE, STATR_IDLE)
    }

    /// Programs the buffer, enabling it last, after an ISB.
    pub(crate) fn program_buffer(&mut self, plan: &BufferPlan) {
        self.wr(Reg::TrbLimitR, 0);
        self.after_trbe_disable();
        self.wr(Reg::TrbBaseR, plan.base);
        self.wr(Reg::TrbPtr, plan.ptr);
        self.wr(Reg::TrbSR, plan.status);
        self.regs.isb();
        self.wr(Reg::TrbLimitR, plan.limitr);
        if self.errata.has(Workaround::IsbAfterEnable) {
            // Erratum 2038923: the enable needs two context
            // synchronization events before trace may be generated.
            self.regs.isb();
            self.regs.isb();
        }
        self.parked = plan.parked;
    }

    /// Allows trace at the guest's levels (never EL2) and enables the unit.
    /// On a unit that does not leave idle, stops everything again.
    pub(crate) fn enable(&mut self, cfg: &TraceConfig) -> Result<(), TraceError> {
        self.wr(Reg::TrfcrEl1, trfcr_el1(cfg));
        self.wr(Reg::TrfcrEl2, 0);
        self.regs.isb();
        self.wr(Reg::TrcPrgCtlr, PRGCTLR_EN);
        self.regs.isb();
        self.running = true;
        if let Err(e) = self.wait_status(STATR_IDLE, 0) {
            let _ = self.stop();
            return Err(e);
        }
        Ok(())
    }

    /// The one path of start and restore: validate, stop if running,
    /// program from scratch, buffer first, then the unit.
    fn program(
        &mut self,
        cfg: &TraceConfig,
        buffer: Range,
        ptr: u64,
        status: u64,
    ) -> Result<(), TraceError> {
        let (program, plan) = self.plan(cfg, buffer, ptr, status)?;
        if self.running {
            self.stop()?;
        }
        self.open_idle()?;
        for &(r, v) in program.writes() {
            self.wr(r, v);
        }
        self.program_buffer(&plan);
        self.enable(cfg)
    }

    /// Programs the stopped unit with `cfg`, the buffer empty at
    /// `buffer.base`, and starts both. A running unit is stopped first (the
    /// full stop sequence), so this also reconfigures. Nothing is written
    /// unless `cfg` and `buffer` are valid for this unit.
    pub fn start(&mut self, cfg: &TraceConfig, buffer: Range) -> Result<(), TraceError> {
        let at = self.capture_start(buffer, cfg.wrap);
        self.program(cfg, buffer, at, 0)
    }

    /// Stops the unit and drains and stops the buffer. Stopping a stopped
    /// unit is fine. If the unit does not report stable and idle in time the
    /// buffer is still stopped (it must not go on writing guest memory) and
    /// the timeout is returned.
    pub fn stop(&mut self) -> Result<(), TraceError> {
        self.wr(Reg::TrfcrEl1, TRFCR_TS_VIRTUAL);
        // Arm ARM (TRCVICTLR.SSSTATUS): DSB and ISB before disabling, so no
        // start/stop point is still speculative; TSB CSYNC pushes out the
        // trace generated before trace became prohibited.
        self.regs.dsb();
        self.regs.isb();
        self.tsb();
        self.wr(Reg::TrcPrgCtlr, 0);
        self.regs.isb();
        let quiesced = self.wait_status(STATR_PMSTABLE | STATR_IDLE, STATR_PMSTABLE | STATR_IDLE);
        // Drain: TSB CSYNC moves the unit's last trace to the buffer, the
        // DSB completes its writes; only then may the buffer stop.
        self.tsb();
        self.regs.dsb();
        self.wr(Reg::TrbLimitR, 0);
        self.after_trbe_disable();
        self.regs.isb();
        self.running = false;
        quiesced
    }

    /// Pushes the unit's trace into the buffer and completes the writes
    /// (TSB CSYNC, DSB), then synchronizes context (ISB) so a following
    /// read of TRBPTR covers everything traced so far. Legal while
    /// tracing: EL2 itself is never traced, so nothing is produced
    /// meanwhile.
    pub fn drain(&mut self) {
        self.tsb();
        self.regs.dsb();
        self.regs.isb();
    }

    /// TRBPTR_EL1 (or, for a parked full buffer, where it really stands)
    /// and TRBSR_EL1 as they are now.
    pub fn buffer_state(&mut self) -> (u64, u64) {
        let ptr = self.trbptr();
        (ptr, self.rd(Reg::TrbSR))
    }

    fn trbptr(&mut self) -> u64 {
        match self.parked {
            Some(p) => p,
            None => self.rd(Reg::TrbPtr),
        }
    }

    /// Writes TRBSR_EL1 with the buffer disabled (the only time it may be
    /// written): how EL2 lowers the TRBE interrupt of a stopped buffer.
    pub fn write_status_stopped(&mut self, sr: u64) {
        self.wr(Reg::TrbSR, sr);
        self.regs.isb();
    }

    /// What the hardware does: Tracing iff TRCPRGCTLR.EN and TRBLIMITR.E
    /// are both set, Stopped iff both clear.
    pub fn hardware(&mut self) -> HwState {
        let en = self.rd(Reg::TrcPrgCtlr) & PRGCTLR_EN != 0;
        let e = self.rd(Reg::TrbLimitR) & TRB_E != 0;
        match (en, e) {
            (true, true) => HwState::Tracing,
            (false, false) => HwState::Stopped,
            _ => HwState::Inconsistent,
        }
    }

    /// Before a power-down: quiesce and drain (the stop sequence), then read
    /// the only state EL2 does not already hold, TRBPTR and TRBSR. EL2 wrote
    /// the whole static configuration and uses no counters, sequencer or
    /// comparators beyond it, so nothing else is read. A unit EL2 left
    /// stopped needs nothing: no access at all.
    ///
    /// A stop that times out is not reported: the core is about to lose the
    /// unit's state anyway, and the buffer is stopped regardless.
    pub fn save(&mut self) -> SavedState {
        if !self.running {
            return SavedState::default();
        }
        let _ = self.stop();
        SavedState {
            trbptr: self.trbptr(),
            trbsr: self.rd(Reg::TrbSR),
            was_tracing: true,
        }
    }

    /// After a power-down (the registers are garbage) or an abandoned one
    /// (they are as `save` left them): the same path either way. If the unit
    /// was tracing, programs it from scratch with EL2's copy of `cfg`,
    /// resuming the buffer at `saved.trbptr` with `saved.trbsr`; the buffer
    /// before the unit.
    pub fn restore(
        &mut self,
        cfg: &TraceConfig,
        buffer: Range,
        saved: &SavedState,
    ) -> Result<(), TraceError> {
        if !saved.was_tracing {
            return Ok(());
        }
        self.program(cfg, buffer, saved.trbptr, saved.trbsr)
    }
}

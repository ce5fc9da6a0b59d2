//! A software model of one core's ETE + TRBE programming interface, for
//! CPUs without a trace unit (QEMU). It keeps the rules hardware keeps, and
//! counts every access a real unit would punish:
//!
//! - The OS lock is the PE's (OSLAR_EL1; ETE has none of its own) and it is
//!   set by a power-up, as a cold reset sets OSLSR_EL1.OSLK. A locked OS
//!   lock disables the trace unit whatever TRCPRGCTLR.EN says (TRCVICTLR's
//!   description: "disables the trace unit, either by clearing
//!   TRCPRGCTLR.EN or locking the OS Lock"). System-register writes to the
//!   unit stay legal while it is locked (Linux restores a whole unit under
//!   the lock); what the model refuses is enabling a locked unit, which
//!   hardware would silently leave idle.
//! - Programming registers may only be written while the unit is idle: EN
//!   clear *and* an ISB since it was cleared. Earlier writes are refused
//!   (the Arm ARM makes them CONSTRAINED UNPREDICTABLE).
//! - TRCSTATR.IDLE and PMSTABLE follow EN at the next ISB.
//! - TRBE: TRBBASER/TRBPTR/TRBSR/TRBMAR/TRBTRG and a changed TRBLIMITR are
//!   refused while TRBLIMITR.E is set; enabling it with TRBPTR outside
//!   [BASE, LIMIT] is flagged; the unit may not run without the buffer (some
//!   cores hang), the buffer may not stop under a running unit, and it may
//!   not stop before a TSB CSYNC and a DSB have drained the unit's trace.
//! - Disabling a unit while TRFCR still allows trace is flagged (prohibit
//!   first, as Linux and the Arm ARM recommend).
//! - `power_loss` does what a core power-down does: every register becomes
//!   a recognisable garbage value that changes on each power cycle, EN and
//!   E are clear, the OS lock is set and TRCAUXCTLR is 0 (its trace-unit
//!   reset value). A restore that misses a register is caught by comparing
//!   snapshots.
//!
//! - Trace data (`event`): what EL2 sees of the guest on QEMU, as real ETE
//!   packets (`super::packet`). When the unit becomes active it emits an
//!   A-Sync, a Trace Info and a Trace On; each guest exception it is told
//!   about becomes (after a new sync point every 2^TRCSYNCPR bytes)
//!   a timestamp if TRCCONFIGR.TS, a context packet when the context
//!   changed, and an exception packet with the preferred return address,
//!   subject to TRFCR_EL1, TRCVICTLR's exception-level exclusions and the
//!   address-range filter. Packets wait in the unit's FIFO until a TSB CSYNC
//!   (or a full FIFO) moves them to the buffer at TRBPTR.
//! - Instruction trace (`observe`): when EL2 steps the guest and reports
//!   what it executed (`super::observe`), the unit's instruction-trace
//!   encoder (`super::insn::InsnEncoder`) turns it into the atoms,
//!   addresses, exceptions and context a real ETE emits, filtered by the
//!   same registers, into the same FIFO. Each start of the unit resets the
//!   encoder, so every capture (and every restart) begins with a sync
//!   point. A capture uses one source: `event` (exceptions only) or
//!   `observe`, not both.
//! - The buffer follows TRBLIMITR.FM: fill mode stops at LIMIT (TRBSR.S,
//!   IRQ, MSS.BSC = full; the rest is lost and counted), wrap mode goes back
//!   to BASE and raises the interrupt with TRBSR.WRAP, circular-buffer mode
//!   wraps silently with TRBSR.WRAP. A stopped buffer (S) takes nothing.
//!
//! - Defects (`set_defects`): the model can behave like a part with the
//!   trace errata EL2 works around (`super::errata`), so the workarounds
//!   can be seen doing their job: 64 bytes written past LIMIT whenever the
//!   pointer reaches it (2224489/2253138); 128 bytes at BASE overwritten on
//!   a FILL (2119858/2139208); a TSB CSYNC that flushes nothing unless a
//!   second one follows (2054223/2067961); TRB* writes after a disable
//!   silently dropped until a TSB CSYNC and a DSB (2064142). What it does
//!   is counted (`overrun_bytes`, `dropped_writes`).
//!
//! The model holds no data pointers and is `const`-constructible, so it can
//! live in a per-core static. Its trace bytes reach memory through a writer
//! function EL2 installs (`set_writer`), which stores only inside EL2's own
//! trace buffers; without one, the pointer moves but nothing is stored.

use super::errata::{Errata, Workaround};
use super::insn::{InsnEncoder, TraceConfig, MAX_OBSERVATION_BYTES};
use super::observe::{Observed, Sample};
use super::packet::{self, Bytes, Context, ExceptionType, Sink};
use super::regs::{Reg, SysRegs};

/// TRCDEVARCH of an ETE: ARCHITECT Arm (0x23b), PRESENT, REVISION 0,
/// ARCHID 0x5a13 (ETE).
pub const MODEL_TRCDEVARCH: u64 = 0x4770_5a13;

/// TRCAUTHSTATUS of the modelled unit: NSNID [3:2] = 0b11 (Non-secure
/// non-invasive debug, trace, implemented and enabled); invasive debug is
/// not the trace unit's (NSID 0b00), and QEMU's `virt` without
/// `secure=on` has no Secure state (SID, SNID 0b00).
pub const MODEL_TRCAUTHSTATUS: u64 = 0b11 << 2;

/// TRCIDR0 of the modelled unit: bit 0 RES1, TRCBB (5), TRCCCI (7),
/// RETSTACK (9), TSSIZE [28:24] = 0b01000 (64-bit timestamps).
pub const MODEL_TRCIDR0: u64 = 1 | (1 << 5) | (1 << 7) | (1 << 9) | (0b01000 << 24);
/// TRCIDR1 of the modelled unit: DESIGNER [31:24] Arm (0x41), RES1
/// [15:12], TRCARCHMAJ 4, TRCARCHMIN 0, REVISION 3: the value OpenCSD
/// (and so perf's decoder, which takes it from TRACE_IDREGS) is known to
/// decode the model's packets with (tests/runner's snapshots use it).
pub const MODEL_TRCIDR1: u64 = 0x4100_f403;
/// TRCIDR2: IASIZE 64-bit, CIDSIZE [9:5] = 32-bit, VMIDSIZE [14:10] = 32-bit.
pub const MODEL_TRCIDR2: u64 = 0b01000 | (0b00100 << 5) | (0b00100 << 10);
/// TRCIDR3: CCITMIN 4, EXLEVEL_S [19:16] = EL0, EL1, EL3 (no Secure EL2),
/// EXLEVEL_NS [22:20] = EL0..EL2, TRCERR (24), STALLCTL (26).
pub const MODEL_TRCIDR3: u64 = 4 | (0b1011 << 16) | (0b111 << 20) | (1 << 24) | (1 << 26);
/// TRCIDR4: 8 address comparator pairs, no PE comparators, 8 resource
/// selector pairs (field 7), 1 single-shot comparator, 1 context ID and
/// 1 virtual context ID comparator.
pub const MODEL_TRCIDR4: u64 = 8 | (7 << 16) | (1 << 20) | (1 << 24) | (1 << 28);
/// TRCIDR5: 4 external input selectors (11:9), 7-bit trace IDs, 4
/// sequencer states (27:25), 2 counters (30:28).
pub const MODEL_TRCIDR5: u64 = (4 << 9) | (7 << 16) | (4 << 25) | (2 << 28);
/// TRBIDR_EL1: pointer alignment 2^6 bytes, programmable (P = 0).
pub const MODEL_TRBIDR: u64 = 6;

/// Bytes the unit emits when it starts: A-Sync, Trace Info, Trace On.
pub const START_BYTES: u64 = (packet::ASYNC_LEN + 3 + 1) as u64;
/// Capacity of the unit's internal FIFO.
pub const FIFO_BYTES: usize = 256;
// One observation of the instruction encoder fits the FIFO after a flush.
const _: () = assert!(MAX_OBSERVATION_BYTES <= FIFO_BYTES);

/// TRBSR_EL1.S: collection stopped.
pub const TRBSR_S: u64 = 1 << 17;
/// TRBSR_EL1.IRQ: the maintenance interrupt is asserted.
pub const TRBSR_IRQ: u64 = 1 << 22;
/// TRBSR_EL1.WRAP: the write pointer wrapped.
pub const TRBSR_WRAP: u64 = 1 << 20;
/// MSS.BSC = 0b000001: buffer filled (EC = 0, buffer management event).
pub const TRBSR_BSC_FULL: u64 = 1;
/// TRBLIMITR_EL1.FM [2:1].
const FM_SHIFT: u32 = 1;
const FM_FILL: u64 = 0b00;
const FM_WRAP: u64 = 0b01;
const CONFIGR_CID: u64 = 1 << 6;
const CONFIGR_VMID: u64 = 1 << 7;
const CONFIGR_TS: u64 = 1 << 11;

/// Bytes a part with erratum 2224489/2253138 writes past LIMIT (at most 64).
pub const OVERRUN_BYTES: usize = 64;
/// Bytes a part with erratum 2119858/2139208 overwrites at BASE on a FILL
/// (two cache lines; the workaround skips 256).
pub const FILL_OVERWRITE_BYTES: usize = 128;
/// What the defective writes store: recognisable, and not an ETE packet
/// a decoder would take for trace.
pub const DEFECT_BYTE: u8 = 0xee;

/// Stores trace bytes at a physical address of the trace buffer.
pub type Writer = fn(addr: u64, bytes: &[u8]);

/// A guest exception taken to EL2, as the model traces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestEvent {
    /// What kind of exception.
    pub kind: ExceptionType,
    /// The guest's exception level when it was taken (0 or 1).
    pub el: u8,
    /// The preferred return address (ELR_EL2).
    pub address: u64,
    /// The virtual count (CNTVCT), for the timestamp.
    pub timestamp: u64,
    /// CONTEXTIDR_EL1.
    pub context_id: u32,
    /// The guest's VMID.
    pub vmid: u32,
}

/// What the model's buffer did beyond what TRBSR shows: exact counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelCounts {
    /// Bytes stored in the buffer.
    pub written: u64,
    /// Times the pointer went back to BASE.
    pub wraps: u64,
    /// Bytes the buffer could not take (stopped or full).
    pub lost: u64,
}
const OSLSR_OSLM_PE: u64 = 1 << 4;
const OSLSR_OSLK: u64 = 1 << 1;

/// A rule the model saw broken. Refused writes leave the register as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// An access the architecture makes UNDEFINED: a write to a read-only
    /// register, a read of a write-only one, or no such register.
    Undefined(Reg),
    /// A programming register written while the unit was enabled or not
    /// yet idle (no ISB after clearing EN). Refused.
    ProgrammedWhileEnabled(Reg),
    /// The unit was enabled with the OS lock set: it stays disabled.
    EnabledWhileOsLocked,
    /// The unit was enabled with the trace buffer disabled.
    TraceUnitWithoutTrbe,
    /// The unit was disabled while TRFCR still allowed trace.
    DisabledWhileTraceAllowed,
    /// A trace buffer register written while TRBLIMITR.E was set. Refused.
    TrbeWriteWhileEnabled(Reg),
    /// The trace buffer was disabled under a running unit.
    TrbeDisabledWhileTracing,
    /// The trace buffer was disabled with trace not drained (TSB CSYNC,
    /// then DSB, after the unit last ran).
    TrbeDrainIncomplete,
    /// The trace buffer was enabled with TRBPTR outside [BASE, LIMIT] or an
    /// empty buffer.
    TrbePointerOutOfRange,
}

/// The model of one core's trace unit and trace buffer.
#[derive(Clone, Debug)]
pub struct TraceModel {
    regs: [u64; Reg::COUNT],
    written: [bool; Reg::COUNT],
    os_lock: bool,
    /// TRCPRGCTLR written since the last ISB.
    en_pending: bool,
    /// The unit is enabled (as of the last ISB).
    active: bool,
    /// Trace may sit in the unit, not yet pushed out by a TSB CSYNC.
    unsynced: bool,
    /// A TSB CSYNC pushed trace out that no DSB has completed yet.
    undrained: bool,
    violations: u32,
    last: Option<Violation>,
    power_cycles: u32,
    fifo: Bytes<FIFO_BYTES>,
    /// What the registers ask the instruction encoder for, computed at the
    /// first observation after any register write.
    view: Option<TraceConfig>,
    /// Bytes emitted since the last sync point.
    since_sync: u64,
    /// The context last traced, if any since the last sync point.
    last_context: Option<Context>,
    /// The instruction-trace encoder (`observe`).
    insn: InsnEncoder,
    writer: Option<Writer>,
    counts: ModelCounts,
    defects: Errata,
    /// The generic counter the model reports (one count per read).
    now: u64,
    /// A TSB CSYNC that flushed nothing (defect 2054223).
    tsb_armed: bool,
    /// TRB* writes are being dropped (defect 2064142), and whether the
    /// TSB CSYNC that ends it has been seen.
    dropping: bool,
    dropping_tsb: bool,
    dropped: u32,
    overrun: u64,
    stale_reads: u32,
}

impl Default for TraceModel {
    fn default() -> Self {
        Self::new()
    }
}

/// The register file right after power-up number `cycle`.
const fn power_on_regs(cycle: u32) -> [u64; Reg::COUNT] {
    let mut regs = [0u64; Reg::COUNT];
    let mut i = 0;
    while i < Reg::COUNT {
        regs[i] = 0xdead_0000_0000_0000 | ((cycle as u64 & 0xffff) << 32) | 0x5a00_0000 | i as u64;
        i += 1;
    }
    regs[Reg::TrcPrgCtlr.index()] = 0;
    regs[Reg::TrcAuxCtlR.index()] = 0;
    regs[Reg::TrbLimitR.index()] &= !1;
    regs[Reg::TrcClaimSet.index()] = 0;
    regs[Reg::TrcIdR(0).index()] = MODEL_TRCIDR0;
    regs[Reg::TrcIdR(1).index()] = MODEL_TRCIDR1;
    regs[Reg::TrcIdR(2).index()] = MODEL_TRCIDR2;
    regs[Reg::TrcIdR(3).index()] = MODEL_TRCIDR3;
    regs[Reg::TrcIdR(4).index()] = MODEL_TRCIDR4;
    regs[Reg::TrcIdR(5).index()] = MODEL_TRCIDR5;
    let mut n = 6;
    while n < 14 {
        regs[Reg::TrcIdR(n).index()] = 0;
        n += 1;
    }
    regs[Reg::TrbIdR.index()] = MODEL_TRBIDR;
    regs[Reg::TrcDevArch.index()] = MODEL_TRCDEVARCH;
    regs[Reg::TrcAuthStatus.index()] = MODEL_TRCAUTHSTATUS;
    regs
}

impl TraceModel {
    /// A core just powered up: OS lock set, unit and buffer disabled, the
    /// rest garbage.
    pub const fn new() -> Self {
        TraceModel {
            regs: power_on_regs(0),
            written: [false; Reg::COUNT],
            os_lock: true,
            en_pending: false,
            active: false,
            unsynced: false,
            undrained: false,
            violations: 0,
            last: None,
            power_cycles: 0,
            fifo: Bytes::new(),
            view: None,
            since_sync: 0,
            last_context: None,
            insn: InsnEncoder::new(),
            writer: None,
            counts: ModelCounts {
                written: 0,
                wraps: 0,
                lost: 0,
            },
            defects: Errata::NONE,
            now: 0,
            tsb_armed: false,
            dropping: false,
            dropping_tsb: false,
            dropped: 0,
            overrun: 0,
            stale_reads: 0,
        }
    }

    /// Makes the model behave like a part with these errata (see the
    /// module comment).
    pub fn set_defects(&mut self, defects: Errata) {
        self.defects = defects;
    }

    /// TRB* writes the defect 2064142 dropped so far.
    pub fn dropped_writes(&self) -> u32 {
        self.dropped
    }

    /// Reads of TRBPTR after a TSB CSYNC that, by defect 2054223, flushed
    /// nothing: the driver took a pointer for final that was not.
    pub fn stale_pointer_reads(&self) -> u32 {
        self.stale_reads
    }

    /// Bytes the defect 2224489 wrote past LIMIT so far.
    pub fn overrun_bytes(&self) -> u64 {
        self.overrun
    }

    fn defect_write(&mut self, addr: u64, len: usize) {
        if let Some(w) = self.writer {
            w(
                addr,
                &[DEFECT_BYTE; OVERRUN_BYTES + FILL_OVERWRITE_BYTES][..len],
            );
        }
    }

    /// Where trace bytes go (EL2's store into its own buffers).
    pub fn set_writer(&mut self, w: Writer) {
        self.writer = Some(w);
    }

    /// Exact counts of what the buffer did.
    pub fn counts(&self) -> ModelCounts {
        self.counts
    }

    /// Forgets the counts (a new capture starts).
    pub fn reset_counts(&mut self) {
        self.counts = ModelCounts::default();
    }

    /// Bytes waiting in the unit's FIFO.
    pub fn pending(&self) -> usize {
        self.fifo.len()
    }

    /// A guest exception EL2 took on this core: traced if the unit is
    /// tracing and its filters let the guest's level and address through.
    pub fn event(&mut self, ev: &GuestEvent) {
        if !self.tracing() || !self.traces(ev.el, ev.address) {
            return;
        }
        let configr = self.regs[Reg::TrcConfigR.index()];
        let ctx = Context {
            el: ev.el,
            aarch64: true,
            non_secure: true,
            vmid: (configr & CONFIGR_VMID != 0).then_some(ev.vmid),
            context_id: (configr & CONFIGR_CID != 0).then_some(ev.context_id),
        };
        // The longest group: sync (15) + timestamp (10) + context (10) +
        // exception and address (11).
        let mut group = Bytes::<64>::new();
        let period = 1u64 << (self.regs[Reg::TrcSyncPR.index()] & 0x1f).clamp(8, 20);
        if self.since_sync >= period {
            packet::a_sync(&mut group);
            packet::trace_info(&mut group);
            self.last_context = None;
            self.since_sync = 0;
        }
        if configr & CONFIGR_TS != 0 {
            packet::timestamp(&mut group, ev.timestamp);
        }
        if self.last_context != Some(ctx) {
            packet::context(&mut group, &ctx);
            self.last_context = Some(ctx);
        }
        packet::exception(&mut group, ev.kind);
        packet::address(&mut group, ev.address);
        self.emit(group.as_slice());
    }

    /// What the guest executed, in program order, with the context sampled
    /// at it: encoded as instruction trace if the unit is tracing. The
    /// filters are the unit's registers, as on hardware: TRFCR_EL1 and
    /// TRCVICTLR's exception-level exclusions, the ViewInst include range
    /// (TRCVIIECTLR with comparator pair 0), TRCCONFIGR.TS and CID, and the
    /// sync period TRCSYNCPR.
    pub fn observe(&mut self, ev: &Observed, s: &Sample) {
        if !self.tracing() {
            return;
        }
        // What the registers ask for cannot change while the unit runs
        // (the model refuses programming then) but for TRFCR_EL1: every
        // register write drops the copy ([`TraceModel::write`]).
        let cfg = match self.view {
            Some(v) => v,
            None => {
                let v = self.programmed_view();
                self.insn
                    .set_sync_period(1 << (self.regs[Reg::TrcSyncPR.index()] & 0x1f).clamp(8, 20));
                self.view = Some(v);
                v
            }
        };
        // Straight into the FIFO (as `emit` would copy it), with room for
        // the most one observation writes.
        if self.fifo.room() < MAX_OBSERVATION_BYTES {
            self.flush();
        }
        let before = self.fifo.len();
        self.insn.observe(ev, s, &cfg, &mut self.fifo);
        let n = self.fifo.len() - before;
        if n > 0 {
            self.tsb_armed = false;
            self.since_sync += n as u64;
        }
    }

    /// The instruction-trace encoder's state (tests and diagnostics).
    pub fn insn_encoder(&self) -> &InsnEncoder {
        &self.insn
    }

    /// What the registers ask the unit to trace, in the encoder's terms.
    fn programmed_view(&self) -> TraceConfig {
        let configr = self.regs[Reg::TrcConfigR.index()];
        let filter = if self.written[Reg::TrcViIeCtlR.index()]
            && self.regs[Reg::TrcViIeCtlR.index()] & 1 != 0
        {
            // TRCACVR1 holds the last address included.
            let (lo, hi) = (
                self.regs[Reg::TrcAcVR(0).index()],
                self.regs[Reg::TrcAcVR(1).index()],
            );
            Some((lo, hi.saturating_add(1)))
        } else {
            None
        };
        TraceConfig {
            el0: self.level_traced(0),
            el1: self.level_traced(1),
            timestamps: configr & CONFIGR_TS != 0,
            cycles: false,
            context_id: configr & CONFIGR_CID != 0,
            filter,
            wrap: false,
        }
    }

    /// Whether TRFCR_EL1 and TRCVICTLR trace exception level `el`.
    fn level_traced(&self, el: u8) -> bool {
        let trfcr = self.regs[Reg::TrfcrEl1.index()];
        let victlr = self.regs[Reg::TrcViCtlR.index()];
        match el {
            0 => trfcr & 1 != 0 && victlr & (1 << 20) == 0,
            1 => trfcr & 2 != 0 && victlr & (1 << 21) == 0,
            _ => false,
        }
    }

    /// Whether TRFCR_EL1, TRCVICTLR and the address filter trace `el` at `addr`.
    fn traces(&self, el: u8, addr: u64) -> bool {
        if !self.level_traced(el) {
            return false;
        }
        if self.written[Reg::TrcViIeCtlR.index()] && self.regs[Reg::TrcViIeCtlR.index()] & 1 != 0 {
            let (lo, hi) = (
                self.regs[Reg::TrcAcVR(0).index()],
                self.regs[Reg::TrcAcVR(1).index()],
            );
            return lo <= addr && addr <= hi;
        }
        true
    }

    /// Puts bytes the unit generated into its FIFO, draining it to the
    /// buffer first when they would not fit.
    fn emit(&mut self, bytes: &[u8]) {
        if self.fifo.room() < bytes.len() {
            self.flush();
        }
        for &b in bytes {
            self.fifo.put(b);
        }
        self.tsb_armed = false;
        self.since_sync += bytes.len() as u64;
    }

    /// The unit's start: a sync point and Trace On.
    fn emit_start(&mut self) {
        let mut group = Bytes::<{ START_BYTES as usize }>::new();
        packet::a_sync(&mut group);
        packet::trace_info(&mut group);
        packet::trace_on(&mut group);
        self.emit(group.as_slice());
        self.since_sync = 0;
        self.last_context = None;
        self.insn.reset();
    }

    /// Moves the FIFO to the buffer.
    fn flush(&mut self) {
        let fifo = self.fifo;
        self.fifo.clear();
        self.store(fifo.as_slice());
    }

    /// What a core power-down does to the trace hardware. Rule violations
    /// seen so far are kept.
    pub fn power_loss(&mut self) {
        self.power_cycles = self.power_cycles.wrapping_add(1);
        self.regs = power_on_regs(self.power_cycles);
        self.written = [false; Reg::COUNT];
        self.os_lock = true;
        self.en_pending = false;
        self.active = false;
        self.unsynced = false;
        self.undrained = false;
        self.fifo.clear();
        self.last_context = None;
        self.insn.reset();
        self.view = None;
        self.tsb_armed = false;
        self.dropping = false;
        self.dropping_tsb = false;
    }

    /// Broken rules so far.
    pub fn violations(&self) -> u32 {
        self.violations
    }

    /// The most recent broken rule.
    pub fn last_violation(&self) -> Option<Violation> {
        self.last
    }

    /// Forgets the broken rules.
    pub fn reset_violations(&mut self) {
        self.violations = 0;
        self.last = None;
    }

    /// A register's value as an MRS would read it, without side effects
    /// (write-only registers read as 0).
    pub fn peek(&self, r: Reg) -> u64 {
        match r {
            Reg::TrcStatR => {
                // IDLE and PMSTABLE: both follow a disabled unit.
                if self.active {
                    0
                } else {
                    0b11
                }
            }
            Reg::TrcOsLsR => OSLSR_OSLM_PE | if self.os_lock { OSLSR_OSLK } else { 0 },
            Reg::TrcClaimClr => self.regs[Reg::TrcClaimSet.index()],
            r if r.readable() => self.regs[r.index()],
            _ => 0,
        }
    }

    /// Every register as `peek` reads it, in `Reg::ALL` order.
    pub fn snapshot(&self) -> [u64; Reg::COUNT] {
        let mut s = [0; Reg::COUNT];
        for (slot, r) in s.iter_mut().zip(Reg::ALL) {
            *slot = self.peek(r);
        }
        s
    }

    /// Was `r` written (and accepted) since the last power-up?
    pub fn written(&self, r: Reg) -> bool {
        r.is_valid() && self.written[r.index()]
    }

    /// Is the OS lock set?
    pub fn os_locked(&self) -> bool {
        self.os_lock
    }

    /// Are the unit and its buffer both running, with trace allowed?
    pub fn tracing(&self) -> bool {
        self.active && self.trbe_enabled() && self.trace_allowed()
    }

    /// Simulates `bytes` of trace captured while the guest runs: they land
    /// in the buffer if the unit and buffer run, until the buffer fills.
    pub fn capture(&mut self, bytes: u64) {
        if self.tracing() {
            self.advance(bytes, None);
        }
    }

    fn violate(&mut self, v: Violation) {
        self.violations = self.violations.saturating_add(1);
        self.last = Some(v);
    }

    fn trbe_enabled(&self) -> bool {
        self.regs[Reg::TrbLimitR.index()] & 1 != 0
    }

    fn trace_allowed(&self) -> bool {
        self.regs[Reg::TrfcrEl1.index()] & 0b11 != 0 || self.regs[Reg::TrfcrEl2.index()] & 0b11 != 0
    }

    /// Moves the write pointer; in fill mode a full buffer stops (TRBSR.S)
    /// and raises its interrupt.
    /// Stores `data` at TRBPTR following the fill mode.
    fn store(&mut self, data: &[u8]) {
        self.advance(data.len() as u64, Some(data));
    }

    /// Moves TRBPTR over `bytes` bytes of trace, storing `data` (when
    /// given, `bytes` long) through the writer.
    fn advance(&mut self, bytes: u64, data: Option<&[u8]>) {
        let mut done = 0u64;
        while done < bytes {
            let sr = self.regs[Reg::TrbSR.index()];
            if !self.trbe_enabled() || sr & TRBSR_S != 0 {
                self.counts.lost += bytes - done;
                return;
            }
            let limitr = self.regs[Reg::TrbLimitR.index()];
            let limit = limitr & !0xfff;
            let base = self.regs[Reg::TrbBaseR.index()] & !0xfff;
            let ptr = self.regs[Reg::TrbPtr.index()];
            if ptr >= limit || ptr < base {
                // Enabling with the pointer out of range was flagged; take
                // nothing rather than write outside the buffer.
                self.counts.lost += bytes - done;
                return;
            }
            let n = (limit - ptr).min(bytes - done);
            if let (Some(d), Some(w)) = (data, self.writer) {
                w(ptr, &d[done as usize..(done + n) as usize]);
            }
            done += n;
            self.counts.written += n;
            if ptr + n < limit {
                self.regs[Reg::TrbPtr.index()] = ptr + n;
                continue;
            }
            if self.defects.has(Workaround::GuardBeyondLimit) {
                self.defect_write(limit, OVERRUN_BYTES);
                self.overrun += OVERRUN_BYTES as u64;
            }
            match (limitr >> FM_SHIFT) & 0b11 {
                FM_FILL => {
                    if self.defects.has(Workaround::SkipBaseInFill) {
                        self.defect_write(base, FILL_OVERWRITE_BYTES);
                    }
                    self.regs[Reg::TrbPtr.index()] = limit;
                    self.regs[Reg::TrbSR.index()] =
                        (sr & !0xffff) | TRBSR_S | TRBSR_IRQ | TRBSR_BSC_FULL;
                }
                fm => {
                    self.regs[Reg::TrbPtr.index()] = base;
                    self.counts.wraps += 1;
                    let irq = if fm == FM_WRAP { TRBSR_IRQ } else { 0 };
                    self.regs[Reg::TrbSR.index()] = sr | TRBSR_WRAP | irq;
                }
            }
        }
    }

    fn write_limit(&mut self, v: u64) -> bool {
        let cur = self.regs[Reg::TrbLimitR.index()];
        match (cur & 1 != 0, v & 1 != 0) {
            (true, true) if v != cur => {
                self.violate(Violation::TrbeWriteWhileEnabled(Reg::TrbLimitR));
                return false;
            }
            (true, false) => {
                if self.defects.has(Workaround::DrainAfterDisable) {
                    self.dropping = true;
                    self.dropping_tsb = false;
                }
                if self.active {
                    self.violate(Violation::TrbeDisabledWhileTracing);
                } else if self.unsynced || self.undrained {
                    self.violate(Violation::TrbeDrainIncomplete);
                }
            }
            (false, true) => {
                let base = self.regs[Reg::TrbBaseR.index()] & !0xfff;
                let limit = v & !0xfff;
                let ptr = self.regs[Reg::TrbPtr.index()];
                if !(base < limit && ptr >= base && ptr <= limit) {
                    self.violate(Violation::TrbePointerOutOfRange);
                }
            }
            _ => {}
        }
        true
    }
}

impl SysRegs for TraceModel {
    fn read(&mut self, r: Reg) -> u64 {
        if !r.readable() {
            self.violate(Violation::Undefined(r));
            return 0;
        }
        if r == Reg::TrbPtr && self.tsb_armed {
            self.stale_reads = self.stale_reads.saturating_add(1);
        }
        self.peek(r)
    }

    fn write(&mut self, r: Reg, v: u64) {
        self.view = None;
        if !r.writable() {
            self.violate(Violation::Undefined(r));
            return;
        }
        let i = r.index();
        match r {
            Reg::OslarEl1 => self.os_lock = v & 1 != 0,
            Reg::TrcPrgCtlr => {
                if v & 1 == 0 && self.active && self.trace_allowed() {
                    self.violate(Violation::DisabledWhileTraceAllowed);
                }
                self.regs[i] = v & 1;
                self.en_pending = true;
            }
            Reg::TrcClaimSet => self.regs[i] |= v,
            Reg::TrcClaimClr => self.regs[Reg::TrcClaimSet.index()] &= !v,
            r if r.is_programming() => {
                if self.regs[Reg::TrcPrgCtlr.index()] & 1 != 0 || self.active {
                    self.violate(Violation::ProgrammedWhileEnabled(r));
                    return;
                }
                self.regs[i] = v;
            }
            Reg::TrbLimitR => {
                if !self.write_limit(v) {
                    return;
                }
                self.regs[i] = v;
            }
            r if r.is_trbe() => {
                if self.dropping {
                    // Silicon drops it without a word.
                    self.dropped = self.dropped.saturating_add(1);
                    return;
                }
                if self.trbe_enabled() {
                    self.violate(Violation::TrbeWriteWhileEnabled(r));
                    return;
                }
                self.regs[i] = v;
            }
            _ => self.regs[i] = v,
        }
        self.written[i] = true;
    }

    fn isb(&mut self) {
        let en = self.regs[Reg::TrcPrgCtlr.index()] & 1 != 0;
        if self.en_pending {
            self.en_pending = false;
            if en && self.os_lock {
                self.violate(Violation::EnabledWhileOsLocked);
            } else if en && !self.trbe_enabled() {
                self.violate(Violation::TraceUnitWithoutTrbe);
            }
        }
        if self.active {
            // Whatever the unit traced up to here may still sit in it.
            self.unsynced = true;
        }
        let was = self.active;
        self.active = en && !self.os_lock;
        if self.active && !was && self.trbe_enabled() {
            self.emit_start();
        }
    }

    fn dsb(&mut self) {
        self.undrained = false;
        if self.dropping_tsb {
            self.dropping = false;
            self.dropping_tsb = false;
        }
    }

    fn tsb_csync(&mut self) {
        if self.dropping {
            self.dropping_tsb = true;
        }
        if self.unsynced || !self.fifo.is_empty() {
            if self.defects.has(Workaround::DoubleTsb) && !self.tsb_armed {
                self.tsb_armed = true;
                return;
            }
            self.tsb_armed = false;
            self.unsynced = false;
            self.flush();
            self.undrained = true;
        }
    }

    fn counter(&mut self) -> u64 {
        self.now = self.now.wrapping_add(1);
        self.now
    }

    fn counter_freq(&mut self) -> u64 {
        1_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lives in a static, as the per-core backends will.
    static _PER_CORE: [TraceModel; 2] = [TraceModel::new(), TraceModel::new()];

    fn enable_by_hand(m: &mut TraceModel) {
        m.write(Reg::OslarEl1, 0);
        m.isb();
        m.write(Reg::TrcPrgCtlr, 0);
        m.isb();
        m.write(Reg::TrcConfigR, 1);
        m.write(Reg::TrbLimitR, 0);
        m.write(Reg::TrbBaseR, 0x1000_0000);
        m.write(Reg::TrbPtr, 0x1000_0000);
        m.write(Reg::TrbSR, 0);
        m.isb();
        m.write(Reg::TrbLimitR, 0x1001_0000 | 1);
        m.write(Reg::TrfcrEl1, 0b11 | 0x20);
        m.write(Reg::TrfcrEl2, 0);
        m.isb();
        m.write(Reg::TrcPrgCtlr, 1);
        m.isb();
    }

    #[test]
    fn trace_model_powers_up_locked_disabled_and_idle() {
        let m = TraceModel::new();
        assert!(m.os_locked());
        assert_eq!(m.peek(Reg::TrcPrgCtlr), 0);
        assert_eq!(m.peek(Reg::TrbLimitR) & 1, 0);
        assert_eq!(m.peek(Reg::TrcStatR), 0b11);
        assert_eq!(m.peek(Reg::TrcOsLsR), OSLSR_OSLM_PE | OSLSR_OSLK);
        assert_eq!(m.peek(Reg::TrcIdR(3)), MODEL_TRCIDR3);
    }

    #[test]
    fn trace_model_by_hand_enable_is_clean_and_tracing() {
        let mut m = TraceModel::new();
        enable_by_hand(&mut m);
        assert_eq!(m.violations(), 0, "{:?}", m.last_violation());
        assert!(m.tracing());
        assert_eq!(m.peek(Reg::TrcStatR) & 1, 0);
    }

    #[test]
    fn trace_model_refuses_programming_while_enabled() {
        let mut m = TraceModel::new();
        enable_by_hand(&mut m);
        m.write(Reg::TrcConfigR, 0x801);
        assert_eq!(m.violations(), 1);
        assert_eq!(
            m.last_violation(),
            Some(Violation::ProgrammedWhileEnabled(Reg::TrcConfigR))
        );
        assert_eq!(m.peek(Reg::TrcConfigR), 1, "refused write must not land");
    }

    #[test]
    fn trace_model_refuses_programming_before_the_isb_that_idles_the_unit() {
        let mut m = TraceModel::new();
        enable_by_hand(&mut m);
        m.write(Reg::TrfcrEl1, 0x20);
        m.write(Reg::TrcPrgCtlr, 0);
        m.write(Reg::TrcViCtlR, 0x201); // no ISB yet: the unit still runs
        assert_eq!(
            m.last_violation(),
            Some(Violation::ProgrammedWhileEnabled(Reg::TrcViCtlR))
        );
        m.isb();
        m.reset_violations();
        m.write(Reg::TrcViCtlR, 0x201);
        assert_eq!(m.violations(), 0);
    }

    #[test]
    fn trace_model_os_lock_keeps_the_unit_disabled() {
        let mut m = TraceModel::new();
        // Program and enable without opening the OS lock.
        m.write(Reg::TrcConfigR, 1); // legal under the lock
        m.write(Reg::TrbBaseR, 0x2000_0000);
        m.write(Reg::TrbPtr, 0x2000_0000);
        m.write(Reg::TrbLimitR, 0x2001_0001);
        m.write(Reg::TrcPrgCtlr, 1);
        m.isb();
        assert_eq!(m.violations(), 1);
        assert_eq!(m.last_violation(), Some(Violation::EnabledWhileOsLocked));
        assert_eq!(m.peek(Reg::TrcStatR) & 1, 1, "a locked unit stays idle");
        assert!(!m.tracing());
    }

    #[test]
    fn trace_model_flags_a_unit_without_its_buffer() {
        let mut m = TraceModel::new();
        m.write(Reg::OslarEl1, 0);
        m.isb();
        m.write(Reg::TrcPrgCtlr, 1);
        m.isb();
        assert_eq!(m.last_violation(), Some(Violation::TraceUnitWithoutTrbe));
    }

    #[test]
    fn trace_model_flags_wrong_stop_orders() {
        // Buffer stopped under a running unit.
        let mut m = TraceModel::new();
        enable_by_hand(&mut m);
        m.write(Reg::TrbLimitR, 0);
        assert_eq!(
            m.last_violation(),
            Some(Violation::TrbeDisabledWhileTracing)
        );

        // Unit disabled while TRFCR still allows trace.
        let mut m = TraceModel::new();
        enable_by_hand(&mut m);
        m.write(Reg::TrcPrgCtlr, 0);
        assert_eq!(
            m.last_violation(),
            Some(Violation::DisabledWhileTraceAllowed)
        );

        // Buffer stopped without the final TSB CSYNC + DSB.
        let mut m = TraceModel::new();
        enable_by_hand(&mut m);
        m.write(Reg::TrfcrEl1, 0x20);
        m.dsb();
        m.isb();
        m.tsb_csync();
        m.write(Reg::TrcPrgCtlr, 0);
        m.isb();
        m.write(Reg::TrbLimitR, 0);
        assert_eq!(m.last_violation(), Some(Violation::TrbeDrainIncomplete));

        // TSB CSYNC without the DSB that completes it.
        let mut m = TraceModel::new();
        enable_by_hand(&mut m);
        m.write(Reg::TrfcrEl1, 0x20);
        m.isb();
        m.write(Reg::TrcPrgCtlr, 0);
        m.isb();
        m.tsb_csync();
        m.write(Reg::TrbLimitR, 0);
        assert_eq!(m.last_violation(), Some(Violation::TrbeDrainIncomplete));
    }

    #[test]
    fn trace_model_refuses_buffer_writes_while_enabled() {
        let mut m = TraceModel::new();
        enable_by_hand(&mut m);
        for r in [Reg::TrbBaseR, Reg::TrbPtr, Reg::TrbSR] {
            let before = m.peek(r);
            m.write(r, 0x4000_0000);
            assert_eq!(
                m.last_violation(),
                Some(Violation::TrbeWriteWhileEnabled(r))
            );
            assert_eq!(m.peek(r), before);
        }
        m.write(Reg::TrbLimitR, 0x1002_0001);
        assert_eq!(
            m.last_violation(),
            Some(Violation::TrbeWriteWhileEnabled(Reg::TrbLimitR))
        );
        assert_eq!(m.violations(), 4);
    }

    #[test]
    fn trace_model_flags_a_buffer_enabled_with_a_stray_pointer() {
        let mut m = TraceModel::new();
        m.write(Reg::TrbBaseR, 0x1000_0000);
        // TRBPTR left as power-up garbage.
        m.write(Reg::TrbLimitR, 0x1001_0001);
        assert_eq!(m.last_violation(), Some(Violation::TrbePointerOutOfRange));
    }

    #[test]
    fn trace_model_undefined_accesses() {
        let mut m = TraceModel::new();
        m.write(Reg::TrcStatR, 0);
        assert_eq!(
            m.last_violation(),
            Some(Violation::Undefined(Reg::TrcStatR))
        );
        assert_eq!(m.read(Reg::OslarEl1), 0);
        assert_eq!(
            m.last_violation(),
            Some(Violation::Undefined(Reg::OslarEl1))
        );
        m.write(Reg::TrcAcVR(16), 1);
        assert_eq!(
            m.last_violation(),
            Some(Violation::Undefined(Reg::TrcAcVR(16)))
        );
        assert_eq!(m.violations(), 3);
    }

    #[test]
    fn trace_model_buffer_fills_and_stops() {
        let mut m = TraceModel::new();
        enable_by_hand(&mut m);
        m.capture(0x8000);
        assert_eq!(m.peek(Reg::TrbPtr), 0x1000_8000);
        m.capture(0x10_0000);
        assert_eq!(m.peek(Reg::TrbPtr), 0x1001_0000);
        let sr = m.peek(Reg::TrbSR);
        assert_ne!(sr & TRBSR_S, 0);
        assert_ne!(sr & TRBSR_IRQ, 0);
        m.capture(0x40);
        assert_eq!(
            m.peek(Reg::TrbPtr),
            0x1001_0000,
            "a stopped buffer takes nothing"
        );
    }

    #[test]
    fn trace_model_power_loss_scrambles_everything() {
        let mut m = TraceModel::new();
        enable_by_hand(&mut m);
        let before = m.snapshot();
        m.power_loss();
        assert!(m.os_locked());
        assert_eq!(m.peek(Reg::TrcPrgCtlr), 0);
        assert_eq!(m.peek(Reg::TrbLimitR) & 1, 0);
        assert_eq!(m.peek(Reg::TrcAuxCtlR), 0);
        assert!(!m.written(Reg::TrcConfigR));
        for r in [
            Reg::TrcConfigR,
            Reg::TrbBaseR,
            Reg::TrbPtr,
            Reg::TrfcrEl1,
            Reg::TrcViCtlR,
        ] {
            assert_ne!(m.peek(r), before[r.index()], "{r:?}");
            assert_eq!(m.peek(r) >> 48, 0xdead, "{r:?}");
        }
        // Each power cycle leaves different garbage.
        let first = m.snapshot();
        m.power_loss();
        assert_ne!(m.peek(Reg::TrcConfigR), first[Reg::TrcConfigR.index()]);
        // ID registers survive.
        assert_eq!(m.peek(Reg::TrcIdR(4)), MODEL_TRCIDR4);
    }

    // Trace data: what the writer stored, per thread (tests run in parallel).
    std::thread_local! {
        static MEM: std::cell::RefCell<std::collections::BTreeMap<u64, u8>> =
            const { std::cell::RefCell::new(std::collections::BTreeMap::new()) };
    }

    fn store(addr: u64, bytes: &[u8]) {
        MEM.with(|m| {
            let mut m = m.borrow_mut();
            for (i, &b) in bytes.iter().enumerate() {
                m.insert(addr + i as u64, b);
            }
        });
    }

    fn memory(from: u64, to: u64) -> Vec<u8> {
        MEM.with(|m| m.borrow().range(from..to).map(|(_, &b)| b).collect())
    }

    const BASE: u64 = 0x1000_0000;

    /// Enabled like `enable_by_hand`, with TRCCONFIGR and the fill mode
    /// given, a one-page buffer, and the writer installed.
    fn tracing_model(configr: u64, fm: u64) -> TraceModel {
        MEM.with(|m| m.borrow_mut().clear());
        let mut m = TraceModel::new();
        m.set_writer(store);
        m.write(Reg::OslarEl1, 0);
        m.isb();
        m.write(Reg::TrcPrgCtlr, 0);
        m.isb();
        m.write(Reg::TrcConfigR, configr);
        m.write(Reg::TrcSyncPR, 8);
        m.write(Reg::TrbLimitR, 0);
        m.write(Reg::TrbBaseR, BASE);
        m.write(Reg::TrbPtr, BASE);
        m.write(Reg::TrbSR, 0);
        m.isb();
        m.write(
            Reg::TrbLimitR,
            (BASE + 0x1000) | (fm << 1) | (0b11 << 3) | 1,
        );
        m.write(Reg::TrfcrEl1, 0b11 | 0x20);
        m.isb();
        m.write(Reg::TrcPrgCtlr, 1);
        m.isb();
        assert_eq!(m.violations(), 0, "{:?}", m.last_violation());
        m
    }

    fn hvc(address: u64, timestamp: u64) -> GuestEvent {
        GuestEvent {
            kind: ExceptionType::Call,
            el: 1,
            address,
            timestamp,
            context_id: 0x42,
            vmid: 1,
        }
    }

    #[test]
    fn trace_model_emits_start_and_exception_packets_byte_exact() {
        let mut m = tracing_model(1 | CONFIGR_TS | CONFIGR_CID, 0);
        assert_eq!(
            m.pending() as u64,
            START_BYTES,
            "start sync waits in the FIFO"
        );
        m.event(&hvc(0x4420_1234, 0x123456));
        m.event(&hvc(0x4420_1240, 0x123500));
        m.tsb_csync();
        m.dsb();
        let ptr = m.peek(Reg::TrbPtr);
        let mut want = vec![0u8; 11];
        want.extend([0x80, 0x01, 0x01, 0x00, 0x04]);
        // Timestamp, context (EL1, AArch64, NS, CID), exception, address.
        want.extend([0x02, 0xd6, 0xe8, 0x48]);
        want.extend([0x81, 0xb1, 0x42, 0, 0, 0]);
        want.extend([0x06, 0x05, 0x9d, 0x0d, 0x09, 0x20, 0x44, 0, 0, 0, 0]);
        // Same context: no context packet.
        want.extend([0x02, 0x80, 0xea, 0x48]);
        want.extend([0x06, 0x05, 0x9d, 0x10, 0x09, 0x20, 0x44, 0, 0, 0, 0]);
        assert_eq!(memory(BASE, ptr), want);
        assert_eq!(ptr, BASE + want.len() as u64);
        assert_eq!(m.counts().written, want.len() as u64);
    }

    #[test]
    fn trace_model_filters_levels_and_addresses() {
        let mut m = tracing_model(1, 0);
        m.write(Reg::TrfcrEl1, 0); // TRFCR may change while the unit runs
        m.event(&hvc(0x4420_0000, 1));
        assert_eq!(m.pending() as u64, START_BYTES, "TRFCR prohibits EL1");
        m.write(Reg::TrfcrEl1, 0b10);
        m.event(&GuestEvent {
            el: 0,
            ..hvc(0x4420_0000, 1)
        });
        assert_eq!(m.pending() as u64, START_BYTES, "TRFCR prohibits EL0");
        m.event(&hvc(0x4420_0000, 1));
        assert!(m.pending() as u64 > START_BYTES);
    }

    #[test]
    fn trace_model_address_filter_drops_events_outside_the_range() {
        let mut m = tracing_model(1, 0);
        m.write(Reg::TrcPrgCtlr, 0);
        m.write(Reg::TrfcrEl1, 0);
        m.isb();
        m.write(Reg::TrcViIeCtlR, 1);
        m.write(Reg::TrcAcVR(0), 0x4420_0000);
        m.write(Reg::TrcAcVR(1), 0x4420_0fff);
        m.write(Reg::TrfcrEl1, 0b11);
        m.isb();
        m.write(Reg::TrcPrgCtlr, 1);
        m.isb();
        let before = m.pending();
        m.event(&hvc(0x4430_0000, 1));
        assert_eq!(m.pending(), before);
        m.event(&hvc(0x4420_0800, 1));
        assert!(m.pending() > before);
    }

    #[test]
    fn trace_model_fill_mode_stops_full_with_irq_and_counts_the_loss() {
        let mut m = tracing_model(1 | CONFIGR_TS, 0);
        // 4096 bytes hold about 270 exception groups.
        for i in 0..400 {
            m.event(&hvc(0x4420_0000 + 4 * i, 0x1000 + i));
        }
        m.tsb_csync();
        assert_eq!(m.peek(Reg::TrbPtr), BASE + 0x1000);
        let sr = m.peek(Reg::TrbSR);
        assert_ne!(sr & TRBSR_S, 0);
        assert_ne!(sr & TRBSR_IRQ, 0);
        assert_eq!(sr & 0xffff, TRBSR_BSC_FULL);
        assert_eq!(sr >> 26 & 0x3f, 0, "EC: buffer management event");
        let c = m.counts();
        assert_eq!(c.written, 0x1000);
        assert!(c.lost > 0);
        assert_eq!(c.wraps, 0);
        // A stopped buffer takes nothing more.
        m.event(&hvc(0x4420_0000, 0x9999));
        m.tsb_csync();
        assert_eq!(m.peek(Reg::TrbPtr), BASE + 0x1000);
        assert!(m.counts().lost > c.lost);
        // Periodic sync: A-Sync appears again after 256 bytes.
        let data = memory(BASE, BASE + 0x1000);
        let asyncs = data
            .windows(12)
            .filter(|w| w[..11].iter().all(|&b| b == 0) && w[11] == 0x80)
            .count();
        assert!(asyncs >= 0x1000 / 256 - 1, "{asyncs} sync points");
    }

    #[test]
    fn trace_model_wrap_and_circular_modes_go_back_to_base() {
        for (fm, irq) in [(0b01, true), (0b11, false)] {
            let mut m = tracing_model(1 | CONFIGR_TS, fm);
            for i in 0..400 {
                m.event(&hvc(0x4420_0000 + 4 * i, 0x1000 + i));
            }
            m.tsb_csync();
            let sr = m.peek(Reg::TrbSR);
            assert_ne!(sr & TRBSR_WRAP, 0);
            assert_eq!(sr & TRBSR_S, 0, "still collecting");
            assert_eq!(sr & TRBSR_IRQ != 0, irq, "fm {fm:#b}");
            let c = m.counts();
            assert_eq!(c.wraps, 1);
            assert_eq!(c.lost, 0);
            assert_eq!(m.peek(Reg::TrbPtr), BASE + c.written - 0x1000);
        }
    }

    const NOP: u32 = 0xd503_201f;
    const B_BACK: u32 = 0x17ff_ffff; // b .-4

    fn exe(pc: u64, word: u32, next: u64, el: u8) -> Observed {
        Observed::Executed { pc, word, next, el }
    }

    /// A two-instruction loop (nop; b .-4), `n` times round, at EL1.
    fn loop_events(n: usize) -> Vec<Observed> {
        (0..n)
            .flat_map(|_| {
                [
                    exe(0x4420_0000, NOP, 0x4420_0004, 1),
                    exe(0x4420_0004, B_BACK, 0x4420_0000, 1),
                ]
            })
            .collect()
    }

    #[test]
    fn trace_model_observe_emits_what_the_encoder_does_after_the_start() {
        let mut m = tracing_model(1 | CONFIGR_TS | CONFIGR_CID, 0);
        let s = Sample {
            timestamp: 0x500,
            context_id: 9,
        };
        let evs = loop_events(800);
        for ev in &evs {
            m.observe(ev, &s);
        }
        m.tsb_csync();
        m.dsb();
        // The same observations through a bare encoder, under what the
        // registers say: both levels, timestamps, context IDs, a sync
        // point every 2^TRCSYNCPR = 256 bytes.
        let mut e = InsnEncoder::new();
        e.set_sync_period(256);
        let cfg = TraceConfig {
            el0: true,
            el1: true,
            timestamps: true,
            context_id: true,
            ..TraceConfig::default()
        };
        let mut want = vec![0u8; 11];
        want.extend([0x80, 0x01, 0x01, 0x00, 0x04]);
        for ev in &evs {
            e.observe(ev, &s, &cfg, &mut want);
        }
        assert!(want.len() > 3 * 256, "several sync points");
        let ptr = m.peek(Reg::TrbPtr);
        assert_eq!(memory(BASE, ptr), want);
        assert_eq!(m.violations(), 0, "{:?}", m.last_violation());
    }

    #[test]
    fn trace_model_observe_follows_the_unit_and_its_filters() {
        // Not traced while TRFCR prohibits EL1, nor EL0 with only EL1 allowed.
        let mut m = tracing_model(1, 0);
        m.write(Reg::TrfcrEl1, 0);
        m.observe(&exe(0x4420_0000, NOP, 0x4420_0004, 1), &Sample::default());
        assert_eq!(m.pending() as u64, START_BYTES);
        m.write(Reg::TrfcrEl1, 0b10);
        m.observe(&exe(0x1000, B_BACK, 0xffc, 0), &Sample::default());
        assert_eq!(m.pending() as u64, START_BYTES);
        assert!(!m.insn_encoder().started());
        m.observe(&exe(0x4420_0000, NOP, 0x4420_0004, 1), &Sample::default());
        assert!(m.insn_encoder().started());
        assert!(m.pending() as u64 > START_BYTES);

        // A disabled unit takes nothing.
        let mut m = TraceModel::new();
        m.observe(&exe(0x4420_0000, NOP, 0x4420_0004, 1), &Sample::default());
        assert_eq!(m.pending(), 0);
    }

    #[test]
    fn trace_model_observe_honours_the_address_range() {
        let mut m = tracing_model(1, 0);
        m.write(Reg::TrfcrEl1, 0);
        m.write(Reg::TrcPrgCtlr, 0);
        m.isb();
        m.write(Reg::TrcViIeCtlR, 1);
        m.write(Reg::TrcAcVR(0), 0x4420_0000);
        m.write(Reg::TrcAcVR(1), 0x4420_0fff);
        m.write(Reg::TrfcrEl1, 0b11);
        m.isb();
        m.write(Reg::TrcPrgCtlr, 1);
        m.isb();
        assert_eq!(m.programmed_view().filter, Some((0x4420_0000, 0x4420_1000)));
        let before = m.pending();
        m.observe(&exe(0x4420_1000, NOP, 0x4420_1004, 1), &Sample::default());
        assert_eq!(m.pending(), before, "the first word past the range");
        m.observe(&exe(0x4420_0ffc, NOP, 0x4420_1000, 1), &Sample::default());
        assert!(m.pending() > before, "the last word inside it");
    }

    #[test]
    fn trace_model_each_start_resets_the_instruction_encoder() {
        let mut m = tracing_model(1, 0);
        for ev in loop_events(4) {
            m.observe(&ev, &Sample::default());
        }
        assert!(m.insn_encoder().started());
        // Stop (prohibit first, as the driver does) and start again.
        m.write(Reg::TrfcrEl1, 0);
        m.isb();
        m.write(Reg::TrcPrgCtlr, 0);
        m.isb();
        assert!(m.insn_encoder().started(), "a stop alone forgets nothing");
        m.write(Reg::TrfcrEl1, 0b11);
        m.write(Reg::TrcPrgCtlr, 1);
        m.isb();
        assert!(!m.insn_encoder().started());
        let before = m.pending();
        m.observe(
            &exe(0x4420_0004, B_BACK, 0x4420_0000, 1),
            &Sample::default(),
        );
        m.tsb_csync();
        let data = memory(BASE, m.peek(Reg::TrbPtr));
        let fresh = &data[before..];
        assert!(
            fresh[..11].iter().all(|&b| b == 0) && fresh[11] == 0x80,
            "{fresh:x?}"
        );
        assert_eq!(m.violations(), 0, "{:?}", m.last_violation());
        // A power loss forgets too.
        m.power_loss();
        assert!(!m.insn_encoder().started());
    }

    #[test]
    fn trace_model_power_loss_drops_the_fifo() {
        let mut m = tracing_model(1, 0);
        m.event(&hvc(0x4420_0000, 1));
        assert!(m.pending() > 0);
        m.power_loss();
        assert_eq!(m.pending(), 0);
    }
}

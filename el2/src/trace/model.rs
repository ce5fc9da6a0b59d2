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
//! The model holds no pointers and is `const`-constructible, so it can live
//! in a per-core static.

use super::regs::{Reg, SysRegs};

/// TRCIDR0 of the modelled unit: bit 0 RES1, TRCBB (5), TRCCCI (7),
/// RETSTACK (9), TSSIZE [28:24] = 0b01000 (64-bit timestamps).
pub const MODEL_TRCIDR0: u64 = 1 | (1 << 5) | (1 << 7) | (1 << 9) | (0b01000 << 24);
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

/// Bytes one TSB CSYNC moves from the unit into the buffer while trace is
/// pending.
pub const FLUSH_BYTES: u64 = 0x40;

const TRBSR_S: u64 = 1 << 17;
const TRBSR_IRQ: u64 = 1 << 22;
/// MSS.BSC = 0b000001: buffer filled (EC = 0, buffer management event).
const TRBSR_BSC_FULL: u64 = 1;
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
    regs[Reg::TrcIdR(1).index()] = 0;
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
        }
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
            self.advance(bytes);
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
    fn advance(&mut self, bytes: u64) {
        let sr = self.regs[Reg::TrbSR.index()];
        if !self.trbe_enabled() || sr & TRBSR_S != 0 {
            return;
        }
        let limit = self.regs[Reg::TrbLimitR.index()] & !0xfff;
        let ptr = self.regs[Reg::TrbPtr.index()].saturating_add(bytes);
        if ptr >= limit {
            self.regs[Reg::TrbPtr.index()] = limit;
            self.regs[Reg::TrbSR.index()] = (sr & !0xffff) | TRBSR_S | TRBSR_IRQ | TRBSR_BSC_FULL;
        } else {
            self.regs[Reg::TrbPtr.index()] = ptr;
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
        self.peek(r)
    }

    fn write(&mut self, r: Reg, v: u64) {
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
        self.active = en && !self.os_lock;
    }

    fn dsb(&mut self) {
        self.undrained = false;
    }

    fn tsb_csync(&mut self) {
        if self.unsynced {
            self.unsynced = false;
            self.advance(FLUSH_BYTES);
            self.undrained = true;
        }
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
}

//! Instruction trace for the model: what a real ETE would emit for the
//! guest's execution as the observer reports it (`super::observe`), so that
//! a decoder holding the guest's code (OpenCSD with a memory image)
//! reconstructs every traced instruction.
//!
//! ETE traces program flow by its P0 elements only (Arm IHI 0064, "P0
//! elements"; the ETMv4 rules it keeps for A64): each waypoint instruction
//! gives one atom, E if it branched (or always, for an unconditional one)
//! and N if it fell through. The decoder walks the code from the last known
//! address to the next waypoint, so direct targets are never traced; an
//! indirect branch or exception return is followed by its target address,
//! and an exception by its preferred return address and then the address
//! (and, when it changed, the context) where execution resumed. A decoder
//! only learns where a walk starts from an address packet: after a sync
//! point, after Trace On (trace resumed after filtered-out code) and after
//! the indirect cases above.
//!
//! `classify` tells the waypoints apart; `InsnEncoder` is one core's
//! encoder state. Neither allocates; both run at EL2 and on the host.
//!
//! What the decoder cannot learn from any ETE stream is not invented here:
//! instructions executed after the last waypoint before trace goes inactive
//! (the guest leaves the filter range by falling through, or switches to an
//! excluded level without an exception) are never reported, exactly as on
//! hardware. Cycle counting (`TraceConfig::cycles`) is not modelled: Trace
//! Info says cycle counting is off, so the stream stays consistent.

/// The guest's trace configuration the encoder follows (re-exported for
/// users of the encoder that do not depend on `guest-api` themselves).
pub use guest_api::trace::TraceConfig;

use super::observe::{Observed, Sample};
use super::packet::{self, Context, Sink};

/// What an A64 instruction is to ETE's program-flow trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Not a P0 instruction: execution goes on at the next word.
    Other,
    /// B or BL: always taken, to `target`.
    Direct {
        /// The branch target.
        target: u64,
        /// BL (writes the link register).
        link: bool,
    },
    /// B.cond, BC.cond, CBZ/CBNZ, TBZ/TBNZ: to `target` if taken, else the
    /// next word.
    Conditional {
        /// The branch target.
        target: u64,
    },
    /// BR, BLR, RET and their pointer-authentication forms: the target
    /// comes from a register, so it is traced.
    Indirect {
        /// BLR, BLRAA, BLRAAZ, BLRAB, BLRABZ.
        link: bool,
    },
    /// ERET, ERETAA, ERETAB: an indirect branch to ELR, usually changing
    /// the exception level.
    ExceptionReturn,
    /// ISB: a P0 instruction the decoder expects an E atom for (it never
    /// branches).
    Isb,
}

impl Class {
    /// Is it a P0 element (does it produce an atom)?
    pub const fn is_waypoint(&self) -> bool {
        !matches!(self, Class::Other)
    }
}

/// Sign-extends the low `bits` bits of `v`.
const fn sext(v: u32, bits: u32) -> i64 {
    let shift = 64 - bits;
    (((v as u64) << shift) as i64) >> shift
}

/// `pc` plus a word offset of `imm` (`bits` wide, signed).
const fn rel(pc: u64, imm: u32, bits: u32) -> u64 {
    pc.wrapping_add((sext(imm, bits) * 4) as u64)
}

/// Classifies the A64 instruction `word` at `pc` (Arm ARM, DDI 0487:
/// "Branches, Exception Generating and System instructions").
pub const fn classify(word: u32, pc: u64) -> Class {
    // B / BL: op 0b00101 in [30:26], bit 31 = link, imm26.
    if word & 0x7c00_0000 == 0x1400_0000 {
        return Class::Direct {
            target: rel(pc, word & 0x03ff_ffff, 26),
            link: word & 0x8000_0000 != 0,
        };
    }
    // B.cond (bit 4 = 0) and BC.cond (bit 4 = 1): 0b0101010 0 imm19 o0 cond.
    if word & 0xff00_0000 == 0x5400_0000 {
        return Class::Conditional {
            target: rel(pc, (word >> 5) & 0x7_ffff, 19),
        };
    }
    // CBZ/CBNZ: sf 011010 op imm19 Rt.
    if word & 0x7e00_0000 == 0x3400_0000 {
        return Class::Conditional {
            target: rel(pc, (word >> 5) & 0x7_ffff, 19),
        };
    }
    // TBZ/TBNZ: b5 011011 op b40 imm14 Rt.
    if word & 0x7e00_0000 == 0x3600_0000 {
        return Class::Conditional {
            target: rel(pc, (word >> 5) & 0x3fff, 14),
        };
    }
    // Unconditional branch (register): 1101011 opc op2=11111 op3 Rn op4.
    let rn_cleared = word & !(0x1f << 5);
    match rn_cleared {
        // BR, BLR, RET.
        0xd61f_0000 => return Class::Indirect { link: false },
        0xd63f_0000 => return Class::Indirect { link: true },
        0xd65f_0000 => return Class::Indirect { link: false },
        // BRAAZ, BRABZ, BLRAAZ, BLRABZ (Rm = 11111).
        0xd61f_081f | 0xd61f_0c1f => return Class::Indirect { link: false },
        0xd63f_081f | 0xd63f_0c1f => return Class::Indirect { link: true },
        _ => {}
    }
    match word {
        // RETAA, RETAB.
        0xd65f_0bff | 0xd65f_0fff => return Class::Indirect { link: false },
        // ERET, ERETAA, ERETAB.
        0xd69f_03e0 | 0xd69f_0bff | 0xd69f_0fff => return Class::ExceptionReturn,
        _ => {}
    }
    // BRAA, BRAB, BLRAA, BLRAB: Rn and Rm (modifier) both free.
    match word & 0xffff_fc00 {
        0xd71f_0800 | 0xd71f_0c00 => return Class::Indirect { link: false },
        0xd73f_0800 | 0xd73f_0c00 => return Class::Indirect { link: true },
        _ => {}
    }
    // ISB (any CRm option).
    if word & 0xffff_f0ff == 0xd503_30df {
        return Class::Isb;
    }
    Class::Other
}

/// Bytes between periodic sync points unless told otherwise.
pub const DEFAULT_SYNC_PERIOD: usize = 4096;

/// The most bytes one observation can make the encoder emit: Trace On with
/// its timestamp, context and address, a sync point (A-Sync, Trace Info,
/// timestamp, context, address), a timestamp, an exception with its
/// address, a context and an address.
pub const MAX_OBSERVATION_BYTES: usize = 1 + 10 + 10 + 9 + 15 + 10 + 10 + 9 + 10 + 11 + 10 + 9;

/// One core's instruction-trace encoder state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InsnEncoder {
    /// A sync point has been emitted since the last reset.
    started: bool,
    /// The last instruction observed was traced (trace is active).
    active: bool,
    /// Where the decoder's next walk starts (the first instruction no P0
    /// element has covered yet), or `None` when it waits for an address.
    cursor: Option<u64>,
    /// Where execution goes on, as the observations so far say (the last
    /// instruction's next, an exception's target): an instruction observed
    /// anywhere else (EL2 resumed the guest elsewhere than the target it
    /// was told) gets an address first.
    next: Option<u64>,
    /// The context the decoder holds.
    context: Option<Context>,
    /// Bytes emitted since the last sync point.
    since_sync: usize,
    /// Bytes between sync points.
    period: usize,
}

impl Default for InsnEncoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts what goes through to the sink.
struct Counted<'a, S: Sink> {
    out: &'a mut S,
    n: usize,
}

impl<S: Sink> Sink for Counted<'_, S> {
    fn put(&mut self, b: u8) {
        self.n += 1;
        self.out.put(b);
    }
}

/// Does `cfg` trace exception level `el`?
fn level_traced(cfg: &TraceConfig, el: u8) -> bool {
    match el {
        0 => cfg.el0,
        1 => cfg.el1,
        _ => false,
    }
}

/// Is `addr` inside `cfg`'s include range (everything, without one)?
fn in_range(cfg: &TraceConfig, addr: u64) -> bool {
    match cfg.filter {
        Some((start, end)) => start <= addr && addr < end,
        None => true,
    }
}

impl InsnEncoder {
    /// Nothing traced yet: the first traced instruction starts with a sync
    /// point.
    pub const fn new() -> Self {
        InsnEncoder {
            started: false,
            active: false,
            cursor: None,
            next: None,
            context: None,
            since_sync: 0,
            period: DEFAULT_SYNC_PERIOD,
        }
    }

    /// Forgets everything the decoder was told (the unit restarted): the
    /// next traced instruction starts with a sync point. The sync period is
    /// kept.
    pub fn reset(&mut self) {
        *self = InsnEncoder {
            period: self.period,
            ..InsnEncoder::new()
        };
    }

    /// Emits a sync point after about `bytes` of trace (at least 16, so a
    /// sync point never follows a sync point).
    pub fn set_sync_period(&mut self, bytes: usize) {
        self.period = bytes.max(16);
    }

    /// Bytes between sync points.
    pub fn sync_period(&self) -> usize {
        self.period
    }

    /// Has a sync point been emitted since the last reset?
    pub fn started(&self) -> bool {
        self.started
    }

    fn context_for(el: u8, s: &Sample, cfg: &TraceConfig) -> Context {
        Context {
            el,
            aarch64: true,
            non_secure: true,
            vmid: None,
            context_id: cfg.context_id.then_some(s.context_id),
        }
    }

    fn timestamp(s: &Sample, cfg: &TraceConfig, out: &mut impl Sink) {
        if cfg.timestamps {
            packet::timestamp(out, s.timestamp);
        }
    }

    /// A sync point telling the decoder everything: the walk restarts at
    /// `addr` in context `ctx`.
    fn sync(
        &mut self,
        addr: u64,
        ctx: Context,
        s: &Sample,
        cfg: &TraceConfig,
        out: &mut impl Sink,
    ) {
        packet::a_sync(out);
        packet::trace_info(out);
        Self::timestamp(s, cfg, out);
        packet::context(out, &ctx);
        packet::address(out, addr);
        self.started = true;
        self.active = true;
        self.cursor = Some(addr);
        self.context = Some(ctx);
        // Counted from here: the sync point itself does not count.
        self.since_sync = 0;
    }

    /// Makes sure the decoder knows trace is on, its context is `ctx` and
    /// where its walk starts, for something traced at `at` (an executed
    /// instruction, or an exception's preferred return address).
    fn prepare(
        &mut self,
        at: u64,
        ctx: Context,
        s: &Sample,
        cfg: &TraceConfig,
        out: &mut Counted<'_, impl Sink>,
    ) {
        if !self.started {
            self.sync(at, ctx, s, cfg, out);
            out.n = 0;
        } else if !self.active {
            packet::trace_on(out);
            Self::timestamp(s, cfg, out);
            packet::context(out, &ctx);
            packet::address(out, at);
            self.active = true;
            self.cursor = Some(at);
            self.context = Some(ctx);
        } else if self.since_sync + out.n >= self.period {
            // Resume where the decoder's walk would: instructions since
            // the last P0 element are covered by the atoms still to come.
            let from = self.cursor.unwrap_or(at);
            self.sync(from, ctx, s, cfg, out);
            out.n = 0;
        } else {
            if self.context != Some(ctx) {
                packet::context(out, &ctx);
                self.context = Some(ctx);
            }
            if self.cursor.is_none() {
                packet::address(out, at);
                self.cursor = Some(at);
            }
        }
    }

    /// Encodes one observation under `cfg`, with the context sampled at
    /// it, into `out` (at most [`MAX_OBSERVATION_BYTES`]).
    pub fn observe(&mut self, ev: &Observed, s: &Sample, cfg: &TraceConfig, out: &mut impl Sink) {
        let mut out = Counted { out, n: 0 };
        match *ev {
            Observed::Executed { pc, word, next, el } => {
                self.executed(pc, word, next, el, s, cfg, &mut out)
            }
            Observed::Gap => {
                // Whatever comes next is traced as after filtered-out code:
                // Trace On, context, address.
                self.active = false;
            }
            Observed::Exception {
                kind,
                ret,
                target,
                from_el,
                to_el,
            } => {
                // Taken from traced code, or at a traced return address.
                let traced_from = level_traced(cfg, from_el)
                    && ((self.active && self.cursor.is_some()) || in_range(cfg, ret));
                if traced_from {
                    self.prepare(ret, Self::context_for(from_el, s, cfg), s, cfg, &mut out);
                    Self::timestamp(s, cfg, &mut out);
                    packet::exception(&mut out, kind);
                    packet::address(&mut out, ret);
                    self.cursor = Some(ret);
                    if level_traced(cfg, to_el) && in_range(cfg, target) {
                        let ctx = Self::context_for(to_el, s, cfg);
                        if self.context != Some(ctx) {
                            packet::context(&mut out, &ctx);
                            self.context = Some(ctx);
                        }
                        packet::address(&mut out, target);
                        self.cursor = Some(target);
                        self.next = Some(target);
                    } else {
                        self.active = false;
                    }
                } else {
                    // Where it resumes, if traced, starts with Trace On.
                    self.active = false;
                }
            }
        }
        self.since_sync += out.n;
    }

    #[allow(clippy::too_many_arguments)]
    fn executed(
        &mut self,
        pc: u64,
        word: u32,
        next: u64,
        el: u8,
        s: &Sample,
        cfg: &TraceConfig,
        out: &mut Counted<'_, impl Sink>,
    ) {
        if !(level_traced(cfg, el) && in_range(cfg, pc)) {
            self.active = false;
            return;
        }
        let resumed_elsewhere = self.active && self.next.is_some_and(|n| n != pc);
        self.prepare(pc, Self::context_for(el, s, cfg), s, cfg, out);
        if resumed_elsewhere && self.cursor != Some(pc) {
            packet::address(out, pc);
            self.cursor = Some(pc);
        }
        self.next = Some(next);
        let seq = pc.wrapping_add(4);
        // Where the decoder will believe execution went; if the observer
        // says otherwise, the next traced instruction gets an address.
        let believed = match classify(word, pc) {
            Class::Other => return,
            Class::Direct { target, .. } => {
                packet::atom(out, true);
                Some(target)
            }
            Class::Conditional { target } => {
                let taken = next == target;
                packet::atom(out, taken);
                Some(if taken { target } else { seq })
            }
            Class::Indirect { .. } | Class::ExceptionReturn => {
                packet::atom(out, true);
                None
            }
            Class::Isb => {
                packet::atom(out, true);
                Some(seq)
            }
        };
        self.cursor = believed.filter(|&b| b == next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::packet::ExceptionType;

    const PC: u64 = 0x4420_0000;

    #[test]
    fn insn_classify_direct_branches() {
        // b .+8; bl .-4 (checked with aarch64-linux-gnu-as/objdump).
        assert_eq!(
            classify(0x1400_0002, PC),
            Class::Direct {
                target: PC + 8,
                link: false
            }
        );
        assert_eq!(
            classify(0x97ff_ffff, PC),
            Class::Direct {
                target: PC - 4,
                link: true
            }
        );
        // The farthest reach: imm26 = -2^25 words.
        assert_eq!(
            classify(0x1600_0000, PC + 0x1000_0000),
            Class::Direct {
                target: PC + 0x1000_0000 - (1 << 27),
                link: false
            }
        );
    }

    #[test]
    fn insn_classify_conditional_branches() {
        let c = |w, off: i64| {
            assert_eq!(
                classify(w, PC),
                Class::Conditional {
                    target: PC.wrapping_add(off as u64)
                },
                "{w:#x}"
            )
        };
        c(0x5400_0081, 16); // b.ne .+16
        c(0x5400_0090, 16); // bc.eq .+16
        c(0x5400_004e, 8); // b.al .+8
        c(0xb400_0103, 32); // cbz x3, .+32
        c(0x35ff_ff03, -32); // cbnz w3, .-32
        c(0xb608_0205, 64); // tbz x5, #33, .+64
        c(0x371f_fe05, -64); // tbnz w5, #3, .-64
    }

    #[test]
    fn insn_classify_indirect_and_returns() {
        let plain = Class::Indirect { link: false };
        let link = Class::Indirect { link: true };
        for (w, want) in [
            (0xd61f_00e0, plain), // br x7
            (0xd63f_0100, link),  // blr x8
            (0xd65f_03c0, plain), // ret
            (0xd65f_0040, plain), // ret x2
            (0xd61f_087f, plain), // braaz x3
            (0xd61f_0c7f, plain), // brabz x3
            (0xd63f_089f, link),  // blraaz x4
            (0xd63f_0c9f, link),  // blrabz x4
            (0xd65f_0bff, plain), // retaa
            (0xd65f_0fff, plain), // retab
            (0xd71f_08a6, plain), // braa x5, x6
            (0xd71f_0cbf, plain), // brab x5, sp
            (0xd73f_08e8, link),  // blraa x7, x8
            (0xd73f_0ce8, link),  // blrab x7, x8
        ] {
            assert_eq!(classify(w, PC), want, "{w:#x}");
        }
        for w in [0xd69f_03e0, 0xd69f_0bff, 0xd69f_0fff] {
            assert_eq!(classify(w, PC), Class::ExceptionReturn, "{w:#x}");
        }
        assert_eq!(classify(0xd503_3fdf, PC), Class::Isb);
    }

    #[test]
    fn insn_classify_leaves_the_rest_alone() {
        for w in [
            0xd503_201f, // nop
            0xd400_0001, // svc #0
            0xd400_0002, // hvc #0
            0xd503_207f, // wfi
            0xd503_3f9f, // dsb sy
            0xd503_3bbf, // dmb ish
            0x9100_0421, // add x1, x1, #1
            0xf940_0020, // ldr x0, [x1]
            0xd61f_0801, // braa-like with a non-11111 Rm in the Z form: not a branch
            0xd69f_03e1, // eret with a nonzero Rt: unallocated
            0x0000_0000, // udf
        ] {
            assert_eq!(classify(w, PC), Class::Other, "{w:#x}");
        }
    }

    fn el1() -> TraceConfig {
        TraceConfig {
            el1: true,
            ..TraceConfig::default()
        }
    }

    fn enc(evs: &[Observed], cfg: &TraceConfig) -> Vec<u8> {
        let mut e = InsnEncoder::new();
        let mut v = Vec::new();
        for ev in evs {
            let before = v.len();
            e.observe(ev, &Sample::default(), cfg, &mut v);
            assert!(v.len() - before <= MAX_OBSERVATION_BYTES);
        }
        v
    }

    fn exe(pc: u64, word: u32, next: u64) -> Observed {
        Observed::Executed {
            pc,
            word,
            next,
            el: 1,
        }
    }

    const NOP: u32 = 0xd503_201f;

    fn sync_el1(addr: u64) -> Vec<u8> {
        let mut v = Vec::new();
        packet::a_sync(&mut v);
        packet::trace_info(&mut v);
        v.extend([0x81, 0x31]);
        packet::address(&mut v, addr);
        v
    }

    #[test]
    fn insn_encoder_starts_with_a_sync_point_and_emits_atoms() {
        let evs = [
            exe(PC, NOP, PC + 4),
            exe(PC + 4, 0x1400_0002, PC + 12),    // b .+8: E
            exe(PC + 12, 0x5400_0081, PC + 16),   // b.ne not taken: N
            exe(PC + 16, 0xd65f_03c0, PC + 0x80), // ret: E + address
            exe(PC + 0x80, NOP, PC + 0x84),
        ];
        let mut want = sync_el1(PC);
        want.extend([0xf7, 0xf6, 0xf7]);
        packet::address(&mut want, PC + 0x80);
        assert_eq!(enc(&evs, &el1()), want);
    }

    #[test]
    fn insn_encoder_exception_then_resume_address_and_context() {
        let evs = [
            exe(PC, NOP, PC + 4),
            Observed::Exception {
                kind: ExceptionType::Irq,
                ret: PC + 4,
                target: 0x4400_0280,
                from_el: 1,
                to_el: 1,
            },
            Observed::Exception {
                kind: ExceptionType::Call,
                ret: 0x4400_0284,
                target: 0x1000,
                from_el: 1,
                to_el: 0,
            },
        ];
        let cfg = TraceConfig { el0: true, ..el1() };
        let mut want = sync_el1(PC);
        want.extend([0x06, 0x1d]);
        packet::address(&mut want, PC + 4);
        packet::address(&mut want, 0x4400_0280);
        want.extend([0x06, 0x05]);
        packet::address(&mut want, 0x4400_0284);
        want.extend([0x81, 0x30]); // EL0 now
        packet::address(&mut want, 0x1000);
        assert_eq!(enc(&evs, &cfg), want);
    }

    #[test]
    fn insn_encoder_filtered_code_resumes_with_trace_on() {
        let cfg = TraceConfig {
            filter: Some((PC, PC + 0x100)),
            ..el1()
        };
        let evs = [
            exe(PC, 0x9400_0400, PC + 0x1000), // bl out of range: E
            exe(PC + 0x1000, NOP, PC + 0x1004),
            exe(PC + 0x1004, 0xd65f_03c0, PC + 4), // ret (not traced)
            exe(PC + 4, NOP, PC + 8),
        ];
        let mut want = sync_el1(PC);
        want.push(0xf7);
        want.extend([0x04, 0x81, 0x31]);
        packet::address(&mut want, PC + 4);
        assert_eq!(enc(&evs, &cfg), want);
        // EL0 excluded: its instructions leave nothing.
        let el0 = Observed::Executed {
            pc: 0x1000,
            word: 0x1400_0002,
            next: 0x1008,
            el: 0,
        };
        assert!(enc(&[el0, el0], &el1()).is_empty());
    }

    #[test]
    fn insn_encoder_resyncs_periodically_at_the_walk_start() {
        let mut e = InsnEncoder::new();
        e.set_sync_period(64);
        let mut v = Vec::new();
        let s = Sample::default();
        // A loop of two instructions: nop; b .-4.
        for _ in 0..200 {
            e.observe(&exe(PC, NOP, PC + 4), &s, &el1(), &mut v);
            e.observe(&exe(PC + 4, 0x17ff_ffff, PC), &s, &el1(), &mut v);
        }
        let sync = sync_el1(PC);
        let points: Vec<usize> = (0..v.len() - sync.len())
            .filter(|&i| v[i..i + sync.len()] == sync[..])
            .collect();
        assert!(points.len() >= 4, "{points:?}");
        for w in points.windows(2) {
            assert!(w[1] - w[0] <= 64 + sync.len() + 1, "{points:?}");
        }
        // Every byte is a sync point's or an E atom.
        let atoms = v.len() - points.len() * sync.len();
        assert_eq!(atoms, 200);
        // After a reset the encoder starts over with a sync point.
        e.reset();
        let mut w = Vec::new();
        e.observe(&exe(PC + 4, NOP, PC + 8), &s, &el1(), &mut w);
        assert_eq!(w, sync_el1(PC + 4));
        assert_eq!(e.sync_period(), 64);
    }

    #[test]
    fn insn_encoder_gives_an_address_when_a_branch_went_elsewhere() {
        // b.ne reported as going to PC + 0x40, neither its target (PC + 20)
        // nor its fall-through (PC + 8): the atom is N (next is not the
        // target) and, as the decoder now believes PC + 8, the next
        // instruction gets an address.
        let evs = [
            exe(PC + 4, 0x5400_0081, PC + 0x40),
            exe(PC + 0x40, NOP, PC + 0x44),
            exe(PC + 0x44, 0x1400_0002, PC + 0x4c), // b .+8: as the code says
            exe(PC + 0x4c, NOP, PC + 0x50),
        ];
        let mut want = sync_el1(PC + 4);
        want.push(0xf6);
        packet::address(&mut want, PC + 0x40);
        want.push(0xf7);
        assert_eq!(enc(&evs, &el1()), want);
    }

    #[test]
    fn insn_encoder_timestamps_and_context_ids() {
        let cfg = TraceConfig {
            timestamps: true,
            context_id: true,
            ..el1()
        };
        let mut e = InsnEncoder::new();
        let mut v = Vec::new();
        let s = Sample {
            timestamp: 0x80,
            context_id: 7,
        };
        e.observe(&exe(PC, NOP, PC + 4), &s, &cfg, &mut v);
        let s2 = Sample {
            timestamp: 0x81,
            context_id: 7,
        };
        e.observe(
            &Observed::Exception {
                kind: ExceptionType::Call,
                ret: PC + 4,
                target: PC + 0x400,
                from_el: 1,
                to_el: 1,
            },
            &s2,
            &cfg,
            &mut v,
        );
        let mut want = Vec::new();
        packet::a_sync(&mut want);
        packet::trace_info(&mut want);
        want.extend([0x02, 0x80, 0x01]);
        want.extend([0x81, 0xb1, 7, 0, 0, 0]);
        packet::address(&mut want, PC);
        want.extend([0x02, 0x81, 0x01, 0x06, 0x05]);
        packet::address(&mut want, PC + 4);
        packet::address(&mut want, PC + 0x400);
        assert_eq!(v, want);
    }
}

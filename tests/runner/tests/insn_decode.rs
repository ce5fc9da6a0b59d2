//! The model's instruction trace (`el2::trace::insn::InsnEncoder`) decoded
//! by OpenCSD for real: a small hand-assembled A64 program runs on a tiny
//! stepping simulator here, which reports what it executed as the EL2
//! observer does (`el2::trace::observe`); the encoder turns that into ETE
//! packets; a snapshot holds them with the program as memory dumps; and
//! `trc_pkt_lister -decode` must reconstruct exactly the instructions that
//! ran, in order, from nothing but the packets and the code.

use el2::trace::insn::{Class, InsnEncoder, TraceConfig};
use el2::trace::observe::{Observed, Sample};
use el2::trace::packet::{ExceptionType, Sink};
use runner::snapshot::{self, Capture, EteRegs, MemoryDump};

/// Where the program is loaded (and VBAR_EL1).
const BASE: u64 = 0x4420_0000;
/// The user (EL0) part of the program.
const USER: u64 = BASE + 0x1000;
/// The last instruction: `finish: b finish`. The simulation stops after
/// executing it once.
const FINISH: u64 = BASE + 0x408;

/// The program (assembled with aarch64-linux-gnu-as, listing beside each
/// word), as (offset, word). VBAR_EL1 = BASE: the current-EL synchronous
/// vector is at 0x200, IRQ at 0x280, the lower-EL synchronous one at 0x400.
const PROGRAM: &[(u64, u32)] = &[
    (0x00, 0xd280_0060), // start: movz x0, #3 (patched: loop count)
    (0x04, 0xf100_0400), // loop:  subs x0, x0, #1
    (0x08, 0x54ff_ffe1), //        b.ne loop
    (0x0c, 0x9400_0015), //        bl func
    (0x10, 0x1000_0382), //        adr x2, table
    (0x14, 0xf940_0441), //        ldr x1, [x2, #8]
    (0x18, 0xd61f_0020), //        br x1
    (0x1c, 0x1400_0000), // dead:  b dead
    (0x20, 0x17ff_ffff), // t0:    b dead
    (0x24, 0xb400_0040), // t1:    cbz x0, zero
    (0x28, 0x17ff_fffd), //        b dead
    (0x2c, 0xd400_0001), // zero:  svc #0
    (0x30, 0xd280_00a3), //        movz x3, #5
    (0x34, 0xf100_0463), // loop2: subs x3, x3, #1
    (0x38, 0x54ff_ffe1), //        b.ne loop2
    (0x3c, 0x1000_7e26), //        adr x6, user
    (0x40, 0xd518_4026), //        msr elr_el1, x6
    (0x44, 0xd518_401f), //        msr spsr_el1, xzr
    (0x48, 0xd69f_03e0), //        eret
    (0x60, 0x9100_04a5), // func:  add x5, x5, #1
    (0x64, 0xd65f_03c0), //        ret
    (0x80, 0x4420_0020), // table: .quad t0
    (0x84, 0x0000_0000),
    (0x88, 0x4420_0024), //        .quad t1
    (0x8c, 0x0000_0000),
    (0x200, 0xd503_201f),  // sync vector: nop
    (0x204, 0xd69f_03e0),  //              eret
    (0x280, 0xd503_201f),  // irq vector:  nop
    (0x284, 0xd69f_03e0),  //              eret
    (0x400, 0xd503_201f),  // lower-EL sync vector: nop
    (0x404, 0x1400_0001),  //                       b finish
    (0x408, 0x1400_0000),  // finish: b finish
    (0x1000, 0xd280_0047), // user: movz x7, #2
    (0x1004, 0xf100_04e7), // ul:   subs x7, x7, #1
    (0x1008, 0x54ff_ffe1), //       b.ne ul
    (0x100c, 0xd400_0001), //       svc #0
];

/// The program's bytes from BASE, with the first loop running `count` times.
fn image(count: u16) -> Vec<u8> {
    let mut img = vec![0u8; 0x1010];
    for &(off, word) in PROGRAM {
        let word = if off == 0 {
            0xd280_0000 | (u32::from(count) << 5)
        } else {
            word
        };
        img[off as usize..off as usize + 4].copy_from_slice(&word.to_le_bytes());
    }
    img
}

/// The decoder's memory: the kernel part and the user part as two dumps.
fn dumps(img: &[u8]) -> Vec<MemoryDump> {
    vec![
        MemoryDump {
            address: BASE,
            bytes: img[..0x410].to_vec(),
        },
        MemoryDump {
            address: USER,
            bytes: img[0x1000..].to_vec(),
        },
    ]
}

/// Just enough of an A64 PE for the program: its own decoding, separate
/// from the encoder's classifier, so a classifier bug cannot hide.
struct Sim<'a> {
    img: &'a [u8],
    x: [u64; 32],
    z: bool,
    pc: u64,
    el: u8,
    elr: u64,
    spsr_el: u8,
    steps: usize,
}

fn sext(v: u32, bits: u32) -> i64 {
    let s = 64 - bits;
    (((v as u64) << s) as i64) >> s
}

impl<'a> Sim<'a> {
    fn new(img: &'a [u8]) -> Self {
        Sim {
            img,
            x: [0; 32],
            z: false,
            pc: BASE,
            el: 1,
            elr: 0,
            spsr_el: 1,
            steps: 0,
        }
    }

    fn word(&self, addr: u64) -> u32 {
        let o = (addr - BASE) as usize;
        u32::from_le_bytes(self.img[o..o + 4].try_into().unwrap())
    }

    fn reg(&self, r: u32) -> u64 {
        if r == 31 {
            0
        } else {
            self.x[r as usize]
        }
    }

    fn set(&mut self, r: u32, v: u64) {
        if r != 31 {
            self.x[r as usize] = v;
        }
    }

    /// Takes an exception to EL1 from the current state; returns the
    /// observation.
    fn take(&mut self, kind: ExceptionType, ret: u64, vector: u64) -> Observed {
        let from = self.el;
        let off = if from == 1 { vector } else { 0x400 };
        self.elr = ret;
        self.spsr_el = from;
        self.el = 1;
        self.pc = BASE + off;
        Observed::Exception {
            kind,
            ret,
            target: self.pc,
            from_el: from,
            to_el: 1,
        }
    }

    /// Executes one instruction; pushes what the observer would report.
    fn step(&mut self, out: &mut Vec<Observed>) {
        let (pc, w) = (self.pc, self.word(self.pc));
        let (rd, rn) = (w & 31, (w >> 5) & 31);
        let mut next = pc + 4;
        let mut exception = None;
        let mut el_after = self.el;
        if w & 0xff80_0000 == 0xd280_0000 {
            self.set(rd, u64::from((w >> 5) & 0xffff)); // movz
        } else if w & 0xff80_0000 == 0xf100_0000 {
            let v = self.reg(rn).wrapping_sub(u64::from((w >> 10) & 0xfff)); // subs
            self.z = v == 0;
            self.set(rd, v);
        } else if w & 0xff80_0000 == 0x9100_0000 {
            let v = self.reg(rn).wrapping_add(u64::from((w >> 10) & 0xfff)); // add
            self.set(rd, v);
        } else if w & 0xff00_0010 == 0x5400_0000 {
            let cond = w & 0xf; // b.eq / b.ne only
            assert!(cond <= 1, "{w:#x}");
            if self.z == (cond == 0) {
                next = pc.wrapping_add((sext((w >> 5) & 0x7_ffff, 19) * 4) as u64);
            }
        } else if w & 0xfe00_0000 == 0xb400_0000 {
            let zero = self.reg(rd) == 0; // cbz / cbnz (64-bit)
            if zero == (w & (1 << 24) == 0) {
                next = pc.wrapping_add((sext((w >> 5) & 0x7_ffff, 19) * 4) as u64);
            }
        } else if w & 0x7c00_0000 == 0x1400_0000 {
            if w & (1 << 31) != 0 {
                self.x[30] = pc + 4; // bl
            }
            next = pc.wrapping_add((sext(w & 0x03ff_ffff, 26) * 4) as u64);
        } else if w & 0x9f00_0000 == 0x1000_0000 {
            let imm = (((w >> 5) & 0x7_ffff) << 2) | ((w >> 29) & 3); // adr
            self.set(rd, pc.wrapping_add(sext(imm, 21) as u64));
        } else if w & 0xffc0_0000 == 0xf940_0000 {
            let a = self.reg(rn) + u64::from((w >> 10) & 0xfff) * 8; // ldr
            let o = (a - BASE) as usize;
            self.set(
                rd,
                u64::from_le_bytes(self.img[o..o + 8].try_into().unwrap()),
            );
        } else if w & 0xffff_fc1f == 0xd61f_0000 || w & 0xffff_fc1f == 0xd65f_0000 {
            next = self.reg(rn); // br / ret
        } else if w == 0xd69f_03e0 {
            next = self.elr; // eret
            el_after = self.spsr_el;
        } else if w & 0xffff_ffe0 == 0xd518_4020 {
            self.elr = self.reg(rd); // msr elr_el1
        } else if w & 0xffff_ffe0 == 0xd518_4000 {
            self.spsr_el = (self.reg(rd) >> 2) as u8 & 1; // msr spsr_el1 (M[3:2])
        } else if w == 0xd400_0001 {
            exception = Some(ExceptionType::Call); // svc #0
        } else {
            assert_eq!(w, 0xd503_201f, "the simulator does not know {w:#x}");
        }
        out.push(Observed::Executed {
            pc,
            word: w,
            next,
            el: self.el,
        });
        self.pc = next;
        self.el = el_after;
        if let Some(kind) = exception {
            let ev = self.take(kind, pc + 4, 0x200);
            out.push(ev);
        }
        self.steps += 1;
    }
}

/// Runs the program with the first loop `count` times and an IRQ taken
/// before step `irq_at` (or the first step after it outside the vectors);
/// returns the image and the observations.
fn run(count: u16, irq_at: usize) -> (Vec<u8>, Vec<Observed>) {
    let img = image(count);
    let mut sim = Sim::new(&img);
    let mut evs = Vec::new();
    let mut irq_pending = true;
    loop {
        // Not inside a vector nor between writing ELR and the ERET that
        // uses it: nothing saves ELR, so the IRQ would lose the way back
        // (as on a PE, where software masks interrupts there).
        let in_vectors = (BASE + 0x200..BASE + 0x410).contains(&sim.pc)
            || (BASE + 0x44..=BASE + 0x48).contains(&sim.pc);
        if irq_pending && sim.steps >= irq_at && !in_vectors {
            irq_pending = false;
            let ret = sim.pc;
            let ev = sim.take(ExceptionType::Irq, ret, 0x280);
            evs.push(ev);
            sim.steps += 1;
        }
        let done = sim.pc == FINISH;
        sim.step(&mut evs);
        if done {
            break;
        }
        assert!(sim.steps < 100_000, "runaway");
    }
    (img, evs)
}

fn sample(i: usize, ev: &Observed) -> Sample {
    let user = matches!(
        ev,
        Observed::Executed { el: 0, .. } | Observed::Exception { from_el: 0, .. }
    );
    Sample {
        timestamp: 1000 + 3 * i as u64,
        context_id: if user { 0x99 } else { 0x42 },
    }
}

/// A packet sink that remembers where each atom went.
#[derive(Default)]
struct Stream {
    bytes: Vec<u8>,
}

impl Sink for Stream {
    fn put(&mut self, b: u8) {
        self.bytes.push(b)
    }
}

/// Encodes `evs`; returns the bytes and the offsets of the atoms (the
/// last byte of each waypoint's observation).
fn encode(evs: &[Observed], cfg: &TraceConfig, period: Option<usize>) -> (Vec<u8>, Vec<usize>) {
    let mut enc = InsnEncoder::new();
    if let Some(p) = period {
        enc.set_sync_period(p);
    }
    let mut s = Stream::default();
    let mut atoms = Vec::new();
    for (i, ev) in evs.iter().enumerate() {
        let before = s.bytes.len();
        enc.observe(ev, &sample(i, ev), cfg, &mut s);
        if let Observed::Executed { pc, word, .. } = *ev {
            let waypoint = el2::trace::insn::classify(word, pc) != Class::Other;
            if waypoint && s.bytes.len() > before {
                atoms.push(s.bytes.len() - 1);
            }
        }
    }
    (s.bytes, atoms)
}

/// What a decoder can know was executed: every traced instruction.
fn traced(evs: &[Observed], cfg: &TraceConfig) -> Vec<u64> {
    evs.iter()
        .filter_map(|ev| match *ev {
            Observed::Executed { pc, el, .. } => {
                let level = if el == 0 { cfg.el0 } else { cfg.el1 };
                let range = cfg.filter.is_none_or(|(s, e)| s <= pc && pc < e);
                (level && range).then_some(pc)
            }
            _ => None,
        })
        .collect()
}

fn configr(cfg: &TraceConfig) -> u64 {
    let mut c = 1;
    if cfg.context_id {
        c |= 1 << 6;
    }
    if cfg.timestamps {
        c |= 1 << 11;
    }
    c
}

/// Decodes `data` with the program as memory; returns the full output.
fn decode(data: &[u8], img: &[u8], cfg: &TraceConfig) -> String {
    assert!(
        snapshot::have_decoder(),
        "trc_pkt_lister missing: make deps installs libopencsd-bin"
    );
    let dir = runner::tempdir().unwrap();
    let regs = EteRegs::model(configr(cfg), el2::trace::trace_id(2).into());
    snapshot::write_with_memory(
        &dir,
        &[Capture {
            cpu: 0,
            regs,
            data: data.to_vec(),
        }],
        &dumps(img),
    )
    .unwrap();
    let out = snapshot::list(&dir, 0, true).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn all() -> TraceConfig {
    TraceConfig {
        el0: true,
        el1: true,
        timestamps: true,
        context_id: true,
        ..TraceConfig::default()
    }
}

/// Runs, encodes, decodes; asserts the decode is exactly what was traced.
/// Returns the decoder's output.
fn check(count: u16, irq_at: usize, cfg: &TraceConfig, period: Option<usize>) -> String {
    let (img, evs) = run(count, irq_at);
    let (data, _) = encode(&evs, cfg, period);
    let out = decode(&data, &img, cfg);
    let want = traced(&evs, cfg);
    assert!(!want.is_empty());
    match snapshot::executed_addresses(&out) {
        Ok(got) => assert_eq!(
            got,
            want,
            "decoded != executed ({} vs {} instructions)\n{out}",
            got.len(),
            want.len()
        ),
        Err(e) => panic!("{e}\n{out}"),
    }
    out
}

#[test]
fn insn_decode_reconstructs_every_instruction() {
    // Loop 3 times, the IRQ arrives in the second loop (step 20).
    let out = check(3, 20, &all(), None);
    let ex = snapshot::decoded_exceptions(&out);
    // SVC from EL1 (return 0x30), the IRQ (return inside loop2), SVC from EL0.
    assert_eq!(ex.len(), 3, "{ex:?}\n{out}");
    assert_eq!(ex[0], (BASE + 0x30, ExceptionType::Call as u32));
    assert_eq!(ex[1].1, ExceptionType::Irq as u32);
    assert!((BASE + 0x34..=BASE + 0x38).contains(&ex[1].0), "{ex:?}");
    assert_eq!(ex[2], (USER + 0x10, ExceptionType::Call as u32));
    // The context ID followed the switch to EL0 and back.
    assert!(out.contains("CTXTID=0x99"), "{out}");
}

#[test]
fn insn_decode_irq_at_a_branch_target_and_after_an_indirect_branch() {
    let (_, evs) = run(3, usize::MAX);
    // Every step as the IRQ point: after BR (pending target), at loop
    // heads, in the vectors, at EL0.
    for at in 0..evs.len() {
        check(2, at, &all(), None);
    }
}

#[test]
fn insn_decode_fails_when_an_atom_is_dropped() {
    let (img, evs) = run(4, 20);
    let cfg = all();
    let (data, atoms) = encode(&evs, &cfg, None);
    let want = traced(&evs, &cfg);
    // The stream as encoded decodes exactly...
    let good = snapshot::executed_addresses(&decode(&data, &img, &cfg)).unwrap();
    assert_eq!(good, want);
    // ...and without one atom (a b.ne of the first loop) it must not.
    assert!(atoms.len() > 10);
    for &drop in [atoms[1], atoms[atoms.len() / 2]].iter() {
        assert!(data[drop] == 0xf6 || data[drop] == 0xf7);
        let mut bad = data.clone();
        bad.remove(drop);
        let got = snapshot::executed_addresses(&decode(&bad, &img, &cfg));
        assert_ne!(
            got,
            Ok(want.clone()),
            "dropping the atom at {drop} went unnoticed"
        );
    }
}

#[test]
fn insn_decode_el0_excluded() {
    let cfg = TraceConfig {
        el0: false,
        ..all()
    };
    let out = check(3, 20, &cfg, None);
    // Trace resumed at the lower-EL vector after the excluded user code.
    assert!(out.contains("I_TRACE_ON"), "{out}");
}

#[test]
fn insn_decode_el1_excluded() {
    let cfg = TraceConfig {
        el1: false,
        ..all()
    };
    check(3, 20, &cfg, None);
}

#[test]
fn insn_decode_address_range() {
    // Only [start, func): func, the vectors and the user code are outside.
    let cfg = TraceConfig {
        filter: Some((BASE, BASE + 0x60)),
        ..all()
    };
    let out = check(3, 20, &cfg, None);
    assert!(out.matches("I_TRACE_ON").count() >= 3, "{out}");
}

#[test]
fn insn_decode_resyncs_periodically() {
    // About 2000 atoms, a sync point every 128 bytes or so.
    let out = check(2000, 3000, &all(), Some(128));
    let asyncs = out.matches("I_ASYNC").count();
    assert!(asyncs >= 12, "{asyncs} sync points\n{out}");
}

#[test]
fn insn_decode_without_timestamps_or_context_ids() {
    let cfg = TraceConfig {
        el0: true,
        el1: true,
        ..TraceConfig::default()
    };
    check(5, 30, &cfg, None);
}

// The model's own path: the unit's start, its FIFO, the buffer and its
// 256-byte sync period, with the observations going through
// `TraceModel::observe`.
std::thread_local! {
    static TRBE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

const TRBE_BASE: u64 = 0x5000_0000;

fn trbe_store(addr: u64, bytes: &[u8]) {
    TRBE.with(|m| {
        let mut m = m.borrow_mut();
        let at = (addr - TRBE_BASE) as usize;
        if m.len() < at + bytes.len() {
            m.resize(at + bytes.len(), 0);
        }
        m[at..at + bytes.len()].copy_from_slice(bytes);
    });
}

#[test]
fn insn_decode_through_the_model_and_its_buffer() {
    use el2::trace::{Reg, SysRegs, TraceModel};
    TRBE.with(|m| m.borrow_mut().clear());
    let mut m = TraceModel::new();
    m.set_writer(trbe_store);
    // As the driver programs it: OS lock open, TS and CID, sync every
    // 2^8 bytes, a 64 KiB fill-mode buffer, EL0 and EL1 allowed.
    m.write(Reg::OslarEl1, 0);
    m.isb();
    m.write(Reg::TrcConfigR, configr(&all()));
    m.write(Reg::TrcSyncPR, 8);
    m.write(Reg::TrcViCtlR, 0);
    m.write(Reg::TrbBaseR, TRBE_BASE);
    m.write(Reg::TrbPtr, TRBE_BASE);
    m.write(Reg::TrbSR, 0);
    m.isb();
    m.write(Reg::TrbLimitR, (TRBE_BASE + 0x1_0000) | (0b11 << 3) | 1);
    m.write(Reg::TrfcrEl1, 0b11);
    m.isb();
    m.write(Reg::TrcPrgCtlr, 1);
    m.isb();
    let (img, evs) = run(300, 400);
    for (i, ev) in evs.iter().enumerate() {
        m.observe(ev, &sample(i, ev));
    }
    m.tsb_csync();
    m.dsb();
    assert_eq!(m.violations(), 0, "{:?}", m.last_violation());
    let len = (m.peek(Reg::TrbPtr) - TRBE_BASE) as usize;
    let data = TRBE.with(|t| t.borrow()[..len].to_vec());
    let out = decode(&data, &img, &all());
    let got = snapshot::executed_addresses(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(got, traced(&evs, &all()), "{out}");
    assert!(out.matches("I_ASYNC").count() >= 3, "{out}");
}

#[test]
fn insn_decode_range_left_by_falling_through_loses_only_the_tail() {
    // [start, 0x40): the range ends after `adr x6, user` (0x3c), which
    // follows the last waypoint inside it (b.ne loop2). No ETE packet can
    // say that 0x3c ran before trace went inactive: the decode is every
    // traced instruction but that one.
    let cfg = TraceConfig {
        filter: Some((BASE, BASE + 0x40)),
        ..all()
    };
    let (img, evs) = run(3, 20);
    let (data, _) = encode(&evs, &cfg, None);
    let out = decode(&data, &img, &cfg);
    let mut want = traced(&evs, &cfg);
    assert_eq!(want.iter().filter(|&&a| a == BASE + 0x3c).count(), 1);
    want.retain(|&a| a != BASE + 0x3c);
    let got = snapshot::executed_addresses(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(got, want, "{out}");
}

//! Host tests of the errata workarounds (issue 14): the sequences on an
//! affected MIDR through the recording fake, and the driver over the model
//! playing an affected part, with and without the workaround, so each test
//! shows the defect doing harm when nothing works around it.

use std::vec::Vec;

use guest_api::trace::TraceConfig;

use super::errata::{Errata, Midr, Workaround, CORTEX_A510, CORTEX_A710, NEOVERSE_N2};
use super::model::{GuestEvent, DEFECT_BYTE, OVERRUN_BYTES};
use super::packet::ExceptionType;
use super::*;
use crate::platform::Range;
use Access::{Dsb, Isb, TsbCsync, Write};

const BASE: u64 = 0x4800_0000;
const BUF: Range = Range::new(BASE, 0x1_0000);
const END: u64 = BASE + 0x1_0000;

fn el1() -> TraceConfig {
    TraceConfig {
        el1: true,
        timestamps: true,
        ..TraceConfig::default()
    }
}

fn a710() -> Errata {
    Errata::for_midr(Midr::arm(CORTEX_A710, 0, 0))
}

fn a510_r0p2() -> Errata {
    Errata::for_midr(Midr::arm(CORTEX_A510, 0, 2))
}

fn recorder(errata: Errata) -> Ete<Recorder> {
    let mut e = Ete::new(Recorder::new(), 0x10);
    e.set_errata(errata);
    e.set_guard(4096);
    e.caps();
    e.regs.take();
    e
}

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

fn written_addresses() -> Vec<u64> {
    MEM.with(|m| m.borrow().keys().copied().collect())
}

fn byte(addr: u64) -> Option<u8> {
    MEM.with(|m| m.borrow().get(&addr).copied())
}

/// The driver over a model playing a part with `defects`, the driver
/// applying `workarounds`, the buffer followed by `guard` free bytes.
fn model(defects: Errata, workarounds: Errata, guard: u64) -> Ete<TraceModel> {
    MEM.with(|m| m.borrow_mut().clear());
    let mut m = TraceModel::new();
    m.set_writer(store);
    m.set_defects(defects);
    let mut e = Ete::new(m, 0x10);
    e.set_errata(workarounds);
    e.set_guard(guard);
    e
}

fn hvc(i: u64) -> GuestEvent {
    GuestEvent {
        kind: ExceptionType::Call,
        el: 1,
        address: 0x4420_0000 + 4 * i,
        timestamp: 100 + i,
        context_id: 0,
        vmid: 0,
    }
}

#[test]
fn erratum_2054223_every_tsb_is_doubled() {
    let mut e = recorder(a710());
    e.start(&el1(), BUF).unwrap();
    e.regs.take();
    e.stop().unwrap();
    let log = e.regs.take();
    let tsbs: Vec<usize> = (0..log.len()).filter(|&i| log[i] == TsbCsync).collect();
    assert_eq!(tsbs.len(), 4, "{log:?}");
    assert_eq!(tsbs[1], tsbs[0] + 1);
    assert_eq!(tsbs[3], tsbs[2] + 1);
    e.start(&el1(), BUF).unwrap();
    e.regs.take();
    e.drain();
    assert_eq!(e.regs.take(), vec![TsbCsync, TsbCsync, Dsb, Isb]);
    // An unaffected part: one each.
    let mut e = recorder(Errata::NONE);
    e.start(&el1(), BUF).unwrap();
    e.regs.take();
    e.drain();
    assert_eq!(e.regs.take(), vec![TsbCsync, Dsb, Isb]);
}

#[test]
fn erratum_2054223_a_single_tsb_leaves_the_pointer_stale_on_an_affected_part() {
    for (workaround, stale) in [(Errata::NONE, true), (a710(), false)] {
        let mut e = model(a710(), workaround, 4096);
        e.start(&el1(), BUF).unwrap();
        e.regs.event(&hvc(1));
        e.drain();
        let (ptr, _) = e.buffer_state();
        assert_eq!(ptr == e.capture_start(BUF, false), stale, "{workaround:?}");
        assert_eq!(e.regs.stale_pointer_reads() != 0, stale);
    }
}

#[test]
fn erratum_2064142_a_disable_is_followed_by_tsb_and_dsb() {
    let mut e = recorder(a510_r0p2());
    e.start(&el1(), BUF).unwrap();
    e.regs.take();
    e.stop().unwrap();
    let log = e.regs.take();
    let off = log
        .iter()
        .position(|a| *a == Write(Reg::TrbLimitR, 0))
        .unwrap();
    assert_eq!(log[off + 1..], [TsbCsync, Dsb, Isb]);
    e.start(&el1(), BUF).unwrap();
    let log = e.regs.take();
    let off = log
        .iter()
        .position(|a| *a == Write(Reg::TrbLimitR, 0))
        .unwrap();
    assert_eq!(log[off + 1..off + 3], [TsbCsync, Dsb]);
    assert!(matches!(log[off + 3], Write(Reg::TrbBaseR, _)));
}

#[test]
fn erratum_2064142_dropped_writes_keep_the_interrupt_asserted_without_the_workaround() {
    for (workaround, harmed) in [(Errata::NONE, true), (a510_r0p2(), false)] {
        let mut e = model(a510_r0p2(), workaround, 4096);
        e.start(&el1(), BUF).unwrap();
        e.regs.capture(0x2_0000); // fills: TRBSR.IRQ and S
        assert_ne!(e.regs.peek(Reg::TrbSR) & model::TRBSR_IRQ, 0);
        e.stop().unwrap();
        // Lower the interrupt, as `Backend::buffer_interrupt` does.
        let (_, sr) = e.buffer_state();
        e.write_status_stopped(sr & !model::TRBSR_IRQ);
        let irq = e.regs.peek(Reg::TrbSR) & model::TRBSR_IRQ != 0;
        assert_eq!(irq, harmed, "{workaround:?}: level-triggered IRQ stuck");
        // And a new capture starts where it must.
        e.start(&el1(), BUF).unwrap();
        assert_eq!(e.regs.peek(Reg::TrbPtr) != BASE, harmed);
        assert_eq!(e.regs.dropped_writes() != 0, harmed);
    }
}

#[test]
fn erratum_2038923_enable_gets_a_second_isb() {
    let mut e = recorder(a510_r0p2());
    e.start(&el1(), BUF).unwrap();
    let log = e.regs.take();
    let en = log
        .iter()
        .position(|a| matches!(a, Write(Reg::TrbLimitR, v) if v & 1 == 1))
        .unwrap();
    assert_eq!(log[en + 1..en + 3], [Isb, Isb]);
}

#[test]
fn erratum_2224489_the_overrun_lands_in_the_guard_page() {
    let cfg = TraceConfig {
        wrap: true,
        ..el1()
    };
    // With a guard page after the buffer, LIMIT stays at the end and the
    // stray 64 bytes land in the guard.
    let mut e = model(a710(), a710(), 4096);
    e.start(&cfg, BUF).unwrap();
    assert_eq!(e.regs.peek(Reg::TrbLimitR) & !0xfff, END);
    for i in 0..20_000 {
        e.regs.event(&hvc(i));
    }
    e.regs.tsb_csync();
    e.regs.tsb_csync();
    assert!(e.regs.overrun_bytes() >= OVERRUN_BYTES as u64);
    let past: Vec<u64> = written_addresses()
        .into_iter()
        .filter(|&a| a >= END)
        .collect();
    assert!(!past.is_empty());
    assert!(past.iter().all(|&a| a < END + 4096), "{past:x?}");

    // Without one, LIMIT is a page lower (as Linux does) and nothing is
    // written at or past the buffer's end.
    let mut e = model(a710(), a710(), 0);
    e.start(&cfg, BUF).unwrap();
    assert_eq!(e.regs.peek(Reg::TrbLimitR) & !0xfff, END - 4096);
    assert_eq!(
        e.capture_range(BUF, true),
        Range::new(BASE, 0x1_0000 - 4096)
    );
    for i in 0..20_000 {
        e.regs.event(&hvc(i));
    }
    assert!(e.regs.overrun_bytes() > 0);
    assert!(written_addresses().iter().all(|&a| a < END));

    // An unaffected part keeps LIMIT at the end with no guard.
    let mut e = model(Errata::NONE, Errata::NONE, 0);
    e.start(&cfg, BUF).unwrap();
    assert_eq!(e.regs.peek(Reg::TrbLimitR) & !0xfff, END);
}

#[test]
fn erratum_2119858_fill_mode_starts_past_what_a_fill_overwrites() {
    let n2 = Errata::for_midr(Midr::arm(NEOVERSE_N2, 0, 0));
    assert!(n2.has(Workaround::SkipBaseInFill));
    for (workaround, harmed) in [(Errata::NONE, true), (n2, false)] {
        let mut e = model(n2, workaround, 4096);
        e.start(&el1(), BUF).unwrap();
        let start = e.capture_range(BUF, false).base;
        assert_eq!(start, if harmed { BASE } else { BASE + FILL_SKIP });
        assert_eq!(e.regs.peek(Reg::TrbPtr), start);
        for i in 0..20_000 {
            e.regs.event(&hvc(i));
        }
        e.drain();
        assert_ne!(e.regs.peek(Reg::TrbSR) & model::TRBSR_S, 0, "filled");
        // The capture begins with an A-Sync (11 zero bytes, then 0x80)
        // unless the FILL overwrote it.
        let head: Vec<Option<u8>> = (start..start + 12).map(byte).collect();
        let mut sync = vec![Some(0u8); 11];
        sync.push(Some(0x80));
        assert_eq!(head != sync, harmed, "{head:x?}");
        assert_eq!(byte(start) == Some(DEFECT_BYTE), harmed);
    }
    // Circular mode has no FILL: it keeps the whole buffer.
    let e = model(n2, n2, 4096);
    assert_eq!(e.capture_range(BUF, true), BUF);
}

#[test]
fn trace_os_lock_is_opened_and_synchronized() {
    let mut r = Recorder::new();
    open_os_lock(&mut r);
    assert_eq!(r.log, vec![Write(Reg::OslarEl1, 0), Isb]);
    let mut m = TraceModel::new();
    assert!(m.os_locked());
    open_os_lock(&mut m);
    assert!(!m.os_locked());
}

#[test]
fn trace_workarounds_keep_the_model_clean_in_every_sequence() {
    for errata in [
        a710(),
        a510_r0p2(),
        Errata::for_midr(Midr::arm(NEOVERSE_N2, 0, 0)),
    ] {
        for wrap in [false, true] {
            let cfg = TraceConfig { wrap, ..el1() };
            let mut e = model(errata, errata, 4096);
            e.start(&cfg, BUF).unwrap();
            for i in 0..3000 {
                e.regs.event(&hvc(i));
            }
            e.drain();
            e.buffer_state();
            let saved = e.save();
            e.regs.power_loss();
            e.restore(&cfg, BUF, &saved).unwrap();
            e.stop().unwrap();
            let m = &e.regs;
            assert_eq!(
                (m.violations(), m.dropped_writes(), m.stale_pointer_reads()),
                (0, 0, 0),
                "{errata:?} wrap {wrap}: {:?}",
                m.last_violation()
            );
        }
    }
}

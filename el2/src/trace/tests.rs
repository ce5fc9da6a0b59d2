//! Host tests of the driver: the exact access order of every sequence
//! (hand-written from the Arm ARM's sequences summed up at the top of
//! `ete.rs`, not generated from the code), order properties over every
//! configuration, the driver against the model (including a simulated power
//! loss), and the access counts.

use std::vec::Vec;

use guest_api::trace::TraceConfig;

use super::*;
use crate::platform::Range;
use Access::{Dsb, Isb, Read, TsbCsync, Write};

const ID: u8 = 0x10;
const BASE: u64 = 0x4800_0000;
const BUF: Range = Range::new(BASE, 0x10_0000);
/// LIMIT = end | TM ignore (0b11 << 3) | FM fill (0) | E.
const LIMITR: u64 = 0x4810_0000 | 0x18 | 1;
/// EVENT = resource 1 (TRUE), SSSTATUS, Secure EL0/EL1/EL3 of the model
/// unit (TRCIDR3.EXLEVEL_S = 0b1011) and NS EL2 excluded.
const VICTLR_BOTH: u64 = 0x01 | 0x200 | 0x000b_0000 | 0x0040_0000;

const CAPS_READS: [Access; 6] = [
    Read(Reg::TrcIdR(0)),
    Read(Reg::TrcIdR(2)),
    Read(Reg::TrcIdR(3)),
    Read(Reg::TrcIdR(4)),
    Read(Reg::TrcIdR(5)),
    Read(Reg::TrbIdR),
];

fn cfg(el0: bool, el1: bool) -> TraceConfig {
    TraceConfig {
        el0,
        el1,
        ..TraceConfig::default()
    }
}

fn ete() -> Ete<Recorder> {
    Ete::new(Recorder::new(), ID)
}

/// A driver that has already read its ID registers, with an empty log.
fn probed() -> Ete<Recorder> {
    let mut e = ete();
    e.caps();
    e.regs.take();
    e
}

fn stop_sequence() -> Vec<Access> {
    vec![
        Write(Reg::TrfcrEl1, 0x20),
        Dsb,
        Isb,
        TsbCsync,
        Write(Reg::TrcPrgCtlr, 0),
        Isb,
        Read(Reg::TrcStatR),
        TsbCsync,
        Dsb,
        Write(Reg::TrbLimitR, 0),
        Isb,
    ]
}

#[test]
fn trace_start_exact_order_el0_el1_timestamps_first_use() {
    let mut e = ete();
    let c = TraceConfig {
        timestamps: true,
        ..cfg(true, true)
    };
    assert_eq!(e.start(&c, BUF), Ok(()));
    let mut want = CAPS_READS.to_vec();
    want.extend([
        Write(Reg::OslarEl1, 0),
        Isb,
        Read(Reg::TrcOsLsR),
        Write(Reg::TrcPrgCtlr, 0),
        Isb,
        Read(Reg::TrcStatR),
        Write(Reg::TrcConfigR, 0x801),
        Write(Reg::TrcAuxCtlR, 0),
        Write(Reg::TrcTraceIdR, 0x10),
        Write(Reg::TrcEventCtl0R, 0),
        Write(Reg::TrcEventCtl1R, 0),
        Write(Reg::TrcStallCtlR, 0),
        Write(Reg::TrcTsCtlR, 0),
        Write(Reg::TrcSyncPR, 8),
        Write(Reg::TrcViCtlR, VICTLR_BOTH),
        Write(Reg::TrcViIeCtlR, 0),
        Write(Reg::TrcViSsCtlR, 0),
        Write(Reg::TrcRsR, 0),
        Write(Reg::TrbLimitR, 0),
        Write(Reg::TrbBaseR, BASE),
        Write(Reg::TrbPtr, BASE),
        Write(Reg::TrbSR, 0),
        Isb,
        Write(Reg::TrbLimitR, LIMITR),
        Write(Reg::TrfcrEl1, 0x23),
        Write(Reg::TrfcrEl2, 0),
        Isb,
        Write(Reg::TrcPrgCtlr, 1),
        Isb,
        Read(Reg::TrcStatR),
    ]);
    assert_eq!(e.regs.log, want);
    assert!(e.is_running());
    // The ID registers are not read again.
    e.stop().unwrap();
    e.regs.take();
    e.start(&c, BUF).unwrap();
    assert!(!e.regs.log.contains(&Read(Reg::TrcIdR(0))));
}

#[test]
fn trace_start_exact_order_el1_filter_cycles_context_id() {
    let mut e = probed();
    let c = TraceConfig {
        cycles: true,
        context_id: true,
        filter: Some((0x4020_0000, 0x4030_0000)),
        ..cfg(false, true)
    };
    assert_eq!(e.start(&c, BUF), Ok(()));
    let want = vec![
        Write(Reg::OslarEl1, 0),
        Isb,
        Read(Reg::TrcOsLsR),
        Write(Reg::TrcPrgCtlr, 0),
        Isb,
        Read(Reg::TrcStatR),
        Write(Reg::TrcConfigR, 0x51),
        Write(Reg::TrcAuxCtlR, 0),
        Write(Reg::TrcTraceIdR, 0x10),
        Write(Reg::TrcEventCtl0R, 0),
        Write(Reg::TrcEventCtl1R, 0),
        Write(Reg::TrcStallCtlR, 0),
        Write(Reg::TrcTsCtlR, 0),
        Write(Reg::TrcSyncPR, 8),
        Write(Reg::TrcCcCtlR, 0x100),
        Write(Reg::TrcViCtlR, VICTLR_BOTH | 0x0010_0000),
        Write(Reg::TrcViIeCtlR, 1),
        Write(Reg::TrcViSsCtlR, 0),
        Write(Reg::TrcAcVR(0), 0x4020_0000),
        Write(Reg::TrcAcVR(1), 0x402f_ffff),
        Write(Reg::TrcAcAtR(0), 0),
        Write(Reg::TrcAcAtR(1), 0),
        Write(Reg::TrcRsR, 0),
        Write(Reg::TrbLimitR, 0),
        Write(Reg::TrbBaseR, BASE),
        Write(Reg::TrbPtr, BASE),
        Write(Reg::TrbSR, 0),
        Isb,
        Write(Reg::TrbLimitR, LIMITR),
        Write(Reg::TrfcrEl1, 0x22),
        Write(Reg::TrfcrEl2, 0),
        Isb,
        Write(Reg::TrcPrgCtlr, 1),
        Isb,
        Read(Reg::TrcStatR),
    ];
    assert_eq!(e.regs.log, want);
}

#[test]
fn trace_start_exact_order_el0_only_plain() {
    let mut e = probed();
    e.start(&cfg(true, false), BUF).unwrap();
    let want = vec![
        Write(Reg::OslarEl1, 0),
        Isb,
        Read(Reg::TrcOsLsR),
        Write(Reg::TrcPrgCtlr, 0),
        Isb,
        Read(Reg::TrcStatR),
        Write(Reg::TrcConfigR, 0x1),
        Write(Reg::TrcAuxCtlR, 0),
        Write(Reg::TrcTraceIdR, 0x10),
        Write(Reg::TrcEventCtl0R, 0),
        Write(Reg::TrcEventCtl1R, 0),
        Write(Reg::TrcStallCtlR, 0),
        Write(Reg::TrcTsCtlR, 0),
        Write(Reg::TrcSyncPR, 8),
        Write(Reg::TrcViCtlR, VICTLR_BOTH | 0x0020_0000),
        Write(Reg::TrcViIeCtlR, 0),
        Write(Reg::TrcViSsCtlR, 0),
        Write(Reg::TrcRsR, 0),
        Write(Reg::TrbLimitR, 0),
        Write(Reg::TrbBaseR, BASE),
        Write(Reg::TrbPtr, BASE),
        Write(Reg::TrbSR, 0),
        Isb,
        Write(Reg::TrbLimitR, LIMITR),
        Write(Reg::TrfcrEl1, 0x21),
        Write(Reg::TrfcrEl2, 0),
        Isb,
        Write(Reg::TrcPrgCtlr, 1),
        Isb,
        Read(Reg::TrcStatR),
    ];
    assert_eq!(e.regs.log, want);
}

#[test]
fn trace_stop_exact_order() {
    let mut e = probed();
    e.start(&cfg(true, true), BUF).unwrap();
    e.regs.take();
    assert_eq!(e.stop(), Ok(()));
    assert_eq!(e.regs.log, stop_sequence());
    assert!(!e.is_running());
    // Stopping again is fine and does the same.
    e.regs.take();
    assert_eq!(e.stop(), Ok(()));
    assert_eq!(e.regs.log, stop_sequence());
}

#[test]
fn trace_save_exact_order() {
    let mut e = probed();
    e.start(&cfg(true, true), BUF).unwrap();
    e.regs.take();
    e.regs.set(Reg::TrbPtr, BASE + 0x1240);
    e.regs.set(Reg::TrbSR, 0x4_0000);
    let saved = e.save();
    let mut want = stop_sequence();
    want.extend([Read(Reg::TrbPtr), Read(Reg::TrbSR)]);
    assert_eq!(e.regs.log, want);
    assert_eq!(
        saved,
        SavedState {
            trbptr: BASE + 0x1240,
            trbsr: 0x4_0000,
            was_tracing: true
        }
    );
}

#[test]
fn trace_save_and_restore_of_a_stopped_unit_touch_nothing() {
    let mut e = probed();
    let saved = e.save();
    assert_eq!(saved, SavedState::default());
    assert_eq!(e.restore(&cfg(true, true), BUF, &saved), Ok(()));
    assert!(e.regs.log.is_empty());
}

#[test]
fn trace_restore_exact_order_resumes_the_buffer() {
    let mut e = probed();
    let c = TraceConfig {
        timestamps: true,
        ..cfg(true, true)
    };
    e.start(&c, BUF).unwrap();
    e.save();
    e.regs.take();
    let saved = SavedState {
        trbptr: BASE + 0x1240,
        trbsr: 0x2_0000,
        was_tracing: true,
    };
    assert_eq!(e.restore(&c, BUF, &saved), Ok(()));
    let want = vec![
        Write(Reg::OslarEl1, 0),
        Isb,
        Read(Reg::TrcOsLsR),
        Write(Reg::TrcPrgCtlr, 0),
        Isb,
        Read(Reg::TrcStatR),
        Write(Reg::TrcConfigR, 0x801),
        Write(Reg::TrcAuxCtlR, 0),
        Write(Reg::TrcTraceIdR, 0x10),
        Write(Reg::TrcEventCtl0R, 0),
        Write(Reg::TrcEventCtl1R, 0),
        Write(Reg::TrcStallCtlR, 0),
        Write(Reg::TrcTsCtlR, 0),
        Write(Reg::TrcSyncPR, 8),
        Write(Reg::TrcViCtlR, VICTLR_BOTH),
        Write(Reg::TrcViIeCtlR, 0),
        Write(Reg::TrcViSsCtlR, 0),
        Write(Reg::TrcRsR, 0),
        Write(Reg::TrbLimitR, 0),
        Write(Reg::TrbBaseR, BASE),
        Write(Reg::TrbPtr, BASE + 0x1240),
        Write(Reg::TrbSR, 0x2_0000),
        Isb,
        Write(Reg::TrbLimitR, LIMITR),
        Write(Reg::TrfcrEl1, 0x23),
        Write(Reg::TrfcrEl2, 0),
        Isb,
        Write(Reg::TrcPrgCtlr, 1),
        Isb,
        Read(Reg::TrcStatR),
    ];
    assert_eq!(e.regs.log, want);
}

#[test]
fn trace_start_on_a_running_unit_stops_it_first() {
    let mut e = probed();
    e.start(&cfg(true, true), BUF).unwrap();
    e.regs.take();
    e.start(&cfg(false, true), BUF).unwrap();
    assert_eq!(e.regs.log[..11], stop_sequence()[..]);
    assert_eq!(e.regs.log[11], Write(Reg::OslarEl1, 0));
}

#[test]
fn trace_hardware_reads_both_enables() {
    let mut e = probed();
    assert_eq!(e.hardware(), HwState::Stopped);
    assert_eq!(
        e.regs.log,
        vec![Read(Reg::TrcPrgCtlr), Read(Reg::TrbLimitR)]
    );
    e.start(&cfg(true, true), BUF).unwrap();
    assert_eq!(e.hardware(), HwState::Tracing);
    e.regs.set(Reg::TrbLimitR, 0);
    assert_eq!(e.hardware(), HwState::Inconsistent);
    e.regs.set(Reg::TrbLimitR, LIMITR);
    e.regs.set(Reg::TrcPrgCtlr, 0);
    assert_eq!(e.hardware(), HwState::Inconsistent);
}

// ---- order properties over every configuration ----

fn every_config() -> Vec<TraceConfig> {
    let mut v = Vec::new();
    for bits in 0..64u32 {
        v.push(TraceConfig {
            el0: bits & 1 != 0,
            el1: bits & 2 != 0,
            timestamps: bits & 4 != 0,
            cycles: bits & 8 != 0,
            context_id: bits & 16 != 0,
            filter: if bits & 32 != 0 {
                Some((0x4000_0000, 0x4000_2002))
            } else {
                None
            },
            wrap: false,
        });
    }
    v
}

fn position(log: &[Access], f: impl Fn(&Access) -> bool) -> Option<usize> {
    log.iter().position(f)
}

fn rposition(log: &[Access], f: impl Fn(&Access) -> bool) -> Option<usize> {
    log.iter().rposition(f)
}

fn is_config_write(a: &Access) -> bool {
    matches!(a, Write(r, _) if r.is_programming() || r.is_trbe() || matches!(r, Reg::TrfcrEl1 | Reg::TrfcrEl2))
}

/// The rules of a start or restore log.
fn check_enable_order(log: &[Access]) {
    let en = rposition(log, |a| *a == Write(Reg::TrcPrgCtlr, 1)).expect("unit enabled");
    assert!(
        log[en + 1..].iter().all(|a| !is_config_write(a)),
        "programming after TRCPRGCTLR=1: {log:?}"
    );
    let trbe_on = position(log, |a| matches!(a, Write(Reg::TrbLimitR, v) if v & 1 == 1))
        .expect("TRBE enabled");
    assert!(trbe_on < en, "TRBE must be enabled before the unit");
    assert_eq!(log[en - 1], Isb, "ISB before TRCPRGCTLR=1");
    assert_eq!(log[en + 1], Isb, "ISB after TRCPRGCTLR=1");
    // Programming happens only once the unit is disabled, synchronized and idle.
    let first = position(log, |a| matches!(a, Write(r, _) if r.is_programming())).unwrap();
    let off = rposition(&log[..first], |a| *a == Write(Reg::TrcPrgCtlr, 0))
        .expect("disabled before programming");
    assert_eq!(&log[off + 1..off + 3], &[Isb, Read(Reg::TrcStatR)]);
    let unlock = position(log, |a| *a == Write(Reg::OslarEl1, 0)).expect("OS lock opened");
    assert!(unlock < off);
    // TRBE's base and pointer are written while it is disabled.
    let base = position(log, |a| matches!(a, Write(Reg::TrbBaseR, _))).unwrap();
    let off_trbe = position(log, |a| *a == Write(Reg::TrbLimitR, 0)).unwrap();
    assert!(off_trbe < base && base < trbe_on);
    // EL2 is never traced.
    assert!(log.contains(&Write(Reg::TrfcrEl2, 0)));
    assert!(log
        .iter()
        .all(|a| !matches!(a, Write(Reg::TrcViCtlR, v) if v & (1 << 22) == 0)));
}

/// The rules of a stop log.
fn check_disable_order(log: &[Access]) {
    let off = position(log, |a| *a == Write(Reg::TrcPrgCtlr, 0)).expect("unit disabled");
    let prohibit = position(
        log,
        |a| matches!(a, Write(Reg::TrfcrEl1, v) if v & 0b11 == 0),
    )
    .expect("trace prohibited");
    assert!(prohibit < off, "TRFCR must be cleared before TRCPRGCTLR=0");
    assert!(log[prohibit..off].contains(&TsbCsync));
    let trbe_off = position(log, |a| matches!(a, Write(Reg::TrbLimitR, v) if v & 1 == 0))
        .expect("TRBE disabled");
    assert!(off < trbe_off);
    let tsb = rposition(&log[..trbe_off], |a| *a == TsbCsync).unwrap();
    assert!(
        tsb > off,
        "TSB CSYNC after the unit stopped, before TRBLIMITR.E=0"
    );
    assert!(log[tsb..trbe_off].contains(&Dsb), "DSB completes the drain");
    assert_eq!(log[trbe_off + 1], Isb);
}

#[test]
fn trace_order_properties_hold_for_every_configuration() {
    for c in every_config() {
        let mut e = ete();
        e.start(&c, BUF).unwrap();
        check_enable_order(&e.regs.take());
        e.stop().unwrap();
        check_disable_order(&e.regs.take());
        e.start(&c, BUF).unwrap();
        e.regs.take();
        let saved = e.save();
        check_disable_order(&e.regs.take());
        e.restore(&c, BUF, &saved).unwrap();
        check_enable_order(&e.regs.take());
    }
}

#[test]
fn trace_order_checks_can_fail() {
    // A log with the buffer enabled after the unit breaks the rule.
    let mut e = probed();
    e.start(&cfg(true, true), BUF).unwrap();
    let mut log = e.regs.take();
    let trbe_on = log
        .iter()
        .position(|a| *a == Write(Reg::TrbLimitR, LIMITR))
        .unwrap();
    let a = log.remove(trbe_on);
    log.insert(log.len() - 1, a);
    assert!(std::panic::catch_unwind(|| check_enable_order(&log)).is_err());
}

// ---- failures ----

#[test]
fn trace_start_times_out_before_programming_anything() {
    let mut e = probed();
    e.regs.stuck_idle = Some(false);
    assert_eq!(
        e.start(&cfg(true, true), BUF),
        Err(TraceError::Timeout(Reg::TrcStatR))
    );
    let reads = e
        .regs
        .log
        .iter()
        .filter(|a| **a == Read(Reg::TrcStatR))
        .count();
    assert_eq!(reads, 102, "100 us at 1 MHz, one count per counter read");
    assert!(e
        .regs
        .log
        .iter()
        .all(|a| !matches!(a, Write(r, _) if r.is_programming() || r.is_trbe())));
    assert!(!e.is_running());
}

#[test]
fn trace_start_that_never_leaves_idle_is_stopped_again() {
    let mut e = probed();
    e.regs.stuck_idle = Some(true);
    assert_eq!(
        e.start(&cfg(true, true), BUF),
        Err(TraceError::Timeout(Reg::TrcStatR))
    );
    let log = e.regs.take();
    assert_eq!(log[log.len() - 11..], stop_sequence()[..]);
    assert!(!e.is_running());
}

#[test]
fn trace_stop_that_times_out_still_stops_the_buffer() {
    let mut e = probed();
    e.start(&cfg(true, true), BUF).unwrap();
    e.regs.stuck_idle = Some(false);
    e.regs.take();
    assert_eq!(e.stop(), Err(TraceError::Timeout(Reg::TrcStatR)));
    let log = e.regs.take();
    assert_eq!(
        &log[log.len() - 4..],
        &[TsbCsync, Dsb, Write(Reg::TrbLimitR, 0), Isb]
    );
}

#[test]
fn trace_start_reports_a_lock_that_stays_locked() {
    let mut e = probed();
    e.regs.stuck_os_lock = true;
    assert_eq!(e.start(&cfg(true, true), BUF), Err(TraceError::OsLocked));
    assert_eq!(
        e.regs.log,
        vec![Write(Reg::OslarEl1, 0), Isb, Read(Reg::TrcOsLsR)]
    );
}

#[test]
fn trace_invalid_requests_touch_no_register() {
    let bad_buffers = [
        Range::new(BASE + 0x10, 0x1000),
        Range::new(BASE, 0x1800),
        Range::new(BASE, 0),
        Range::new(0xffff_ffff_ffff_f000, 0x2000),
    ];
    for b in bad_buffers {
        let mut e = probed();
        assert_eq!(
            e.start(&cfg(true, true), b),
            Err(TraceError::BadBuffer),
            "{b:?}"
        );
        assert!(e.regs.log.is_empty());
    }
    let mut e = probed();
    let outside = SavedState {
        trbptr: BASE - 0x40,
        trbsr: 0,
        was_tracing: true,
    };
    assert_eq!(
        e.restore(&cfg(true, true), BUF, &outside),
        Err(TraceError::BadBuffer)
    );
    let empty_filter = TraceConfig {
        filter: Some((0x5000, 0x5000)),
        ..cfg(true, true)
    };
    assert_eq!(e.start(&empty_filter, BUF), Err(TraceError::BadFilter));
    assert!(e.regs.log.is_empty());
    for id in [0u8, 0x70, 0x7f, 0x80] {
        let mut e = Ete::new(Recorder::new(), id);
        assert_eq!(e.start(&cfg(true, true), BUF), Err(TraceError::BadTraceId));
        assert!(e.regs.log.is_empty());
    }
}

#[test]
fn trace_unsupported_features_are_refused_after_reading_only_ids() {
    let cases: [(Reg, u64, TraceConfig, Feature); 4] = [
        (
            Reg::TrcIdR(0),
            1,
            TraceConfig {
                cycles: true,
                ..cfg(true, true)
            },
            Feature::CycleCounting,
        ),
        (
            Reg::TrcIdR(0),
            1 | (1 << 7),
            TraceConfig {
                timestamps: true,
                ..cfg(true, true)
            },
            Feature::Timestamps,
        ),
        (
            Reg::TrcIdR(2),
            0,
            TraceConfig {
                context_id: true,
                ..cfg(true, true)
            },
            Feature::ContextId,
        ),
        (
            Reg::TrcIdR(4),
            0,
            TraceConfig {
                filter: Some((0x1000, 0x2000)),
                ..cfg(true, true)
            },
            Feature::AddressFilter,
        ),
    ];
    for (reg, value, c, feature) in cases {
        let mut e = ete();
        e.regs.set(reg, value);
        assert_eq!(e.start(&c, BUF), Err(TraceError::Unsupported(feature)));
        assert_eq!(e.regs.log, CAPS_READS.to_vec());
    }
    let mut e = ete();
    e.regs.set(Reg::TrbIdR, 0x16);
    assert_eq!(
        e.start(&cfg(true, true), BUF),
        Err(TraceError::NotProgrammable)
    );
    assert_eq!(e.regs.log, CAPS_READS.to_vec());
}

#[test]
fn trace_registers_a_unit_lacks_are_never_touched() {
    // No stall control, no resources, no comparators, fixed sync period,
    // no timestamps: TRCSTALLCTLR, TRCEVENTCTL0R, TRCVIIECTLR, TRCVISSCTLR,
    // TRCSYNCPR and TRCTSCTLR would be UNDEFINED or read-only.
    let mut e = ete();
    e.regs.set(Reg::TrcIdR(0), 1 | (1 << 7));
    e.regs.set(Reg::TrcIdR(3), (1 << 25) | 4);
    e.regs.set(Reg::TrcIdR(4), 0);
    e.start(&cfg(true, true), BUF).unwrap();
    for r in [
        Reg::TrcStallCtlR,
        Reg::TrcEventCtl0R,
        Reg::TrcViIeCtlR,
        Reg::TrcViSsCtlR,
        Reg::TrcSyncPR,
        Reg::TrcTsCtlR,
    ] {
        assert!(
            e.regs
                .log
                .iter()
                .all(|a| !matches!(a, Write(w, _) if *w == r)),
            "{r:?}"
        );
    }
    // And no Secure level is implemented, so none is excluded.
    assert!(e
        .regs
        .log
        .contains(&Write(Reg::TrcViCtlR, 0x01 | 0x200 | 0x0040_0000)));
}

// ---- the driver against the model ----

fn model_ete() -> Ete<TraceModel> {
    Ete::new(TraceModel::new(), ID)
}

fn written_set(m: &TraceModel) -> Vec<Reg> {
    Reg::ALL.iter().copied().filter(|r| m.written(*r)).collect()
}

/// Registers whose value or written-ness differs between a unit right after
/// `start` and one after `restore`, TRBPTR and TRBSR compared against
/// `saved` instead.
fn restore_mismatches(
    started: &[u64; Reg::COUNT],
    started_written: &[Reg],
    restored: &TraceModel,
    saved: &SavedState,
) -> Vec<Reg> {
    let mut bad = Vec::new();
    for r in Reg::ALL {
        let want_written = started_written.contains(&r);
        let want = match r {
            Reg::TrbPtr => saved.trbptr,
            Reg::TrbSR => saved.trbsr,
            _ => started[r.index()],
        };
        if want_written != restored.written(r) || (want_written && restored.peek(r) != want) {
            bad.push(r);
        }
    }
    bad
}

#[test]
fn trace_model_sees_no_violation_in_any_sequence() {
    for c in every_config() {
        let mut e = model_ete();
        e.start(&c, BUF).unwrap();
        // TRFCR allows trace only at the levels asked for.
        assert_eq!(e.regs.tracing(), c.el0 || c.el1);
        e.regs.capture(0x1000);
        e.stop().unwrap();
        assert!(!e.regs.tracing());
        e.start(&c, BUF).unwrap();
        e.start(&c, BUF).unwrap(); // reconfigure while running
        let saved = e.save();
        e.regs.power_loss();
        e.restore(&c, BUF, &saved).unwrap();
        assert_eq!(e.hardware(), HwState::Tracing);
        e.stop().unwrap();
        assert_eq!(e.hardware(), HwState::Stopped);
        assert_eq!(
            e.regs.violations(),
            0,
            "{c:?}: {:?}",
            e.regs.last_violation()
        );
    }
}

#[test]
fn trace_power_loss_and_restore_rebuild_exactly_what_start_wrote() {
    for c in every_config() {
        let mut e = model_ete();
        e.start(&c, BUF).unwrap();
        let started = e.regs.snapshot();
        let started_written = written_set(&e.regs);
        e.regs.capture(0x3000);
        let captured = if c.el0 || c.el1 { 0x3000 } else { 0 };
        let saved = e.save();
        // Two TSB CSYNCs of the stop sequence each flushed the unit.
        assert_eq!(saved.trbptr, BASE + captured + START_BYTES);
        e.regs.power_loss();
        assert_eq!(e.hardware(), HwState::Stopped);
        e.restore(&c, BUF, &saved).unwrap();
        assert_eq!(e.hardware(), HwState::Tracing);
        assert_eq!(e.regs.tracing(), c.el0 || c.el1);
        assert_eq!(
            restore_mismatches(&started, &started_written, &e.regs, &saved),
            Vec::<Reg>::new(),
            "{c:?}"
        );
        assert_eq!(e.regs.peek(Reg::TrbPtr), BASE + captured + START_BYTES);
        assert_eq!(e.regs.violations(), 0);
        // Trace goes on from where it was.
        e.regs.capture(0x100);
        let more = if c.el0 || c.el1 { 0x100 } else { 0 };
        assert_eq!(e.regs.peek(Reg::TrbPtr), saved.trbptr + more);
    }
}

#[test]
fn trace_abandoned_power_down_takes_the_same_path() {
    let c = TraceConfig {
        timestamps: true,
        filter: Some((0x4000_0000, 0x4001_0000)),
        ..cfg(true, true)
    };
    let mut e = model_ete();
    e.start(&c, BUF).unwrap();
    let started = e.regs.snapshot();
    let started_written = written_set(&e.regs);
    let saved = e.save();
    // Firmware returned: no power loss.
    e.restore(&c, BUF, &saved).unwrap();
    assert_eq!(
        restore_mismatches(&started, &started_written, &e.regs, &saved),
        Vec::<Reg>::new()
    );
    assert_eq!(e.regs.violations(), 0);
}

#[test]
fn trace_full_buffer_survives_power_loss_stopped() {
    let mut e = model_ete();
    e.start(&cfg(true, true), BUF).unwrap();
    e.regs.capture(0x20_0000);
    let saved = e.save();
    assert_eq!(saved.trbptr, BASE + 0x10_0000);
    assert_ne!(saved.trbsr & (1 << 17), 0, "TRBSR.S");
    e.regs.power_loss();
    e.restore(&cfg(true, true), BUF, &saved).unwrap();
    assert_eq!(e.regs.peek(Reg::TrbSR), saved.trbsr);
    // The hardware never sees a pointer equal to LIMIT (out of range): the
    // stopped buffer is parked at BASE, and the driver reports where it
    // really stands.
    assert_eq!(e.regs.peek(Reg::TrbPtr), BASE);
    e.regs.capture(0x40);
    assert_eq!(
        e.regs.peek(Reg::TrbPtr),
        BASE,
        "a stopped buffer takes nothing"
    );
    assert_eq!(e.buffer_state().0, BASE + 0x10_0000);
    assert_eq!(e.save().trbptr, BASE + 0x10_0000);
    assert_eq!(e.regs.violations(), 0);
}

/// Drops every write to one register: a restore with a hole in it.
struct Lossy<'a> {
    inner: &'a mut TraceModel,
    drop: Reg,
}

impl SysRegs for Lossy<'_> {
    fn read(&mut self, r: Reg) -> u64 {
        self.inner.read(r)
    }
    fn write(&mut self, r: Reg, v: u64) {
        if r != self.drop {
            self.inner.write(r, v)
        }
    }
    fn isb(&mut self) {
        self.inner.isb()
    }
    fn dsb(&mut self) {
        self.inner.dsb()
    }
    fn tsb_csync(&mut self) {
        self.inner.tsb_csync()
    }
    fn counter(&mut self) -> u64 {
        self.inner.counter()
    }
    fn counter_freq(&mut self) -> u64 {
        self.inner.counter_freq()
    }
}

#[test]
fn trace_a_restore_that_misses_a_register_is_caught() {
    let c = TraceConfig {
        filter: Some((0x4000_0000, 0x4001_0000)),
        ..cfg(true, true)
    };
    for missed in [
        Reg::TrcViCtlR,
        Reg::TrcAcVR(1),
        Reg::TrcTraceIdR,
        Reg::TrfcrEl2,
    ] {
        let mut e = model_ete();
        e.start(&c, BUF).unwrap();
        let started = e.regs.snapshot();
        let started_written = written_set(&e.regs);
        let saved = e.save();
        e.regs.power_loss();
        let mut lossy = Ete::new(
            Lossy {
                inner: &mut e.regs,
                drop: missed,
            },
            ID,
        );
        lossy.restore(&c, BUF, &saved).unwrap();
        assert_eq!(
            restore_mismatches(&started, &started_written, &e.regs, &saved),
            vec![missed]
        );
    }
}

#[test]
fn trace_full_readback_path_is_clean_on_the_model() {
    let c = readback::COMPARISON_CONFIG;
    let mut e = model_ete();
    e.start(&c, BUF).unwrap();
    let n = e.save_full_readback();
    assert!(n > 60, "{n}");
    let saved = SavedState {
        trbptr: e.regs.peek(Reg::TrbPtr),
        trbsr: e.regs.peek(Reg::TrbSR),
        was_tracing: true,
    };
    e.regs.power_loss();
    e.restore_full_writeback(&c, BUF, &saved).unwrap();
    assert!(e.regs.tracing());
    assert_eq!(e.regs.violations(), 0, "{:?}", e.regs.last_violation());
}

#[test]
fn trace_access_counts_ours_against_full_readback() {
    let (ours, full) = access_counts();
    println!("trace save+restore sysreg accesses: ours {ours}, full readback {full}");
    assert!(ours < full);
    // Ours: save = 6 (TRFCR, TRCPRGCTLR, TRCSTATR, TRBLIMITR, TRBPTR, TRBSR);
    // restore = 4 (OS lock, its status, disable, wait) + 17 unit writes for
    // the everything-on config (TRCAUXCTLR included) + 5 buffer + 2 TRFCR +
    // 2 (enable, wait).
    assert_eq!(ours, 6 + 4 + 17 + 5 + 2 + 2);
    // Full: the same quiesce (4), 83 unit registers of the model unit
    // (14 control, 5 sequencer, 4 external input selectors, 6 counter,
    // 14 resource selector, 2 single-shot, 32 address comparator, 4
    // context comparator, TRCRSR, claim tags), 7 buffer/TRFCR reads; the
    // restore opens the unit (4), writes the 81 writable ones back, TRBMAR
    // and TRBTRG, the buffer (5) and enables (4).
    assert_eq!(full, (4 + 83 + 7) + (4 + 81 + 2 + 5 + 4));
}

// ---- issue 14: the sequences read against the Arm ARM ----

/// Every pair of consecutive TRCSTATR reads in `log` has an ISB between.
fn isb_between_status_reads(log: &[Access]) -> bool {
    let mut last_read: Option<usize> = None;
    for (i, a) in log.iter().enumerate() {
        if *a == Read(Reg::TrcStatR) {
            if let Some(j) = last_read {
                if !log[j..i].contains(&Isb) {
                    return false;
                }
            }
            last_read = Some(i);
        }
    }
    true
}

#[test]
fn trace_wait_synchronizes_between_status_reads() {
    // A unit whose TRCSTATR shows a change only after a further context
    // synchronization event: reads back to back never see it.
    let mut e = probed();
    e.regs.stale_until_second_isb = true;
    assert_eq!(e.start(&cfg(true, true), BUF), Ok(()));
    assert!(isb_between_status_reads(&e.regs.log), "{:?}", e.regs.log);
    assert_eq!(e.stop(), Ok(()));
    assert!(isb_between_status_reads(&e.regs.log));
}

#[test]
fn trace_wait_is_bounded_in_time_not_in_reads() {
    let reads = |freq: u64, tick: u64| {
        let mut e = probed();
        e.regs.stuck_idle = Some(false);
        e.regs.freq = freq;
        e.regs.tick = tick;
        assert_eq!(
            e.start(&cfg(true, true), BUF),
            Err(TraceError::Timeout(Reg::TrcStatR))
        );
        assert!(isb_between_status_reads(&e.regs.log));
        e.regs
            .log
            .iter()
            .filter(|a| **a == Read(Reg::TrcStatR))
            .count()
    };
    // 100 us: 100 counts at 1 MHz, 10,000 at 100 MHz; a counter that moves
    // 50 counts per read gives up after four reads.
    assert_eq!(reads(1_000_000, 1), 102);
    assert_eq!(reads(100_000_000, 1), 10_002);
    assert_eq!(reads(1_000_000, 50), 4);
    // A counter that never moves still ends the wait.
    assert_eq!(reads(1_000_000, 0), POLL_BACKSTOP + 1);
    // CNTFRQ_EL0 = 0 is taken as 1 GHz: a long wait, never a short one.
    assert_eq!(reads(0, 1000), 102);
}

#[test]
fn trace_drain_synchronizes_before_the_pointer_is_read() {
    let mut e = probed();
    e.start(&cfg(true, true), BUF).unwrap();
    e.regs.take();
    e.drain();
    e.buffer_state();
    assert_eq!(
        e.regs.log,
        vec![TsbCsync, Dsb, Isb, Read(Reg::TrbPtr), Read(Reg::TrbSR)]
    );
}

#[test]
fn trace_program_zeroes_auxctlr_and_the_pe_comparator_start_stop() {
    for numpc in [0u64, 2] {
        let mut e = ete();
        let idr4 = e.regs.values[Reg::TrcIdR(4).index()];
        e.regs
            .set(Reg::TrcIdR(4), (idr4 & !(0xf << 12)) | (numpc << 12));
        e.start(&cfg(true, true), BUF).unwrap();
        assert!(e.regs.log.contains(&Write(Reg::TrcAuxCtlR, 0)));
        assert_eq!(
            e.regs.log.contains(&Write(Reg::TrcViPcSsCtlR, 0)),
            numpc != 0,
            "NUMPC {numpc}"
        );
    }
}

#[test]
fn trace_a_pointer_at_limit_is_out_of_range() {
    let mut e = probed();
    e.start(&cfg(true, true), BUF).unwrap();
    e.save();
    e.regs.take();
    let at_limit = SavedState {
        trbptr: BASE + BUF.size,
        trbsr: 0,
        was_tracing: true,
    };
    assert_eq!(
        e.restore(&cfg(true, true), BUF, &at_limit),
        Err(TraceError::BadBuffer)
    );
    assert!(e.regs.log.is_empty(), "{:?}", e.regs.log);
    // One below LIMIT is in range.
    let below = SavedState {
        trbptr: BASE + BUF.size - 64,
        ..at_limit
    };
    assert_eq!(e.restore(&cfg(true, true), BUF, &below), Ok(()));
}

/// perf 6.1 records, for an ETE, the TRCCONFIGR it expects the kernel to
/// have programmed for the event's options (tools/perf's
/// `cs_etmv4_get_config`: ETM_OPT_CYCACC -> bit 4, ETM_OPT_CTXTID -> bit
/// 6, ETM_OPT_TS -> bit 11), and the decoder reads the trace by it. The
/// guest's driver maps those options to CYCLES, CONTEXT_ID and TIMESTAMPS:
/// what EL2 programs must be perf's value plus RES1 bit 0, nothing else,
/// for every combination (written out here from perf's mapping, not from
/// the driver's constants).
#[test]
fn trace_configr_is_what_perf_records_for_the_same_options() {
    for bits in 0..8u32 {
        let (cycles, context_id, timestamps) = (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0);
        let perf = (cycles as u64) << 4 | (context_id as u64) << 6 | (timestamps as u64) << 11;
        let mut e = probed();
        let c = TraceConfig {
            cycles,
            context_id,
            timestamps,
            ..cfg(true, true)
        };
        assert_eq!(e.start(&c, BUF), Ok(()));
        let written: Vec<u64> = e
            .regs
            .take()
            .into_iter()
            .filter_map(|a| match a {
                Write(Reg::TrcConfigR, v) => Some(v),
                _ => None,
            })
            .collect();
        assert_eq!(written, [perf | 1], "{c:?}");
    }
}

//! Cores that go off while others talk to them.
//!
//! `test=offflood` (8 cores): the last core is the target. Every other
//! core floods it with TRACE_ENABLE / TRACE_DISABLE / TRACE_STATUS while
//! it calls CPU_OFF. Checks (`offflood`):
//! - the first TARGET_OFF answer any flooder sees comes within
//!   [`FIRST_OFF_BOUND_MS`] of the target's CPU_OFF (guest counter time,
//!   stamped by the target just before its SMC): a core going off refuses
//!   new requests at once;
//! - at most one request per flooder that began after the CPU_OFF stamp is
//!   answered with success (the one the target may serve before it traps),
//!   and none that began after any flooder saw TARGET_OFF: a core going off
//!   serves only what was already posted;
//! - no TRACE_STATUS answer after the first TARGET_OFF says Enabled;
//! - AFFINITY_INFO says the target is OFF within [`OFF_BOUND_MS`] of its
//!   CPU_OFF;
//! - started again, the target reports its trace Disabled and stopped.
//!
//! It prints `guest: offflood first_target_off_us=<n> affinity_off_us=<n> calls=<n>
//! target_off=<n> served_after_off=<n> violations=<n> longest_call_us=<n>`.
//!
//! `test=vanish` (3 or more cores, hypervisor switch `test.vanish`): core 1
//! calls CPU_OFF, which the switch sends to firmware without closing its
//! mailbox (a core powered off behind PSCI's back). Checks (`vanish`): a
//! TRACE_STATUS of core 1 answers TARGET_OFF or HARDWARE_FAULT after the
//! hypervisor's bound (`guest_api::hyp::TARGET_ANSWER_BOUND_MS`: at least
//! half of it, at most it plus [`VANISH_MARGIN_MS`]); the next one answers
//! TARGET_OFF at once (the hypervisor learned the core is off); PING of
//! core 2 still answers; CPU_ON of core 1 succeeds and core 1 answers PING.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use guest_api::hyp::{self, TARGET_ANSWER_BOUND_MS};
use guest_api::psci;
use guest_api::trace::{self as abi, Hardware, Mode};

use crate::arch::{self, MAX_CPUS};
use crate::calls;
use crate::report::{fail, Msg, Report};
use crate::smp::{self, Cmd};
use crate::trace_calls::{self as tc, TARGET_OFF};
use crate::{irq, platform, suite, timer};

/// Bound on the time from the target's CPU_OFF to the first TARGET_OFF a
/// flooder sees. Measured on this project's 2-CPU host with QEMU 7.2 TCG,
/// 8 cores: see the runner test `cpu_off_under_a_flood_8_cores` for the
/// figures; before the CLOSING flag it was up to 3.15 s.
pub const FIRST_OFF_BOUND_MS: u64 = 100;
/// Bound on the time from the target's CPU_OFF to AFFINITY_INFO OFF.
pub const OFF_BOUND_MS: u64 = 1000;
/// How long a flooder floods at most.
const FLOOD_MS: u64 = 60_000;
/// TARGET_OFF answers each flooder collects before it stops.
const OFFS_PER_FLOODER: u32 = 20;
/// Time after the target's CPU_OFF beyond the bound a vanished core's
/// answer may take (QEMU TCG's timing on a loaded host).
const VANISH_MARGIN_MS: u64 = 5000;
/// HARDWARE_FAULT's x0.
const HARDWARE_FAULT: i64 = hyp::Error::HardwareFault.code();
/// Bound of the other waits.
const WAIT_MS: u64 = 5000;

/// Counter value at the target's CPU_OFF (0: not yet).
static OFF_AT: AtomicU64 = AtomicU64::new(0);
/// Counter value of the first TARGET_OFF answer (0: none yet).
static FIRST_OFF: AtomicU64 = AtomicU64::new(0);
/// Flooders that have started.
static FLOODING: AtomicU32 = AtomicU32::new(0);
/// Flooders' totals.
static CALLS: AtomicU64 = AtomicU64::new(0);
static OFFS: AtomicU64 = AtomicU64::new(0);
/// Successful answers to calls that began after `OFF_AT`.
static SERVED_AFTER_OFF: AtomicU64 = AtomicU64::new(0);
/// The longest trace call a flooder made, in counter ticks: an upper bound
/// on the hypervisor's wait for the target (its margin to the bound).
static LONGEST_CALL: AtomicU64 = AtomicU64::new(0);
/// Answers that must not be: success after TARGET_OFF was seen, Enabled
/// after it, an unexpected code.
static VIOLATIONS: AtomicU64 = AtomicU64::new(0);
/// Details printed so far (a few).
static DETAILS: AtomicU32 = AtomicU32::new(0);
/// Calls the flooders have made so far (the target goes off after
/// [`CALLS_BEFORE_OFF`] of them, with every flooder at it).
static CALLS_SO_FAR: AtomicU64 = AtomicU64::new(0);
/// See [`CALLS_SO_FAR`].
const CALLS_BEFORE_OFF: u64 = 100;

fn violation(args: core::fmt::Arguments) {
    VIOLATIONS.fetch_add(1, Ordering::Relaxed);
    if DETAILS.fetch_add(1, Ordering::Relaxed) < 8 {
        println!("offflood: VIOLATION: {args}");
    }
}

fn ms_since(t: u64, since: u64) -> u64 {
    timer::ticks_to_us(t.wrapping_sub(since)) / 1000
}

/// The target's part (`Cmd::OffFlooded`): enables its own trace, waits for
/// the flood, stamps the time and calls CPU_OFF. Returns only if CPU_OFF
/// does (a failure).
pub fn target() -> Result<(), Msg> {
    let me = arch::core_index();
    match tc::enable(platform::get().mpidr[me], abi::CONFIG_EL1, 0, 0) {
        Ok(r) if r[0] == 0 => {}
        r => fail!("TRACE_ENABLE of itself: {r:?}"),
    }
    let flooders = platform::get().ncpus as u32 - 1;
    if !irq::poll(FLOOD_MS, || {
        FLOODING.load(Ordering::Acquire) >= flooders
            && CALLS_SO_FAR.load(Ordering::Relaxed) >= CALLS_BEFORE_OFF
    }) {
        fail!("the flood did not start within {FLOOD_MS} ms");
    }
    smp::go_off_stamped(|| OFF_AT.store(timer::now().max(1), Ordering::Release))
}

/// A flooder's part (`Cmd::Flood`, and the boot core itself): trace calls
/// to `target` until it has seen TARGET_OFF enough times.
pub fn flood(target: usize) -> Result<(), Msg> {
    let mpidr = platform::get().mpidr[target];
    let me = arch::core_index();
    FLOODING.fetch_add(1, Ordering::AcqRel);
    let deadline = timer::Deadline::after_ms(FLOOD_MS);
    let (mut calls, mut offs, mut n) = (0u64, 0u32, me as u64);
    let mut after_off_ok = 0u64;
    while offs < OFFS_PER_FLOODER {
        if deadline.expired() {
            fail!(
                "cpu{target} still answered after {FLOOD_MS} ms ({calls} calls, {offs} TARGET_OFF)"
            );
        }
        let off_before = OFF_AT.load(Ordering::Acquire) != 0;
        let seen_before = FIRST_OFF.load(Ordering::Acquire) != 0;
        n = n.wrapping_add(1);
        let t0 = timer::now();
        let (name, r) = match n % 3 {
            0 => ("TRACE_ENABLE", tc::enable(mpidr, abi::CONFIG_EL1, 0, 0)),
            1 => ("TRACE_DISABLE", tc::disable(mpidr)),
            _ => ("TRACE_STATUS", tc::status(mpidr)),
        };
        let t = timer::now();
        CALLS_SO_FAR.fetch_add(1, Ordering::Relaxed);
        LONGEST_CALL.fetch_max(t.wrapping_sub(t0), Ordering::Relaxed);
        calls += 1;
        let r = match r {
            Ok(r) => r,
            Err(c) => fail!("{name}(cpu{target}) raised {c}"),
        };
        let code = tc::code(&r);
        if code == TARGET_OFF {
            let _ = FIRST_OFF.compare_exchange(0, t.max(1), Ordering::AcqRel, Ordering::Acquire);
            offs += 1;
            continue;
        }
        if code != 0 {
            violation(format_args!(
                "{name}(cpu{target}): x0 = {code} ({})",
                tc::error_name(code)
            ));
            continue;
        }
        if seen_before {
            violation(format_args!(
                "{name}(cpu{target}) answered 0 though it began after a TARGET_OFF"
            ));
        }
        if off_before {
            after_off_ok += 1;
        }
        if n % 3 == 2 {
            match tc::decode_status(Ok(r)) {
                Ok(s) if s.mode == Mode::Enabled && seen_before => violation(format_args!(
                    "TRACE_STATUS(cpu{target}) Enabled after TARGET_OFF: {}",
                    tc::Show(&s)
                )),
                Ok(s) if !tc::coherent(&s) => violation(format_args!(
                    "TRACE_STATUS(cpu{target}) incoherent: {}",
                    tc::Show(&s)
                )),
                Ok(_) => {}
                Err(e) => violation(format_args!("TRACE_STATUS(cpu{target}): {e}")),
            }
        }
    }
    if after_off_ok > 1 {
        violation(format_args!(
            "{after_off_ok} calls that began after cpu{target}'s CPU_OFF were served"
        ));
    }
    CALLS.fetch_add(calls, Ordering::Relaxed);
    OFFS.fetch_add(u64::from(offs), Ordering::Relaxed);
    SERVED_AFTER_OFF.fetch_add(after_off_ok, Ordering::Relaxed);
    Ok(())
}

/// `test=offflood`; the exit status.
pub fn run_offflood() -> u64 {
    let mut report = Report::new();
    report.check("cpu-on", suite::cpu_on());
    report.check("offflood", offflood());
    report.finish()
}

fn offflood() -> Result<(), Msg> {
    let p = platform::get();
    if p.ncpus < 3 {
        fail!("needs 3 or more cores, has {}", p.ncpus);
    }
    let boot = smp::boot_core();
    let target = (0..p.ncpus).rev().find(|&i| i != boot).unwrap_or(0);
    let starts = smp::starts(target);
    let failures = smp::init_failures(target);
    let tseq = smp::post(target, Cmd::OffFlooded, 0);
    let mut seqs = [None; MAX_CPUS];
    for i in (0..p.ncpus).filter(|&i| i != boot && i != target) {
        seqs[i] = Some(smp::post(i, Cmd::Flood, target as u64));
    }
    let mine = flood(target);
    let mut failed = mine.err();
    for i in (0..p.ncpus).filter(|&i| seqs[i].is_some()) {
        match smp::wait_done(i, seqs[i].unwrap_or(0), FLOOD_MS + WAIT_MS) {
            Some(true) => {}
            Some(false) => {
                failed = failed.or(Some(crate::report::msg(format_args!(
                    "flooder cpu{i} failed"
                ))))
            }
            None => {
                failed = failed.or(Some(crate::report::msg(format_args!(
                    "flooder cpu{i} did not finish"
                ))))
            }
        }
    }
    if let Some(m) = failed {
        return Err(m);
    }
    if let Some(done) = smp::done(target, tseq) {
        fail!("the target's CPU_OFF returned (passed={done})");
    }
    let off_at = OFF_AT.load(Ordering::Acquire);
    let first = FIRST_OFF.load(Ordering::Acquire);
    if off_at == 0 || first == 0 {
        fail!("no CPU_OFF stamp ({off_at}) or no TARGET_OFF ({first})");
    }
    // Off in firmware's view, within the bound.
    let mpidr = p.mpidr[target];
    let mut off_seen = 0;
    irq::poll(WAIT_MS, || {
        let off = matches!(calls::affinity_info(mpidr), Ok(psci::affinity::OFF));
        if off {
            off_seen = timer::now();
        }
        off
    });
    if off_seen == 0 {
        fail!("AFFINITY_INFO(cpu{target}) not OFF {WAIT_MS} ms after its CPU_OFF");
    }
    let first_us = timer::ticks_to_us(first.wrapping_sub(off_at));
    let off_us = timer::ticks_to_us(off_seen.wrapping_sub(off_at));
    println!(
        "guest: offflood first_target_off_us={first_us} affinity_off_us={off_us} calls={} target_off={} served_after_off={} violations={} longest_call_us={}",
        CALLS.load(Ordering::Relaxed),
        OFFS.load(Ordering::Relaxed),
        SERVED_AFTER_OFF.load(Ordering::Relaxed),
        VIOLATIONS.load(Ordering::Relaxed),
        timer::ticks_to_us(LONGEST_CALL.load(Ordering::Relaxed))
    );
    if first < off_at {
        fail!("a TARGET_OFF before the CPU_OFF ({first} < {off_at})");
    }
    if first_us > FIRST_OFF_BOUND_MS * 1000 {
        fail!("first TARGET_OFF {first_us} us after CPU_OFF, bound {FIRST_OFF_BOUND_MS} ms");
    }
    // AFFINITY_INFO is polled every millisecond or so: the bound is on the
    // first poll that saw OFF.
    if ms_since(off_seen, off_at) > OFF_BOUND_MS {
        fail!("cpu{target} off {off_us} us after CPU_OFF, bound {OFF_BOUND_MS} ms");
    }
    let v = VIOLATIONS.load(Ordering::Relaxed);
    if v != 0 {
        fail!("{v} violations");
    }
    // Started again, it is Disabled and stopped (CPU_OFF stopped its trace).
    match calls::cpu_on(mpidr, arch::secondary_entry(), target as u64) {
        Ok(psci::ret::SUCCESS) => {}
        r => fail!("CPU_ON(cpu{target}) after its CPU_OFF: {r:?}"),
    }
    suite::wait_started(target, starts, failures)?;
    match tc::status_of(mpidr) {
        Ok(s) if s.mode == Mode::Disabled && s.hardware == Hardware::Stopped => Ok(()),
        Ok(s) => fail!("cpu{target} after CPU_ON: {}", tc::Show(&s)),
        Err(e) => fail!("TRACE_STATUS(cpu{target}) after CPU_ON: {e}"),
    }
}

/// `test=vanish`; the exit status.
pub fn run_vanish() -> u64 {
    let mut report = Report::new();
    report.check("cpu-on", suite::cpu_on());
    report.check("vanish", vanish());
    report.finish()
}

fn vanish() -> Result<(), Msg> {
    let p = platform::get();
    if p.ncpus < 3 || smp::boot_core() != 0 {
        fail!("needs 3 or more cores and core 0 booting");
    }
    let (gone, other) = (1usize, 2usize);
    let mpidr = p.mpidr[gone];
    let starts = smp::starts(gone);
    let failures = smp::init_failures(gone);
    let seq = smp::post(gone, Cmd::Off, 0);
    if !irq::poll(WAIT_MS, || {
        matches!(calls::affinity_info(mpidr), Ok(psci::affinity::OFF))
    }) {
        fail!("cpu{gone} not OFF {WAIT_MS} ms after its CPU_OFF");
    }
    if let Some(done) = smp::done(gone, seq) {
        fail!("cpu{gone}'s CPU_OFF returned (passed={done})");
    }
    // The hypervisor does not know: its mailbox is open, nobody answers.
    let t0 = timer::now();
    let r = tc::status(mpidr);
    let waited = ms_since(timer::now(), t0);
    println!("vanish: TRACE_STATUS(cpu{gone}) of a vanished core: {r:?} after {waited} ms");
    match r {
        Ok(r) if tc::code(&r) == TARGET_OFF || tc::code(&r) == HARDWARE_FAULT => {}
        r => fail!("TRACE_STATUS(cpu{gone}) of a vanished core: {r:?}"),
    }
    if !(TARGET_ANSWER_BOUND_MS / 2..=TARGET_ANSWER_BOUND_MS + VANISH_MARGIN_MS).contains(&waited) {
        fail!(
            "answered after {waited} ms, want the hypervisor's bound ({TARGET_ANSWER_BOUND_MS} ms, margin {VANISH_MARGIN_MS} ms)"
        );
    }
    // Now it knows: refused at once.
    let t1 = timer::now();
    let r = tc::status(mpidr);
    let again = ms_since(timer::now(), t1);
    match r {
        Ok(r) if tc::code(&r) == TARGET_OFF => {}
        r => fail!("second TRACE_STATUS(cpu{gone}): {r:?}, want TARGET_OFF"),
    }
    if again > 100 {
        fail!("second TRACE_STATUS(cpu{gone}) took {again} ms");
    }
    // The hypervisor carries on: another core answers, the lost one starts.
    match calls::ping(p.mpidr[other]) {
        Ok(r) if r[0] == 0 => {}
        r => fail!("PING(cpu{other}) after the timeout: {r:?}"),
    }
    match calls::cpu_on(mpidr, arch::secondary_entry(), gone as u64) {
        Ok(psci::ret::SUCCESS) => {}
        r => fail!("CPU_ON(cpu{gone}) after it vanished: {r:?}"),
    }
    suite::wait_started(gone, starts, failures)?;
    match calls::ping(mpidr) {
        Ok(r) if r[0] == 0 => {}
        r => fail!("PING(cpu{gone}) after its CPU_ON: {r:?}"),
    }
    println!("guest: vanish first_answer_ms={waited} second_answer_ms={again}");
    Ok(())
}

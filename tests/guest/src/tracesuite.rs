//! The `test=trace [ops=N] [expect-violations]` scenario: the trace
//! manager's ABI, the guest's isolation from the trace hardware, the
//! concurrency stress on every core, and a clean end. Checks, in order:
//! `cpu-on` (from the smp suite), `trace-abi`, `trace-isolation`,
//! `trace-stress` (see [`crate::stress`]), `trace-final`.

use guest_api::hyp;
use guest_api::trace::{
    self as abi, CONFIG_ADDR_FILTER, CONFIG_CONTEXT_ID, CONFIG_CYCLES, CONFIG_EL0, CONFIG_EL1,
    CONFIG_TIMESTAMPS,
};

use crate::arch;
use crate::calls::{self, Ret6};
use crate::report::{Msg, Report, Subchecks};
use crate::smp::{self, Cmd};
use crate::trace_calls::{self as tc, Expect, INVALID_PARAMETER, NOT_SUPPORTED};
use crate::{isolation, platform, stress, suite};

/// Bound of every wait for another core.
const WAIT_MS: u64 = 5000;
/// An MPIDR that names no core.
const NO_CORE: u64 = 0xff00;
/// The function ID right after the trace calls: not a call of the service.
const UNKNOWN_ID: u32 = 0xC600_0016;
/// The address filter of the reconfiguration: the guest's first MiB.
const FILTER: (u64, u64) = (platform::LOAD_ADDRESS, platform::LOAD_ADDRESS + 0x10_0000);

/// Runs the scenario; the exit status.
pub fn run(ops: u32, expect_violations: bool, deadline_ms: u64) -> u64 {
    let mut report = Report::new();
    report.check("cpu-on", suite::cpu_on());
    report.check("trace-abi", trace_abi());
    report.check("trace-isolation", trace_isolation());
    report.check(
        "trace-stress",
        stress::run(ops, expect_violations, deadline_ms),
    );
    report.check("trace-final", trace_final());
    report.finish()
}

/// Expects x0 of a call to be `want`.
fn expect_code(s: &mut Subchecks, what: core::fmt::Arguments, r: Ret6, want: i64) {
    match r {
        Ok(r) if tc::code(&r) == want => {}
        Ok(r) => s.fail(format_args!(
            "{what}: x0 = {} ({}), want {want} ({})",
            tc::code(&r),
            tc::error_name(tc::code(&r)),
            tc::error_name(want)
        )),
        Err(c) => s.fail(format_args!("{what}: {c}")),
    }
}

/// A call that must succeed and return generation `want` in x1.
fn expect_generation(s: &mut Subchecks, what: &str, r: Ret6, want: u64) {
    match r {
        Ok(r) if r[0] == 0 && r[1] == want => {}
        Ok(r) if r[0] == 0 => s.fail(format_args!("{what}: generation {}, want {want}", r[1])),
        Ok(r) => s.fail(format_args!(
            "{what}: x0 = {} ({}), want 0 and generation {want}",
            tc::code(&r),
            tc::error_name(tc::code(&r))
        )),
        Err(c) => s.fail(format_args!("{what}: {c}")),
    }
}

/// TRACE_STATUS of core `i` against `want`; prints it as
/// `<check>: <label>: cpuN: <status>`.
fn expect_status(s: &mut Subchecks, check: &str, label: &str, i: usize, want: Expect) {
    match tc::status_of(platform::get().mpidr[i]) {
        Ok(st) => {
            println!("{check}: {label}: cpu{i}: {}", tc::Show(&st));
            if let Err(m) = tc::check(&st, &want) {
                s.fail(format_args!("{label}: cpu{i}: {m}"));
            }
        }
        Err(e) => s.fail(format_args!("{label}: TRACE_STATUS(cpu{i}): {e}")),
    }
}

fn trace_abi() -> Result<(), Msg> {
    let mut s = Subchecks::new("trace-abi");
    let p = platform::get();
    let me_idx = arch::core_index();
    let me = p.mpidr[me_idx];

    for (id, name) in [
        (abi::TRACE_ENABLE, "TRACE_ENABLE"),
        (abi::TRACE_DISABLE, "TRACE_DISABLE"),
        (abi::TRACE_STATUS, "TRACE_STATUS"),
        (abi::TRACE_IDREGS, "TRACE_IDREGS"),
    ] {
        match calls::hyp(hyp::FEATURES, id as u64) {
            Ok(r) if r[0] == 0 => {}
            Ok(r) => s.fail(format_args!(
                "FEATURES({name} {id:#x}): x0 = {}, want 0",
                r[0] as i64
            )),
            Err(c) => s.fail(format_args!("FEATURES({name}): {c}")),
        }
    }
    match calls::hyp(hyp::ABI_VERSION, 0) {
        Ok(r) if r[0] == hyp::ABI_VERSION_VALUE => {}
        Ok(r) => s.fail(format_args!(
            "ABI_VERSION: {:#x}, want {:#x}",
            r[0],
            hyp::ABI_VERSION_VALUE
        )),
        Err(c) => s.fail(format_args!("ABI_VERSION: {c}")),
    }

    // Refused: invalid configs, an MPIDR that names no core, an unknown ID.
    let el1 = CONFIG_EL1;
    let filt = CONFIG_EL1 | CONFIG_ADDR_FILTER;
    let (lo, hi) = FILTER;
    let refused: [(&str, u64, u64, u64); 7] = [
        ("config bit 7", el1 | 1 << 7, 0, 0),
        ("config 0 (no exception level)", 0, 0, 0),
        ("ADDR_FILTER with start == end", filt, lo, lo),
        ("ADDR_FILTER with start > end", filt, hi, lo),
        ("ADDR_FILTER with an unaligned start", filt, lo + 2, hi),
        ("ADDR_FILTER with an unaligned end", filt, lo, hi + 1),
        (
            "ADDR_FILTER ending beyond 2^48",
            filt,
            lo,
            abi::FILTER_END_MAX + 4,
        ),
    ];
    for (what, word, start, end) in refused {
        expect_code(
            &mut s,
            format_args!("TRACE_ENABLE(self, {what})"),
            tc::enable(me, word, start, end),
            INVALID_PARAMETER,
        );
    }
    expect_code(
        &mut s,
        format_args!("TRACE_ENABLE(MPIDR {NO_CORE:#x})"),
        tc::enable(NO_CORE, el1, 0, 0),
        INVALID_PARAMETER,
    );
    expect_code(
        &mut s,
        format_args!("TRACE_DISABLE(MPIDR {NO_CORE:#x})"),
        tc::disable(NO_CORE),
        INVALID_PARAMETER,
    );
    expect_code(
        &mut s,
        format_args!("TRACE_STATUS(MPIDR {NO_CORE:#x})"),
        tc::status(NO_CORE),
        INVALID_PARAMETER,
    );
    expect_code(
        &mut s,
        format_args!("function {UNKNOWN_ID:#x}"),
        calls::hyp6(UNKNOWN_ID, [me, el1, 0, 0]),
        NOT_SUPPORTED,
    );

    expect_code(
        &mut s,
        format_args!("TRACE_IDREGS(MPIDR {NO_CORE:#x})"),
        calls::hyp6(abi::TRACE_IDREGS, [NO_CORE, 0, 0, 0]),
        INVALID_PARAMETER,
    );
    // Every core's unit: an ETE (what perf checks), the legacy per-CPU
    // trace ID perf assumes for it, timestamps and context IDs that the
    // configs below use. Asked of each core by another (and itself), at
    // boot: nothing may change (the status check below wants generation 0).
    for i in (0..p.ncpus).filter(|&i| smp::online(i)) {
        match calls::hyp6(abi::TRACE_IDREGS, [p.mpidr[i], 0, 0, 0]) {
            Ok(r) => match abi::IdRegs::from_registers(r) {
                Ok(ids) => {
                    println!(
                        "trace-abi: TRACE_IDREGS cpu{i}: TRCIDR0={:#x} TRCIDR1={:#x} TRCIDR2={:#x} TRCIDR8={:#x} TRCAUTHSTATUS={:#x} TRCDEVARCH={:#x} TRCTRACEIDR={:#x}",
                        ids.idr0, ids.idr1, ids.idr2, ids.idr8, ids.authstatus, ids.devarch, ids.traceid
                    );
                    if u64::from(ids.traceid) != abi::trace_id(i) {
                        s.fail(format_args!(
                            "TRACE_IDREGS(cpu{i}): trace ID {:#x}, want {:#x}",
                            ids.traceid,
                            abi::trace_id(i)
                        ));
                    }
                    if !ids.is_ete() {
                        s.fail(format_args!(
                            "TRACE_IDREGS(cpu{i}): TRCDEVARCH {:#x} is not an ETE's",
                            ids.devarch
                        ));
                    }
                    // TRCIDR0.TSSIZE and TRCIDR2.CIDSIZE: the unit has them.
                    if (ids.idr0 >> 24) & 0x1f == 0 || (ids.idr2 >> 5) & 0x1f == 0 {
                        s.fail(format_args!(
                            "TRACE_IDREGS(cpu{i}): TRCIDR0 {:#x} / TRCIDR2 {:#x} lack timestamps or context IDs",
                            ids.idr0, ids.idr2
                        ));
                    }
                    // TRCIDR1 bits [15:12] are RES1.
                    if (ids.idr1 >> 12) & 0xf != 0xf {
                        s.fail(format_args!(
                            "TRACE_IDREGS(cpu{i}): TRCIDR1 {:#x}",
                            ids.idr1
                        ));
                    }
                    if r[4] >> 32 != 0 {
                        s.fail(format_args!("TRACE_IDREGS(cpu{i}): x4 = {:#x}", r[4]));
                    }
                }
                Err(e) => s.fail(format_args!("TRACE_IDREGS(cpu{i}): {e:?}")),
            },
            Err(c) => s.fail(format_args!("TRACE_IDREGS(cpu{i}): {c}")),
        }
    }

    // At boot (and after the refusals): every core disabled, generation 0.
    for i in (0..p.ncpus).filter(|&i| smp::online(i)) {
        expect_status(&mut s, "trace-abi", "at boot", i, Expect::disabled(Some(0)));
    }

    let ts = CONFIG_EL1 | CONFIG_TIMESTAMPS;
    expect_generation(
        &mut s,
        "TRACE_ENABLE(self, EL1|TS)",
        tc::enable(me, ts, 0, 0),
        1,
    );
    expect_status(
        &mut s,
        "trace-abi",
        "enabled",
        me_idx,
        Expect::enabled(Some(1), (ts, 0, 0)),
    );
    let all = CONFIG_EL0 | CONFIG_EL1 | CONFIG_CYCLES | CONFIG_CONTEXT_ID | CONFIG_ADDR_FILTER;
    expect_generation(
        &mut s,
        "TRACE_ENABLE(self, EL0|EL1|CC|CTXID|FILTER) (reconfiguration)",
        tc::enable(me, all, lo, hi),
        2,
    );
    expect_status(
        &mut s,
        "trace-abi",
        "reconfigured",
        me_idx,
        Expect::enabled(Some(2), (all, lo, hi)),
    );
    expect_generation(&mut s, "TRACE_DISABLE(self)", tc::disable(me), 3);
    expect_status(
        &mut s,
        "trace-abi",
        "disabled",
        me_idx,
        Expect::disabled(Some(3)),
    );
    expect_generation(
        &mut s,
        "TRACE_DISABLE(self) again (no-op)",
        tc::disable(me),
        3,
    );
    expect_status(
        &mut s,
        "trace-abi",
        "disabled again",
        me_idx,
        Expect::disabled(Some(3)),
    );
    s.result()
}

fn trace_isolation() -> Result<(), Msg> {
    let mut s = Subchecks::new("trace-isolation");
    suite::on_all_cores(&mut s, Cmd::TraceIsolation, 0, WAIT_MS, isolation::local);

    // The OS lock of a core freshly started by CPU_ON is set again (its
    // part above left it clear).
    let p = platform::get();
    let Some(i) = smp::online_secondaries().last() else {
        println!("trace-isolation: one core: no CPU_OFF/CPU_ON of a secondary to check");
        return s.result();
    };
    let starts = smp::starts(i);
    let failures = smp::init_failures(i);
    let seq = smp::post(i, Cmd::Off, 0);
    if let Err(m) = suite::wait_off(i, seq) {
        s.fail(format_args!("{m}"));
        return s.result();
    }
    match calls::cpu_on(p.mpidr[i], arch::secondary_entry(), i as u64) {
        Ok(0) => {}
        r => {
            s.fail(format_args!("CPU_ON(cpu{i}) after CPU_OFF: {r:?}"));
            return s.result();
        }
    }
    if let Err(m) = suite::wait_started(i, starts, failures) {
        s.fail(format_args!("cpu{i} after CPU_ON: {m}"));
        return s.result();
    }
    let seq = smp::post(i, Cmd::OsLockSet, 0);
    match smp::wait_done(i, seq, WAIT_MS) {
        Some(true) => println!("trace-isolation: cpu{i} started afresh by CPU_ON: OS lock set"),
        Some(false) => s.fail(format_args!(
            "cpu{i}: OS lock after a fresh CPU_ON (see its line)"
        )),
        None => s.fail(format_args!("cpu{i} did not answer after CPU_ON")),
    }
    s.result()
}

fn trace_final() -> Result<(), Msg> {
    let mut s = Subchecks::new("trace-final");
    let p = platform::get();
    s.add(stress::all_back_on());
    for i in 0..p.ncpus {
        match tc::disable(p.mpidr[i]) {
            Ok(r) if r[0] == 0 => {}
            Ok(r) => s.fail(format_args!(
                "TRACE_DISABLE(cpu{i}): x0 = {} ({})",
                tc::code(&r),
                tc::error_name(tc::code(&r))
            )),
            Err(c) => s.fail(format_args!("TRACE_DISABLE(cpu{i}): {c}")),
        }
    }
    for i in 0..p.ncpus {
        expect_status(&mut s, "trace-final", "end", i, Expect::disabled(None));
    }
    s.result()
}

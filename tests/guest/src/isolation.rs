//! The `trace-isolation` check's part on one core: the trace hardware is
//! the hypervisor's, so the guest must not reach it.
//!
//! - Every access to the trace filter control (TRFCR_EL1), the trace unit
//!   (TRCPRGCTLR) and the trace buffer (TRBLIMITR_EL1, TRBSR_EL1) raises
//!   an UNDEFINED exception at EL1 (ESR_EL1.EC = 0), which the guest's
//!   catch counts and steps over.
//! - ID_AA64DFR0_EL1 hides the trace unit, the trace filter and the trace
//!   buffer (TraceVer, TraceFilt, TraceBuffer read 0), and every register
//!   of the ID space (op0 3, op1 0, CRn 0, CRm 1..7) reads without an
//!   exception.
//! - The OS lock is the guest's own (virtual): OSLSR_EL1.OSLK is 1 when
//!   the core comes up, follows OSLAR_EL1, and the hypervisor's trace of
//!   this core carries on whatever the guest does with it.

use core::arch::asm;

use guest_api::trace::{CONFIG_CYCLES, CONFIG_EL1, CONFIG_TIMESTAMPS};

use crate::report::{fail, Msg, Subchecks};
use crate::trace_calls::{self as tc, Expect};
use crate::trap::{self, Caught};
use crate::{arch, platform};

/// ESR_EL1.EC of an UNDEFINED instruction ("unknown reason").
const EC_UNKNOWN: u64 = 0;
/// OSLSR_EL1.OSLK.
const OSLK: u64 = 1 << 1;

/// A probe: one access that must be UNDEFINED; the exception it raised.
type Probe = fn() -> Option<Caught>;

/// A probe reading `$reg` (a generic `S<op0>_<op1>_C<n>_C<m>_<op2>` name).
macro_rules! mrs_probe {
    ($reg:literal) => {{
        fn probe() -> Option<Caught> {
            trap::catching(|| {
                let v: u64;
                // SAFETY: reads a trace register that the hypervisor keeps
                // from the guest: the read must be UNDEFINED, and the armed
                // catch steps over it. Should it be let through, a read of
                // these registers has no side effects.
                unsafe { asm!(concat!("mrs {}, ", $reg), out(reg) v, options(nostack)) };
                v
            })
            .1
        }
        probe as Probe
    }};
}

/// A probe writing 0 to `$reg`.
macro_rules! msr_probe {
    ($reg:literal) => {{
        fn probe() -> Option<Caught> {
            trap::catching(|| {
                // SAFETY: writes 0 (off) to a trace register that the
                // hypervisor keeps from the guest: the write must be
                // UNDEFINED, and the armed catch steps over it. Should it
                // be let through, it can only stop trace, which is what the
                // check would then report.
                unsafe { asm!(concat!("msr ", $reg, ", xzr"), options(nostack)) };
            })
            .1
        }
        probe as Probe
    }};
}

/// The accesses that must be UNDEFINED, with their names.
const PROBES: [(&str, Probe); 7] = [
    ("MRS TRFCR_EL1", mrs_probe!("S3_0_C1_C2_1")),
    ("MSR TRFCR_EL1", msr_probe!("S3_0_C1_C2_1")),
    ("MRS TRCPRGCTLR", mrs_probe!("S2_1_C0_C1_0")),
    ("MSR TRCPRGCTLR", msr_probe!("S2_1_C0_C1_0")),
    ("MRS TRBLIMITR_EL1", mrs_probe!("S3_0_C9_C11_0")),
    ("MSR TRBLIMITR_EL1", msr_probe!("S3_0_C9_C11_0")),
    ("MRS TRBSR_EL1", mrs_probe!("S3_0_C9_C11_3")),
];

/// Reads one ID register: its value and the exception it raised, if any.
type IdReader = fn() -> (u64, Option<Caught>);

macro_rules! id_reader {
    ($crm:literal, $op2:literal) => {{
        fn read() -> (u64, Option<Caught>) {
            trap::catching(|| {
                let v: u64;
                // SAFETY: reads a register of the ID space, which has no
                // side effects; unallocated encodings there read as zero.
                // A catch is armed so that an exception is reported, not fatal.
                unsafe {
                    asm!(
                        concat!("mrs {}, S3_0_C0_C", $crm, "_", $op2),
                        out(reg) v,
                        options(nostack)
                    )
                };
                v
            })
        }
        read as IdReader
    }};
}

macro_rules! id_row {
    ($crm:literal) => {
        [
            id_reader!($crm, 0),
            id_reader!($crm, 1),
            id_reader!($crm, 2),
            id_reader!($crm, 3),
            id_reader!($crm, 4),
            id_reader!($crm, 5),
            id_reader!($crm, 6),
            id_reader!($crm, 7),
        ]
    };
}

/// `ID_READERS[crm - 1][op2]` reads S3_0_C0_C<crm>_<op2>.
const ID_READERS: [[IdReader; 8]; 7] = [
    id_row!(1),
    id_row!(2),
    id_row!(3),
    id_row!(4),
    id_row!(5),
    id_row!(6),
    id_row!(7),
];

/// ID_AA64DFR0_EL1 = S3_0_C0_C5_0.
fn id_aa64dfr0() -> (u64, Option<Caught>) {
    ID_READERS[5 - 1][0]()
}

/// OSLSR_EL1 (S2_0_C1_C1_4).
pub fn oslsr() -> Result<u64, Caught> {
    let (v, caught) = trap::catching(|| {
        let v: u64;
        // SAFETY: reads the OS lock status, which has no side effects; a
        // catch is armed so that an exception is reported, not fatal.
        unsafe { asm!("mrs {}, S2_0_C1_C1_4", out(reg) v, options(nostack)) };
        v
    });
    caught.map_or(Ok(v), Err)
}

/// Writes OSLAR_EL1 (S2_0_C1_C0_4): 1 locks, 0 unlocks.
pub fn oslar(v: u64) -> Result<(), Caught> {
    let ((), caught) = trap::catching(|| {
        // SAFETY: sets or clears the OS lock, which under the hypervisor is
        // the guest's own virtual lock (nothing else in this guest uses
        // debug or trace); a catch is armed so that an exception is
        // reported, not fatal.
        unsafe { asm!("msr S2_0_C1_C0_4, {}", in(reg) v, options(nostack)) };
    });
    caught.map_or(Ok(()), Err)
}

/// Does OSLSR_EL1.OSLK read `want`?
pub fn expect_oslk(want: bool, when: &str) -> Result<(), Msg> {
    match oslsr() {
        Ok(v) if (v & OSLK != 0) == want => Ok(()),
        Ok(v) => fail!(
            "{when}: OSLSR_EL1 = {v:#x}: OSLK = {}, want {}",
            (v & OSLK != 0) as u8,
            want as u8
        ),
        Err(c) => fail!("{when}: MRS OSLSR_EL1 raised {c}"),
    }
}

/// The UNDEFINED probes: how many raised EC 0.
fn probes(s: &mut Subchecks) -> usize {
    let mut undefined = 0;
    for (name, probe) in PROBES {
        match probe() {
            Some(c) if c.ec() == EC_UNKNOWN => undefined += 1,
            Some(c) => s.fail(format_args!("{name}: {c}, want EC 0 (UNDEFINED)")),
            None => s.fail(format_args!(
                "{name} did not raise an exception: the guest reaches the trace hardware"
            )),
        }
    }
    undefined
}

/// The ID registers: ID_AA64DFR0_EL1's trace fields, and every register
/// of the ID space readable. Returns ID_AA64DFR0_EL1.
fn id_registers(s: &mut Subchecks) -> u64 {
    for (row, readers) in ID_READERS.iter().enumerate() {
        for (op2, read) in readers.iter().enumerate() {
            if let (_, Some(c)) = read() {
                s.fail(format_args!("MRS S3_0_C0_C{}_{op2} raised {c}", row + 1));
            }
        }
    }
    let (dfr0, caught) = id_aa64dfr0();
    if let Some(c) = caught {
        s.fail(format_args!("MRS ID_AA64DFR0_EL1 raised {c}"));
        return 0;
    }
    for (name, lsb) in [("TraceVer", 4), ("TraceFilt", 40), ("TraceBuffer", 44)] {
        let v = (dfr0 >> lsb) & 0xf;
        s.expect(
            v == 0,
            format_args!(
                "ID_AA64DFR0_EL1 = {dfr0:#x}: {name} [{}:{lsb}] = {v}, want 0",
                lsb + 3
            ),
        );
    }
    dfr0
}

/// TRACE_STATUS of this core against `want`.
fn expect_status(s: &mut Subchecks, when: &str, want: Expect) {
    let me = platform::get().mpidr[arch::core_index()];
    match tc::status_of(me) {
        Ok(st) => {
            if let Err(m) = tc::check(&st, &want) {
                s.fail(format_args!("{when}: {m}"));
            }
        }
        Err(e) => s.fail(format_args!("{when}: TRACE_STATUS(self): {e}")),
    }
}

/// TRACE_ENABLE / TRACE_DISABLE of this core; the generation it returned.
fn commit(s: &mut Subchecks, when: &str, config: Option<u64>) -> Option<u64> {
    let me = platform::get().mpidr[arch::core_index()];
    let r = match config {
        Some(word) => tc::enable(me, word, 0, 0),
        None => tc::disable(me),
    };
    let what = if config.is_some() {
        "TRACE_ENABLE"
    } else {
        "TRACE_DISABLE"
    };
    match r {
        Ok(r) if r[0] == 0 => Some(r[1]),
        Ok(r) => {
            s.fail(format_args!(
                "{when}: {what}(self): x0 = {} ({})",
                tc::code(&r),
                tc::error_name(tc::code(&r))
            ));
            None
        }
        Err(c) => {
            s.fail(format_args!("{when}: {what}(self): {c}"));
            None
        }
    }
}

/// The OS lock: locked at boot (checked first, before anything touches
/// it), then unlocked, locked and unlocked again, with this core's trace
/// enabled, reconfigured and disabled in between: the guest's lock must
/// not reach the hypervisor's trace.
fn os_lock(s: &mut Subchecks) {
    s.add(expect_oslk(true, "at boot"));
    let step = |s: &mut Subchecks, v: u64| {
        if let Err(c) = oslar(v) {
            s.fail(format_args!("MSR OSLAR_EL1, #{v} raised {c}"));
        }
        s.add(expect_oslk(
            v != 0,
            if v != 0 {
                "after OSLAR = 1"
            } else {
                "after OSLAR = 0"
            },
        ));
    };
    let ts = CONFIG_EL1 | CONFIG_TIMESTAMPS;
    let cc = CONFIG_EL1 | CONFIG_CYCLES;

    step(s, 0);
    let Some(g) = commit(s, "unlocked", Some(ts)) else {
        return;
    };
    expect_status(s, "unlocked, enabled", Expect::enabled(Some(g), (ts, 0, 0)));
    step(s, 1);
    expect_status(
        s,
        "after locking, enabled",
        Expect::enabled(Some(g), (ts, 0, 0)),
    );
    let g2 = commit(s, "locked", Some(cc));
    s.expect(
        g2 == Some(g + 1),
        format_args!(
            "locked: TRACE_ENABLE(self) gave generation {g2:?}, want {}",
            g + 1
        ),
    );
    expect_status(
        s,
        "locked, reconfigured",
        Expect::enabled(Some(g + 1), (cc, 0, 0)),
    );
    step(s, 0);
    expect_status(
        s,
        "unlocked again, enabled",
        Expect::enabled(Some(g + 1), (cc, 0, 0)),
    );
    let g3 = commit(s, "unlocked again", None);
    s.expect(
        g3 == Some(g + 2),
        format_args!("TRACE_DISABLE(self) gave generation {g3:?}, want {}", g + 2),
    );
    expect_status(s, "disabled", Expect::disabled(Some(g + 2)));
}

/// Runs this core's part of `trace-isolation`.
pub fn local() -> Result<(), Msg> {
    let mut s = Subchecks::new("trace-isolation");
    // The lock first: nothing may have touched it since the core came up.
    os_lock(&mut s);
    let undefined = probes(&mut s);
    let dfr0 = id_registers(&mut s);
    println!(
        "trace-isolation: {undefined} of {} trace-register accesses UNDEFINED; ID_AA64DFR0_EL1 = {dfr0:#x}; {} ID registers read; OS lock virtual",
        PROBES.len(),
        ID_READERS.len() * 8
    );
    s.result()
}

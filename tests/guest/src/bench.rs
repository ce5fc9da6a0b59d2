//! `test=bench`: measurements for `make bench` (the runner's `bench` binary
//! turns them into tables and ratios).
//!
//! Run under QEMU's `-icount` with the hypervisor's `bench` switch, which
//! lets the guest's PMU count at EL2. Three figures per operation, each
//! summed over its calls, from just before the call to just after:
//! - `el2`: PMU event 0x08 (instructions) filtered to EL2 only (PMEVTYPER
//!   P = 1 and U = 1 exclude EL1 and EL0, NSH = 1 includes EL2): what the
//!   hypervisor executed while this core was in EL2 for the call;
//! - `insns`: the same event at every EL: the guest-visible cost, in
//!   instructions executed (the guest's own entry and exit code included).
//!   QEMU's icount is global and runs one vCPU at a time, so for a remote
//!   request both counts include the target core's work while the caller
//!   waits (the other cores sit in WFI and execute nothing);
//! - `ticks`: the virtual counter (CNTVCT), which under `-icount` advances
//!   with instructions executed and jumps over time when every vCPU waits.
//!
//! Output, one line per operation: `bench: op=<name> iters=<n> el2=<total>
//! insns=<total> ticks=<total>`, and `bench: all_to_all cores=<n>
//! requests=<n> ticks=<span>`, then `bench: done`. With a hypervisor built without the
//! trace manager (`bare-relay`, TRACE_STATUS answers NOT_SUPPORTED) only the
//! null call and the trace-off suspend cycle are measured: the baseline.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use guest_api::smccc;
use guest_api::trace::{CONFIG_CONTEXT_ID, CONFIG_EL0, CONFIG_EL1, CONFIG_TIMESTAMPS};

use crate::arch::{self, MAX_CPUS};
use crate::calls;
use crate::platform;
use crate::report::{fail, Msg, Report};
use crate::smp::{self, Cmd};
use crate::stress::{self, POWER_DOWN};
use crate::suite;
use crate::timer;
use crate::trace_calls as tc;

/// Calls per measured operation.
const ITERS: u64 = 200;
/// Suspend cycles per variant (each is a full power-down path).
const SUSPENDS: u64 = 50;
/// Requests each core sends in the all-to-all run.
const ALL_TO_ALL: u64 = 200;
/// The configuration enabled in every measurement.
const CONFIG: u64 = CONFIG_EL0 | CONFIG_EL1 | CONFIG_TIMESTAMPS | CONFIG_CONTEXT_ID;

/// PMEVTYPER<n>_EL0: instructions (0x08), not at EL1 (P, bit 31) nor EL0
/// (U, bit 30), at EL2 (NSH, bit 27).
const EL2_INSTRUCTIONS: u64 = 0x08 | (1 << 31) | (1 << 30) | (1 << 27);
/// Instructions at EL0, EL1 and EL2.
const ALL_INSTRUCTIONS: u64 = 0x08 | (1 << 27);
/// PMCCFILTR_EL0: the cycle counter at EL2 only (P, U set; NSH set).
const EL2_CYCLES: u64 = (1 << 31) | (1 << 30) | (1 << 27);

/// Sets up event counters 0 (EL2 instructions) and 1 (all instructions),
/// the cycle counter (EL2 cycles) and counter 2 (EL2 instructions, left
/// disabled: with `bench` the hypervisor enables it only while it is inside
/// its trace backend, so it counts the backend's share of counter 0; see
/// el2/src/hv/tracing/metered.rs) of this core.
pub fn pmu_init() {
    // SAFETY: programs only this core's PMU (the guest owns every event
    // counter: MDCR_EL2.HPMN = PMCR.N): counters 0 and 1's events, the
    // cycle counter's filter, their enables, and PMCR_EL0.E; no memory is
    // touched.
    unsafe {
        asm!(
            "msr pmevtyper0_el0, {t}",
            "msr pmevtyper1_el0, {a}",
            "msr pmevtyper2_el0, {t}",
            "msr pmccfiltr_el0, {c}",
            "msr pmcntenset_el0, {en}",
            "mrs {p}, pmcr_el0",
            "orr {p}, {p}, #1",
            "msr pmcr_el0, {p}",
            "isb",
            t = in(reg) EL2_INSTRUCTIONS,
            a = in(reg) ALL_INSTRUCTIONS,
            c = in(reg) EL2_CYCLES,
            en = in(reg) 0b11u64 | (1 << 31),
            p = out(reg) _,
            options(nomem, nostack, preserves_flags)
        );
    }
}

/// (EL2 instructions, all instructions, EL2 instructions in the trace
/// backend) counted so far on this core.
fn counts() -> (u64, u64, u64) {
    let (el2, all, backend): (u64, u64, u64);
    // SAFETY: reads this core's event counters 0, 1 and 2; ISB orders the
    // reads after the instructions before.
    unsafe {
        asm!(
            "isb",
            "mrs {}, pmevcntr0_el0",
            "mrs {}, pmevcntr1_el0",
            "mrs {}, pmevcntr2_el0",
            out(reg) el2,
            out(reg) all,
            out(reg) backend,
            options(nomem, nostack, preserves_flags)
        )
    };
    (el2, all, backend)
}

/// The cycle counter (filtered to EL2 by `pmu_init`).
fn el2_cycles() -> u64 {
    let v: u64;
    // SAFETY: reads this core's cycle counter; ISB orders the read.
    unsafe {
        asm!("isb", "mrs {}, pmccntr_el0", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Running totals of one operation.
#[derive(Clone, Copy, Default)]
struct Sample {
    iters: u64,
    el2: u64,
    insns: u64,
    backend: u64,
    ticks: u64,
}

impl Sample {
    /// Adds one call of `f`, measured from just before to just after it.
    fn add<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let (t0, c0) = (timer::now(), counts());
        let r = f();
        let c1 = counts();
        let t1 = timer::now();
        self.iters += 1;
        // Event counters are 32 bits wide unless PMCR_EL0.LP says otherwise.
        self.el2 += c1.0.wrapping_sub(c0.0) & 0xffff_ffff;
        self.insns += c1.1.wrapping_sub(c0.1) & 0xffff_ffff;
        self.backend += c1.2.wrapping_sub(c0.2) & 0xffff_ffff;
        self.ticks += t1.wrapping_sub(t0);
        r
    }

    fn print(&self, op: &str, what: &str) {
        println!(
            "bench: op={op}{what} iters={} el2={} insns={} backend={} ticks={}",
            self.iters, self.el2, self.insns, self.backend, self.ticks
        );
    }
}

/// Checks a trace call's x0.
fn ok(what: &str, r: calls::Ret6) -> Result<(), Msg> {
    match r {
        Ok(x) if x[0] == 0 => Ok(()),
        Ok(x) => fail!("{what}: x0 = {}", tc::code(&x)),
        Err(c) => fail!("{what}: {c}"),
    }
}

/// Enable, status and disable of `target`'s trace, `ITERS` times each.
fn trace_ops(target: usize, tag: &str) -> Result<(), Msg> {
    let mpidr = platform::get().mpidr[target];
    let (mut en, mut st, mut dis) = (Sample::default(), Sample::default(), Sample::default());
    for _ in 0..ITERS {
        ok("TRACE_ENABLE", en.add(|| tc::enable(mpidr, CONFIG, 0, 0)))?;
        ok("TRACE_STATUS", st.add(|| tc::status(mpidr)))?;
        ok("TRACE_DISABLE", dis.add(|| tc::disable(mpidr)))?;
    }
    en.print(tag, "_enable");
    st.print(tag, "_status");
    dis.print(tag, "_disable");
    Ok(())
}

/// `SUSPENDS` power-down CPU_SUSPEND cycles of this core, each woken by the
/// virtual timer 1 ms later (armed before the call: an interrupt already
/// pending would make the hypervisor return at once, as a wake-up would),
/// measured from the call to the return through the resume entry. The
/// wait executes nothing, so only `ticks` sees it.
fn suspend_cycles(op: &str) -> Result<(), Msg> {
    let mut s = Sample::default();
    for _ in 0..SUSPENDS {
        stress::power_down_with(1, || s.add(|| calls::cpu_suspend_powerdown(POWER_DOWN)))?;
    }
    s.print(op, "");
    Ok(())
}

/// Start and end (virtual counter) of each core's all-to-all share.
static SPAN: [[AtomicU64; 2]; MAX_CPUS] =
    [const { [AtomicU64::new(0), AtomicU64::new(0)] }; MAX_CPUS];

/// This core's share of the all-to-all run: `n` TRACE_STATUS requests to
/// the other cores in turn (to itself on one core).
pub fn all_to_all_share(n: u64) -> Result<(), Msg> {
    let p = platform::get();
    let me = arch::core_index();
    SPAN[me][0].store(timer::now(), Ordering::Relaxed);
    for k in 0..n {
        let t = if p.ncpus == 1 {
            me
        } else {
            (me + 1 + (k as usize % (p.ncpus - 1))) % p.ncpus
        };
        ok("TRACE_STATUS", tc::status(p.mpidr[t]))?;
    }
    SPAN[me][1].store(timer::now(), Ordering::Release);
    Ok(())
}

fn all_to_all() -> Result<(), Msg> {
    let p = platform::get();
    let seqs: [u32; MAX_CPUS] = core::array::from_fn(|i| {
        if i != arch::core_index() && i < p.ncpus {
            smp::post(i, Cmd::BenchAllToAll, ALL_TO_ALL)
        } else {
            0
        }
    });
    all_to_all_share(ALL_TO_ALL)?;
    for (i, seq) in seqs.iter().enumerate().take(p.ncpus) {
        if i == arch::core_index() {
            continue;
        }
        match smp::wait_done(i, *seq, 60_000) {
            Some(true) => {}
            Some(false) => fail!("cpu{i}: its all-to-all share failed"),
            None => fail!("cpu{i}: all-to-all share {}", smp::progress(i, *seq)),
        }
    }
    let start = (0..p.ncpus)
        .map(|i| SPAN[i][0].load(Ordering::Acquire))
        .min()
        .unwrap_or(0);
    let end = (0..p.ncpus)
        .map(|i| SPAN[i][1].load(Ordering::Acquire))
        .max()
        .unwrap_or(0);
    println!(
        "bench: all_to_all cores={} requests={} ticks={}",
        p.ncpus,
        ALL_TO_ALL * p.ncpus as u64,
        end.saturating_sub(start)
    );
    Ok(())
}

/// Iterations of the fixed loop ([`fixed_loop`]).
const LOOP_ITERS: u64 = 500;
/// Runs of the fixed loop per variant.
const LOOP_RUNS: u64 = 4;

/// A fixed guest loop: arithmetic, a conditional branch per iteration, no
/// memory traffic and no traps.
#[inline(never)]
fn fixed_loop() -> u64 {
    let mut acc = 0u64;
    for i in 0..LOOP_ITERS {
        acc = acc.wrapping_mul(33) ^ core::hint::black_box(i);
    }
    acc
}

/// The cost of tracing: the fixed loop untraced and traced, and the null
/// hypercall traced (its extra EL2 instructions are what one trap costs
/// the exceptions-only source). With `trace.source=insn` the traced loop
/// is stepped: its EL2 instructions per guest instruction are what the
/// instruction source costs.
fn trace_cost(me: usize) -> Result<(), Msg> {
    let p = platform::get();
    let mut untraced = Sample::default();
    for _ in 0..LOOP_RUNS {
        untraced.add(|| core::hint::black_box(fixed_loop()));
    }
    ok("TRACE_ENABLE", tc::enable(p.mpidr[me], CONFIG_EL1, 0, 0))?;
    let mut traced = Sample::default();
    for _ in 0..LOOP_RUNS {
        traced.add(|| core::hint::black_box(fixed_loop()));
    }
    let mut null = Sample::default();
    for _ in 0..ITERS / 4 {
        let _ = null.add(|| calls::hyp(smccc::SMCCC_VERSION, 0));
    }
    ok("TRACE_DISABLE", tc::disable(p.mpidr[me]))?;
    untraced.print("loop_untraced", "");
    traced.print("loop_traced", "");
    null.print("null_traced", "");
    Ok(())
}

fn bench() -> Result<(), Msg> {
    let p = platform::get();
    let me = arch::core_index();
    pmu_init();
    println!("bench: cores={} freq={}", p.ncpus, timer::freq());
    if p.bootargs
        .unwrap_or("")
        .split_whitespace()
        .any(|w| w == "trace-cost-only")
    {
        trace_cost(me)?;
        println!("bench: done");
        return Ok(());
    }
    let mut null = Sample::default();
    for _ in 0..ITERS {
        match null.add(|| calls::hyp(smccc::SMCCC_VERSION, 0)) {
            Ok(x) if x[0] == smccc::VERSION_1_2 as u64 => {}
            Ok(x) => fail!("SMCCC_VERSION: x0 = {:#x}", x[0]),
            Err(c) => fail!("SMCCC_VERSION: {c}"),
        }
    }
    null.print("null", "");
    // The cycle counter filtered to EL2 across the null calls too (0 when
    // the hypervisor hides EL2: MDCR_EL2.HCCD).
    let c0 = el2_cycles();
    for _ in 0..ITERS {
        let _ = calls::hyp(smccc::SMCCC_VERSION, 0);
    }
    println!(
        "bench: el2 cycles over {ITERS} null calls: el2_cycles={} ",
        el2_cycles().wrapping_sub(c0)
    );
    let manager = match tc::status(p.mpidr[me]) {
        Ok(x) => x[0] == 0,
        Err(c) => fail!("TRACE_STATUS: {c}"),
    };
    println!(
        "bench: trace manager {}",
        if manager {
            "present"
        } else {
            "absent (bare relay)"
        }
    );
    if manager {
        trace_ops(me, "local")?;
        if p.ncpus > 1 {
            trace_ops((me + 1) % p.ncpus, "remote")?;
        }
    }
    suspend_cycles("suspend_trace_off")?;
    if manager {
        ok("TRACE_ENABLE", tc::enable(p.mpidr[me], CONFIG, 0, 0))?;
        suspend_cycles("suspend_trace_on")?;
        ok("TRACE_DISABLE", tc::disable(p.mpidr[me]))?;
        trace_cost(me)?;
        all_to_all()?;
    }
    println!("bench: done");
    Ok(())
}

/// The scenario: every core on, then the measurements from the boot core.
pub fn run() -> u64 {
    let mut report = Report::new();
    report.check("cpu-on", suite::cpu_on());
    report.check("bench", bench());
    report.finish()
}

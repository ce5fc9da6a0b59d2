//! `trace-stress`: every core hammers the trace manager at once.
//!
//! Each core runs `ops` operations, drawn from its own xorshift generator
//! (seeded from the core's index, so a run is reproducible up to timing):
//!
//! | share | operation                                                         |
//! |-------|-------------------------------------------------------------------|
//! | 40 %  | TRACE_ENABLE(random core, random valid config)                    |
//! | 30 %  | TRACE_DISABLE(random core)                                        |
//! | 20 %  | TRACE_STATUS(random core)                                         |
//! | 10 %  | lifecycle of the core itself: a power-down CPU_SUSPEND woken by its virtual timer (~1 ms), or, for a secondary when no other core is off, CPU_OFF and back through CPU_ON |
//!
//! After every operation the core asks TRACE_STATUS of the operation's
//! target and checks the answer: x0 = 0 with a coherent status (mode
//! ENABLED <=> hardware TRACING, and a config exactly when enabled), or
//! TARGET_OFF while the target may be off or in a power-down suspend.
//! It also checks that no generation it sees of a core ever goes back (and
//! that each of its own enables commits a newer one).
//!
//! **CPU_OFF protocol.** [`OFF`] says which core, if any, is off: a
//! secondary claims it (`IDLE -> GOING(me)`) before CPU_OFF, so at most
//! one core is off at a time. Every other core, between its operations
//! (and the boot core also while it waits for the others at the end),
//! looks at it: when it names another core and AFFINITY_INFO says that
//! core is OFF, the first to move it `GOING(j) -> REVIVING(j)` calls
//! CPU_ON. The core comes up fresh at the secondary entry, finds its
//! stress state (kept in [`STATE`], not on its stack) marked "off",
//! releases the claim (`-> IDLE`), checks its own status and carries on
//! with its next operation. [`DOWN_EPOCH`] (odd while a core is, or may
//! be, off or suspended) tells the other cores when TARGET_OFF is an
//! acceptable answer.
//!
//! Core 0 waits for all (at most `deadline=S` seconds of counter time,
//! [`DEADLINE_MS`] unless the bootargs say otherwise), then prints one line:
//!
//! ```text
//! guest: trace-stress ops=<n> checks=<n> violations=<n> errors=<n> suspends=<n> offline=<n> target_off=<n> ms=<n>
//! ```
//!
//! `checks` counts every TRACE_STATUS made, each answer checked (the one
//! after each operation, and a STATUS operation's own); `violations`
//! the incoherent statuses; `errors` everything else that went wrong (an
//! unexpected error code, a malformed answer, an exception, a generation
//! that went back, a failed PSCI call).

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use guest_api::psci;
use guest_api::trace::{self as abi, Status};

use crate::arch::{self, MAX_CPUS};
use crate::calls::{self, Ret6};
use crate::irq::{self, TIMER_IRQS};
use crate::report::{fail, msg, Msg};
use crate::smp::{self, Cmd};
use crate::trace_calls::{self as tc, TARGET_OFF};
use crate::{gic, platform, timer};

/// Operations per core unless the bootargs say `ops=N`.
pub const DEFAULT_OPS: u32 = 400;
/// Bound of the whole stress, in counter time, unless `deadline=` says.
/// Generous: on a two-CPU host, QEMU runs eight vCPUs that mostly wait
/// for each other's cross-core requests, and `make test` runs two QEMUs
/// at once; the runner's own timeout is 240 s.
pub const DEADLINE_MS: u64 = 150_000;
/// After the deadline, how long stragglers get to notice and stop.
const GRACE_MS: u64 = 3_000;
/// PSCI CPU_SUSPEND power_state (original format): power-down.
pub const POWER_DOWN: u32 = 0x0001_0000;
/// Failure details each core prints (the counters count them all).
const DETAILS_PER_CORE: u64 = 4;

/// What an operation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
enum Kind {
    Enable = 1,
    Disable = 2,
    Status = 3,
    Suspend = 4,
    Offline = 5,
}

impl Kind {
    fn name(v: u32) -> &'static str {
        match v {
            1 => "TRACE_ENABLE",
            2 => "TRACE_DISABLE",
            3 => "TRACE_STATUS",
            4 => "power-down CPU_SUSPEND",
            5 => "CPU_OFF",
            _ => "-",
        }
    }
}

/// Where a core is, for the report on a core that got stuck.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
enum Phase {
    NotStarted = 0,
    Operation = 1,
    Check = 2,
    Suspended = 3,
    Off = 4,
    Reviving = 5,
    Finished = 6,
}

impl Phase {
    fn name(v: u32) -> &'static str {
        match v {
            0 => "not started",
            1 => "in the operation",
            2 => "in the TRACE_STATUS check after it",
            3 => "in CPU_SUSPEND",
            4 => "off (CPU_OFF), waiting for CPU_ON",
            5 => "calling CPU_ON for another core",
            6 => "finished",
            _ => "?",
        }
    }
}

/// One core's stress state. It lives here, not on the core's stack, so
/// that a core that went through CPU_OFF and a fresh start carries on.
/// Only the core itself writes it while it runs; the boot core reads it
/// (after the core has published its result, or to report it stuck).
#[derive(Debug)]
struct CoreState {
    /// A stress is in progress on this core.
    active: AtomicBool,
    /// Its mailbox command's sequence number (secondaries).
    seq: AtomicU32,
    /// Operations to do.
    ops: AtomicU32,
    /// Index of the next operation.
    next: AtomicU32,
    /// The generator's state.
    rng: AtomicU64,
    /// The core is off (or coming back from CPU_OFF): its current
    /// operation, the CPU_OFF, ends in the fresh start.
    off: AtomicBool,
    /// The core stopped at the deadline.
    aborted: AtomicBool,
    /// Diagnostics: [`Phase`], [`Kind`] and target of the current operation.
    phase: AtomicU32,
    kind: AtomicU32,
    target: AtomicU32,
    /// The counters.
    ops_done: AtomicU64,
    checks: AtomicU64,
    violations: AtomicU64,
    errors: AtomicU64,
    suspends: AtomicU64,
    offline: AtomicU64,
    target_off: AtomicU64,
    /// Failure details printed so far.
    details: AtomicU64,
    /// The newest generation this core has seen of each core.
    last_gen: [AtomicU64; MAX_CPUS],
}

impl CoreState {
    const fn new() -> CoreState {
        CoreState {
            active: AtomicBool::new(false),
            seq: AtomicU32::new(0),
            ops: AtomicU32::new(0),
            next: AtomicU32::new(0),
            rng: AtomicU64::new(0),
            off: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            phase: AtomicU32::new(0),
            kind: AtomicU32::new(0),
            target: AtomicU32::new(0),
            ops_done: AtomicU64::new(0),
            checks: AtomicU64::new(0),
            violations: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            suspends: AtomicU64::new(0),
            offline: AtomicU64::new(0),
            target_off: AtomicU64::new(0),
            details: AtomicU64::new(0),
            last_gen: [const { AtomicU64::new(0) }; MAX_CPUS],
        }
    }

    fn reset(&self, ops: u32, seed: u64) {
        self.seq.store(0, Ordering::Relaxed);
        self.ops.store(ops, Ordering::Relaxed);
        self.next.store(0, Ordering::Relaxed);
        self.rng.store(seed, Ordering::Relaxed);
        self.off.store(false, Ordering::Relaxed);
        self.aborted.store(false, Ordering::Relaxed);
        self.phase
            .store(Phase::NotStarted as u32, Ordering::Relaxed);
        self.kind.store(0, Ordering::Relaxed);
        self.target.store(0, Ordering::Relaxed);
        for c in [
            &self.ops_done,
            &self.checks,
            &self.violations,
            &self.errors,
            &self.suspends,
            &self.offline,
            &self.target_off,
            &self.details,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        for g in &self.last_gen {
            g.store(0, Ordering::Relaxed);
        }
    }

    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn set_phase(&self, p: Phase) {
        self.phase.store(p as u32, Ordering::Relaxed);
    }
}

static STATE: [CoreState; MAX_CPUS] = [const { CoreState::new() }; MAX_CPUS];

/// `OFF`: nobody is off.
const IDLE: u64 = 0;
/// `OFF`: `GOING | j`: core j claimed the slot and is going (or is) off.
const GOING: u64 = 1 << 8;
/// `OFF`: `REVIVING | j`: a core saw j OFF and is calling (or called) CPU_ON.
const REVIVING: u64 = 2 << 8;
/// Which core is off: [`IDLE`], `GOING | j` or `REVIVING | j`.
static OFF: AtomicU64 = AtomicU64::new(IDLE);
/// Per core: incremented when the core starts going down (CPU_OFF or a
/// power-down CPU_SUSPEND) and again when it is back; odd while it may
/// be off. Another core that reads it before and after a call knows
/// whether TARGET_OFF was possible meanwhile.
static DOWN_EPOCH: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
/// The counter value at which every core stops.
static DEADLINE: AtomicU64 = AtomicU64::new(0);
/// Set when the stress is over (deadline): cores stop at once.
static ABORT: AtomicBool = AtomicBool::new(false);

/// xorshift64* generator.
#[derive(Clone, Copy, Debug)]
struct Rng(u64);

impl Rng {
    fn seed(index: usize) -> u64 {
        let s = 0x9e37_79b9_7f4a_7c15u64 ^ (index as u64 + 1).wrapping_mul(0xd1b5_4a32_d192_ed03);
        if s == 0 {
            1
        } else {
            s
        }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in 0..n (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        (self.next() >> 16) % n
    }
}

/// A random valid config: (word, start, end).
fn random_config(rng: &mut Rng) -> (u64, u64, u64) {
    let mut word = rng.next() & abi::CONFIG_ALL;
    if word & (abi::CONFIG_EL0 | abi::CONFIG_EL1) == 0 {
        word |= if rng.next() & 1 == 0 {
            abi::CONFIG_EL0
        } else {
            abi::CONFIG_EL1
        };
    }
    if word & abi::CONFIG_ADDR_FILTER == 0 {
        return (word, 0, 0);
    }
    let start = rng.below(abi::FILTER_END_MAX / 2) & !(abi::FILTER_ALIGN - 1);
    let end = if rng.below(16) == 0 {
        abi::FILTER_END_MAX
    } else {
        start + (rng.below(0x10_0000) + 1) * abi::FILTER_ALIGN
    };
    debug_assert!(abi::filter_valid(start, end));
    (word, start, end)
}

fn epoch(t: usize) -> u32 {
    DOWN_EPOCH[t].load(Ordering::SeqCst)
}

/// Moves this core's [`DOWN_EPOCH`] on: to odd as it starts going down,
/// to even once it is back.
fn mark_down(me: usize) {
    DOWN_EPOCH[me].fetch_add(1, Ordering::SeqCst);
}

/// Could core `t` have been off at some point since its epoch was `before`?
fn may_have_been_off(t: usize, before: u32) -> bool {
    before & 1 == 1 || epoch(t) != before
}

fn deadline_passed() -> bool {
    timer::now() >= DEADLINE.load(Ordering::Relaxed)
}

/// Records an error on this core, printing the first few.
fn error(st: &CoreState, args: core::fmt::Arguments) {
    CoreState::bump(&st.errors);
    detail(st, args);
}

fn detail(st: &CoreState, args: core::fmt::Arguments) {
    if st.details.fetch_add(1, Ordering::Relaxed) < DETAILS_PER_CORE {
        println!(
            "trace-stress: op {}: {args}",
            st.next.load(Ordering::Relaxed)
        );
    }
}

/// Sorts out an answer to a call on core `t` (whose epoch was `before`):
/// `Some(registers)` for x0 = 0; otherwise counts TARGET_OFF (if the
/// target may have been off) or an error, and returns `None`.
fn answer(st: &CoreState, what: &str, t: usize, before: u32, r: Ret6) -> Option<[u64; 6]> {
    match r {
        Ok(r) if r[0] == 0 => Some(r),
        Ok(r) if tc::code(&r) == TARGET_OFF && may_have_been_off(t, before) => {
            CoreState::bump(&st.target_off);
            None
        }
        Ok(r) => {
            let x0 = tc::code(&r);
            error(
                st,
                format_args!("{what}(cpu{t}): x0 = {x0} ({})", tc::error_name(x0)),
            );
            None
        }
        Err(c) => {
            error(st, format_args!("{what}(cpu{t}) raised {c}"));
            None
        }
    }
}

/// Records generation `g` of core `t`; `strict` when it must be newer
/// than anything seen before (this core's own enable committed it).
fn saw_generation(st: &CoreState, what: &str, t: usize, g: u64, strict: bool) {
    let last = st.last_gen[t].load(Ordering::Relaxed);
    if g < last || (strict && g == last) {
        error(
            st,
            format_args!(
                "{what}(cpu{t}): generation {g}, but this core saw {last} before{}",
                if strict {
                    " (an enable must commit a newer one)"
                } else {
                    ""
                }
            ),
        );
    }
    if g > last {
        st.last_gen[t].store(g, Ordering::Relaxed);
    }
}

/// Examines a TRACE_STATUS answer of core `t`.
fn examine(st: &CoreState, t: usize, r: [u64; 6]) {
    let s: Status = match tc::decode_status(Ok(r)) {
        Ok(s) => s,
        Err(e) => {
            error(st, format_args!("TRACE_STATUS(cpu{t}): {e}"));
            return;
        }
    };
    if !tc::coherent(&s) {
        CoreState::bump(&st.violations);
        detail(
            st,
            format_args!("VIOLATION: TRACE_STATUS(cpu{t}): {}", tc::Show(&s)),
        );
    }
    if !s.powered {
        error(
            st,
            format_args!("TRACE_STATUS(cpu{t}): powered bit clear: {}", tc::Show(&s)),
        );
    }
    saw_generation(st, "TRACE_STATUS", t, s.generation, false);
}

/// TRACE_STATUS of core `t`, checked.
fn status_check(st: &CoreState, t: usize) {
    let mpidr = platform::get().mpidr[t];
    let before = epoch(t);
    CoreState::bump(&st.checks);
    if let Some(r) = answer(st, "TRACE_STATUS", t, before, tc::status(mpidr)) {
        examine(st, t, r);
    }
}

/// A power-down CPU_SUSPEND of this core, woken by its virtual timer in
/// about `wake_ms`. `Ok(true)` if the core came back through the entry
/// point (the hypervisor simulated a power loss), `Ok(false)` if the
/// call returned 0.
pub fn power_down(wake_ms: u64) -> Result<bool, Msg> {
    power_down_with(wake_ms, || calls::cpu_suspend_powerdown(POWER_DOWN))
}

/// [`power_down`] with `suspend` making the CPU_SUSPEND call (with IRQs
/// masked and the timer armed), e.g. inside a measurement.
pub fn power_down_with(wake_ms: u64, suspend: impl FnOnce() -> i64) -> Result<bool, Msg> {
    let me = arch::core_index();
    arch::mask_irqs();
    let before = TIMER_IRQS[me].load(Ordering::Acquire);
    timer::arm_ms(wake_ms);
    let r = suspend();
    let resumed = r == arch::RESUMED_THROUGH_ENTRY;
    let reinit = if resumed {
        // The GIC CPU interface lost its state with the power.
        let r = gic::init_redistributor();
        gic::init_cpu_interface();
        r
    } else {
        Ok(())
    };
    arch::unmask_irqs();
    // Take the timer's interrupt if it has not been taken yet (a power
    // loss may have lost it: then stop the timer instead).
    if !irq::poll(wake_ms + 20, || {
        TIMER_IRQS[me].load(Ordering::Acquire) != before
    }) {
        timer::disable();
    }
    if let Err(e) = reinit {
        fail!("after resuming from CPU_SUSPEND: GIC redistributor: {e}");
    }
    if !resumed && r != 0 {
        fail!("CPU_SUSPEND(power-down {POWER_DOWN:#x}) returned {r}");
    }
    Ok(resumed)
}

/// Looks whether another core is off and waiting for CPU_ON: if so, and
/// AFFINITY_INFO says it is OFF, and this core is the first to claim the
/// job, calls CPU_ON for it.
fn revive(me: usize) {
    let state = OFF.load(Ordering::Acquire);
    if state & GOING == 0 {
        return;
    }
    let j = (state & 0xff) as usize;
    if j == me || j >= platform::get().ncpus {
        return;
    }
    let mpidr = platform::get().mpidr[j];
    match calls::affinity_info(mpidr) {
        Ok(psci::affinity::OFF) => {}
        Ok(_) => return,
        Err(c) => {
            error(&STATE[me], format_args!("AFFINITY_INFO(cpu{j}) raised {c}"));
            return;
        }
    }
    if OFF
        .compare_exchange(
            state,
            REVIVING | j as u64,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        return;
    }
    let st = &STATE[me];
    let phase = st.phase.load(Ordering::Relaxed);
    st.set_phase(Phase::Reviving);
    match calls::cpu_on(mpidr, arch::secondary_entry(), j as u64) {
        Ok(psci::ret::SUCCESS) => {}
        r => {
            error(st, format_args!("CPU_ON(cpu{j}) after its CPU_OFF: {r:?}"));
            // Let someone try again.
            OFF.store(state, Ordering::Release);
        }
    }
    st.phase.store(phase, Ordering::Relaxed);
}

/// The lifecycle operation of a secondary that got the slot: CPU_OFF.
/// Returns only if CPU_OFF failed; otherwise the core comes back through
/// [`resume_after_start`].
fn go_off(me: usize, st: &CoreState) {
    st.off.store(true, Ordering::SeqCst);
    st.set_phase(Phase::Off);
    arch::mask_irqs();
    timer::disable();
    gic::disable_cpu_interface();
    smp::set_online(me, false);
    let r = calls::cpu_off();
    // Only a refused CPU_OFF gets here.
    gic::init_cpu_interface();
    smp::set_online(me, true);
    arch::unmask_irqs();
    st.off.store(false, Ordering::SeqCst);
    mark_down(me);
    OFF.store(IDLE, Ordering::Release);
    error(st, format_args!("CPU_OFF returned: {r:?}"));
}

/// Does operation number `st.next` on core `me`, up to the check after it.
/// Does not return if the operation is a CPU_OFF that succeeded.
fn one_op(me: usize, st: &CoreState) {
    let p = platform::get();
    let n = p.ncpus;
    let mut rng = Rng(st.rng.load(Ordering::Relaxed));
    let roll = rng.below(100);
    let mut target = rng.below(n as u64) as usize;
    let config = random_config(&mut rng);
    let offline_wanted = rng.below(2) == 0;
    st.rng.store(rng.0, Ordering::Relaxed);
    let kind = match roll {
        0..40 => Kind::Enable,
        40..70 => Kind::Disable,
        70..90 => Kind::Status,
        _ => {
            target = me;
            let secondary = me != smp::boot_core();
            if secondary
                && offline_wanted
                && OFF
                    .compare_exchange(IDLE, GOING | me as u64, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                Kind::Offline
            } else {
                Kind::Suspend
            }
        }
    };
    st.kind.store(kind as u32, Ordering::Relaxed);
    st.target.store(target as u32, Ordering::Relaxed);
    st.set_phase(Phase::Operation);
    let mpidr = p.mpidr[target];
    let before = epoch(target);
    match kind {
        Kind::Enable => {
            let (word, start, end) = config;
            if let Some(r) = answer(
                st,
                "TRACE_ENABLE",
                target,
                before,
                tc::enable(mpidr, word, start, end),
            ) {
                saw_generation(st, "TRACE_ENABLE", target, r[1], true);
            }
        }
        Kind::Disable => {
            if let Some(r) = answer(st, "TRACE_DISABLE", target, before, tc::disable(mpidr)) {
                saw_generation(st, "TRACE_DISABLE", target, r[1], false);
            }
        }
        Kind::Status => {
            CoreState::bump(&st.checks);
            if let Some(r) = answer(st, "TRACE_STATUS", target, before, tc::status(mpidr)) {
                examine(st, target, r);
            }
        }
        Kind::Suspend => {
            st.set_phase(Phase::Suspended);
            mark_down(me);
            let r = power_down(1);
            mark_down(me);
            match r {
                Ok(_) => CoreState::bump(&st.suspends),
                Err(m) => error(st, format_args!("{m}")),
            }
        }
        Kind::Offline => {
            mark_down(me);
            go_off(me, st);
        }
    }
    finish_op(st, target);
}

/// The check after an operation on `target`, and the operation counted.
fn finish_op(st: &CoreState, target: usize) {
    st.set_phase(Phase::Check);
    status_check(st, target);
    st.next.fetch_add(1, Ordering::Relaxed);
    CoreState::bump(&st.ops_done);
}

/// Runs this core's remaining operations. `false` if it stopped early.
fn run_loop(me: usize) -> bool {
    let st = &STATE[me];
    let ops = st.ops.load(Ordering::Relaxed);
    while st.next.load(Ordering::Relaxed) < ops {
        if ABORT.load(Ordering::Relaxed) || deadline_passed() {
            st.aborted.store(true, Ordering::Relaxed);
            break;
        }
        revive(me);
        one_op(me, st);
    }
    st.set_phase(Phase::Finished);
    st.active.store(false, Ordering::Release);
    !st.aborted.load(Ordering::Relaxed)
}

/// A secondary's part, on command `seq` (the boot core has set up its
/// state, with the number of operations).
pub fn secondary(seq: u32) -> Result<(), Msg> {
    let me = arch::core_index();
    let st = &STATE[me];
    st.seq.store(seq, Ordering::Relaxed);
    st.active.store(true, Ordering::Release);
    if run_loop(me) {
        Ok(())
    } else {
        fail!("stopped at the deadline")
    }
}

/// Called by a secondary that came up fresh (CPU_ON): if it went off in
/// the middle of a stress, finishes the CPU_OFF operation, runs the rest
/// and returns its mailbox command's sequence number and result.
pub fn resume_after_start(me: usize) -> Option<(u32, Result<(), Msg>)> {
    let st = &STATE[me];
    if !st.active.load(Ordering::Acquire) || !st.off.swap(false, Ordering::SeqCst) {
        return None;
    }
    mark_down(me);
    for from in [REVIVING | me as u64, GOING | me as u64] {
        if OFF
            .compare_exchange(from, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            break;
        }
    }
    CoreState::bump(&st.offline);
    finish_op(st, me);
    let seq = st.seq.load(Ordering::Relaxed);
    let r = if run_loop(me) {
        Ok(())
    } else {
        Err(msg(format_args!("stopped at the deadline")))
    };
    Some((seq, r))
}

/// Totals over the cores.
#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    ops: u64,
    checks: u64,
    violations: u64,
    errors: u64,
    suspends: u64,
    offline: u64,
    target_off: u64,
}

impl Totals {
    fn add(&mut self, st: &CoreState) {
        let l = |c: &AtomicU64| c.load(Ordering::Acquire);
        self.ops += l(&st.ops_done);
        self.checks += l(&st.checks);
        self.violations += l(&st.violations);
        self.errors += l(&st.errors);
        self.suspends += l(&st.suspends);
        self.offline += l(&st.offline);
        self.target_off += l(&st.target_off);
    }
}

fn describe(i: usize) {
    let st = &STATE[i];
    let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
    println!(
        "trace-stress: cpu{i}: {}/{} ops done, last {} on cpu{}, {}; checks={} violations={} errors={} suspends={} offline={} target_off={}",
        l(&st.ops_done),
        st.ops.load(Ordering::Relaxed),
        Kind::name(st.kind.load(Ordering::Relaxed)),
        st.target.load(Ordering::Relaxed),
        Phase::name(st.phase.load(Ordering::Relaxed)),
        l(&st.checks),
        l(&st.violations),
        l(&st.errors),
        l(&st.suspends),
        l(&st.offline),
        l(&st.target_off),
    );
}

/// Sleeps about a millisecond in WFI (woken by the virtual timer), so that
/// a waiting core leaves the host's CPUs to the cores that work.
fn nap() {
    let me = arch::core_index();
    let before = TIMER_IRQS[me].load(Ordering::Acquire);
    timer::arm_ms(1);
    if !irq::wait_wfi(100, || TIMER_IRQS[me].load(Ordering::Acquire) != before) {
        timer::disable();
    }
}

/// Brings every secondary that is off back on (the stress must leave
/// none off). Returns the problems.
pub fn all_back_on() -> Result<(), Msg> {
    let p = platform::get();
    let boot = smp::boot_core();
    let mut first: Option<Msg> = None;
    for i in (0..p.ncpus).filter(|&i| i != boot) {
        let deadline = timer::Deadline::after_ms(2000);
        let r = loop {
            match calls::affinity_info(p.mpidr[i]) {
                Ok(psci::affinity::ON) if smp::online(i) => break Ok(()),
                Ok(psci::affinity::OFF) => {
                    let starts = smp::starts(i);
                    match calls::cpu_on(p.mpidr[i], arch::secondary_entry(), i as u64) {
                        Ok(psci::ret::SUCCESS | psci::ret::ON_PENDING | psci::ret::ALREADY_ON) => {}
                        r => break Err(msg(format_args!("CPU_ON(cpu{i}): {r:?}"))),
                    }
                    irq::poll(2000, || smp::starts(i) != starts && smp::online(i));
                }
                Ok(_) => {}
                Err(c) => break Err(msg(format_args!("AFFINITY_INFO(cpu{i}): {c}"))),
            }
            if deadline.expired() {
                break Err(msg(format_args!("cpu{i} is not back on")));
            }
            timer::delay_us(200);
        };
        if let Err(m) = r {
            println!("trace-stress: {m}");
            first.get_or_insert(m);
        }
    }
    first.map_or(Ok(()), Err)
}

/// Runs the stress on every online core; the check's result.
pub fn run(ops: u32, expect_violations: bool, deadline_ms: u64) -> Result<(), Msg> {
    let p = platform::get();
    let n = p.ncpus;
    let boot = smp::boot_core();
    let online = smp::online_mask();
    let cores = online[..n].iter().filter(|&&o| o).count();
    for (i, st) in STATE.iter().enumerate().take(n) {
        st.reset(ops, Rng::seed(i));
        st.active.store(false, Ordering::Relaxed);
    }
    OFF.store(IDLE, Ordering::Relaxed);
    ABORT.store(false, Ordering::Relaxed);
    let t0 = timer::now();
    DEADLINE.store(t0 + timer::ms_to_ticks(deadline_ms), Ordering::Release);
    println!(
        "trace-stress: {cores} core(s) x {ops} operations{}",
        if expect_violations {
            " (expecting violations)"
        } else {
            ""
        }
    );

    let mut seqs = [None; MAX_CPUS];
    for i in smp::online_secondaries() {
        STATE[i].active.store(true, Ordering::Release);
        seqs[i] = Some(smp::post(i, Cmd::TraceStress, ops as u64));
    }
    STATE[boot].active.store(true, Ordering::Release);
    let boot_ok = run_loop(boot);

    // Wait for everyone, reviving whoever goes off meanwhile.
    let finished = |seqs: &[Option<u32>; MAX_CPUS]| {
        seqs.iter()
            .enumerate()
            .all(|(i, s)| s.is_none_or(|s| smp::done(i, s).is_some()))
    };
    while !finished(&seqs) && !deadline_passed() {
        revive(boot);
        nap();
    }
    let mut stuck = [false; MAX_CPUS];
    if !finished(&seqs) {
        ABORT.store(true, Ordering::Release);
        for (i, s) in seqs.iter().enumerate() {
            if let Some(s) = *s {
                if smp::done(i, s).is_none() {
                    stuck[i] = true;
                    println!(
                        "trace-stress: cpu{i} did not finish within {deadline_ms} ms ({}):",
                        smp::progress(i, s)
                    );
                    describe(i);
                }
            }
        }
        // Give them a moment to notice the abort.
        let grace = timer::Deadline::after_ms(GRACE_MS);
        while !finished(&seqs) && !grace.expired() {
            revive(boot);
            nap();
        }
    }
    let elapsed_ms = timer::ticks_to_us(timer::now() - t0) / 1000;
    let back = all_back_on();

    let mut total = Totals::default();
    for i in (0..n).filter(|&i| online[i]) {
        total.add(&STATE[i]);
        describe(i);
    }
    println!(
        "guest: trace-stress ops={} checks={} violations={} errors={} suspends={} offline={} target_off={} ms={elapsed_ms}",
        total.ops,
        total.checks,
        total.violations,
        total.errors,
        total.suspends,
        total.offline,
        total.target_off
    );
    println!("trace-stress: {elapsed_ms} ms");

    let nstuck = stuck.iter().filter(|&&s| s).count();
    if nstuck > 0 {
        fail!("{nstuck} core(s) stuck (see their last state above)");
    }
    if !boot_ok {
        fail!(
            "cpu{boot} stopped at the deadline after {} ops",
            STATE[boot].ops_done.load(Ordering::Relaxed)
        );
    }
    back?;
    let want_ops = cores as u64 * ops as u64;
    if expect_violations {
        if total.violations == 0 {
            fail!(
                "no violation seen in {} checks, and violations were expected",
                total.checks
            );
        }
        return Ok(());
    }
    if total.violations != 0 || total.errors != 0 || total.ops != want_ops {
        fail!(
            "violations={} errors={} ops={} (want 0, 0, {want_ops})",
            total.violations,
            total.errors,
            total.ops
        );
    }
    Ok(())
}

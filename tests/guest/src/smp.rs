//! Secondary cores: their Rust entry, their idle loop and the mailboxes
//! through which the boot core hands them work.
//!
//! A secondary idles in WFI (IRQs masked around the mailbox check, so no
//! wake-up is lost). The boot core posts a command in the core's mailbox
//! (kind, argument, then a new sequence number) and rings the doorbell SGI;
//! the core runs the command and publishes the sequence number as done,
//! with the result.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::arch::{self, MAX_CPUS};
use crate::report::Msg;
use crate::{
    calls, console_test, fuzz, gic, hostile, irq, isolation, platform, story, stress, suite, timer,
    vanish,
};

/// Commands the boot core gives secondaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Cmd {
    /// Take `arg` timer interrupts.
    Timer = 1,
    /// Send this core's IPI SGI to every other online core.
    Ipi = 2,
    /// PING every online core.
    Ping = 3,
    /// The CPU_SUSPEND sequence.
    Suspend = 4,
    /// CPU_OFF (comes back only through CPU_ON and the entry point).
    Off = 5,
    /// CPU_OFF keeping the context, to come back through the resume path.
    ResumeSelftest = 6,
    /// This core's part of `trace-isolation`.
    TraceIsolation = 7,
    /// Check that OSLSR_EL1.OSLK reads 1 (a core freshly started).
    OsLockSet = 8,
    /// This core's part of `trace-stress`.
    TraceStress = 9,
    /// One power-down CPU_SUSPEND, woken by the timer after `arg` ms.
    PowerDown = 10,
    /// TRACE_DISABLE of core `arg`.
    TraceDisable = 11,
    /// This core's share of the benchmark's all-to-all run (`arg` requests).
    BenchAllToAll = 12,
    /// This core's share of the ABI fuzz.
    Fuzz = 13,
    /// This core's part of the hostile system-register walk and OS lock.
    Hostile = 14,
    /// The console scenario's lines and aborts, arg = lines.
    Console = 15,
    /// Flood core `arg` with trace calls until it is off (`test=offflood`).
    Flood = 16,
    /// Enable own trace, wait for the flood, CPU_OFF (`test=offflood`).
    OffFlooded = 17,
    /// Run the `test=insntrace` program on this core.
    InsnTrace = 18,
}

impl Cmd {
    fn from_u32(v: u32) -> Option<Cmd> {
        Some(match v {
            1 => Cmd::Timer,
            2 => Cmd::Ipi,
            3 => Cmd::Ping,
            4 => Cmd::Suspend,
            5 => Cmd::Off,
            6 => Cmd::ResumeSelftest,
            7 => Cmd::TraceIsolation,
            8 => Cmd::OsLockSet,
            9 => Cmd::TraceStress,
            10 => Cmd::PowerDown,
            11 => Cmd::TraceDisable,
            12 => Cmd::BenchAllToAll,
            13 => Cmd::Fuzz,
            14 => Cmd::Hostile,
            15 => Cmd::Console,
            16 => Cmd::Flood,
            17 => Cmd::OffFlooded,
            18 => Cmd::InsnTrace,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Cmd::Timer => "timer",
            Cmd::Ipi => "ipi",
            Cmd::Ping => "ping",
            Cmd::Suspend => "suspend",
            Cmd::Off => "cpu-off",
            Cmd::ResumeSelftest => "resume-path",
            Cmd::TraceIsolation => "trace-isolation",
            Cmd::OsLockSet => "os-lock",
            Cmd::TraceStress => "trace-stress",
            Cmd::PowerDown => "power-down",
            Cmd::TraceDisable => "trace-disable",
            Cmd::BenchAllToAll => "bench-all-to-all",
            Cmd::Fuzz => "abi-fuzz",
            Cmd::Hostile => "sysreg-walk",
            Cmd::Console => "console-lines",
            Cmd::Flood => "flood",
            Cmd::OffFlooded => "cpu-off-flooded",
            Cmd::InsnTrace => "insntrace-program",
        }
    }
}

#[derive(Debug)]
struct Mailbox {
    seq: AtomicU32,
    cmd: AtomicU32,
    arg: AtomicU64,
    started: AtomicU32,
    done: AtomicU32,
    passed: AtomicBool,
}

static MAILBOX: [Mailbox; MAX_CPUS] = [const {
    Mailbox {
        seq: AtomicU32::new(0),
        cmd: AtomicU32::new(0),
        arg: AtomicU64::new(0),
        started: AtomicU32::new(0),
        done: AtomicU32::new(0),
        passed: AtomicBool::new(false),
    }
}; MAX_CPUS];

/// Is the core up and idling (or working)?
static ONLINE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// How many times the core came up fresh through its entry point.
static STARTS: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
/// How many times its bring-up failed.
static INIT_FAILURES: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
static BOOT_CORE: AtomicUsize = AtomicUsize::new(0);

/// Records the boot core's index.
pub fn set_boot_core(index: usize) {
    BOOT_CORE.store(index, Ordering::Relaxed);
}

/// The boot core's index.
pub fn boot_core() -> usize {
    BOOT_CORE.load(Ordering::Relaxed)
}

/// Is core `i` online?
pub fn online(i: usize) -> bool {
    ONLINE[i].load(Ordering::Acquire)
}

/// The online cores, as a mask over indices.
pub fn online_mask() -> [bool; MAX_CPUS] {
    core::array::from_fn(online)
}

/// Online cores other than the boot core.
pub fn online_secondaries() -> impl Iterator<Item = usize> {
    let boot = boot_core();
    let n = platform::get().ncpus;
    (0..n).filter(move |&i| i != boot && online(i))
}

/// Fresh starts of core `i` so far.
pub fn starts(i: usize) -> u32 {
    STARTS[i].load(Ordering::Acquire)
}

/// Failed bring-ups of core `i` so far.
pub fn init_failures(i: usize) -> u32 {
    INIT_FAILURES[i].load(Ordering::Acquire)
}

/// Sets up this core's redistributor and CPU interface, unmasks IRQs and
/// marks the core online.
pub fn init_this_core() -> Result<(), &'static str> {
    timer::disable();
    gic::init_redistributor()?;
    gic::init_cpu_interface();
    arch::unmask_irqs();
    ONLINE[arch::core_index()].store(true, Ordering::Release);
    Ok(())
}

/// Rust entry of a core started (fresh) through `guest_secondary_entry`:
/// the MMU is on and the core's stack set.
pub extern "C" fn secondary_main(index: u64) -> ! {
    let me = index as usize;
    let mailbox = &MAILBOX[me];
    // Commands posted before this start are not for this life of the core.
    let seen = mailbox.seq.load(Ordering::Acquire);
    if let Err(e) = init_this_core() {
        println!("bring-up failed: {e}");
        INIT_FAILURES[me].fetch_add(1, Ordering::Release);
        arch::park();
    }
    STARTS[me].fetch_add(1, Ordering::Release);
    // Back from a CPU_OFF in the middle of `trace-stress`: carry on with it.
    if let Some((seq, result)) = stress::resume_after_start(me) {
        complete(me, seq, Cmd::TraceStress, result);
    }
    idle(me, seen);
}

/// Marks core `me` online or not (around a CPU_OFF it makes itself).
pub fn set_online(me: usize, online: bool) {
    ONLINE[me].store(online, Ordering::Release);
}

/// Publishes the result of command `seq`.
fn complete(me: usize, seq: u32, cmd: Cmd, result: Result<(), Msg>) {
    if let Err(why) = &result {
        println!("{}: {why}", cmd.name());
    }
    let mailbox = &MAILBOX[me];
    mailbox.passed.store(result.is_ok(), Ordering::Relaxed);
    mailbox.done.store(seq, Ordering::Release);
}

fn idle(me: usize, mut seen: u32) -> ! {
    let mailbox = &MAILBOX[me];
    loop {
        arch::mask_irqs();
        let seq = mailbox.seq.load(Ordering::Acquire);
        if seq == seen {
            arch::wfi();
            arch::unmask_irqs();
            continue;
        }
        arch::unmask_irqs();
        seen = seq;
        mailbox.started.store(seq, Ordering::Release);
        let cmd = mailbox.cmd.load(Ordering::Relaxed);
        let arg = mailbox.arg.load(Ordering::Relaxed);
        match Cmd::from_u32(cmd) {
            Some(c) => complete(me, seq, c, run(c, arg, seq)),
            None => {
                println!("command: unknown {cmd}");
                mailbox.passed.store(false, Ordering::Relaxed);
                mailbox.done.store(seq, Ordering::Release);
            }
        }
    }
}

fn run(cmd: Cmd, arg: u64, seq: u32) -> Result<(), Msg> {
    match cmd {
        Cmd::Timer => irq::take_timer_irqs(arg as u32),
        Cmd::Ipi => {
            suite::ipi_send();
            Ok(())
        }
        Cmd::Ping => suite::ping_all(),
        Cmd::Suspend => suite::suspend_sequence(),
        Cmd::Off => go_off(),
        Cmd::ResumeSelftest => suite::resume_selftest_sequence(),
        Cmd::TraceIsolation => isolation::local(),
        Cmd::OsLockSet => isolation::expect_oslk(true, "after a fresh CPU_ON"),
        Cmd::TraceStress => stress::secondary(seq),
        Cmd::PowerDown => story::power_down(arg),
        Cmd::TraceDisable => story::disable_other(arg as usize),
        Cmd::BenchAllToAll => {
            crate::bench::pmu_init();
            crate::bench::all_to_all_share(arg)
        }
        Cmd::Fuzz => fuzz::secondary(),
        Cmd::Hostile => hostile::local(),
        Cmd::Console => console_test::lines(arg),
        Cmd::Flood => vanish::flood(arg as usize),
        Cmd::OffFlooded => vanish::target(),
        Cmd::InsnTrace => crate::insntrace::run_program(),
    }
}

/// CPU_OFF: quiesces the core and powers it off. Returns only if CPU_OFF
/// did, which is a failure.
fn go_off() -> Result<(), Msg> {
    go_off_stamped(|| {})
}

/// [`go_off`], calling `stamp` just before the CPU_OFF call.
pub fn go_off_stamped(stamp: impl FnOnce()) -> Result<(), Msg> {
    let me = arch::core_index();
    arch::mask_irqs();
    timer::disable();
    gic::disable_cpu_interface();
    ONLINE[me].store(false, Ordering::Release);
    stamp();
    let r = calls::cpu_off();
    gic::init_cpu_interface();
    ONLINE[me].store(true, Ordering::Release);
    arch::unmask_irqs();
    match r {
        Ok(v) => crate::report::fail!("CPU_OFF returned {v}"),
        Err(c) => crate::report::fail!("CPU_OFF raised {c}"),
    }
}

/// Posts `cmd` to core `i` and rings its doorbell; the sequence number to
/// wait for with [`wait_done`].
pub fn post(i: usize, cmd: Cmd, arg: u64) -> u32 {
    let mailbox = &MAILBOX[i];
    mailbox.cmd.store(cmd as u32, Ordering::Relaxed);
    mailbox.arg.store(arg, Ordering::Relaxed);
    let seq = mailbox.seq.fetch_add(1, Ordering::Release).wrapping_add(1);
    gic::send_sgi(gic::SGI_DOORBELL, platform::get().mpidr[i]);
    seq
}

/// Has core `i` finished command `seq`? `Some(passed)` if so.
pub fn done(i: usize, seq: u32) -> Option<bool> {
    let mailbox = &MAILBOX[i];
    (mailbox.done.load(Ordering::Acquire) == seq).then(|| mailbox.passed.load(Ordering::Relaxed))
}

/// Where core `i` is with command `seq`, for failure messages.
pub fn progress(i: usize, seq: u32) -> &'static str {
    let mailbox = &MAILBOX[i];
    if mailbox.done.load(Ordering::Acquire) == seq {
        "finished"
    } else if mailbox.started.load(Ordering::Acquire) == seq {
        "started, not finished"
    } else {
        "not started (doorbell not taken?)"
    }
}

/// Waits (polling, bounded by `ms`) for core `i` to finish command `seq`:
/// `Some(passed)`, or `None` on timeout.
pub fn wait_done(i: usize, seq: u32, ms: u64) -> Option<bool> {
    let mut result = None;
    irq::poll(ms, || {
        result = done(i, seq);
        result.is_some()
    });
    result
}

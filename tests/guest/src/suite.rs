//! The `test=smp` suite: hyp-calls, cpu-on, timer, ipi, ping, suspend,
//! (resume-path,) cpu-off-on. The boot core drives it; secondaries run
//! their parts on command (see [`crate::smp`]).

use core::sync::atomic::{AtomicBool, Ordering};

use guest_api::{hyp, psci, smccc};

use crate::arch::{self, MAX_CPUS};
use crate::calls::{self, Conduit, Ret};
use crate::irq::{self, IPI_RECEIVED, IPI_SENT, IPI_WAVE, TIMER_IRQS};
use crate::report::{fail, Msg, Report, Subchecks};
use crate::smp::{self, Cmd};
use crate::{gic, platform, timer};

/// Bound of every wait for other cores.
const WAIT_MS: u64 = 5000;
/// Timer interrupts each core takes in the timer check.
const TIMER_ROUNDS: u32 = 3;
/// PSCI CPU_SUSPEND power_state (original format): standby.
const STANDBY: u32 = 0;
/// PSCI CPU_SUSPEND power_state (original format): power-down (StateType).
const POWER_DOWN: u32 = 0x0001_0000;

/// Did CALL_UID name our hypervisor? (Without it, on bare QEMU, the checks
/// that need the hypervisor's PING skip those parts.)
static HYP_PRESENT: AtomicBool = AtomicBool::new(false);

fn hyp_present() -> bool {
    HYP_PRESENT.load(Ordering::Relaxed)
}

/// Runs the suite; the exit status.
pub fn run(resume_selftest: bool) -> u64 {
    let mut report = Report::new();
    report.check("hyp-calls", hyp_calls());
    if !hyp_present() {
        println!(
            "note: CALL_UID did not name this hypervisor: PING parts of cpu-off-on are skipped"
        );
    }
    report.check("cpu-on", cpu_on());
    report.check("timer", timer_check());
    report.check("ipi", ipi());
    report.check("ping", ping());
    report.check("suspend", suspend());
    if resume_selftest {
        report.check("resume-path", resume_path());
    }
    report.check("cpu-off-on", cpu_off_on());
    report.check("no-stray-irqs", stray_irqs());
    report.finish()
}

/// Checks that a call returned `want` in x0.
fn expect_x0(s: &mut Subchecks, what: core::fmt::Arguments, r: Ret, want: i64) {
    match r {
        Ok(v) if v[0] as i64 == want => {}
        Ok(v) => s.fail(format_args!(
            "{what}: x0 = {:#x} ({}), want {want:#x} ({want})",
            v[0], v[0] as i64
        )),
        Err(c) => s.fail(format_args!("{what}: {c}")),
    }
}

fn hyp_calls() -> Result<(), Msg> {
    let mut s = Subchecks::new("hyp-calls");
    let conduit = platform::get().psci_conduit;

    let version = smccc::VERSION_1_2 as i64;
    expect_x0(
        &mut s,
        format_args!("SMCCC_VERSION (hvc)"),
        calls::hyp(smccc::SMCCC_VERSION, 0),
        version,
    );
    if conduit == Conduit::Smc {
        expect_x0(
            &mut s,
            format_args!("SMCCC_VERSION (smc)"),
            calls::call(Conduit::Smc, smccc::SMCCC_VERSION, 0, 0, 0),
            version,
        );
    }
    // An Arm Architecture Service function ID that no SMCCC version defines.
    expect_x0(
        &mut s,
        format_args!("SMCCC_ARCH_FEATURES(0x80007fff)"),
        calls::hyp(smccc::SMCCC_ARCH_FEATURES, 0x8000_7fff),
        smccc::NOT_SUPPORTED,
    );

    match calls::hyp(hyp::CALL_UID, 0) {
        Ok(r) if smccc::Uid::from_registers(r) == hyp::UID => {
            HYP_PRESENT.store(true, Ordering::Relaxed);
        }
        Ok(r) => s.fail(format_args!(
            "CALL_UID: w0..w3 = {:#010x} {:#010x} {:#010x} {:#010x}, not this hypervisor's UID",
            r[0] as u32, r[1] as u32, r[2] as u32, r[3] as u32
        )),
        Err(c) => s.fail(format_args!("CALL_UID: {c}")),
    }
    expect_x0(
        &mut s,
        format_args!("CALL_COUNT"),
        calls::hyp(hyp::CALL_COUNT, 0),
        hyp::CALLS.len() as i64,
    );
    match calls::hyp(hyp::REVISION, 0) {
        Ok(r) if r[0] == hyp::REVISION_MAJOR && r[1] == hyp::REVISION_MINOR => {}
        Ok(r) => s.fail(format_args!(
            "REVISION: {}.{} ({:#x}, {:#x}), want {}.{}",
            r[0] as i64,
            r[1] as i64,
            r[0],
            r[1],
            hyp::REVISION_MAJOR,
            hyp::REVISION_MINOR
        )),
        Err(c) => s.fail(format_args!("REVISION: {c}")),
    }
    expect_x0(
        &mut s,
        format_args!("ABI_VERSION"),
        calls::hyp(hyp::ABI_VERSION, 0),
        hyp::ABI_VERSION_VALUE as i64,
    );
    for id in hyp::CALLS {
        expect_x0(
            &mut s,
            format_args!("FEATURES({id:#x})"),
            calls::hyp(hyp::FEATURES, id as u64),
            smccc::SUCCESS,
        );
    }
    expect_x0(
        &mut s,
        format_args!("FEATURES(0xc60000ff)"),
        calls::hyp(hyp::FEATURES, 0xC600_00FF),
        smccc::NOT_SUPPORTED,
    );
    for id in [0xC600_00FFu32, 0x8600_0123, 0xC200_0000, 0x8500_0000] {
        match calls::hyp(id, 0) {
            Ok(r) if r[0] as i64 == smccc::NOT_SUPPORTED => {}
            Ok(r) => s.fail(format_args!(
                "unknown function {id:#x}: x0 = {:#x} ({}), want -1",
                r[0], r[0] as i64
            )),
            Err(c) => s.fail(format_args!("unknown function {id:#x}: {c}")),
        }
    }

    match calls::psci(psci::VERSION, 0, 0, 0) {
        Ok(v) if (0x1_0000..=0xffff_ffff).contains(&v) => {
            println!("PSCI version {}.{}", v >> 16, v & 0xffff);
        }
        Ok(v) => s.fail(format_args!("PSCI_VERSION: {v:#x}, want 1.0 or later")),
        Err(c) => s.fail(format_args!("PSCI_VERSION: {c}")),
    }
    match calls::psci(psci::FEATURES, psci::CPU_ON_64 as u64, 0, 0) {
        Ok(0) => {}
        Ok(v) => s.fail(format_args!("PSCI_FEATURES(CPU_ON_64): {v}, want 0")),
        Err(c) => s.fail(format_args!("PSCI_FEATURES(CPU_ON_64): {c}")),
    }
    s.result()
}

/// Waits for core `i` to come up fresh for the `starts`+1-th time.
pub(crate) fn wait_started(i: usize, starts: u32, failures: u32) -> Result<(), Msg> {
    let mut failed = false;
    let up = irq::poll(WAIT_MS, || {
        failed = smp::init_failures(i) != failures;
        failed || (smp::starts(i) != starts && smp::online(i))
    });
    if failed {
        fail!("core {i} started but its bring-up failed");
    }
    if !up {
        fail!("core {i} did not come up within {WAIT_MS} ms");
    }
    Ok(())
}

pub(crate) fn cpu_on() -> Result<(), Msg> {
    let mut s = Subchecks::new("cpu-on");
    let p = platform::get();
    let boot = smp::boot_core();
    let entry = arch::secondary_entry();
    let mut started = [false; MAX_CPUS];
    let mut starts = [0; MAX_CPUS];
    let mut failures = [0; MAX_CPUS];
    for i in (0..p.ncpus).filter(|&i| i != boot) {
        starts[i] = smp::starts(i);
        failures[i] = smp::init_failures(i);
        match calls::cpu_on(p.mpidr[i], entry, i as u64) {
            Ok(psci::ret::SUCCESS) => started[i] = true,
            Ok(v) => s.fail(format_args!(
                "CPU_ON(core {i}, MPIDR {:#x}) returned {v}",
                p.mpidr[i]
            )),
            Err(c) => s.fail(format_args!("CPU_ON(core {i}): {c}")),
        }
    }
    for i in (0..p.ncpus).filter(|&i| started[i]) {
        s.add(wait_started(i, starts[i], failures[i]));
    }
    let mut up = 1;
    for i in smp::online_secondaries() {
        up += 1;
        match calls::cpu_on(p.mpidr[i], entry, i as u64) {
            Ok(psci::ret::ALREADY_ON) => {}
            Ok(v) => s.fail(format_args!(
                "CPU_ON of online core {i}: {v}, want ALREADY_ON (-4)"
            )),
            Err(c) => s.fail(format_args!("CPU_ON of online core {i}: {c}")),
        }
    }
    if p.ncpus == 1 {
        match calls::cpu_on(p.mpidr[boot], entry, boot as u64) {
            Ok(psci::ret::ALREADY_ON) => {}
            Ok(v) => s.fail(format_args!(
                "CPU_ON of the calling core: {v}, want ALREADY_ON (-4)"
            )),
            Err(c) => s.fail(format_args!("CPU_ON of the calling core: {c}")),
        }
    }
    match calls::cpu_on(0xff00, entry, 0) {
        Ok(psci::ret::INVALID_PARAMETERS) => {}
        Ok(v) => s.fail(format_args!(
            "CPU_ON(MPIDR 0xff00): {v}, want INVALID_PARAMETERS (-2)"
        )),
        Err(c) => s.fail(format_args!("CPU_ON(MPIDR 0xff00): {c}")),
    }
    println!("{up} of {} core(s) online", p.ncpus);
    s.result()
}

/// Posts `cmd` to every online secondary, runs `own` here meanwhile, and
/// waits for them all; records each failure.
pub(crate) fn on_all_cores(
    s: &mut Subchecks,
    cmd: Cmd,
    arg: u64,
    wait_ms: u64,
    own: impl FnOnce() -> Result<(), Msg>,
) {
    let mut seqs = [None; MAX_CPUS];
    for i in smp::online_secondaries() {
        seqs[i] = Some(smp::post(i, cmd, arg));
    }
    if let Err(m) = own() {
        s.fail(format_args!("core {}: {m}", smp::boot_core()));
    }
    for (i, seq) in seqs.iter().enumerate() {
        let Some(seq) = *seq else { continue };
        match smp::wait_done(i, seq, wait_ms) {
            Some(true) => {}
            Some(false) => s.fail(format_args!("core {i} failed its part (see its lines)")),
            None => s.fail(format_args!(
                "core {i} did not finish within {wait_ms} ms: {}; {} doorbell(s), {} timer interrupt(s) taken",
                smp::progress(i, seq),
                irq::DOORBELLS[i].load(Ordering::Relaxed),
                TIMER_IRQS[i].load(Ordering::Relaxed)
            )),
        }
    }
}

fn timer_check() -> Result<(), Msg> {
    let mut s = Subchecks::new("timer");
    let n = platform::get().ncpus;
    let online = smp::online_mask();
    let before: [u32; MAX_CPUS] = core::array::from_fn(|i| TIMER_IRQS[i].load(Ordering::Acquire));
    on_all_cores(&mut s, Cmd::Timer, TIMER_ROUNDS as u64, WAIT_MS, || {
        irq::take_timer_irqs(TIMER_ROUNDS)
    });
    for i in (0..n).filter(|&i| online[i]) {
        let got = TIMER_IRQS[i]
            .load(Ordering::Acquire)
            .wrapping_sub(before[i]);
        s.expect(
            got == TIMER_ROUNDS,
            format_args!("core {i} took {got} timer interrupts, want {TIMER_ROUNDS}"),
        );
    }
    s.result()
}

/// Sends this core's IPI SGI to every other online core.
pub fn ipi_send() {
    let p = platform::get();
    let me = arch::core_index();
    for t in (0..p.ncpus).filter(|&t| t != me && smp::online(t)) {
        IPI_SENT[me][t].fetch_add(1, Ordering::Relaxed);
        gic::send_sgi(irq::ipi_sgi(me), p.mpidr[t]);
    }
}

fn ipi() -> Result<(), Msg> {
    let mut s = Subchecks::new("ipi");
    let p = platform::get();
    let n = p.ncpus;
    let boot = smp::boot_core();
    for row in IPI_RECEIVED.iter().chain(IPI_SENT.iter()) {
        for c in row {
            c.store(0, Ordering::Relaxed);
        }
    }
    let online = smp::online_mask();
    let up = online.iter().filter(|&&o| o).count();

    if up == 1 {
        // Alone: an SGI to itself.
        IPI_WAVE.store(irq::ipi_wave(boot), Ordering::Release);
        IPI_SENT[boot][boot].fetch_add(1, Ordering::Relaxed);
        gic::send_sgi(irq::ipi_sgi(boot), p.mpidr[boot]);
        if !irq::poll(WAIT_MS, || {
            IPI_RECEIVED[boot][boot].load(Ordering::Acquire) != 0
        }) {
            fail!(
                "SGI {} sent to itself was not taken within {WAIT_MS} ms",
                irq::ipi_sgi(boot)
            );
        }
        irq::poll(10, || false);
        let got = IPI_RECEIVED[boot][boot].load(Ordering::Acquire);
        if got != 1 {
            fail!("SGI sent to itself taken {got} times");
        }
        return Ok(());
    }

    let waves = irq::ipi_wave(n - 1) + 1;
    for wave in 0..waves {
        IPI_WAVE.store(wave, Ordering::Release);
        let senders = (0..n).filter(|&i| online[i] && irq::ipi_wave(i) == wave);
        let mut seqs = [None; MAX_CPUS];
        let mut boot_sends = false;
        for i in senders {
            if i == boot {
                boot_sends = true;
            } else {
                seqs[i] = Some(smp::post(i, Cmd::Ipi, 0));
            }
        }
        if boot_sends {
            ipi_send();
        }
        let arrived = |t: usize, s: usize| IPI_RECEIVED[t][s].load(Ordering::Acquire) != 0;
        let all = irq::poll(WAIT_MS, || {
            (0..n).filter(|&t| online[t]).all(|t| {
                (0..n)
                    .filter(|&s| s != t && online[s] && irq::ipi_wave(s) == wave)
                    .all(|s| arrived(t, s))
            })
        });
        if !all {
            s.fail(format_args!(
                "wave {wave}: not every SGI arrived within {WAIT_MS} ms"
            ));
        }
        for (i, seq) in seqs.iter().enumerate() {
            let Some(seq) = *seq else { continue };
            if smp::wait_done(i, seq, WAIT_MS).is_none() {
                s.fail(format_args!(
                    "core {i} did not finish sending: {}; {} doorbell(s) taken",
                    smp::progress(i, seq),
                    irq::DOORBELLS[i].load(Ordering::Relaxed)
                ));
            }
        }
    }
    // Let any duplicate arrive before counting.
    irq::poll(10, || false);
    let mut total = 0;
    for t in (0..n).filter(|&t| online[t]) {
        for src in (0..n).filter(|&src| online[src]) {
            let want = (src != t) as u32;
            let sent = IPI_SENT[src][t].load(Ordering::Acquire);
            let got = IPI_RECEIVED[t][src].load(Ordering::Acquire);
            total += got;
            s.expect(
                sent == want && got == want,
                format_args!(
                    "core {src} -> core {t} (SGI {}): sent {sent}, received {got}, want {want}",
                    irq::ipi_sgi(src)
                ),
            );
        }
    }
    println!("{total} SGIs delivered between {up} cores");
    s.result()
}

/// PINGs every online core, and an MPIDR that names no core.
pub fn ping_all() -> Result<(), Msg> {
    let mut s = Subchecks::new("ping");
    let p = platform::get();
    for t in (0..p.ncpus).filter(|&t| smp::online(t)) {
        match calls::ping(p.mpidr[t]) {
            Ok(r) => s.expect(
                r[0] == 0 && r[1] == t as u64 && r[2] == p.mpidr[t],
                format_args!(
                    "PING(core {t}, MPIDR {:#x}): x0 = {}, x1 = {}, x2 = {:#x}, want 0, {t}, {:#x}",
                    p.mpidr[t], r[0] as i64, r[1], r[2], p.mpidr[t]
                ),
            ),
            Err(c) => s.fail(format_args!("PING(core {t}): {c}")),
        }
    }
    match calls::ping(0xff00) {
        Ok(r) => s.expect(
            r[0] as i64 == hyp::Error::InvalidParameter.code(),
            format_args!("PING(0xff00): x0 = {}, want -3", r[0] as i64),
        ),
        Err(c) => s.fail(format_args!("PING(0xff00): {c}")),
    }
    s.result()
}

fn ping() -> Result<(), Msg> {
    let mut s = Subchecks::new("ping");
    on_all_cores(&mut s, Cmd::Ping, 0, WAIT_MS, ping_all);
    s.result()
}

/// Comes back from a power-down suspend through the entry point: the GIC
/// CPU interface (and, on real hardware, the redistributor) lost state.
fn reinit_after_resume() -> Result<(), Msg> {
    gic::init_redistributor().map_err(|e| crate::report::msg(format_args!("{e}")))?;
    gic::init_cpu_interface();
    Ok(())
}

/// CPU_SUSPEND to standby, then to power-down, each woken by the timer;
/// then one more timer interrupt to show the core still works.
pub fn suspend_sequence() -> Result<(), Msg> {
    let me = arch::core_index();
    let irqs = || TIMER_IRQS[me].load(Ordering::Acquire);

    // Standby: the call returns once the timer's interrupt is pending.
    arch::mask_irqs();
    let before = irqs();
    timer::arm_ms(2);
    let t0 = timer::now();
    let r = calls::cpu_suspend_standby(STANDBY);
    let slept = timer::now() - t0;
    arch::unmask_irqs();
    match r {
        Ok(0) => {}
        Ok(v) => {
            timer::disable();
            fail!("CPU_SUSPEND(standby) returned {v}");
        }
        Err(c) => {
            timer::disable();
            fail!("CPU_SUSPEND(standby) raised {c}");
        }
    }
    if !irq::wait_wfi(1000, || irqs() != before) {
        timer::disable();
        fail!("no timer interrupt after CPU_SUSPEND(standby) returned");
    }

    // Power-down: returns (QEMU's firmware only waits), or resumes at the
    // entry point with this core's index.
    arch::mask_irqs();
    let before = irqs();
    timer::arm_ms(2);
    let (r, fp_kept) = calls::cpu_suspend_powerdown_checking_fp(POWER_DOWN);
    let resumed = r == arch::RESUMED_THROUGH_ENTRY;
    if resumed {
        reinit_after_resume()?;
    }
    arch::unmask_irqs();
    if !resumed && r != 0 {
        timer::disable();
        fail!("CPU_SUSPEND(power-down {POWER_DOWN:#x}) returned {r}");
    }
    if !fp_kept {
        timer::disable();
        fail!(
            "d8..d15 changed across CPU_SUSPEND(power-down){}",
            if resumed {
                " (resumed at the entry point)"
            } else {
                ""
            }
        );
    }
    if !resumed && !irq::wait_wfi(1000, || irqs() != before) {
        timer::disable();
        fail!("no timer interrupt after CPU_SUSPEND(power-down) returned");
    }
    // Whichever way it came back, the core keeps working.
    irq::take_timer_irqs(1)
        .map_err(|m| crate::report::msg(format_args!("after power-down: {m}")))?;
    println!(
        "suspend: standby returned after {} us; power-down {}",
        timer::ticks_to_us(slept),
        if resumed {
            "resumed at the entry point"
        } else {
            "returned 0"
        }
    );
    Ok(())
}

fn suspend() -> Result<(), Msg> {
    let mut s = Subchecks::new("suspend");
    if smp::online_secondaries().next().is_none() {
        s.add(suspend_sequence());
    } else {
        on_all_cores(&mut s, Cmd::Suspend, 0, WAIT_MS, || Ok(()));
    }
    s.result()
}

/// The resume self-test's secondary side: CPU_OFF keeping the context,
/// brought back by the boot core's CPU_ON through the entry point.
pub fn resume_selftest_sequence() -> Result<(), Msg> {
    arch::mask_irqs();
    timer::disable();
    gic::disable_cpu_interface();
    let r = calls::cpu_off_keeping_context();
    let resumed = r == arch::RESUMED_THROUGH_ENTRY;
    if resumed {
        reinit_after_resume()?;
    } else {
        gic::init_cpu_interface();
    }
    arch::unmask_irqs();
    if !resumed {
        fail!("CPU_OFF returned {r}");
    }
    irq::take_timer_irqs(1)
}

/// Waits until AFFINITY_INFO says core `i` is off; `Err` on a timeout, an
/// error, or if the core reports its command `seq` done (CPU_OFF returned).
pub(crate) fn wait_off(i: usize, seq: u32) -> Result<(), Msg> {
    let mpidr = platform::get().mpidr[i];
    let deadline = timer::Deadline::after_ms(WAIT_MS);
    loop {
        match calls::affinity_info(mpidr) {
            Ok(psci::affinity::OFF) => return Ok(()),
            Ok(psci::affinity::ON | psci::affinity::ON_PENDING) => {}
            Ok(v) => fail!("AFFINITY_INFO(core {i}) returned {v}"),
            Err(c) => fail!("AFFINITY_INFO(core {i}): {c}"),
        }
        if smp::done(i, seq).is_some() {
            fail!("core {i}: CPU_OFF returned");
        }
        if deadline.expired() {
            fail!("core {i} not reported OFF within {WAIT_MS} ms");
        }
        timer::delay_us(200);
    }
}

fn resume_path() -> Result<(), Msg> {
    let mut s = Subchecks::new("resume-path");
    let p = platform::get();
    let entry = arch::secondary_entry();
    let cores: [bool; MAX_CPUS] = smp::online_mask();
    for i in (0..p.ncpus).filter(|&i| cores[i] && i != smp::boot_core()) {
        let starts = smp::starts(i);
        let seq = smp::post(i, Cmd::ResumeSelftest, 0);
        if let Err(m) = wait_off(i, seq) {
            s.fail(format_args!("{m}"));
            continue;
        }
        match calls::cpu_on(p.mpidr[i], entry, i as u64) {
            Ok(0) => {}
            Ok(v) => s.fail(format_args!("CPU_ON(core {i}) returned {v}")),
            Err(c) => s.fail(format_args!("CPU_ON(core {i}): {c}")),
        }
        match smp::wait_done(i, seq, WAIT_MS) {
            Some(true) => {}
            Some(false) => s.fail(format_args!("core {i} failed (see its lines)")),
            None => s.fail(format_args!(
                "core {i} did not resume within {WAIT_MS} ms: {}",
                smp::progress(i, seq)
            )),
        }
        s.expect(
            smp::starts(i) == starts,
            format_args!("core {i} started afresh instead of resuming its context"),
        );
    }
    if cores.iter().filter(|&&c| c).count() == 1 {
        println!("resume-path: needs a second core; nothing to do");
    }
    s.result()
}

fn cpu_off_on() -> Result<(), Msg> {
    let mut s = Subchecks::new("cpu-off-on");
    let p = platform::get();
    let boot = smp::boot_core();
    let entry = arch::secondary_entry();
    let cores: [bool; MAX_CPUS] = smp::online_mask();
    let secondaries = (0..p.ncpus).filter(|&i| cores[i] && i != boot);
    let mut any = false;
    for i in secondaries {
        any = true;
        let mpidr = p.mpidr[i];
        let starts = smp::starts(i);
        let failures = smp::init_failures(i);
        let seq = smp::post(i, Cmd::Off, 0);
        if let Err(m) = wait_off(i, seq) {
            s.fail(format_args!("{m}"));
            continue;
        }
        if hyp_present() {
            match calls::ping(mpidr) {
                Ok(r) => s.expect(
                    r[0] as i64 == hyp::Error::TargetOff.code(),
                    format_args!(
                        "PING(core {i}) while it is off: x0 = {}, want -5",
                        r[0] as i64
                    ),
                ),
                Err(c) => s.fail(format_args!("PING(core {i}) while off: {c}")),
            }
        }
        match calls::cpu_on(mpidr, entry, i as u64) {
            Ok(0) => {}
            Ok(v) => {
                s.fail(format_args!("CPU_ON(core {i}) after CPU_OFF returned {v}"));
                continue;
            }
            Err(c) => {
                s.fail(format_args!("CPU_ON(core {i}) after CPU_OFF: {c}"));
                continue;
            }
        }
        if let Err(m) = wait_started(i, starts, failures) {
            s.fail(format_args!("after CPU_OFF: {m}"));
            continue;
        }
        match calls::affinity_info(mpidr) {
            Ok(psci::affinity::ON) => {}
            Ok(v) => s.fail(format_args!("AFFINITY_INFO(core {i}) back on: {v}, want 0")),
            Err(c) => s.fail(format_args!("AFFINITY_INFO(core {i}): {c}")),
        }
        let seq = smp::post(i, Cmd::Timer, 1);
        match smp::wait_done(i, seq, WAIT_MS) {
            Some(true) => {}
            Some(false) => s.fail(format_args!("core {i}: no timer interrupt after CPU_ON")),
            None => s.fail(format_args!("core {i} did not answer after CPU_ON")),
        }
        if hyp_present() {
            match calls::ping(mpidr) {
                Ok(r) => s.expect(
                    r[0] == 0 && r[1] == i as u64 && r[2] == mpidr,
                    format_args!(
                        "PING(core {i}) back on: x0 = {}, x1 = {}, x2 = {:#x}",
                        r[0] as i64, r[1], r[2]
                    ),
                ),
                Err(c) => s.fail(format_args!("PING(core {i}) back on: {c}")),
            }
        }
    }
    if !any {
        match calls::affinity_info(p.mpidr[boot]) {
            Ok(psci::affinity::ON) => {}
            Ok(v) => s.fail(format_args!("AFFINITY_INFO(self): {v}, want ON (0)")),
            Err(c) => s.fail(format_args!("AFFINITY_INFO(self): {c}")),
        }
    }
    s.result()
}

fn stray_irqs() -> Result<(), Msg> {
    let mut s = Subchecks::new("no-stray-irqs");
    for i in 0..platform::get().ncpus {
        let n = irq::UNEXPECTED[i].load(Ordering::Relaxed);
        s.expect(
            n == 0,
            format_args!(
                "core {i} took {n} unexpected interrupt(s), last INTID {}",
                irq::LAST_UNEXPECTED[i].load(Ordering::Relaxed)
            ),
        );
    }
    s.result()
}

//! QEMU integration tests: the hypervisor with the bundled test guest.
//!
//! Each test decides from QEMU's exit status (the guest or the hypervisor
//! exits through semihosting) and a timeout; the output is only used to
//! check that each named check ran and to explain a failure.

use runner::{Config, Outcome, EXIT_REFUSED, RAM_BASE};

/// The checks the test guest runs for `test=smp`, in order.
const SMP_CHECKS: [&str; 8] = [
    "hyp-calls",
    "cpu-on",
    "timer",
    "ipi",
    "ping",
    "suspend",
    "cpu-off-on",
    "no-stray-irqs",
];

fn run(cfg: &Config) -> Outcome {
    match runner::run(cfg) {
        Ok(o) => o,
        Err(e) => panic!("could not run QEMU: {e}"),
    }
}

fn explain(out: &Outcome) -> String {
    format!(
        "status {:?}, timed out {}, {:.1} s; output:\n{}",
        out.status,
        out.timed_out,
        out.elapsed.as_secs_f64(),
        out.output
    )
}

fn assert_passed(out: &Outcome, checks: &[&str]) {
    assert!(!out.timed_out, "QEMU timed out: {}", explain(out));
    assert_eq!(
        out.status,
        Some(0),
        "guest did not exit 0: {}",
        explain(out)
    );
    for c in checks {
        assert_eq!(
            out.lines_with(&format!("guest: PASS {c}")).count(),
            1,
            "check {c} did not pass once: {}",
            explain(out)
        );
    }
    assert_eq!(out.lines_with("guest: FAIL").count(), 0, "{}", explain(out));
    assert_eq!(
        out.lines_with("FATAL").count() + out.lines_with("PANIC").count(),
        0,
        "{}",
        explain(out)
    );
}

fn smp(cores: usize) {
    let out = run(&Config::test_guest(cores, "test=smp"));
    assert_passed(&out, &SMP_CHECKS);
    // Every core came up in the guest.
    for cpu in 0..cores {
        assert!(
            out.output.contains(&format!("guest[cpu{cpu}]")),
            "cpu{cpu} never printed: {}",
            explain(&out)
        );
    }
}

#[test]
fn smp_1_core() {
    smp(1);
}

#[test]
fn smp_2_cores() {
    smp(2);
}

#[test]
fn smp_4_cores() {
    smp(4);
}

#[test]
fn smp_8_cores() {
    smp(8);
}

/// The guest reads and writes the hypervisor's own image: stage 2 does not
/// map it, the guest gets a synchronous external abort, and both go on.
#[test]
fn guest_touching_hypervisor_memory_gets_an_abort() {
    let out = run(&Config::test_guest(
        2,
        &format!("test=hypmem hypmem={:#x}", RAM_BASE + 0x8_0000),
    ));
    assert_passed(&out, &["hypmem-read", "hypmem-write", "alive-after-abort"]);
}

fn assert_refused(out: &Outcome, message: &str) {
    assert!(!out.timed_out, "QEMU timed out: {}", explain(out));
    assert_eq!(
        out.status,
        Some(EXIT_REFUSED),
        "expected a refusal: {}",
        explain(out)
    );
    assert!(
        out.output.contains(message),
        "expected '{message}': {}",
        explain(out)
    );
    assert!(
        !out.output.contains("guest["),
        "the guest must not have run: {}",
        explain(out)
    );
}

/// A guest device tree that offers the hypervisor's memory is refused.
#[test]
fn guest_dtb_offering_hypervisor_memory_is_refused() {
    let mut cfg = Config::test_guest(1, "test=smp");
    cfg.guest_memory = Some((RAM_BASE, 1 << 30));
    assert_refused(&run(&cfg), "refusing to start the guest");
}

/// A guest device tree that offers memory the machine does not have is refused.
#[test]
fn guest_dtb_offering_memory_beyond_ram_is_refused() {
    let mut cfg = Config::test_guest(1, "test=smp");
    cfg.guest_memory = Some((0x4400_0000, 2 << 30));
    assert_refused(&run(&cfg), "refusing to start the guest");
}

/// Booted as an ELF, QEMU gives the hypervisor no device tree (x0 = 0).
#[test]
fn missing_device_tree_stops_boot() {
    let mut cfg = Config::test_guest(1, "test=smp");
    cfg.hypervisor = runner::build_dir().join("el2.elf");
    assert_refused(&run(&cfg), "no device tree for the hypervisor");
}

/// A hypervisor device tree without /cpus stops boot with a message.
#[test]
fn device_tree_without_cpus_stops_boot() {
    let cfg = Config::test_guest(2, "test=smp");
    let dir = std::env::temp_dir().join(format!("tm-nocpus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dtb = runner::guest_dtb(&cfg, &dir).unwrap();
    let status = std::process::Command::new("fdtput")
        .arg("-r")
        .arg(&dtb)
        .arg("/cpus")
        .status()
        .unwrap();
    assert!(status.success());
    let mut cfg = cfg;
    cfg.hypervisor_dtb = Some(dtb);
    let out = run(&cfg);
    std::fs::remove_dir_all(&dir).ok();
    assert_refused(&out, "device tree: /cpus");
}

/// Without the guest's location on its command line the hypervisor says so.
#[test]
fn missing_guest_arguments_stop_boot() {
    let mut cfg = Config::test_guest(1, "test=smp");
    cfg.hypervisor_args = Some(String::new());
    assert_refused(&run(&cfg), "no guest");
}

/// The suite with power-down suspends that really lose EL2 and trace state
/// and come back through the warm-boot entry.
#[test]
fn smp_4_cores_with_power_loss() {
    let mut cfg = Config::test_guest(4, "test=smp");
    cfg.hypervisor_switches = "test.powerdown".into();
    let out = run(&cfg);
    assert_passed(&out, &SMP_CHECKS);
}

const TRACE_CHECKS: [&str; 5] = [
    "cpu-on",
    "trace-abi",
    "trace-isolation",
    "trace-stress",
    "trace-final",
];

/// Every core enables, disables and queries every core while cores suspend
/// (with power loss), go offline and come back; after each step TRACE_STATUS
/// must show mode and hardware in agreement.
fn trace_stress(cores: usize) -> Outcome {
    let mut cfg = Config::test_guest(cores, "test=trace ops=400");
    cfg.hypervisor_switches = "test.powerdown".into();
    let out = run(&cfg);
    assert_passed(&out, &TRACE_CHECKS);
    // A healthy run never reaches the hypervisor's bound on a cross-core
    // wait (guest_api::hyp::TARGET_ANSWER_BOUND_MS).
    assert_eq!(
        out.lines_with("did not answer").count(),
        0,
        "{}",
        explain(&out)
    );
    let n = |k| {
        out.number_after("guest: trace-stress", k)
            .unwrap_or_else(|| panic!("no {k}= in: {}", explain(&out)))
    };
    assert_eq!(n("ops"), 400 * cores as u64, "{}", explain(&out));
    assert_eq!(n("violations"), 0, "{}", explain(&out));
    assert_eq!(n("errors"), 0, "{}", explain(&out));
    assert!(
        n("checks") >= n("ops"),
        "a status check after every operation: {}",
        explain(&out)
    );
    assert!(n("suspends") > 0, "no core suspended: {}", explain(&out));
    if cores > 1 {
        assert!(n("offline") > 0, "no core went offline: {}", explain(&out));
    }
    println!(
        "trace stress on {cores} cores: ops={} checks={} violations=0 suspends={} offline={} target_off={}",
        n("ops"),
        n("checks"),
        n("suspends"),
        n("offline"),
        n("target_off")
    );
    out
}

/// The control plane while cores are stepped (`trace.source=insn`): the
/// trace stress on 4 cores, with power-down suspends that lose power,
/// CPU_OFF/CPU_ON of traced and untraced cores, remote enables and
/// disables, and interrupts, keeps every invariant; every core was stepped
/// at some point.
#[test]
fn trace_stress_4_cores_stepped() {
    let mut cfg = Config::test_guest(4, "test=trace ops=100");
    cfg.hypervisor_switches = "test.powerdown trace.source=insn".into();
    let out = run(&cfg);
    assert_passed(&out, &TRACE_CHECKS);
    let n = |k| {
        out.number_after("guest: trace-stress", k)
            .unwrap_or_else(|| panic!("no {k}= in: {}", explain(&out)))
    };
    assert_eq!(n("violations"), 0, "{}", explain(&out));
    assert_eq!(n("errors"), 0, "{}", explain(&out));
    assert!(n("suspends") > 0 && n("offline") > 0, "{}", explain(&out));
    assert_eq!(
        out.lines_with("stepping this core's guest").count(),
        4,
        "every core is stepped while traced: {}",
        explain(&out)
    );
    assert_eq!(
        out.lines_with("did not answer").count(),
        0,
        "{}",
        explain(&out)
    );
}

#[test]
fn trace_stress_2_cores() {
    trace_stress(2);
}

#[test]
fn trace_stress_4_cores() {
    trace_stress(4);
}

#[test]
fn trace_stress_8_cores() {
    trace_stress(8);
}

/// A core calls CPU_OFF while the 7 others flood it with TRACE_ENABLE,
/// TRACE_DISABLE and TRACE_STATUS (`test=offflood`, tests/guest/src/vanish.rs):
/// the guest fails unless the first TARGET_OFF comes within 100 ms of guest
/// counter time after the CPU_OFF, AFFINITY_INFO says OFF within 1 s, no call
/// that began after a TARGET_OFF was served, no status after it said
/// Enabled, and the core comes back Disabled. Before the mailbox's CLOSING
/// flag, the first TARGET_OFF took up to 3.15 s.
#[test]
fn cpu_off_under_a_flood_8_cores() {
    let out = run(&Config::test_guest(8, "test=offflood"));
    assert_passed(&out, &["cpu-on", "offflood"]);
    let n = |k| {
        out.number_after("guest: offflood", k)
            .unwrap_or_else(|| panic!("no {k}= in: {}", explain(&out)))
    };
    assert_eq!(n("violations"), 0, "{}", explain(&out));
    assert!(n("target_off") >= 7 * 20, "{}", explain(&out));
    assert_eq!(
        out.lines_with("did not answer").count(),
        0,
        "a healthy target never reaches the bound: {}",
        explain(&out)
    );
    assert!(n("first_target_off_us") <= 100_000, "{}", explain(&out));
    println!(
        "CPU_OFF under a flood, 8 cores: first TARGET_OFF {} us after CPU_OFF, AFFINITY_INFO OFF after {} us, {} calls, {} TARGET_OFF, {} served after the CPU_OFF, longest call {} us",
        n("first_target_off_us"),
        n("affinity_off_us"),
        n("calls"),
        n("target_off"),
        n("served_after_off"),
        n("longest_call_us")
    );
}

/// A core goes off behind the hypervisor's back (`test.vanish`: its
/// CPU_OFF goes to firmware with its mailbox left open): a trace call to it
/// ends after the hypervisor's bound with TARGET_OFF or HARDWARE_FAULT
/// (the guest checks the time it took against the bound), the hypervisor
/// logs the timeout once, with the core, and carries on: the next call is
/// refused at once, another core answers, and the lost core starts again.
#[test]
fn vanished_core_answers_within_the_bound() {
    let mut cfg = Config::test_guest(4, "test=vanish");
    cfg.hypervisor_switches = "test.vanish".into();
    let out = run(&cfg);
    assert_passed(&out, &["cpu-on", "vanish"]);
    let timeouts: Vec<_> = out.lines_with("did not answer").collect();
    assert_eq!(timeouts.len(), 1, "one timeout logged: {}", explain(&out));
    assert!(
        timeouts[0].contains("cpu1 did not answer TRACE_STATUS")
            && timeouts[0].contains("vanished"),
        "{}",
        explain(&out)
    );
    println!(
        "vanished core: first answer after {} ms, the next after {} ms; hypervisor: {}",
        out.number_after("guest: vanish", "first_answer_ms")
            .unwrap_or(0),
        out.number_after("guest: vanish", "second_answer_ms")
            .unwrap_or(0),
        timeouts[0]
    );
}

/// The seed's race rebuilt on purpose: the naive strategy writes the mode on
/// the calling core and programs the hardware later on the target. The same
/// checker must catch it (violations > 0) where it finds none in ours.
#[test]
fn naive_strategy_is_caught_by_the_checker() {
    let mut cfg = Config::test_guest(4, "test=trace ops=400 expect-violations");
    cfg.hypervisor = runner::naive_hypervisor_image();
    cfg.hypervisor_switches = "test.powerdown".into();
    let out = run(&cfg);
    assert!(!out.timed_out, "QEMU timed out: {}", explain(&out));
    let violations = out
        .number_after("guest: trace-stress", "violations")
        .unwrap_or_else(|| panic!("{}", explain(&out)));
    assert!(
        violations > 0,
        "the naive strategy went unnoticed: {}",
        explain(&out)
    );
    assert_eq!(
        out.lines_with("guest: PASS trace-stress").count(),
        1,
        "{}",
        explain(&out)
    );
    println!("naive strategy: {violations} violations caught");
}

/// `make run`'s story: trace enabled on cores 1-3 from core 0, core 2
/// suspends with power loss and resumes with its trace intact.
#[test]
fn story() {
    let mut cfg = Config::test_guest(4, "test=story");
    cfg.hypervisor_switches = "test.powerdown".into();
    let out = run(&cfg);
    assert_passed(&out, &["cpu-on", "story"]);
}

/// While the hypervisor single-steps a tracing core (`trace.source=insn`),
/// the guest keeps its own debug: MDSCR_EL1 and its breakpoint registers
/// read back what it wrote, its BRK reaches its own vector as EC 0x3C with
/// the comment, its hardware breakpoint and watchpoint reach it when it
/// would take them (and not with KDE clear or PSTATE.D set), its own
/// single step at EL1 takes its step exceptions (active-not-pending and
/// active-pending), a loop with hypercalls computes what it does
/// untraced, and a branch into the hypervisor's memory is an instruction
/// abort (tests/guest/src/stepdebug.rs). What the guest observed of its
/// breakpoints, watchpoint and step must be, to the bit, what it observes
/// unstepped.
#[test]
fn stepped_guest_keeps_its_own_debug() {
    let mut cfg = Config::test_guest(1, "test=stepdebug");
    cfg.hypervisor_switches = "trace.source=insn".into();
    let out = run(&cfg);
    assert_passed(&out, &["stepdebug"]);
    assert_eq!(
        out.lines_with("stepdebug: stepped=true").count(),
        1,
        "{}",
        explain(&out)
    );
    let baseline = run(&Config::test_guest(1, "test=stepdebug"));
    assert_passed(&baseline, &["stepdebug"]);
    let observed = |o: &Outcome| -> Vec<String> {
        o.lines_with("stepdebug: observed")
            .map(|l| l[l.find("stepdebug: observed").unwrap()..].to_string())
            .collect()
    };
    let (stepped, unstepped) = (observed(&out), observed(&baseline));
    assert_eq!(stepped.len(), 1, "{}", explain(&out));
    assert_eq!(stepped, unstepped, "stepped against unstepped");
    assert_eq!(
        out.lines_with("UNDEF injected").count(),
        0,
        "{}",
        explain(&out)
    );
}

/// The same checks with the exceptions-only source: nothing traps, the
/// baseline the stepped run must match.
#[test]
fn stepdebug_baseline_unstepped() {
    let out = run(&Config::test_guest(1, "test=stepdebug"));
    assert_passed(&out, &["stepdebug"]);
    assert_eq!(
        out.lines_with("stepdebug: stepped=false").count(),
        1,
        "{}",
        explain(&out)
    );
}

/// Trace data end to end: the guest enables trace, traps, disables, reads
/// its cores' buffers out through TRACE_READ and prints them; here they
/// become a CoreSight snapshot that OpenCSD's trc_pkt_lister decodes, and
/// the packets must match what the guest did.
#[test]
fn tracedata_decodes_with_opencsd() {
    let out = run(&Config::test_guest(2, "test=tracedata"));
    assert_passed(&out, &["cpu-on", "tracedata"]);
    check_tracedata(&out, 2);
}

/// The trace-data scenario on the instruction source: the same buffers, read
/// out the same way, now decode into real instruction ranges over the guest
/// image: every instruction core 0 ran between its TRACE_ENABLE and
/// TRACE_DISABLE lies in the guest's code, with one Call exception per HVC
/// (the PINGs and the TRACE_DISABLE), no decoder error and no address the
/// image lacks; TRACE_STATS says the data is instruction trace; core 1's
/// buffer and the wrapped buffer decode too.
#[test]
fn tracedata_decodes_instruction_ranges_on_the_instruction_source() {
    use runner::snapshot::{self, MemoryDump};
    let mut cfg = Config::test_guest(2, "test=tracedata");
    cfg.hypervisor_switches = "trace.source=insn".into();
    let out = run(&cfg);
    assert_passed(&out, &["cpu-on", "tracedata"]);
    let run = snapshot::parse_tracedata(&out.output, 2)
        .unwrap_or_else(|e| panic!("{e}: {}", explain(&out)));
    let (start, end) = run.image;
    let image = runner::test_guest_image();
    let memory = MemoryDump {
        address: runner::GUEST_ENTRY,
        bytes: std::fs::read(&image).unwrap(),
    };
    let mut captures = run.captures.clone();
    captures.extend(run.wrapped.clone().map(|mut w| {
        w.cpu = 2; // its own buffer in the snapshot
        w
    }));
    let dir = runner::tempdir().unwrap();
    snapshot::write_with_memory(&dir, &captures, &[memory]).unwrap();
    for cpu in [0, 1, 2] {
        let listing = snapshot::list(&dir, cpu, true).unwrap();
        let addrs = snapshot::executed_addresses(&listing)
            .unwrap_or_else(|e| panic!("cpu{cpu}: {e}\n{listing}"));
        assert!(!addrs.is_empty(), "cpu{cpu}: nothing decoded\n{listing}");
        assert!(
            addrs.iter().all(|a| (start..end).contains(a)),
            "cpu{cpu}: an instruction outside the guest image\n{listing}"
        );
        if cpu == 0 {
            let calls = snapshot::decoded_exceptions(&listing)
                .iter()
                .filter(|(ret, kind)| *kind == 2 && (start..end).contains(ret))
                .count();
            assert_eq!(calls, run.calls + 1, "{listing}");
            println!(
                "tracedata on the instruction source: cpu0 {} instructions, {calls} calls",
                addrs.len()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let stats = out
        .lines_with("tracedata: cpu0 stats ")
        .next()
        .unwrap_or_else(|| panic!("no stats: {}", explain(&out)));
    let flags = stats
        .split("flags=0x")
        .nth(1)
        .and_then(|v| u64::from_str_radix(v.split_whitespace().next()?, 16).ok());
    assert_eq!(
        flags.map(|f| f & guest_api_stats_instructions()),
        Some(guest_api_stats_instructions()),
        "TRACE_STATS must flag instruction trace: {stats}"
    );
}

/// `guest_api::trace::STATS_INSTRUCTIONS`, as el2 re-exports the ABI.
fn guest_api_stats_instructions() -> u64 {
    1 << 2
}

/// Decodes a `test=tracedata` run of `cpus` cores with OpenCSD and checks
/// the packets against what the guest did (the QEMU model's trace).
fn check_tracedata(out: &Outcome, cpus: usize) {
    use runner::snapshot;
    let run = snapshot::parse_tracedata(&out.output, cpus)
        .unwrap_or_else(|e| panic!("{e}: {}", explain(out)));
    let (start, end) = run.image;
    let calls = run.calls;
    let dir = runner::tempdir().unwrap();
    snapshot::write(&dir, &run.captures).unwrap();

    // Core 0 traced itself: a sync point, then one Call exception per HVC
    // (the PINGs and the TRACE_DISABLE), each with a timestamp and a return
    // address inside the guest's image.
    let listing = snapshot::list(&dir, 0, false).unwrap();
    let p = snapshot::packets(&listing);
    let names: Vec<&str> = p.iter().take(3).map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["I_ASYNC", "I_TRACE_INFO", "I_TRACE_ON"],
        "{listing}"
    );
    assert!(snapshot::errors(&listing).is_empty(), "{listing}");
    let mut exceptions = 0;
    let mut last_ts = 0;
    for (i, pk) in p.iter().enumerate() {
        match pk.name.as_str() {
            "I_EXCEPT" => {
                assert!(pk.text.contains("Call"), "{pk:?}");
                let addr = p[i + 1].hex_after("Addr=").unwrap();
                assert_eq!(p[i + 1].name, "I_ADDR_L_64IS0", "{listing}");
                assert!((start..end).contains(&addr), "{addr:#x}: {listing}");
                exceptions += 1;
            }
            "I_TIMESTAMP" => {
                let ts = pk.hex_after("Updated val = ").unwrap();
                assert!(ts > last_ts, "timestamps must increase: {listing}");
                last_ts = ts;
            }
            "I_CTXT" => assert!(pk.text.contains("EL1"), "{pk:?}"),
            _ => {}
        }
    }
    assert_eq!(exceptions, calls + 1, "{listing}");
    // The full decode reports each exception with its return address.
    let decoded = snapshot::list(&dir, 0, true).unwrap();
    assert_eq!(
        decoded
            .matches("OCSD_GEN_TRC_ELEM_EXCEPTION(pref ret addr:")
            .count(),
        calls + 1,
        "{decoded}"
    );

    // Core 1 was traced remotely: whatever it trapped, it decodes.
    let listing = snapshot::list(&dir, 1, false).unwrap();
    let p = snapshot::packets(&listing);
    assert_eq!(
        p.first().map(|p| p.name.as_str()),
        Some("I_ASYNC"),
        "{listing}"
    );
    assert!(snapshot::errors(&listing).is_empty(), "{listing}");
    let _ = std::fs::remove_dir_all(&dir);

    // Wrap mode: the buffer wrapped, was read out full and oldest first;
    // it starts mid-stream, so the decoder syncs at the first A-Sync and
    // from there every exception is a PING (or the closing TRACE_STATS /
    // TRACE_DISABLE) from inside the guest image, timestamps increasing.
    let stats = out
        .lines_with("tracedata: wrap0 stats ")
        .next()
        .unwrap_or_else(|| panic!("no wrap stats: {}", explain(out)));
    let field = |k: &str| -> u64 {
        let v = &stats[stats.find(&format!("{k}=")).unwrap() + k.len() + 1..];
        let v = v.split_whitespace().next().unwrap();
        match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).unwrap(),
            None => v.parse().unwrap(),
        }
    };
    assert!(field("wraps") >= 1, "{stats}");
    assert_eq!((field("lost"), field("flags")), (0, 0), "{stats}");
    let wrapped = run.wrapped.clone().expect("no wrap0 capture");
    assert_eq!(wrapped.data.len() as u64, field("available"), "{stats}");
    assert!(field("written") > field("available"), "{stats}");
    let dir = runner::tempdir().unwrap();
    snapshot::write(&dir, &[wrapped]).unwrap();
    let listing = snapshot::list(&dir, 0, false).unwrap();
    assert!(snapshot::errors(&listing).is_empty(), "{listing}");
    let p = snapshot::packets(&listing);
    let first_sync = p
        .iter()
        .position(|p| p.name == "I_ASYNC")
        .unwrap_or_else(|| panic!("no A-Sync in the wrapped buffer: {listing}"));
    let (mut exceptions, mut last_ts) = (0, 0);
    for (i, pk) in p.iter().enumerate().skip(first_sync) {
        match pk.name.as_str() {
            "I_EXCEPT" if i + 1 < p.len() => {
                let addr = p[i + 1].hex_after("Addr=").unwrap();
                assert!((start..end).contains(&addr), "{addr:#x}");
                exceptions += 1;
            }
            "I_TIMESTAMP" => {
                let ts = pk.hex_after("Updated val = ").unwrap();
                assert!(ts > last_ts, "timestamps must increase after the sync");
                last_ts = ts;
            }
            _ => {}
        }
    }
    // 64 KiB of exception groups (at most a few dozen bytes each).
    assert!(
        exceptions > 1000,
        "{exceptions} exceptions in the wrapped buffer"
    );
    println!(
        "wrapped buffer: {} bytes, first A-Sync at packet {first_sync}, {exceptions} exceptions decoded",
        field("available")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------
// The adversarial suite (README, "Adversarial suite").

/// The ABI fuzz's seed; any other reproduces with `test=fuzz seed=<n>`.
const FUZZ_SEED: u64 = 0x5eed_0000_ad0e_2026;
/// Calls in all, over the four cores.
const FUZZ_CALLS: u64 = 100_000;

/// A seeded hostile guest makes 100,000 HVC and SMC calls with random
/// function IDs and arguments from four cores at once (PSCI, SMCCC arch,
/// the vendor service, trace calls, unknown IDs; no destructive PSCI
/// call). Every answer must be one the ABI documents for that call; after
/// it every core's trace status is coherent and the ordinary calls work.
#[test]
fn abi_fuzz_4_cores() {
    let mut cfg = Config::test_guest(4, &format!("test=fuzz seed={FUZZ_SEED} calls={FUZZ_CALLS}"));
    cfg.timeout = std::time::Duration::from_secs(420);
    let out = run(&cfg);
    assert_passed(&out, &["cpu-on", "abi-fuzz", "fuzz-after"]);
    let n = |k| {
        out.number_after("guest: abi-fuzz", k)
            .unwrap_or_else(|| panic!("no {k}= in: {}", explain(&out)))
    };
    assert_eq!(n("seed"), FUZZ_SEED, "{}", explain(&out));
    assert!(n("calls") >= FUZZ_CALLS, "{}", explain(&out));
    assert_eq!(n("hvc") + n("smc"), n("calls"), "{}", explain(&out));
    assert_eq!(n("undocumented"), 0, "{}", explain(&out));
    for class in ["random", "arch", "psci", "hyp", "trace", "imm"] {
        assert!(
            n(class) >= n("calls") / 50,
            "class {class} hardly hit: {}",
            explain(&out)
        );
    }
    println!(
        "abi fuzz: seed={FUZZ_SEED:#x} calls={} hvc={} smc={} random={} arch={} psci={} hyp={} trace={} imm={} undocumented=0 in {:.1} s",
        n("calls"),
        n("hvc"),
        n("smc"),
        n("random"),
        n("arch"),
        n("psci"),
        n("hyp"),
        n("trace"),
        n("imm"),
        out.elapsed.as_secs_f64()
    );
}

/// A hostile guest on four cores: every trace register encoding read and
/// written from EL1 is UNDEFINED, the OS lock is virtual, the hypervisor's
/// memory aborts reads, writes, pairs and fetches, hostile GIC writes are
/// ignored or virtual (SGI 15 keeps working), and calls with hostile
/// arguments are refused without changing anything.
#[test]
fn hostile_guest_4_cores() {
    let out = run(&Config::test_guest(4, "test=hostile"));
    assert_passed(
        &out,
        &[
            "cpu-on",
            "sysreg-walk",
            "hypmem",
            "gic-hostile",
            "hostile-args",
            "alive",
        ],
    );
    let n = |marker, k| {
        out.number_after(marker, k)
            .unwrap_or_else(|| panic!("no {marker} {k}= in: {}", explain(&out)))
    };
    // op0 = 2, op1 = 1 (2048), TRB* (8), TRFCR_EL1 and TRFCR_EL2.
    assert_eq!(n("guest: sysreg-walk", "registers"), 2058);
    assert_eq!(n("guest: sysreg-walk", "cores"), 4);
    assert_eq!(
        out.lines_with("accesses to 2058 trace registers UNDEFINED")
            .filter(|l| l.contains("4116 of 4116"))
            .count(),
        4,
        "{}",
        explain(&out)
    );
    assert_eq!(
        n("guest: hypmem", "aborts"),
        4 * n("guest: hypmem", "addresses")
    );
    assert!(n("guest: gic-hostile", "steps") >= 10, "{}", explain(&out));
    assert!(
        n("guest: hostile-args", "refused") >= 250,
        "{}",
        explain(&out)
    );
}

/// `make stress`: the trace stress at length on 8 cores (by default
/// 125,000 operations per core, 1,000,000 in all), with TRACE_STATUS
/// checked after every operation. Not part of `make test`: run with
/// `cargo test -p runner --release --test qemu -- --ignored trace_stress_long`;
/// `TM_STRESS_OPS` (per core) and `TM_STRESS_TIMEOUT` (seconds) change it,
/// `TM_STRESS_ICOUNT=<shift>` runs it under `-icount` (as `make stress`
/// does) and `TM_STRESS_HYPERVISOR=<image>` with another hypervisor image.
#[test]
#[ignore = "long: run by `make stress`"]
fn trace_stress_long() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let cores = 8u64;
    let ops = env("TM_STRESS_OPS", 125_000);
    let timeout = env("TM_STRESS_TIMEOUT", 6 * 3600);
    let mut cfg = Config::test_guest(
        cores as usize,
        &format!(
            "test=trace ops={ops} deadline={}",
            timeout.saturating_sub(60)
        ),
    );
    cfg.hypervisor_switches = "test.powerdown".into();
    cfg.timeout = std::time::Duration::from_secs(timeout);
    cfg.icount = std::env::var("TM_STRESS_ICOUNT")
        .ok()
        .and_then(|v| v.parse().ok());
    if let Ok(h) = std::env::var("TM_STRESS_HYPERVISOR") {
        // Another image, e.g. build/el2-naive.bin to see the checker catch it.
        cfg.hypervisor = h.into();
    }
    let out = run(&cfg);
    let n = |k| {
        out.number_after("guest: trace-stress", k)
            .unwrap_or_else(|| panic!("no {k}= in: {}", explain(&out)))
    };
    println!(
        "long trace stress on {cores} cores: ops={} checks={} violations={} errors={} suspends={} offline={} target_off={} guest ms={} wall {:.0} s",
        n("ops"),
        n("checks"),
        n("violations"),
        n("errors"),
        n("suspends"),
        n("offline"),
        n("target_off"),
        n("ms"),
        out.elapsed.as_secs_f64()
    );
    assert_passed(&out, &TRACE_CHECKS);
    assert_eq!(n("ops"), ops * cores, "{}", explain(&out));
    assert_eq!(n("violations"), 0);
    assert_eq!(n("errors"), 0);
    assert!(n("checks") >= n("ops"));
}

/// The FVP build on QEMU: `build/el2-fvp.bin` and `build/test-guest-fvp.bin`
/// (linked for FVP Base's DRAM at 0x8000_0000) at their FVP addresses, with
/// device trees made by the FVP runner's own code (`runner::fvp::prepare`,
/// from QEMU's tree: guest RAM 0x8400_0000..0x1_0000_0000) and entered the
/// way TF-A hands over to BL33 (x0 = the device tree at 0x8200_0000). QEMU
/// virt with 3 GiB of RAM spans those addresses, so everything but the
/// FVP's own devices (its GIC, UART and the real ETE/TRBE) runs here.
fn fvp_layout(cores: usize, bootargs: &str, switches: &str) -> Outcome {
    let mut cfg = Config::test_guest(cores, bootargs);
    cfg.memory_mib = 3072;
    cfg.hypervisor = runner::fvp::hypervisor_image();
    cfg.guest = runner::fvp::test_guest_image();
    cfg.hypervisor_switches = switches.into();
    let out = runner::fvp::run_on_qemu(&cfg).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.output.contains("hypervisor memory 0x80000000..")
            && out
                .output
                .contains("guest RAM 0x84000000..0x100000000; entry 0x84200000"),
        "not the FVP layout: {}",
        explain(&out)
    );
    out
}

#[test]
fn fvp_layout_boots_on_qemu() {
    let out = fvp_layout(4, "test=smp", "test.powerdown");
    assert_passed(&out, &SMP_CHECKS);
    // The trace data, decoded with the ID registers the hypervisor logged
    // (the model's, at debug level), as the FVP runner decodes the ETE's.
    let out = fvp_layout(2, "test=tracedata", "log=debug");
    assert_passed(&out, &["cpu-on", "tracedata"]);
    for cpu in 0..2 {
        assert!(
            runner::snapshot::decoder_ids(&out.output, cpu).is_some(),
            "cpu{cpu} logged no trace unit ids: {}",
            explain(&out)
        );
    }
    check_tracedata(&out, 2);
}

/// Guest RAM that the FVP build's EL2 map does not hold as RAM (QEMU's RAM
/// at 0x4400_0000 lies in FVP Base's PCIe window, Device memory there): the
/// hypervisor refuses it with a message instead of faulting later.
#[test]
fn fvp_image_refuses_guest_ram_its_map_lacks() {
    let mut cfg = Config::test_guest(1, "test=smp");
    cfg.memory_mib = 3072;
    cfg.hypervisor = runner::fvp::hypervisor_image();
    cfg.guest = runner::fvp::test_guest_image();
    let dir = runner::tempdir().unwrap();
    let machine = dir.join("machine.dtb");
    runner::dump_machine_dtb(&cfg, &machine).unwrap();
    let trees = runner::fvp::prepare(&machine, &dir, None, "test=smp", "").unwrap();
    let (base, size) = trees.guest_memory;
    let reg: Vec<String> = [0, 0x4400_0000, 0, 0x1000_0000, 0, base, 0, size]
        .iter()
        .map(|v: &u64| format!("{v:#x}"))
        .collect();
    let mut args = vec![
        "-t",
        "x",
        trees.guest.to_str().unwrap(),
        "/memory@40000000",
        "reg",
    ];
    args.extend(reg.iter().map(String::as_str));
    runner::tool("fdtput", &args).unwrap();
    let cmd = runner::fvp::qemu_command(&cfg, &trees, &dir).unwrap();
    let out = runner::run_command(&cfg, cmd).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_refused(
        &out,
        "the guest's RAM 0x44000000..0x54000000 is not mapped as RAM by this image, built for FVP Base",
    );
}

// ---------------------------------------------------------------------
// The real ETE/TRBE path's errata and firmware checks (issue 14), shown on
// the QEMU model.

/// The model counted nothing against the driver: no hardware rule broken,
/// no harm from a defect of the part it plays (a dropped TRB* write, a
/// pointer read that one failed TSB left stale). A missing workaround shows
/// here (seen: with the workarounds disabled, both erratum tests fail on it).
fn assert_model_content(out: &Outcome) {
    assert_eq!(
        out.lines_with("trace model:").count(),
        0,
        "{}",
        explain(out)
    );
}

/// QEMU's `-cpu max` has no trace errata: the boot log says so, once, and
/// the guest runs.
#[test]
fn trace_errata_none_apply_on_qemu() {
    let out = run(&Config::test_guest(2, "test=tracedata"));
    assert_passed(&out, &["cpu-on", "tracedata"]);
    assert_model_content(&out);
    assert_eq!(
        out.lines_with("trace errata: none apply (cpu0: MIDR ")
            .count(),
        1,
        "{}",
        explain(&out)
    );
    assert_eq!(
        out.lines_with("TRBE erratum").count(),
        0,
        "{}",
        explain(&out)
    );
}

/// With `test.midr` naming a Cortex-A710 r0p0 the errata table applies as
/// on that part and the model behaves like it: it writes 64 bytes past
/// LIMIT at every wrap (2224489), overwrites the base on a FILL (2119858)
/// and needs two TSB CSYNCs to flush (2054223). With the workarounds the
/// guest's trace data still decodes exactly (`check_tracedata`) and the
/// stray bytes land in the guard page, which the hypervisor reports.
#[test]
fn trace_errata_cortex_a710_workarounds_keep_the_data_exact() {
    let mut cfg = Config::test_guest(2, "test=tracedata");
    cfg.hypervisor_switches = "test.midr=0x410fd470".into();
    let out = run(&cfg);
    assert_passed(&out, &["cpu-on", "tracedata"]);
    assert_model_content(&out);
    for (n, what) in [
        (2224489, "guard page beyond LIMIT"),
        (2119858, "fill-mode capture starts 256 bytes past BASE"),
        (2054223, "every TSB CSYNC issued twice"),
    ] {
        assert_eq!(
            out.lines_with(&format!("TRBE erratum {n} applies (cpu0: Cortex-A710"))
                .filter(|l| l.ends_with(what))
                .count(),
            1,
            "erratum {n}: {}",
            explain(&out)
        );
    }
    assert_eq!(out.lines_with("trace errata: none apply").count(), 0);
    assert!(
        out.lines_with("landed in its guard page").count() >= 1,
        "the model's overrun past LIMIT never happened: {}",
        explain(&out)
    );
    check_tracedata(&out, 2);
}

/// A Cortex-A510 r0p2: TRB* writes right after a disable are dropped
/// unless a TSB CSYNC and a DSB follow it (2064142). With the workaround
/// every enable starts an empty buffer at its base and the data decodes.
#[test]
fn trace_errata_cortex_a510_drain_after_disable() {
    let mut cfg = Config::test_guest(2, "test=tracedata");
    cfg.hypervisor_switches = "test.midr=0x410fd462".into();
    let out = run(&cfg);
    assert_passed(&out, &["cpu-on", "tracedata"]);
    assert_model_content(&out);
    for n in [2064142, 2038923] {
        assert_eq!(
            out.lines_with(&format!("TRBE erratum {n} applies (cpu0: Cortex-A510"))
                .count(),
            1,
            "erratum {n}: {}",
            explain(&out)
        );
    }
    assert_eq!(out.lines_with("TRBE erratum 1902691").count(), 0);
    check_tracedata(&out, 2);
}

/// `test.trace-probe` makes each core read TRBIDR_EL1 although QEMU has no
/// TRBE: the read is UNDEFINED at EL2, as a firmware-trapped one answered
/// with an UNDEF would be. The hypervisor must survive it, say why there
/// is no usable trace, and run the guest on the model.
#[test]
fn trace_probe_undefined_register_falls_back_to_the_model() {
    let mut cfg = Config::test_guest(2, "test=tracedata");
    cfg.hypervisor_switches = "test.trace-probe".into();
    let out = run(&cfg);
    assert_passed(&out, &["cpu-on", "tracedata"]);
    assert_model_content(&out);
    assert_eq!(
        out.lines_with("no usable trace hardware: TRBIDR_EL1 is UNDEFINED at EL2")
            .count(),
        2,
        "one per core: {}",
        explain(&out)
    );
    check_tracedata(&out, 2);
}

/// `test=console`'s lines per core and their text (tests/guest/src/console_test.rs).
const CONSOLE_LINES: usize = 40;
const CONSOLE_PAYLOAD: &str = "the quick brown fox jumps over the lazy dog 0123456789";

/// The guest disables its UART (UARTCR = 0), turns the FIFOs off and
/// changes the divisors, then four cores print lines, each making the
/// hypervisor log an injected abort (`log=debug`) when the line is half
/// written. The guest's UART is EL2's emulation, so the hypervisor's log
/// goes on: every one of its abort lines appears whole, and so does every
/// guest line, none with the other's text inside. With the physical UART
/// passed through (before the emulation), every one of these lines came out
/// as `guest[cpu1] console: cpu1 line 0 the quick brown fox jumps oel2[cpu1]
/// DEBUG guest data abort ...`.
#[test]
fn guest_console_neither_stalls_nor_garbles_the_hypervisors_log() {
    let cores = 4;
    let mut cfg = Config::test_guest(cores, "test=console");
    cfg.hypervisor_switches = "log=debug".into();
    cfg.timeout = std::time::Duration::from_secs(120);
    let out = run(&cfg);
    assert_passed(&out, &["cpu-on", "console"]);

    // The load just below the guest's RAM, which EL2 logs as it injects.
    let abort = format!(
        "guest data abort at IPA {:#x}, pc ",
        runner::GUEST_RAM_BASE - 8
    );
    let mut el2_lines = 0;
    let mut seen = vec![vec![0u32; CONSOLE_LINES]; cores];
    let mut bad = Vec::new();
    for line in out.output.lines() {
        if line.contains(&abort) {
            // `el2[cpuN] DEBUG <abort>0x...: injected`, nothing more.
            let whole = line
                .strip_prefix("el2[cpu")
                .and_then(|r| r.split_once("] DEBUG "))
                .filter(|(cpu, _)| cpu.parse::<usize>().is_ok_and(|c| c < cores))
                .and_then(|(_, r)| r.strip_prefix(abort.as_str()))
                .and_then(|r| r.strip_suffix(": injected"))
                .and_then(|pc| pc.strip_prefix("0x"))
                .is_some_and(|pc| u64::from_str_radix(pc, 16).is_ok());
            if whole {
                el2_lines += 1;
            } else {
                bad.push(line);
            }
        }
        if line.contains("console: cpu") && line.contains(" line ") {
            // `guest[cpuN] console: cpuN line I <payload>`, nothing more.
            let parsed = line
                .strip_prefix("guest[cpu")
                .and_then(|r| r.split_once("] console: cpu"))
                .and_then(|(a, r)| {
                    let (b, r) = r.split_once(" line ")?;
                    let (i, text) = r.split_once(' ')?;
                    let (a, b, i) = (
                        a.parse::<usize>().ok()?,
                        b.parse::<usize>().ok()?,
                        i.parse::<usize>().ok()?,
                    );
                    (a == b && a < cores && i < CONSOLE_LINES && text == CONSOLE_PAYLOAD)
                        .then_some((a, i))
                });
            match parsed {
                Some((cpu, i)) => seen[cpu][i] += 1,
                None => bad.push(line),
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} garbled lines, first: {:?}\n{}",
        bad.len(),
        bad.first(),
        explain(&out)
    );
    assert_eq!(
        el2_lines,
        cores * CONSOLE_LINES,
        "every injected abort is logged once: {}",
        explain(&out)
    );
    for (cpu, lines) in seen.iter().enumerate() {
        for (i, &n) in lines.iter().enumerate() {
            assert_eq!(n, 1, "cpu{cpu} line {i} seen {n} times: {}", explain(&out));
        }
    }
}

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

//! Debian's stock arm64 Linux as the hypervisor's guest (`make test-linux`,
//! part of `make test`): every CPU online, the tracemgr module's sysfs
//! controls on every CPU, then trace enabled and disabled from CPU0 on every
//! CPU while the others idle through CPU_SUSPEND and are unplugged and
//! replugged a fixed number of times, mode == hardware checked after every
//! step, and a clean power-off; and Debian's perf in the guest.
//!
//! Each test runs the `linux` runner binary and decides from its exit
//! status, which is success only if QEMU powered off cleanly (exit status 0)
//! before the timeout, /init reached and passed every check, the kernel
//! printed no warning, oops, BUG, RCU stall, lockup or hung task, and the
//! hypervisor's request counts add up (see `src/bin/linux.rs`).
//! `make linux-guest` (a dependency of `make test`) provides the kernel,
//! the initramfs and the module.

use std::process::Command;

/// Hotplug cycles per secondary CPU, and the least number of trace rounds
/// (one round enables, reconfigures or not, and disables every CPU).
const CYCLES: &str = "5";
const ROUNDS: &str = "30";

/// `key=<n>` on the summary's first line containing `marker`, or 0.
fn count(summary: &str, marker: &str, key: &str) -> u64 {
    summary
        .lines()
        .find(|l| l.contains(marker))
        .and_then(|l| l.split(&format!(" {key}=")).nth(1))
        .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Runs Linux with the concurrent run; returns the runner's summary.
fn linux(extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_linux"))
        .args([
            "--cores",
            "4",
            "--tracemgr",
            "--cycles",
            CYCLES,
            "--rounds",
            ROUNDS,
        ])
        .args(["--timeout", "900"])
        .args(extra)
        .output()
        .expect("run the linux runner");
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text
        .find("== summary")
        .map_or("", |i| &text[i..])
        .to_string();
    println!("{summary}");
    assert!(
        out.status.success(),
        "the Linux run failed ({}):\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // The concurrent run really ran: status checks, hotplug cycles and idle
    // entries. (How many requests found their CPU offline depends on
    // scheduling, so it is reported, not required; /init's checks before
    // the concurrent run force one such case.)
    for key in ["idle_entries", "hotplug_cycles", "status_checks"] {
        assert!(
            count(&summary, "concurrent run:", key) > 0,
            "{key} is 0 or missing:\n{summary}"
        );
    }
    assert!(
        count(&summary, "stats:", "powerdown") > 0,
        "no power-down CPU_SUSPEND:\n{summary}"
    );
    summary
}

/// Firmware (QEMU's PSCI) returns from every power-down CPU_SUSPEND; the
/// hypervisor restores the core and resumes Linux at its entry point.
#[test]
fn linux_idle_hotplug_tracemgr() {
    let summary = linux(&[]);
    assert_eq!(count(&summary, "stats:", "warm_boots"), 0, "{summary}");
}

/// `test.powerdown`: each power-down CPU_SUSPEND becomes a real warm boot
/// with EL2 and trace state lost, restored on the warm-boot path.
#[test]
fn linux_idle_hotplug_tracemgr_with_power_loss() {
    let summary = linux(&["--switches", "test.powerdown"]);
    let (down, warm) = (
        count(&summary, "stats:", "powerdown"),
        count(&summary, "stats:", "warm_boots"),
    );
    assert_eq!(warm, down, "every power-down is a warm boot:\n{summary}");
}

/// Debian's perf in the guest (`--perf`): the CoreSight core module loads
/// and registers its cs_etm PMU, `perf list` shows `cs_etm//`, and `perf
/// record` with a software clock on the workload gives a `perf report`
/// whose hottest user-space symbol is the workload's `hot_loop`.
#[test]
fn linux_perf() {
    let out = Command::new(env!("CARGO_BIN_EXE_linux"))
        .args(["--cores", "4", "--perf", "--timeout", "900"])
        .output()
        .expect("run the linux runner");
    let text = String::from_utf8_lossy(&out.stdout);
    let perf: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("linux-init: PASS") || l.contains("linux-init: FAIL"))
        .filter(|l| l.contains("perf") || l.contains("cs_etm") || l.contains("coresight"))
        .collect();
    println!("{}", perf.join("\n"));
    assert!(
        out.status.success(),
        "the Linux run failed ({}):\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "PASS modprobe coresight",
        "PASS cs_etm PMU registered",
        "PASS perf list shows cs_etm//",
        "is hot_loop, over 90%",
    ] {
        assert!(
            perf.iter().any(|l| l.contains(want) && l.contains("PASS")),
            "no `{want}` line:\n{text}"
        );
    }
}

/// Runs /init's perf check through the hypervisor (`--csperf`, on the
/// instruction source, with `switches` for the hypervisor) and decides it:
/// the runner's exit status (every /init check passed, no kernel warning or
/// oops, a clean power-off), and the lines below must be there, so that a
/// run that skipped them cannot pass. Returns the runner's summary.
fn csperf(switches: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_linux"))
        .args(["--cores", "4", "--csperf"])
        .args(["--switches", &format!("trace.source=insn {switches}")])
        .args(["--timeout", "1200"])
        .output()
        .expect("run the linux runner");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("linux-init: "))
        .filter(|l| {
            l.contains("perf")
                || l.contains("cs_etm")
                || l.contains("tracemgr_cs")
                || l.contains("CPU ")
        })
        .collect();
    println!("{}", lines.join("\n"));
    let summary = text
        .find("== summary")
        .map_or("", |i| &text[i..])
        .to_string();
    println!("{summary}");
    assert!(
        out.status.success(),
        "the Linux run failed ({}):\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for mode in ["per-thread", "CPU-wide"] {
        for want in [
            "top entry",
            "instruction samples of the workload in its .text",
            "perf decodes without errors",
        ] {
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("PASS") && l.contains(want) && l.contains(mode)),
                "no PASS `{want}` ({mode}) line:\n{text}"
            );
        }
    }
    for want in [
        "PASS rmmod tracemgr_cs refused while perf holds it",
        "PASS CPU 2 was unplugged and replugged during the CPU-wide session",
        "PASS CPU 3 online again",
        "PASS perf script (filter)",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(want)),
            "no `{want}` line:\n{text}"
        );
    }
    summary
}

/// `perf record -e cs_etm//u` through the hypervisor, on the instruction
/// source (tests/linux/csperf.sh): every CPU is a cs_etm source with its
/// per-CPU sink and ID files that say ETE with perf's trace IDs, the stock
/// ETE/TRBE drivers bind nothing, the modules cannot be removed while a
/// session holds them and unload and reload cleanly after; on the workload,
/// CPU-wide (with CPU 2 unplugged and replugged during the session) and
/// then per-thread on CPU 2, perf report's top entry is its hot_loop, every
/// instruction sample perf script gives for it lies in its .text, and perf
/// reports no decoder error; with an address filter on cold_setup, every
/// sample lies in cold_setup. Firmware returns from every power-down.
#[test]
fn linux_perf_cs_etm_on_the_instruction_source() {
    let summary = csperf("");
    assert_eq!(count(&summary, "stats:", "warm_boots"), 0, "{summary}");
}

/// The same with `test.powerdown`: idle cores power down with their trace
/// enabled (CPU-wide) and come back through a real warm boot with EL2 and
/// trace state lost, restored on the warm-boot path; perf's sessions and
/// decoding survive it.
#[test]
fn linux_perf_cs_etm_with_power_loss() {
    let summary = csperf("test.powerdown");
    let (down, warm, saved) = (
        count(&summary, "stats:", "powerdown"),
        count(&summary, "stats:", "warm_boots"),
        count(&summary, "stats:", "trace_saved"),
    );
    assert!(down > 0, "no power-down CPU_SUSPEND:\n{summary}");
    assert_eq!(warm, down, "every power-down is a warm boot:\n{summary}");
    assert!(
        saved > 0,
        "no core powered down with its trace enabled:\n{summary}"
    );
}

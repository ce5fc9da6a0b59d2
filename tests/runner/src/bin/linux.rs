//! `make run-linux`: boots Debian's stock arm64 Linux kernel (the cloud
//! flavour, fetched by `tests/linux/fetch.sh`) with a busybox initramfs
//! (`tests/linux/mkinitramfs.py`) as the guest of the hypervisor on QEMU.
//!
//! The kernel's Image is loaded at [`runner::GUEST_ENTRY`] (2 MiB aligned,
//! text_offset 0) and entered there by the hypervisor with x0 = the guest's
//! device tree; the initrd is loaded at [`INITRD`] and described in the
//! guest tree's /chosen. By default the tree also offers a PSCI power-down
//! idle state on every CPU (`--no-idle` leaves it out and boots with
//! `cpuidle.off=1`). The initramfs's /init reports CPUs, cpuidle and CPU
//! hotplug as `linux-init: PASS|FAIL ...` lines and powers off.
//!
//! Usage: `linux [--cores N] [--bare] [--shell] [--no-idle] [--debug] [--tracemgr]
//!         [--perf] [--csperf] [--cpu FEATURES] [--hypervisor el2.bin] [--switches "..."]
//!         [--bootargs "..."] [--timeout S]`
//!
//! `--bare` runs the same kernel on QEMU without the hypervisor, for
//! comparison; `--shell` gives an interactive busybox shell instead of the
//! scripted run; `--debug` passes `log=debug` to the hypervisor;
//! `--tracemgr` has /init load the tracemgr module (guest-api/linux, put in
//! the initramfs by `make linux-guest`) and exercise its sysfs files;
//! `--perf` has /init load the CoreSight core module and run Debian's perf
//! (`perf list`, `perf stat`, `perf record`/`perf report` on a workload);
//! `--csperf` has it load coresight.ko and tracemgr_cs.ko (the trace units
//! as CoreSight sources and sinks) and run `perf record -e cs_etm//u` on the
//! workload, per-thread and CPU-wide (tests/linux/csperf.sh).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use runner::{tool, Config, Outcome, GUEST_ENTRY};

/// Where the initrd goes: well above the kernel (whose image_size from the
/// Image header is checked against it) and clear of the hypervisor's own
/// device tree, which QEMU puts 128 MiB into RAM (0x4800_0000).
const INITRD: u64 = 0x4c00_0000;
/// The idle state's phandle in the guest tree (QEMU's own phandles count
/// down from 0x8000 and up from 1).
const IDLE_PHANDLE: u32 = 0x7000;
/// `-icount` shift for `--boot-time`: 2^3 = 8 ns of virtual time per
/// instruction (a 125 MHz core), near real speed for this kernel's timers.
const BOOT_TIME_ICOUNT: u32 = 3;
/// What /init prints first.
const MARK: &str = "linux-init: reached /init";

struct Args {
    cores: usize,
    bare: bool,
    shell: bool,
    idle: bool,
    debug: bool,
    tracemgr: bool,
    perf: bool,
    /// /init checks tracemgr_cs.ko with perf (linuxtest.csperf).
    csperf: bool,
    cpu: String,
    switches: String,
    bootargs: String,
    timeout: u64,
    hypervisor: Option<PathBuf>,
    icount: Option<u32>,
    cycles: Option<u32>,
    rounds: u32,
    boot_time: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        cores: 4,
        bare: false,
        shell: false,
        idle: true,
        debug: false,
        tracemgr: false,
        perf: false,
        csperf: false,
        cpu: String::new(),
        switches: String::new(),
        bootargs: String::new(),
        timeout: 600,
        hypervisor: None,
        icount: None,
        cycles: None,
        rounds: 1,
        boot_time: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--cores" => a.cores = it.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--bare" => a.bare = true,
            "--hypervisor" => a.hypervisor = it.next().map(PathBuf::from),
            "--shell" => a.shell = true,
            "--no-idle" => a.idle = false,
            "--debug" => a.debug = true,
            "--tracemgr" => a.tracemgr = true,
            "--perf" => a.perf = true,
            "--csperf" => a.csperf = true,
            "--cpu" => a.cpu = it.next().unwrap_or_default(),
            "--switches" => a.switches = it.next().unwrap_or_default(),
            "--bootargs" => a.bootargs = it.next().unwrap_or_default(),
            "--timeout" => a.timeout = it.next().and_then(|v| v.parse().ok()).unwrap_or(600),
            "--icount" => {
                a.icount = Some(number(it.next(), "--icount")?);
            }
            "--cycles" => a.cycles = Some(number(it.next(), "--cycles")?),
            "--rounds" => a.rounds = number(it.next(), "--rounds")?,
            "--boot-time" => a.boot_time = true,
            _ => return Err(format!("unknown argument {x}")),
        }
    }
    if !(1..=8).contains(&a.cores) {
        return Err("--cores takes 1 to 8".into());
    }
    Ok(a)
}

fn number(v: Option<String>, what: &str) -> Result<u32, String> {
    v.and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{what} takes a number"))
}

/// The Image header's image_size (bytes from the load address the kernel
/// may use, BSS included) after checking its magic and text_offset.
fn image_size(image: &Path) -> Result<u64, String> {
    let b = std::fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let word = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    if b.len() < 64 || &b[56..60] != b"ARM\x64" {
        return Err(format!("{} is not an arm64 Image", image.display()));
    }
    if word(8) != 0 {
        return Err(format!("text_offset {:#x}, expected 0", word(8)));
    }
    Ok(word(16))
}

/// Adds the initrd and, if asked, a PSCI power-down idle state on every CPU
/// to the device tree at `dtb`.
fn edit_dtb(dtb: &Path, cores: usize, initrd: (u64, u64), idle: bool) -> Result<(), String> {
    let p = dtb.to_str().ok_or("non-UTF-8 path")?;
    let (start, end) = (initrd.0, initrd.0 + initrd.1);
    for (name, v) in [("linux,initrd-start", start), ("linux,initrd-end", end)] {
        tool(
            "fdtput",
            &[
                "-t",
                "x",
                p,
                "/chosen",
                name,
                &format!("{:#x}", v >> 32),
                &format!("{:#x}", v & 0xffff_ffff),
            ],
        )?;
    }
    if idle {
        let node = "/cpus/idle-states/cpu-pd";
        tool("fdtput", &["-c", p, "/cpus/idle-states", node])?;
        tool(
            "fdtput",
            &["-t", "s", p, "/cpus/idle-states", "entry-method", "psci"],
        )?;
        tool(
            "fdtput",
            &["-t", "s", p, node, "compatible", "arm,idle-state"],
        )?;
        tool(
            "fdtput",
            &["-t", "s", p, node, "idle-state-name", "cpu-power-down"],
        )?;
        tool(
            "fdtput",
            &["-t", "x", p, node, "arm,psci-suspend-param", "0x10000"],
        )?;
        for (prop, v) in [
            ("entry-latency-us", "100"),
            ("exit-latency-us", "250"),
            ("min-residency-us", "1000"),
        ] {
            tool("fdtput", &["-t", "u", p, node, prop, v])?;
        }
        tool(
            "fdtput",
            &["-t", "x", p, node, "phandle", &format!("{IDLE_PHANDLE:#x}")],
        )?;
        for c in 0..cores {
            tool(
                "fdtput",
                &[
                    "-t",
                    "x",
                    p,
                    &format!("/cpus/cpu@{c}"),
                    "cpu-idle-states",
                    &format!("{IDLE_PHANDLE:#x}"),
                ],
            )?;
        }
    }
    Ok(())
}

/// Lines that mean the kernel or the hypervisor went wrong: kernel
/// warnings, oopses, BUGs, RCU stalls, lockups and hung tasks; a hypervisor
/// FATAL/PANIC or an abort it injected; a trace-state violation seen by /init.
const PROBLEMS: &[&str] = &[
    "WARNING:",
    "Oops",
    "Internal error",
    "Unable to handle",
    "Kernel panic",
    "BUG:",
    "Call trace:",
    "rcu: INFO",
    "self-detected stall",
    "detected stalls",
    "soft lockup",
    "hard LOCKUP",
    "blocked for more than",
    "failed to come online",
    "FATAL",
    "PANIC",
    "inject",
    "linux-init: violation",
];

/// The guest uptime (s) at which /init started, as /init printed it.
fn init_uptime(out: &Outcome) -> Option<f64> {
    let l = out.lines_with(MARK).next()?;
    let rest = &l[l.find("uptime ")? + 7..];
    rest.split_whitespace().next()?.parse().ok()
}

/// Prints what happened; true if the run passed: /init reached, every check
/// passed, no problem line, and a clean power-off (QEMU's exit status 0
/// after PSCI SYSTEM_OFF) before the timeout.
/// The trace data /init read back through `cpuN/data` (`linux-init:
/// tracedata cpuN <hex bytes>` lines), decoded with OpenCSD's
/// trc_pkt_lister: `None` if /init printed none; else whether the bytes add
/// up to what TRACE_STATS said and decode without error into at least one
/// exception element (the model traces the CPU's traps to EL2).
fn decode_linux_trace(out: &Outcome) -> Option<bool> {
    use runner::snapshot::{self, Capture, EteRegs};
    let stats = out
        .lines_with("linux-init: tracedata cpu")
        .find(|l| l.contains(" stats "))?;
    let available: usize = stats
        .split("available=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())?;
    let mut data = Vec::new();
    for l in out.lines_with("linux-init: tracedata cpu") {
        if l.contains(" stats ") {
            continue;
        }
        let words = l.split("linux-init: tracedata cpu").nth(1).unwrap_or("");
        // "<n> xx xx ...": the CPU number, then the bytes.
        for w in words.split_whitespace().skip(1) {
            match u8::from_str_radix(w, 16) {
                Ok(b) if w.len() == 2 => data.push(b),
                _ => {
                    println!("trace data: bad byte {w:?} in: {l}");
                    return Some(false);
                }
            }
        }
    }
    let capture = Capture {
        cpu: 0,
        regs: EteRegs::model(snapshot::TRACEDATA_CONFIGR, el2::trace::trace_id(0).into()),
        data,
    };
    let len = capture.data.len();
    let decoded = runner::tempdir().and_then(|dir| {
        snapshot::write(&dir, &[capture])?;
        let listing = snapshot::list(&dir, 0, false)?;
        let full = snapshot::list(&dir, 0, true)?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok((listing, full))
    });
    let (listing, full) = match decoded {
        Ok(x) => x,
        Err(e) => {
            println!("trace data: {e}");
            return Some(false);
        }
    };
    let packets = snapshot::packets(&listing).len();
    let exceptions = full.matches("OCSD_GEN_TRC_ELEM_EXCEPTION").count();
    let errors = snapshot::errors(&listing).len() + snapshot::errors(&full).len();
    // By kind: what trapped to EL2 while Linux idled (ETE exception numbers).
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for k in full.split("excep num (").skip(1) {
        let num = k.split(')').next().unwrap_or("?").to_string();
        match kinds.iter_mut().find(|(n, _)| *n == num) {
            Some((_, c)) => *c += 1,
            None => kinds.push((num, 1)),
        }
    }
    let kinds: Vec<String> = kinds.iter().map(|(n, c)| format!("{n}: {c}")).collect();
    println!(
        "trace data from Linux: {len} bytes (TRACE_STATS: {available}), {packets} packets, {exceptions} exceptions decoded by trc_pkt_lister (by exception number {}), {errors} decoder errors",
        kinds.join(", ")
    );
    for l in snapshot::errors(&listing)
        .iter()
        .chain(snapshot::errors(&full).iter())
        .take(5)
    {
        println!("  decoder: {l}");
    }
    Some(len == available && len > 0 && errors == 0 && exceptions > 0)
}

fn report(out: &Outcome, bare: bool, cores: usize, shell: bool, tracemgr: bool) -> bool {
    let passed = out.lines_with("linux-init: PASS").count();
    let failed = out.lines_with("linux-init: FAIL").count();
    let reached = out.lines_with(MARK).next();
    println!(
        "== summary ({}) ==",
        if bare {
            "bare QEMU"
        } else {
            "under the hypervisor"
        }
    );
    println!(
        "QEMU {} after {:.1} s",
        match (out.timed_out, out.status) {
            (true, _) => "was stopped by the timeout".to_string(),
            (false, Some(s)) => format!("exited with status {s}"),
            (false, None) => "was killed".to_string(),
        },
        out.elapsed.as_secs_f64()
    );
    match (reached, out.mark_at) {
        (Some(l), Some(t)) => println!("/init reached after {:.1} s wall ({l})", t.as_secs_f64()),
        _ => {
            println!("/init NOT reached; the output ends:");
            let lines: Vec<&str> = out.output.lines().collect();
            for l in &lines[lines.len().saturating_sub(15)..] {
                println!("  | {l}");
            }
        }
    }
    for l in out
        .lines_with("linux-init: nproc=")
        .chain(out.lines_with("entering the guest"))
        .chain(out.lines_with("linux-init: concurrent run:"))
        .chain(out.lines_with("stats:"))
    {
        println!("{l}");
    }
    let problems: Vec<&str> = out
        .output
        .lines()
        .filter(|l| PROBLEMS.iter().any(|p| l.contains(p)))
        .collect();
    if !problems.is_empty() {
        println!("problems seen ({}):", problems.len());
        for l in problems.iter().take(20) {
            println!("  {l}");
        }
    }
    // The hypervisor's own count: every request posted to another core was
    // served there exactly once, or answered TARGET_OFF (a Linux guest
    // sends no PINGs, which would also count as served).
    let mut accounted = true;
    if let (Some(remote), Some(off), Some(served)) = (
        out.number_after("stats:", "trace_remote"),
        out.number_after("stats:", "target_off"),
        out.number_after("stats:", "served_for_others"),
    ) {
        accounted = remote == off + served;
        println!(
            "hypervisor: {remote} requests posted to another core = {off} TARGET_OFF + {served} served: {}",
            if accounted { "ok" } else { "MISMATCH" }
        );
    } else if !bare && !shell {
        println!("no `stats:` line from the hypervisor");
        accounted = false;
    }
    let trace_ok = match decode_linux_trace(out) {
        Some(ok) => ok,
        None if tracemgr && !shell => {
            println!("no trace data from /init");
            false
        }
        None => true,
    };
    // Linux runs without semihosting: its own poweroff (PSCI SYSTEM_OFF)
    // is the only way to exit 0 with the hypervisor's word for it, which a
    // hypervisor failure (a reset, with -no-reboot) never prints.
    let powered_off = bare || out.lines_with("guest asked for SYSTEM_OFF").count() == 1;
    let clean_exit = !out.timed_out && out.status == Some(0) && powered_off;
    if !clean_exit && !shell {
        println!("no clean power-off");
    }
    println!("init checks: {passed} passed, {failed} failed ({cores} cores)");
    reached.is_some()
        && failed == 0
        && passed > 0
        && problems.is_empty()
        && accounted
        && trace_ok
        && (clean_exit || shell)
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("linux: {e}");
            eprintln!(
                "usage: linux [--cores 1..8] [--bare] [--shell] [--no-idle] [--debug] [--tracemgr] [--perf] [--csperf] \
                 [--cpu sme=off] [--hypervisor el2.bin] [--switches \"...\"] [--bootargs \"...\"] [--timeout S]"
            );
            return ExitCode::from(2);
        }
    };
    let r = if a.boot_time {
        boot_time(&a)
    } else {
        boot(&a).map(|(ok, _)| ok)
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("linux: {e}");
            ExitCode::from(2)
        }
    }
}

fn boot(a: &Args) -> Result<(bool, Outcome), String> {
    // `make ... LINUX_FLAVOUR=arm64` puts the generic kernel elsewhere.
    let dir: PathBuf = std::env::var_os("TM_LINUX_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| runner::build_dir().join("linux"));
    let image = dir.join("kernel/Image");
    let initrd = dir.join("initramfs.cpio");
    for f in [&image, &initrd] {
        if !f.exists() {
            return Err(format!("{} is missing: run `make run-linux`", f.display()));
        }
    }
    let size = image_size(&image)?;
    if GUEST_ENTRY + size > INITRD {
        return Err(format!(
            "kernel image_size {size:#x} overlaps the initrd at {INITRD:#x}"
        ));
    }
    let initrd_len = std::fs::metadata(&initrd).map_err(|e| e.to_string())?.len();

    let mut bootargs = format!(
        "console=ttyAMA0 earlycon=pl011,0x09000000 rdinit=/init linuxtest.cpus={}",
        a.cores
    );
    if !a.idle {
        bootargs.push_str(" cpuidle.off=1");
    }
    if a.shell {
        bootargs.push_str(" linuxtest=shell");
    }
    if a.tracemgr {
        bootargs.push_str(" linuxtest.tracemgr");
    }
    if a.perf {
        bootargs.push_str(" linuxtest.perfcheck");
    }
    if a.csperf {
        bootargs.push_str(" linuxtest.csperf");
    }
    if let Some(c) = a.cycles {
        bootargs.push_str(&format!(
            " linuxtest.cycles={c} linuxtest.rounds={}",
            a.rounds
        ));
    }
    if !a.bootargs.is_empty() {
        bootargs.push(' ');
        bootargs.push_str(&a.bootargs);
    }

    let mut cfg = Config::test_guest(a.cores, &bootargs);
    // The initrd must end inside RAM (the guest's RAM ends where QEMU's
    // does); the kernel unpacks it into free memory at boot.
    let ram_end = runner::RAM_BASE + cfg.memory_mib * 1024 * 1024;
    if INITRD + initrd_len > ram_end {
        return Err(format!(
            "the initramfs ({initrd_len} bytes at {INITRD:#x}) runs past the end of RAM at {ram_end:#x}"
        ));
    }
    println!(
        "initramfs: {initrd_len} bytes at {INITRD:#x}..{:#x} (RAM ends at {ram_end:#x})",
        INITRD + initrd_len
    );
    cfg.guest = image.clone();
    if let Some(h) = &a.hypervisor {
        cfg.hypervisor = h.clone();
    }
    cfg.echo = true;
    cfg.interactive = a.shell;
    cfg.cpu_features = a.cpu.clone();
    cfg.timeout = Duration::from_secs(if a.shell { 24 * 3600 } else { a.timeout });
    cfg.mark = Some(MARK.into());
    cfg.icount = a.icount;
    // Any guest but the bundled test guest runs without semihosting.
    cfg.semihosting = false;
    let mut switches = a.switches.clone();
    if a.debug {
        switches.push_str(" log=debug");
    }
    cfg.hypervisor_switches = switches.trim().to_string();

    let tmp = runner::tempdir()?;
    let out = if a.bare {
        // The same machine without EL2; QEMU's own tree (all of RAM), with
        // the same idle states, and QEMU's loader for kernel and initrd.
        let dtb = tmp.join("bare.dtb");
        let mut args = cfg.machine_args();
        args[1] = format!("virt,gic-version=3,dumpdtb={}", dtb.display());
        let o = Command::new("qemu-system-aarch64")
            .args(&args)
            .args(["-nographic", "-nodefaults"])
            .output()
            .map_err(|e| format!("cannot run qemu-system-aarch64: {e}"))?;
        if !dtb.exists() {
            return Err(format!("no dtb: {}", String::from_utf8_lossy(&o.stderr)));
        }
        edit_dtb(&dtb, a.cores, (INITRD, initrd_len), a.idle)?;
        let mut args = cfg.machine_args();
        args[1] = "virt,gic-version=3".into();
        let mut cmd = Command::new("qemu-system-aarch64");
        cmd.args(&args)
            .args(["-nographic", "-nic", "none", "-kernel"])
            .arg(&image)
            .arg("-initrd")
            .arg(&initrd)
            .args(["-append", &bootargs])
            .arg("-dtb")
            .arg(&dtb);
        println!(
            "== Debian's arm64 kernel on bare QEMU (no hypervisor), {} cores ==",
            a.cores
        );
        runner::run_command(&cfg, cmd)?
    } else {
        let dtb = runner::guest_dtb(&cfg, &tmp)?;
        edit_dtb(&dtb, a.cores, (INITRD, initrd_len), a.idle)?;
        cfg.guest_dtb = Some(dtb);
        cfg.extra_loads.push((initrd.clone(), INITRD));
        println!(
            "== Debian's arm64 kernel as the hypervisor's guest on QEMU, {} cores{} ==",
            a.cores,
            if a.idle {
                ", PSCI power-down idle state"
            } else {
                ", cpuidle.off=1"
            }
        );
        runner::run(&cfg)?
    };
    let _ = std::fs::remove_dir_all(&tmp);
    let ok = report(&out, a.bare, a.cores, a.shell, a.tracemgr);
    Ok((ok, out))
}

/// `--boot-time`: the same kernel and initramfs to /init on bare QEMU and
/// under the hypervisor, both with `-icount` (virtual time from instructions,
/// so the figures repeat) and `cpuidle.off=1` (bare QEMU cannot run the idle
/// states); compares the guest's uptime at /init, plus the hypervisor's own
/// time from reset to entering the guest.
fn boot_time(a: &Args) -> Result<bool, String> {
    let shift = a.icount.unwrap_or(BOOT_TIME_ICOUNT);
    let mut results = Vec::new();
    for bare in [true, false] {
        let run = Args {
            bare,
            idle: false,
            tracemgr: false,
            perf: false,
            csperf: false,
            cycles: None,
            shell: false,
            icount: Some(shift),
            cpu: a.cpu.clone(),
            switches: a.switches.clone(),
            bootargs: a.bootargs.clone(),
            hypervisor: a.hypervisor.clone(),
            ..*a
        };
        let (ok, out) = boot(&run)?;
        let uptime = init_uptime(&out).filter(|_| ok);
        // "entering the guest <N> us after reset" (hypervisor only).
        let hyp_us: Option<u64> = out.lines_with("entering the guest").next().and_then(|l| {
            l.split_whitespace()
                .skip_while(|w| *w != "guest")
                .nth(1)?
                .parse()
                .ok()
        });
        results.push((bare, uptime, hyp_us, out.elapsed));
    }
    println!(
        "== boot time to /init, {} cores, -icount shift={shift},sleep=off, cpuidle.off=1 ==",
        a.cores
    );
    println!("| run | guest uptime at /init | hypervisor boot to guest entry | wall |");
    println!("|---|---|---|---|");
    for (bare, up, hyp, wall) in &results {
        println!(
            "| {} | {} | {} | {:.1} s |",
            if *bare {
                "bare QEMU"
            } else {
                "under the hypervisor"
            },
            up.map_or("FAILED".into(), |u| format!("{u:.2} s")),
            hyp.map_or("-".into(), |h| format!("{:.1} ms", h as f64 / 1000.0)),
            wall.as_secs_f64()
        );
    }
    let (Some(bare), Some(hyp)) = (results[0].1, results[1].1) else {
        return Ok(false);
    };
    println!(
        "boot-time ratio (hypervisor / bare, guest uptime at /init): {:.3}",
        hyp / bare
    );
    Ok(true)
}

//! `make run`: boots the hypervisor with the bundled test guest on QEMU and
//! tells what happened. By default the guest tells the trace manager's
//! story (`test=story`), with power-down suspends simulated so the warm-boot
//! path runs.
//!
//! Usage: `runner [--cores N] [--bootargs "..."] [--no-powerdown] [--switches "..."]`
//! (`--switches` adds hypervisor switches, e.g. `trace.source=insn`)

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut cores = 4;
    let mut bootargs = String::from("test=story");
    let mut powerdown = true;
    let mut switches = String::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--cores" => cores = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--bootargs" => bootargs = args.next().unwrap_or_default(),
            "--no-powerdown" => powerdown = false,
            "--switches" => switches = args.next().unwrap_or_default(),
            _ => {
                eprintln!(
                    "usage: runner [--cores 1..8] [--bootargs \"test=story\"] [--no-powerdown] [--switches \"trace.source=insn ...\"]"
                );
                return ExitCode::from(2);
            }
        }
    }
    if !(1..=8).contains(&cores) {
        eprintln!("runner: --cores takes 1 to 8");
        return ExitCode::from(2);
    }
    let mut cfg = runner::Config::test_guest(cores, &bootargs);
    cfg.echo = true;
    if powerdown {
        cfg.hypervisor_switches = "test.powerdown".into();
    }
    if !switches.is_empty() {
        cfg.hypervisor_switches = format!("{} {switches}", cfg.hypervisor_switches);
    }
    println!("== booting the hypervisor with the test guest on QEMU virt, {cores} cores ==");
    let out = match runner::run(&cfg) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("runner: {e}");
            return ExitCode::from(2);
        }
    };
    let passed = out.lines_with("guest: PASS").count();
    let failed = out.lines_with("guest: FAIL").count();
    println!("== summary ==");
    println!(
        "QEMU {} after {:.1} s",
        match (out.timed_out, out.status) {
            (true, _) => "was stopped by the timeout".to_string(),
            (false, Some(s)) => format!("exited with status {s}"),
            (false, None) => "was killed".to_string(),
        },
        out.elapsed.as_secs_f64()
    );
    println!("guest checks: {passed} passed, {failed} failed");
    if out.status == Some(0) && failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

//! `make run`: boots the hypervisor with the bundled test guest on QEMU and
//! tells what happened. By default the guest tells the trace manager's
//! story (`test=story`), with power-down suspends simulated so the warm-boot
//! path runs and the QEMU model fed by the instruction source
//! (`trace.source=insn`: EL2 steps each traced core), then shows a traced
//! program decoded instruction by instruction.
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
    let story = bootargs == "test=story";
    let mut cfg = runner::Config::test_guest(cores, &bootargs);
    cfg.echo = true;
    if powerdown {
        cfg.hypervisor_switches = "test.powerdown".into();
    }
    // The story traces with the instruction source (EL2 steps each traced
    // core) unless the switches say otherwise.
    if story && !switches.contains("trace.source=") {
        switches.push_str(" trace.source=insn");
    }
    if !switches.is_empty() {
        cfg.hypervisor_switches = format!("{} {}", cfg.hypervisor_switches, switches.trim());
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
    let mut ok = out.status == Some(0) && failed == 0 && passed > 0;
    if story {
        match instruction_trace() {
            Ok(()) => {}
            Err(e) => {
                eprintln!("runner: the instruction trace: {e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Instructions of the decoded trace shown.
const SHOWN: usize = 24;

/// The end of `make run`: the test guest's known program (`test=insntrace`)
/// traced instruction by instruction (`trace.source=insn`) on one core,
/// read out with TRACE_READ, decoded by OpenCSD over the guest image, and
/// shown with the guest's function names.
fn instruction_trace() -> Result<(), String> {
    use runner::execlog::{test_guest_elf, Symbols};
    use runner::snapshot::{self, Capture, EteRegs, MemoryDump};
    println!(
        "\n== the instruction source: test=insntrace on 1 core with trace.source=insn, decoded by OpenCSD =="
    );
    let mut cfg = runner::Config::test_guest(1, "test=insntrace");
    cfg.hypervisor_switches = "trace.source=insn".into();
    let out = runner::run(&cfg)?;
    if out.status != Some(0) || out.lines_with("guest: FAIL").count() != 0 {
        return Err(format!(
            "test=insntrace did not pass (status {:?}):\n{}",
            out.status, out.output
        ));
    }
    let data = snapshot::printed_dump(&out.output, "insn")?;
    // EL1 with an address filter: no timestamps, no context ID.
    let regs = EteRegs::model(1, el2::trace::trace_id(0).into());
    let image = runner::test_guest_image();
    let memory = MemoryDump {
        address: runner::GUEST_ENTRY,
        bytes: std::fs::read(&image).map_err(|e| format!("{}: {e}", image.display()))?,
    };
    let dir = runner::tempdir()?;
    let bytes = data.len();
    snapshot::write_with_memory(&dir, &[Capture { cpu: 0, regs, data }], &[memory])?;
    let listing = snapshot::list(&dir, 0, true)?;
    let _ = std::fs::remove_dir_all(&dir);
    let addrs = snapshot::executed_addresses(&listing)?;
    let symbols = Symbols::read(&test_guest_elf())?;
    println!(
        "{bytes} bytes of trace, {} instructions decoded; the first {SHOWN}:",
        addrs.len()
    );
    for a in addrs.iter().take(SHOWN) {
        println!("  {}", symbols.describe(*a));
    }
    for (ret, kind) in snapshot::decoded_exceptions(&listing) {
        println!("  exception {kind:#x}, return to {}", symbols.describe(ret));
    }
    println!(
        "(the whole program: `cargo test -p runner --release --test insn_oracle -- --nocapture` checks it against QEMU's own log)"
    );
    Ok(())
}

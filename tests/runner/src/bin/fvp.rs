//! The FVP runner's two steps around the model (tests/fvp/run.sh):
//!
//! `fvp prepare --dtb FVP.dtb --out DIR [--cores N] [--bootargs "test=tracedata"] [--switches "..."]`
//!   makes DIR/hypervisor.dtb and DIR/guest.dtb from the FVP's own device
//!   tree (`runner::fvp::prepare`) and prints, one `NAME=value` a line, the
//!   files and addresses the model must load (for the shell to `eval`).
//!
//! `fvp decode --log LOG --out DIR [--cores N]`
//!   reads the run's console log: the guest's trace dumps and the
//!   hypervisor's `trace unit ids: backend=ete ...` lines (the real ETE's
//!   TRCIDR0/1/2/8 and TRCDEVARCH), writes a CoreSight snapshot to DIR, and
//!   decodes every core with OpenCSD's trc_pkt_lister. It fails if a core's
//!   ID registers are missing (the snapshot must describe the real unit, not
//!   the QEMU model), if the decoder reports errors, or if core 0's trace
//!   holds fewer Call exceptions than the guest made HVCs.

use std::path::PathBuf;
use std::process::ExitCode;

use runner::{fvp, snapshot};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().unwrap_or_default();
    let mut dtb = None;
    let mut out = None;
    let mut log = None;
    let mut cores = None;
    let mut bootargs = String::from("test=tracedata");
    let mut switches = String::new();
    while let Some(a) = args.next() {
        let v = args.next();
        match (a.as_str(), v) {
            ("--dtb", Some(v)) => dtb = Some(PathBuf::from(v)),
            ("--out", Some(v)) => out = Some(PathBuf::from(v)),
            ("--log", Some(v)) => log = Some(PathBuf::from(v)),
            ("--cores", Some(v)) => cores = v.parse().ok(),
            ("--bootargs", Some(v)) => bootargs = v,
            ("--switches", Some(v)) => switches = v,
            _ => return usage(),
        }
    }
    let result = match (cmd.as_str(), out) {
        ("prepare", Some(out)) => match dtb {
            Some(dtb) => prepare(&dtb, &out, cores, &bootargs, &switches),
            None => return usage(),
        },
        ("decode", Some(out)) => match log {
            Some(log) => decode(&log, &out, cores),
            None => return usage(),
        },
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fvp {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: fvp prepare --dtb FVP.dtb --out DIR [--cores N] [--bootargs ARGS] [--switches ARGS]\n       \
         fvp decode --log LOG --out DIR [--cores N]"
    );
    ExitCode::from(2)
}

fn prepare(
    dtb: &std::path::Path,
    out: &std::path::Path,
    cores: Option<usize>,
    bootargs: &str,
    switches: &str,
) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let trees = fvp::prepare(dtb, out, cores, bootargs, switches)?;
    let (base, size) = trees.guest_memory;
    println!("HYPERVISOR_IMAGE={}", fvp::hypervisor_image().display());
    println!("HYPERVISOR_ADDR={:#x}", fvp::HYPERVISOR);
    println!("HYPERVISOR_DTB={}", trees.hypervisor.display());
    println!("HYPERVISOR_DTB_ADDR={:#x}", fvp::HYPERVISOR_DTB);
    println!("GUEST_IMAGE={}", fvp::test_guest_image().display());
    println!("GUEST_ADDR={:#x}", fvp::GUEST_ENTRY);
    println!("GUEST_DTB={}", trees.guest.display());
    println!("GUEST_DTB_ADDR={:#x}", fvp::GUEST_DTB);
    println!("GUEST_RAM={base:#x}+{size:#x}");
    Ok(())
}

fn decode(
    log: &std::path::Path,
    out: &std::path::Path,
    cores: Option<usize>,
) -> Result<(), String> {
    let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let text = text.replace('\r', "");
    let cores = cores.unwrap_or(2);
    let run = snapshot::parse_tracedata(&text, cores)?;
    for cpu in 0..cores {
        match snapshot::decoder_ids(&text, cpu) {
            Some((_, true)) => {}
            Some((_, false)) => {
                return Err(format!(
                    "cpu{cpu} traced with the QEMU model, not the ETE: is the model run with \
                     has_ete/has_trbe and TF-A built with the trace options?"
                ))
            }
            None => return Err(format!("cpu{cpu}: no 'trace unit ids' line in the log")),
        }
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    snapshot::write(out, &run.captures)?;
    for cpu in 0..cores {
        let listing = snapshot::list(out, cpu, false)?;
        let errors = snapshot::errors(&listing);
        if !errors.is_empty() {
            return Err(format!("cpu{cpu}: the decoder reports errors: {errors:?}"));
        }
        let packets = snapshot::packets(&listing);
        let calls = packets
            .iter()
            .filter(|p| p.name == "I_EXCEPT" && p.text.contains("Call"))
            .count();
        println!(
            "fvp decode: cpu{cpu}: {} bytes, {} packets, {calls} Call exceptions",
            run.captures[cpu].data.len(),
            packets.len()
        );
        if cpu == 0 && calls < run.calls + 1 {
            return Err(format!(
                "cpu0: {calls} Call exceptions decoded, the guest made {} HVCs while tracing",
                run.calls + 1
            ));
        }
    }
    println!("fvp decode: snapshot in {}", out.display());
    Ok(())
}

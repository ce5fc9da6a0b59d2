//! `make bench` keeps working: the `bench` binary on 2 cores (QEMU with
//! -icount, a few seconds), its results.json complete, and the relations
//! that must hold whatever the exact figures are, plus the one target the
//! figures have (trace-off suspend within 1.05x of the bare relay). No
//! timing is asserted: the figures are instruction counts, exact under
//! -icount.

use std::process::Command;

/// The number after `"<key>": {"<field>": ` inside the run for `cores`.
fn figure(json: &str, cores: u32, key: &str, field: &str) -> f64 {
    let run = json
        .split("{\"cores\": ")
        .find(|r| r.starts_with(&format!("{cores},")))
        .unwrap_or_else(|| panic!("no run for {cores} cores in:\n{json}"));
    let at = run
        .find(&format!("\"{key}\": "))
        .unwrap_or_else(|| panic!("no {key} in:\n{run}"));
    let rest = &run[at..];
    let f = rest
        .find(&format!("\"{field}\": "))
        .unwrap_or_else(|| panic!("no {key}.{field}"));
    rest[f + field.len() + 4..]
        .split([',', '}'])
        .next()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{key}.{field} is not a number"))
}

#[test]
fn bench_measures_every_operation_against_its_baseline() {
    let dir = runner::tempdir().expect("temporary directory");
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["--cores", "2", "--out"])
        .arg(&dir)
        .output()
        .expect("run the bench binary");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = std::fs::read_to_string(dir.join("results.json")).expect("results.json");
    let _ = std::fs::remove_dir_all(&dir);
    println!("{text}");
    let el2 = |k: &str| figure(&json, 2, k, "el2_instructions");
    let guest = |k: &str| figure(&json, 2, k, "guest_instructions");
    // The floor is the cheapest; every call costs EL2 instructions.
    let null = el2("null");
    assert!(null > 50.0, "null hypercall: {null}");
    for op in [
        "local_enable",
        "local_status",
        "local_disable",
        "remote_enable",
        "remote_status",
        "remote_disable",
        "suspend_bare_relay",
        "suspend_trace_off",
        "suspend_trace_on",
    ] {
        assert!(el2(op) > null, "{op} {} <= null {null}", el2(op));
        assert!(guest(op) >= el2(op), "{op}: guest-visible < EL2");
    }
    // A remote request is the local one plus the SGI round trip.
    for op in ["enable", "status", "disable"] {
        let (l, r) = (el2(&format!("local_{op}")), el2(&format!("remote_{op}")));
        assert!(r > l, "remote {op} {r} <= local {l}");
    }
    // The trace manager costs something at suspend only when trace is on.
    let (bare, off, on) = (
        el2("suspend_bare_relay"),
        el2("suspend_trace_off"),
        el2("suspend_trace_on"),
    );
    assert!(
        bare <= off && off < on,
        "suspend: bare {bare}, off {off}, on {on}"
    );
    // Trace off costs at most 5% over the bare relay (instruction counts,
    // exact under -icount: a regression, not noise, if this fails).
    assert!(
        off <= 1.05 * bare,
        "suspend trace off {off} > 1.05 x bare relay {bare}"
    );
    // The backend/manager split: nothing reaches the backend without
    // trace work; enabling and the trace-on suspend are mostly backend
    // (the QEMU model), and the manager's share is never zero.
    let backend = |k: &str| figure(&json, 2, k, "backend_el2_instructions");
    for op in ["null", "suspend_bare_relay", "suspend_trace_off"] {
        assert_eq!(backend(op), 0.0, "{op}: backend share");
    }
    for op in ["local_enable", "local_disable", "suspend_trace_on"] {
        let (b, all) = (backend(op), el2(op));
        assert!(b > 0.0 && b < all, "{op}: backend {b} of {all}");
    }
    // The cost of tracing: the exceptions-only source leaves a loop that
    // takes no trap alone; the instruction source steps every instruction
    // of it (so costs EL2 instructions for each) and its encoder is part.
    let cost = |k: &str| -> f64 {
        let at = json
            .find(&format!("\"{k}\": "))
            .unwrap_or_else(|| panic!("no {k} in:\n{json}"));
        json[at + k.len() + 4..]
            .split([',', '}'])
            .next()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{k} is not a number"))
    };
    let loop_insns = cost("loop_guest_instructions");
    assert!(loop_insns > 1000.0, "fixed loop: {loop_insns}");
    assert_eq!(cost("exceptions_loop_instructions"), loop_insns);
    assert!(cost("exceptions_el2_per_trap") > 0.0);
    let per_insn = cost("insn_el2_per_instruction");
    let encoder = cost("insn_backend_per_instruction");
    assert!(
        per_insn > 50.0 && encoder > 0.0 && encoder < per_insn,
        "{per_insn} {encoder}"
    );
    assert!(cost("insn_slowdown") > per_insn / 2.0);
    assert!(json.contains("\"ours\": ") && json.contains("\"full_readback\": "));
    assert!(figure(&json, 2, "all_to_all", "requests") > 0.0);
}

/// Without the `bench` switch the guest's PMU cannot see EL2: its event
/// counter filtered to EL2 (MDCR_EL2.HPMD) and its cycle counter filtered
/// to EL2 (MDCR_EL2.HCCD) stay at 0 across hypercalls, while the same
/// counters do count with the switch, and the EL1 count always does.
#[test]
fn guest_pmu_cannot_count_el2_without_the_bench_switch() {
    let counts = |switch: &str| {
        let mut cfg = runner::Config::test_guest(1, "test=bench");
        cfg.icount = Some(0);
        cfg.hypervisor_switches = switch.into();
        let out = runner::run(&cfg).expect("run QEMU");
        assert_eq!(out.status, Some(0), "bench guest failed:\n{}", out.output);
        let n = |marker: &str, key: &str| {
            out.number_after(marker, key)
                .unwrap_or_else(|| panic!("no {key}= after {marker}:\n{}", out.output))
        };
        (
            n("bench: op=null ", "el2"),
            n("bench: el2 cycles", "el2_cycles"),
            n("bench: op=null ", "insns"),
        )
    };
    let (el2, cycles, insns) = counts("");
    println!(
        "without bench: el2 instructions {el2}, el2 cycles {cycles}, all instructions {insns}"
    );
    assert_eq!((el2, cycles), (0, 0), "EL2 visible to the guest's PMU");
    assert!(insns > 0, "the guest's own instructions were not counted");
    let (el2, cycles, _) = counts("bench");
    println!("with bench: el2 instructions {el2}, el2 cycles {cycles}");
    assert!(
        el2 > 0 && cycles > 0,
        "the bench switch should let the guest count EL2"
    );
}

//! `make bench`: the hypervisor's costs against their baselines, measured
//! in one run.
//!
//! For 1, 2, 4 and 8 cores, boots the test guest's `test=bench` scenario
//! (`tests/guest/src/bench.rs`) under QEMU with `-icount shift=0,sleep=off`
//! (one instruction = 1 ns of virtual time, so figures repeat exactly from
//! run to run whatever the host is doing) and the hypervisor's `bench`
//! switch (the guest's PMU may count EL2 instructions), once with the
//! hypervisor and once with the same hypervisor built without its trace
//! manager (`build/el2-bare.bin`, feature `bare-relay`: the baseline for the
//! suspend cycle). Adds the trace-register accesses of one save + restore,
//! ours against a Linux-style full readback (host, through the fake register
//! layer), and the image size and memory per core.
//!
//! Writes `target/bench/results.json`, prints a table with each figure's
//! ratio to its baseline, and (`tests/bench/plot.py`) draws
//! `target/bench/cost.png`.
//!
//! Usage: `bench [--cores 1,2,4,8] [--out DIR]`

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use runner::{build_dir, hypervisor_image, Config, Outcome};

/// `-icount shift`: 2^0 ns of virtual time per instruction.
const SHIFT: u32 = 0;

/// One operation's totals, as the guest printed them.
#[derive(Clone, Debug)]
struct Op {
    name: String,
    iters: u64,
    el2: u64,
    insns: u64,
    /// EL2 instructions inside the trace backend (`el2/src/hv/tracing/metered.rs`).
    backend: u64,
}

/// One operation's figures per call.
#[derive(Clone, Copy, Debug)]
struct PerOp {
    /// EL2 instructions.
    el2: f64,
    /// Guest-visible instructions (EL0..EL2).
    insns: f64,
    /// ... of the EL2 instructions, those inside the trace backend.
    backend: f64,
}

/// Everything one boot measured.
#[derive(Clone, Debug, Default)]
struct Boot {
    freq: u64,
    ops: Vec<Op>,
    /// (requests, span in ticks) of the all-to-all run.
    all_to_all: Option<(u64, u64)>,
    /// (stack, core-local, shared, trace buffer) bytes per core.
    memory: Option<[u64; 4]>,
}

impl Boot {
    fn op(&self, name: &str) -> Option<&Op> {
        self.ops.iter().find(|o| o.name == name)
    }

    /// Virtual-time ticks to guest-visible instructions.
    fn insns(&self, ticks: f64) -> f64 {
        ticks * 1e9 / self.freq as f64 / f64::from(1u32 << SHIFT)
    }

    /// The figures per call of `name`.
    fn per_op(&self, name: &str) -> Option<PerOp> {
        let o = self.op(name)?;
        let n = o.iters.max(1) as f64;
        Some(PerOp {
            el2: o.el2 as f64 / n,
            insns: o.insns as f64 / n,
            backend: o.backend as f64 / n,
        })
    }
}

fn value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("{key}=");
    let i = line.find(&pat)? + pat.len();
    line[i..].split_whitespace().next()
}

fn number(line: &str, key: &str) -> Option<u64> {
    value(line, key)?.parse().ok()
}

fn parse(out: &Outcome) -> Result<Boot, String> {
    let mut b = Boot::default();
    for l in out.output.lines() {
        if l.contains("bench: op=") {
            b.ops.push(Op {
                name: value(l, "op").ok_or("op")?.to_string(),
                iters: number(l, "iters").ok_or("iters")?,
                el2: number(l, "el2").ok_or("el2")?,
                insns: number(l, "insns").ok_or("insns")?,
                backend: number(l, "backend").ok_or("backend")?,
            });
        } else if l.contains("bench: all_to_all") {
            b.all_to_all = Some((
                number(l, "requests").ok_or("requests")?,
                number(l, "ticks").ok_or("ticks")?,
            ));
        } else if l.contains("bench: cores=") {
            b.freq = number(l, "freq").ok_or("freq")?;
        } else if let Some(rest) = l.split("memory per core: ").nth(1) {
            let nums: Vec<u64> = rest
                .split(',')
                .filter_map(|f| f.split_whitespace().rev().nth(1)?.parse().ok())
                .collect();
            if nums.len() == 4 {
                b.memory = Some([nums[0], nums[1], nums[2], nums[3]]);
            }
        }
    }
    if b.freq == 0 || !out.output.contains("bench: done") {
        return Err("the guest did not finish its measurements".into());
    }
    Ok(b)
}

fn boot(hypervisor: PathBuf, cores: usize) -> Result<Boot, String> {
    boot_with(hypervisor, cores, "test=bench", "bench")
}

fn boot_with(
    hypervisor: PathBuf,
    cores: usize,
    bootargs: &str,
    switches: &str,
) -> Result<Boot, String> {
    let mut cfg = Config::test_guest(cores, bootargs);
    cfg.hypervisor = hypervisor;
    cfg.hypervisor_switches = switches.into();
    cfg.icount = Some(SHIFT);
    cfg.timeout = Duration::from_secs(900);
    let out = runner::run(&cfg)?;
    if out.timed_out || out.status != Some(0) {
        let tail: Vec<&str> = out.output.lines().rev().take(25).collect();
        return Err(format!(
            "{} on {cores} cores: status {:?}, timed out {}; output ends:\n{}",
            cfg.hypervisor.display(),
            out.status,
            out.timed_out,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    parse(&out)
}

/// One table row: name, EL2 instructions (all, in the backend, the rest),
/// guest-visible instructions, and both ratios to the baseline (if any).
fn row(t: &mut String, name: &str, v: PerOp, base: Option<PerOp>, base_name: &str) {
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}x", a / b)
        } else {
            "-".into()
        }
    };
    let (r1, r2) = base.map_or(("".into(), "".into()), |b| {
        (ratio(v.el2, b.el2), ratio(v.insns, b.insns))
    });
    // A remote request's backend runs on the target core, whose counter 2
    // the caller does not read: no split.
    let split = if name.starts_with("remote") {
        "- | -".to_string()
    } else {
        format!("{:.0} | {:.0}", v.backend, v.el2 - v.backend)
    };
    let _ = writeln!(
        t,
        "| {name} | {:.0} | {split} | {:.0} | {r1} | {r2} | {base_name} |",
        v.el2, v.insns
    );
}

fn json_op(name: &str, v: PerOp) -> String {
    format!(
        "\"{name}\": {{\"el2_instructions\": {:.1}, \"backend_el2_instructions\": {:.1}, \"guest_instructions\": {:.1}}}",
        v.el2, v.backend, v.insns
    )
}

/// What tracing costs (one core).
struct TraceCost {
    /// Guest instructions of the fixed loop, untraced (EL0/EL1 only).
    loop_insns: f64,
    /// Exceptions-only source: the loop traced (guest-visible
    /// instructions), and the extra EL2 instructions of one trap traced.
    exc_loop: f64,
    exc_per_trap: f64,
    /// Instruction source: EL2 instructions of the traced loop, of which
    /// the backend (the model's encoder), and guest-visible instructions.
    insn_el2: f64,
    insn_backend: f64,
    insn_visible: f64,
}

fn trace_cost(exc: &Boot, insn: &Boot) -> Result<TraceCost, String> {
    let get = |b: &Boot, k: &str| b.per_op(k).ok_or(format!("no {k}"));
    let untraced = get(insn, "loop_untraced")?;
    let traced = get(insn, "loop_traced")?;
    let (null, null_traced) = (get(exc, "null")?, get(exc, "null_traced")?);
    Ok(TraceCost {
        loop_insns: untraced.insns - untraced.el2,
        exc_loop: get(exc, "loop_traced")?.insns,
        exc_per_trap: null_traced.el2 - null.el2,
        insn_el2: traced.el2,
        insn_backend: traced.backend,
        insn_visible: traced.insns,
    })
}

impl TraceCost {
    fn per_insn(&self) -> f64 {
        self.insn_el2 / self.loop_insns
    }

    fn table(&self) -> String {
        let n = self.loop_insns;
        format!(
            "\n### The cost of tracing (1 core)\n\n\
             | source | fixed loop, guest-visible instructions | slowdown | EL2 instructions per traced guest instruction | of which backend (encoder) | per trap |\n\
             |---|---|---|---|---|---|\n\
             | untraced | {n:.0} | 1.00x | - | - | - |\n\
             | exceptions only | {:.0} | {:.2}x | 0 (the loop takes no trap) | - | {:.0} |\n\
             | instructions (`trace.source=insn`) | {:.0} | {:.1}x | **{:.0}** (target 400) | {:.0} | - |\n",
            self.exc_loop,
            self.exc_loop / n,
            self.exc_per_trap,
            self.insn_visible,
            self.insn_visible / n,
            self.per_insn(),
            self.insn_backend / n,
        )
    }

    fn json(&self) -> String {
        format!(
            "  \"trace_cost\": {{\"loop_guest_instructions\": {:.0}, \"exceptions_loop_instructions\": {:.0}, \"exceptions_el2_per_trap\": {:.1}, \"insn_el2_per_instruction\": {:.1}, \"insn_backend_per_instruction\": {:.1}, \"insn_slowdown\": {:.2}}}",
            self.loop_insns,
            self.exc_loop,
            self.exc_per_trap,
            self.per_insn(),
            self.insn_backend / self.loop_insns,
            self.insn_visible / self.loop_insns
        )
    }
}

fn main() -> ExitCode {
    match bench() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench() -> Result<(), String> {
    let mut cores = vec![1usize, 2, 4, 8];
    let mut out_dir = runner::root().join("target/bench");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--cores" => {
                cores = args
                    .next()
                    .ok_or("--cores takes a list")?
                    .split(',')
                    .map(|c| c.parse().map_err(|_| format!("bad core count {c}")))
                    .collect::<Result<_, _>>()?
            }
            "--out" => out_dir = PathBuf::from(args.next().ok_or("--out takes a directory")?),
            _ => {
                return Err(format!(
                    "unknown argument {a} (usage: bench [--cores 1,2,4,8] [--out DIR])"
                ))
            }
        }
    }
    let bare_image = build_dir().join("el2-bare.bin");
    let image = hypervisor_image();
    let image_bytes = std::fs::metadata(&image)
        .map_err(|e| format!("{}: {e} (run `make images`)", image.display()))?
        .len();
    let (ours, full) = el2::trace::access_counts();

    let mut table = String::new();
    let mut json = Vec::new();
    let mut memory = None;
    for &n in &cores {
        eprintln!("bench: {n} core(s): hypervisor, then bare relay ...");
        let b = boot(image.clone(), n)?;
        let bare = boot(bare_image.clone(), n)?;
        memory = memory.or(b.memory);
        let null = b.per_op("null").ok_or("no null call")?;
        let _ = writeln!(table, "\n### {n} core(s)\n");
        let _ = writeln!(
            table,
            "| operation | EL2 instructions | of which backend | manager + transport | guest-visible instructions | EL2 ratio | guest ratio | baseline |"
        );
        let _ = writeln!(table, "|---|---|---|---|---|---|---|---|");
        row(
            &mut table,
            "null hypercall (SMCCC_VERSION)",
            null,
            None,
            "the floor",
        );
        let mut ops = vec![json_op("null", null)];
        for name in [
            "local_enable",
            "local_status",
            "local_disable",
            "remote_enable",
            "remote_status",
            "remote_disable",
        ] {
            if let Some(v) = b.per_op(name) {
                row(
                    &mut table,
                    &name.replace('_', " "),
                    v,
                    Some(null),
                    "null hypercall",
                );
                ops.push(json_op(name, v));
            }
        }
        let base = bare
            .per_op("suspend_trace_off")
            .ok_or("no bare-relay suspend")?;
        row(
            &mut table,
            "suspend cycle, bare PSCI relay",
            base,
            None,
            "the baseline",
        );
        ops.push(json_op("suspend_bare_relay", base));
        for (name, label) in [
            ("suspend_trace_off", "suspend cycle, trace off"),
            ("suspend_trace_on", "suspend cycle, trace on"),
        ] {
            let v = b.per_op(name).ok_or(format!("no {name}"))?;
            row(&mut table, label, v, Some(base), "bare relay");
            ops.push(json_op(name, v));
        }
        let _ = writeln!(
            table,
            "\n\"Of which backend\": the EL2 instructions inside the trace backend (the QEMU model's register emulation and encoder), counted by the guest's PMU counter 2, which the hypervisor enables only inside a backend call; the rest is the manager and the transport. Under -icount QEMU's instruction counters advance with the one virtual clock that every vCPU's instructions drive, so a remote request's row counts the whole machine during the call (caller, transport and the target's manager and backend); its backend runs on the target, whose counter 2 the caller does not read: no split (-)."
        );
        let (reqs, span) = b.all_to_all.ok_or("no all-to-all run")?;
        let total_per_minsn = reqs as f64 / (b.insns(span as f64) / 1e6);
        let per_core_per_minsn = total_per_minsn / n as f64;
        let _ = writeln!(
            table,
            "\nAll-to-all: {reqs} TRACE_STATUS requests from {n} core(s) at once in {:.0} guest-visible instructions: **{per_core_per_minsn:.1} requests per core per million instructions** ({total_per_minsn:.1} for all cores together; QEMU runs one vCPU at a time under -icount, so the per-core figure falls as 1/cores by construction and the aggregate shows the protocol's own scaling).",
            b.insns(span as f64)
        );
        json.push(format!(
            "    {{\"cores\": {n}, \"ops\": {{{}}}, \"all_to_all\": {{\"requests\": {reqs}, \"guest_instructions\": {:.0}, \"requests_per_core_per_million_instructions\": {per_core_per_minsn:.2}, \"requests_per_million_instructions\": {total_per_minsn:.2}}}}}",
            ops.join(", "),
            b.insns(span as f64)
        ));
    }
    // The cost of tracing, on one core: the exceptions-only source (the
    // 1-core boot above) and the instruction source (a boot with
    // trace.source=insn that measures only this).
    eprintln!("bench: 1 core: the instruction source (trace.source=insn) ...");
    let exc = boot(image.clone(), 1)?;
    let insn = boot_with(
        image.clone(),
        1,
        "test=bench trace-cost-only",
        "bench trace.source=insn",
    )?;
    let cost = trace_cost(&exc, &insn)?;
    table.push_str(&cost.table());
    let [stack, local, shared, buffer] = memory.ok_or("no memory-per-core line in the boot log")?;
    let mut head = String::new();
    let _ = writeln!(
        head,
        "## Benchmarks (QEMU -icount shift={SHIFT},sleep=off; instructions per operation)\n"
    );
    let _ = writeln!(
        head,
        "- Trace-register accesses for one suspend save + restore (host, fake register layer): ours **{ours}**, Linux-style full readback and writeback **{full}** ({:.1}x fewer).",
        full as f64 / ours as f64
    );
    let _ = writeln!(
        head,
        "- Image: `build/el2.bin` {image_bytes} bytes. Memory per core: stack {stack} B + core-local state {local} B + shared state {shared} B + trace buffer {buffer} B = {} B.",
        stack + local + shared + buffer
    );
    let text = format!("{head}{table}");
    println!("{text}");

    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let results = format!(
        "{{\n  \"icount_shift\": {SHIFT},\n  \"trace_register_accesses\": {{\"ours\": {ours}, \"full_readback\": {full}}},\n  \"image_bytes\": {image_bytes},\n  \"memory_per_core\": {{\"stack\": {stack}, \"core_local\": {local}, \"shared\": {shared}, \"trace_buffer\": {buffer}}},\n{},\n  \"runs\": [\n{}\n  ]\n}}\n",
        cost.json(),
        json.join(",\n")
    );
    let path = out_dir.join("results.json");
    std::fs::write(&path, results).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(out_dir.join("table.md"), &text).map_err(|e| e.to_string())?;
    println!(
        "wrote {} and {}",
        path.display(),
        out_dir.join("table.md").display()
    );
    Ok(())
}

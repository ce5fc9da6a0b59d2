//! The instruction-trace oracle: what OpenCSD decodes from the
//! hypervisor's trace of `test=insntrace` must be exactly what QEMU says
//! the traced core executed.
//!
//! The run: the hypervisor with `trace.source=insn` (trace every guest
//! instruction) boots the test guest's `test=insntrace` scenario under
//! QEMU's execution log (`runner::execlog`, restricted to the scenario's
//! program, whose range comes from the guest ELF's symbols). The guest
//! traces its own core through the program (TRACE_ENABLE ... TRACE_DISABLE,
//! both HVCs inside it) and prints the buffer; the runner writes it as an
//! OpenCSD snapshot with the guest image as the core's memory, decodes it
//! with `trc_pkt_lister -decode`, and expands the decoder's instruction
//! ranges into addresses.
//!
//! The verdict: the decoded addresses must equal, instruction for
//! instruction, QEMU's sequence for that core from the instruction after
//! the TRACE_ENABLE HVC up to and including the TRACE_DISABLE HVC: same
//! instructions, same order, nothing missing (a lost atom ends or bends the
//! decoded path), nothing extra. On a mismatch the first difference is
//! printed with its neighbours and their symbols. The decoder's exceptions
//! are printed but not judged: QEMU's log (filtered to the program) cannot
//! show exceptions taken to EL2, such as a physical IRQ that EL2 takes
//! before injecting it, which a real trace unit reports too.

use runner::execlog::{self, ExecLog, Symbols};
use runner::snapshot::{self, Capture, EteRegs, MemoryDump};
use runner::{Config, Outcome, GUEST_ENTRY};

/// TRCCONFIGR for the scenario's config (EL1 | address filter: no
/// timestamps, no context ID): only the RES1 bit.
const INSN_CONFIGR: u64 = 1;

/// The program's landmarks, from the guest ELF's symbols.
struct Program {
    symbols: Symbols,
    start: u64,
    end: u64,
    enable_hvc: u64,
    first: u64,
    disable_hvc: u64,
}

fn program() -> Program {
    let elf = execlog::test_guest_elf();
    let symbols = Symbols::read(&elf).unwrap_or_else(|e| panic!("{e} (run `make images`)"));
    let addr = |name: &str| {
        symbols
            .get(name)
            .unwrap_or_else(|| panic!("{}: no symbol {name}", elf.display()))
            .start
    };
    let p = Program {
        start: addr("insntrace_start"),
        end: addr("insntrace_end"),
        enable_hvc: addr("insntrace_enable_hvc"),
        first: addr("insntrace_first"),
        disable_hvc: addr("insntrace_disable_hvc"),
        symbols: Symbols::default(),
    };
    assert!(
        p.start < p.enable_hvc && p.enable_hvc < p.disable_hvc && p.disable_hvc < p.end,
        "insntrace symbols out of order"
    );
    Program { symbols, ..p }
}

/// The decoder's view of the guest's trace unit: the hypervisor's logged
/// ID registers, or the QEMU model's.
fn regs(output: &str, cpu: usize) -> EteRegs {
    let regs = snapshot::decoder_ids(output, cpu).map(|(r, _)| r);
    EteRegs {
        configr: INSN_CONFIGR,
        ..regs.unwrap_or(EteRegs::model(
            INSN_CONFIGR,
            el2::trace::trace_id(cpu).into(),
        ))
    }
}

/// Decodes `data` (core `cpu`'s buffer) over the guest image: the listing
/// and the executed addresses.
fn decode(cpu: usize, regs: EteRegs, data: Vec<u8>) -> (String, Result<Vec<u64>, String>) {
    assert!(
        snapshot::have_decoder(),
        "trc_pkt_lister missing: make deps installs libopencsd-bin"
    );
    let image = runner::test_guest_image();
    let memory = MemoryDump {
        address: GUEST_ENTRY,
        bytes: std::fs::read(&image)
            .unwrap_or_else(|e| panic!("{}: {e} (run `make images`)", image.display())),
    };
    let dir = runner::tempdir().unwrap();
    snapshot::write_with_memory(&dir, &[Capture { cpu, regs, data }], &[memory]).unwrap();
    let listing = snapshot::list(&dir, cpu, true).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&dir);
    let addrs = snapshot::executed_addresses(&listing);
    (listing, addrs)
}

/// QEMU's window: from the instruction after the first TRACE_ENABLE HVC
/// to the TRACE_DISABLE HVC after it, inclusive.
fn window(qemu: &[u64], p: &Program) -> Result<Vec<u64>, String> {
    let at = qemu
        .iter()
        .position(|&pc| pc == p.enable_hvc)
        .ok_or("QEMU's log never reaches the TRACE_ENABLE HVC")?;
    let from = at + 1;
    let len = qemu[from..]
        .iter()
        .position(|&pc| pc == p.disable_hvc)
        .ok_or("QEMU's log never reaches the TRACE_DISABLE HVC")?;
    if qemu.get(from) != Some(&p.first) {
        return Err(format!(
            "after the TRACE_ENABLE HVC QEMU ran {}, not {}",
            qemu.get(from)
                .map_or("nothing".into(), |&a| p.symbols.describe(a)),
            p.symbols.describe(p.first)
        ));
    }
    Ok(qemu[from..=from + len].to_vec())
}

/// Equal, or the first difference with context.
fn compare(decoded: &[u64], expected: &[u64], symbols: &Symbols) -> Result<usize, String> {
    if decoded == expected {
        return Ok(expected.len());
    }
    let k = decoded
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(decoded.len().min(expected.len()));
    let show = |v: &[u64]| {
        let lo = k.saturating_sub(6);
        let hi = (k + 6).min(v.len());
        (lo..hi)
            .map(|i| {
                format!(
                    "  {}{i:5}: {}\n",
                    if i == k { ">" } else { " " },
                    symbols.describe(v[i])
                )
            })
            .collect::<String>()
    };
    let what = if k == decoded.len() {
        format!(
            "the decoded trace stops early: {} of QEMU's instructions missing from {}",
            expected.len() - k,
            symbols.describe(expected[k])
        )
    } else if k == expected.len() {
        format!(
            "the decoded trace goes on: {} instructions after QEMU's window, from {}",
            decoded.len() - k,
            symbols.describe(decoded[k])
        )
    } else {
        format!(
            "decoded {} where QEMU ran {}",
            symbols.describe(decoded[k]),
            symbols.describe(expected[k])
        )
    };
    Err(format!(
        "decoded trace and QEMU differ at instruction {k} (decoded {}, QEMU {}): {what}\n\
         decoded trace:\n{}QEMU executed:\n{}",
        decoded.len(),
        expected.len(),
        show(decoded),
        show(expected)
    ))
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

/// Runs the oracle on `cores` cores with the program on core `traced`.
fn oracle(cores: usize, traced: usize) {
    let p = program();
    let dir = runner::tempdir().unwrap();
    let log = ExecLog::new(dir.join("exec.log"), p.start, p.end);
    let mut cfg = Config::test_guest(cores, &format!("test=insntrace insntrace-core={traced}"));
    cfg.hypervisor_switches = "trace.source=insn".into();
    cfg.exec_log = Some(log.clone());
    let out = runner::run(&cfg).unwrap_or_else(|e| panic!("could not run QEMU: {e}"));
    assert!(!out.timed_out, "QEMU timed out: {}", explain(&out));
    assert_eq!(
        out.status,
        Some(0),
        "guest did not exit 0: {}",
        explain(&out)
    );
    for check in ["cpu-on", "insntrace"] {
        assert_eq!(
            out.lines_with(&format!("guest: PASS {check}")).count(),
            1,
            "{check} did not pass: {}",
            explain(&out)
        );
    }
    // The guest's own view of the program agrees with the ELF's.
    let line = out
        .lines_with("insntrace: program ")
        .next()
        .unwrap_or_else(|| panic!("no program line: {}", explain(&out)));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "program").unwrap();
    let word_hex =
        |w: Option<&&str>| w.and_then(|w| u64::from_str_radix(w.trim_start_matches("0x"), 16).ok());
    assert_eq!(
        (word_hex(words.get(at + 1)), word_hex(words.get(at + 2))),
        (Some(p.start), Some(p.end)),
        "the guest's program range is not the ELF's (stale ELF? run `make images`): {line}"
    );
    let cpu: usize = words
        .get(at + 4)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("bad program line: {line}"));
    assert_eq!(cpu, traced, "the guest traced another core: {line}");

    let text = log.read().unwrap();
    // Kept for a failure's post-mortem; removed when the oracle agrees.
    println!("QEMU's exec log: {}", log.file.display());
    let all = execlog::executed(&text).unwrap_or_else(|e| panic!("QEMU exec log: {e}"));
    let qemu: Vec<u64> = all
        .iter()
        .filter(|e| e.cpu == cpu && (p.start..p.end).contains(&e.pc))
        .map(|e| e.pc)
        .collect();
    let others = all.iter().filter(|e| e.cpu != cpu).count();
    println!(
        "QEMU: core {cpu} executed {} instructions of the program ({others} by other cores)",
        qemu.len()
    );
    let expected = window(&qemu, &p).unwrap_or_else(|e| panic!("{e}"));

    let data = snapshot::printed_dump(&out.output, "insn").unwrap_or_else(|e| panic!("{e}"));
    let (listing, decoded) = decode(cpu, regs(&out.output, cpu), data);
    let decoded = decoded.unwrap_or_else(|e| panic!("{e}\n{listing}"));
    println!(
        "decoded: {} instructions; QEMU's window: {} instructions",
        decoded.len(),
        expected.len()
    );
    // For the reader (not part of the verdict): the exceptions the decoder
    // saw, with their preferred return addresses.
    for (ret, kind) in snapshot::decoded_exceptions(&listing) {
        println!(
            "decoded exception {kind:#x}, return to {}",
            p.symbols.describe(ret)
        );
    }
    match compare(&decoded, &expected, &p.symbols) {
        Ok(n) => {
            println!("compared {n} instructions: identical");
            let _ = std::fs::remove_dir_all(&dir);
        }
        Err(e) => panic!("{e}\ntrc_pkt_lister -decode:\n{listing}"),
    }
}

#[test]
fn insn_trace_equals_qemu_exec_log_1_core() {
    oracle(1, 0);
}

/// Core 1 traced while core 0 waits for it and cores 2 and 3 take timer
/// interrupts.
#[test]
fn insn_trace_equals_qemu_exec_log_4_cores() {
    oracle(4, 1);
}

// ----------------------- the harness's own checks -----------------------

/// A real `trc_pkt_lister -decode` excerpt (OpenCSD 1.3.3, the stream of
/// `harness_decodes_a_known_path_and_catches_a_lost_atom`: trace on at
/// 0x44202060, four E atoms and an N over the counted loop).
const DECODED: &str = "\
Idx:18; ID:0; [0x9d 0x18 0x10 0x20 0x44 0x00 0x00 0x00 0x00 ];\tI_ADDR_L_64IS0 : Address, Long, 64 bit, IS0.; Addr=0x0000000044202060; 
Idx:27; ID:0; [0xf7 ];\tI_ATOM_F1 : Atom format 1.; E
Idx:15; ID:1; OCSD_GEN_TRC_ELEM_TRACE_ON( [begin or filter])
Idx:16; ID:1; OCSD_GEN_TRC_ELEM_PE_CONTEXT((ISA=A64) EL1N; 64-bit; )
Idx:27; ID:1; OCSD_GEN_TRC_ELEM_INSTR_RANGE(exec range=0x44202060:[0x44202074] num_i(5) last_sz(4) (ISA=A64) E BR   <cond>)
Idx:28; ID:0; [0xf7 ];\tI_ATOM_F1 : Atom format 1.; E
Idx:28; ID:1; OCSD_GEN_TRC_ELEM_INSTR_RANGE(exec range=0x44202068:[0x44202074] num_i(3) last_sz(4) (ISA=A64) E BR   <cond>)
Idx:29; ID:0; [0xf7 ];\tI_ATOM_F1 : Atom format 1.; E
Idx:29; ID:1; OCSD_GEN_TRC_ELEM_INSTR_RANGE(exec range=0x44202068:[0x44202074] num_i(3) last_sz(4) (ISA=A64) E BR   <cond>)
Idx:30; ID:0; [0xf7 ];\tI_ATOM_F1 : Atom format 1.; E
Idx:30; ID:1; OCSD_GEN_TRC_ELEM_INSTR_RANGE(exec range=0x44202068:[0x44202074] num_i(3) last_sz(4) (ISA=A64) E BR   <cond>)
Idx:31; ID:0; [0xf6 ];\tI_ATOM_F1 : Atom format 1.; N
Idx:31; ID:1; OCSD_GEN_TRC_ELEM_INSTR_RANGE(exec range=0x44202068:[0x44202074] num_i(3) last_sz(4) (ISA=A64) N BR   <cond>)
Idx:31; ID:1; OCSD_GEN_TRC_ELEM_EO_TRACE( [end-of-trace])
";

#[test]
fn harness_parses_instruction_ranges() {
    let mut want = vec![0x4420_2060, 0x4420_2064];
    for _ in 0..5 {
        want.extend([0x4420_2068, 0x4420_206c, 0x4420_2070]);
    }
    assert_eq!(snapshot::executed_addresses(DECODED).unwrap(), want);
    assert!(snapshot::executed_addresses("Idx:0; ID:0; I_ASYNC\n")
        .unwrap()
        .is_empty());
    let nacc = "Idx:9; ID:1; OCSD_GEN_TRC_ELEM_ADDR_NACC( 0x44202060 )\n";
    assert!(snapshot::executed_addresses(nacc).is_err());
    let odd = DECODED.replace("num_i(5)", "num_i(4)");
    assert!(snapshot::executed_addresses(&odd).is_err());
}

#[test]
fn harness_window_and_compare() {
    let p = Program {
        symbols: Symbols::default(),
        start: 0x1000,
        end: 0x2000,
        enable_hvc: 0x1010,
        first: 0x1014,
        disable_hvc: 0x1030,
    };
    let qemu = [
        0x1008, 0x100c, 0x1010, 0x1014, 0x1018, 0x1800, 0x1804, 0x101c, 0x1030, 0x1034,
    ];
    let w = window(&qemu, &p).unwrap();
    assert_eq!(w, [0x1014, 0x1018, 0x1800, 0x1804, 0x101c, 0x1030]);
    assert_eq!(compare(&w, &w, &p.symbols), Ok(6));
    // One instruction lost, one extra, one replaced: all caught.
    let lost: Vec<u64> = w.iter().copied().filter(|&a| a != 0x1800).collect();
    let e = compare(&lost, &w, &p.symbols).unwrap_err();
    assert!(e.contains("at instruction 2"), "{e}");
    let short = &w[..4];
    let e = compare(short, &w, &p.symbols).unwrap_err();
    assert!(e.contains("stops early: 2 of QEMU's"), "{e}");
    let mut extra = w.clone();
    extra.push(0x1034);
    assert!(compare(&extra, &w, &p.symbols)
        .unwrap_err()
        .contains("at instruction 6"));
    let mut other = w.clone();
    other[4] = 0x1020;
    assert!(compare(&other, &w, &p.symbols).is_err());
    assert!(window(&qemu[3..], &p).is_err(), "no TRACE_ENABLE");
    assert!(window(&qemu[..8], &p).is_err(), "no TRACE_DISABLE");
}

/// el2 is `no_std`: a host byte vector as its packet sink.
struct V(Vec<u8>);

impl el2::trace::packet::Sink for V {
    fn put(&mut self, b: u8) {
        self.0.push(b)
    }
}

/// A hand-made trace of the program's counted loop (trace starts at
/// `insntrace_first`; the loop's B.NE taken `taken` times, then not
/// taken), and the addresses it stands for.
fn loop_stream(p: &Program, taken: usize) -> (Vec<u8>, Vec<u64>) {
    use el2::trace::packet;
    let mut v = V(Vec::new());
    packet::a_sync(&mut v);
    packet::trace_info(&mut v);
    packet::trace_on(&mut v);
    packet::context(
        &mut v,
        &packet::Context {
            el: 1,
            aarch64: true,
            non_secure: true,
            vmid: None,
            context_id: None,
        },
    );
    packet::address(&mut v, p.first);
    for _ in 0..taken {
        packet::atom(&mut v, true);
    }
    packet::atom(&mut v, false);
    let looping = p.symbols.get("insntrace_loop").unwrap().start;
    // str, mov, then (add, subs, b.ne) taken + 1 times.
    let mut want = vec![p.first, p.first + 4];
    for _ in 0..=taken {
        want.extend([looping, looping + 4, looping + 8]);
    }
    (v.0, want)
}

/// The whole decode path (snapshot, memory dump, `trc_pkt_lister -decode`,
/// the range parser) on a known trace of the real program; and one atom
/// fewer is caught by the comparison.
#[test]
fn harness_decodes_a_known_path_and_catches_a_lost_atom() {
    let p = program();
    let (data, want) = loop_stream(&p, 4);
    let regs = regs("", 0);
    let (listing, got) = decode(0, regs.clone(), data);
    let got = got.unwrap_or_else(|e| panic!("{e}\n{listing}"));
    assert_eq!(
        compare(&got, &want, &p.symbols),
        Ok(want.len()),
        "{listing}"
    );
    let (short, _) = loop_stream(&p, 3);
    let (listing, got) = decode(0, regs, short);
    let got = got.unwrap_or_else(|e| panic!("{e}\n{listing}"));
    let err = compare(&got, &want, &p.symbols).unwrap_err();
    assert!(err.contains("differ at instruction"), "{err}");
}

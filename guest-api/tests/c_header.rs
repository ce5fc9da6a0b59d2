//! `include/tracemgr.h` against the Rust ABI.
//!
//! Every `#define` of the header must be in [`TABLE`] with the value of the
//! Rust constant it names, and every entry of the table must be in the
//! header. The header is also compiled (`cc`) in its user-space and kernel
//! configurations, with each value checked by the C compiler itself, and its
//! inline helpers are run against the Rust state-word codec.

use guest_api::trace::{self, Backend, Hardware, Mode};
use guest_api::{hyp, smccc};
use std::path::{Path, PathBuf};
use std::process::Command;

const HEADER: &str = include_str!("../include/tracemgr.h");

/// Every define of the header and the Rust value it must have.
fn table() -> Vec<(&'static str, i128)> {
    let uid = hyp::UID.to_registers();
    vec![
        ("TRACEMGR_UID_0", uid[0] as i128),
        ("TRACEMGR_UID_1", uid[1] as i128),
        ("TRACEMGR_UID_2", uid[2] as i128),
        ("TRACEMGR_UID_3", uid[3] as i128),
        ("TRACEMGR_CALL_COUNT", hyp::CALL_COUNT as i128),
        ("TRACEMGR_CALL_UID", hyp::CALL_UID as i128),
        ("TRACEMGR_REVISION", hyp::REVISION as i128),
        ("TRACEMGR_ABI_VERSION", hyp::ABI_VERSION as i128),
        ("TRACEMGR_FEATURES", hyp::FEATURES as i128),
        ("TRACEMGR_PING", hyp::PING as i128),
        ("TRACEMGR_TRACE_ENABLE", trace::TRACE_ENABLE as i128),
        ("TRACEMGR_TRACE_DISABLE", trace::TRACE_DISABLE as i128),
        ("TRACEMGR_TRACE_STATUS", trace::TRACE_STATUS as i128),
        ("TRACEMGR_TRACE_READ", trace::TRACE_READ as i128),
        ("TRACEMGR_TRACE_STATS", trace::TRACE_STATS as i128),
        ("TRACEMGR_TRACE_IDREGS", trace::TRACE_IDREGS as i128),
        ("TRACEMGR_TRACE_ID_BASE", trace::TRACE_ID_BASE as i128),
        ("TRACEMGR_TRACE_ID_STRIDE", trace::TRACE_ID_STRIDE as i128),
        ("TRACEMGR_READ_MAX", trace::READ_MAX as i128),
        ("TRACEMGR_READ_ALIGN", trace::READ_ALIGN as i128),
        ("TRACEMGR_STATS_FULL", trace::STATS_FULL as i128),
        ("TRACEMGR_STATS_ERROR", trace::STATS_ERROR as i128),
        (
            "TRACEMGR_STATS_INSTRUCTIONS",
            trace::STATS_INSTRUCTIONS as i128,
        ),
        ("TRACEMGR_STATS_EC_SHIFT", trace::STATS_EC_SHIFT as i128),
        ("TRACEMGR_STATS_EC_MASK", trace::STATS_EC_MASK as i128),
        ("TRACEMGR_ABI_MAJOR", hyp::REVISION_MAJOR as i128),
        ("TRACEMGR_ABI_MINOR", hyp::REVISION_MINOR as i128),
        ("TRACEMGR_ABI_VERSION_VALUE", hyp::ABI_VERSION_VALUE as i128),
        ("TRACEMGR_CONFIG_EL0", trace::CONFIG_EL0 as i128),
        ("TRACEMGR_CONFIG_EL1", trace::CONFIG_EL1 as i128),
        (
            "TRACEMGR_CONFIG_TIMESTAMPS",
            trace::CONFIG_TIMESTAMPS as i128,
        ),
        ("TRACEMGR_CONFIG_CYCLES", trace::CONFIG_CYCLES as i128),
        (
            "TRACEMGR_CONFIG_CONTEXT_ID",
            trace::CONFIG_CONTEXT_ID as i128,
        ),
        (
            "TRACEMGR_CONFIG_ADDR_FILTER",
            trace::CONFIG_ADDR_FILTER as i128,
        ),
        ("TRACEMGR_CONFIG_WRAP", trace::CONFIG_WRAP as i128),
        ("TRACEMGR_CONFIG_ALL", trace::CONFIG_ALL as i128),
        ("TRACEMGR_FILTER_ALIGN", trace::FILTER_ALIGN as i128),
        ("TRACEMGR_FILTER_END_MAX", trace::FILTER_END_MAX as i128),
        ("TRACEMGR_STATE_MODE_SHIFT", trace::STATE_MODE_SHIFT as i128),
        ("TRACEMGR_STATE_MODE_MASK", trace::STATE_MODE_MASK as i128),
        ("TRACEMGR_MODE_DISABLED", trace::MODE_DISABLED as i128),
        ("TRACEMGR_MODE_ENABLED", trace::MODE_ENABLED as i128),
        ("TRACEMGR_STATE_HW_SHIFT", trace::STATE_HW_SHIFT as i128),
        ("TRACEMGR_STATE_HW_MASK", trace::STATE_HW_MASK as i128),
        ("TRACEMGR_HW_STOPPED", trace::HW_STOPPED as i128),
        ("TRACEMGR_HW_TRACING", trace::HW_TRACING as i128),
        ("TRACEMGR_STATE_POWERED", trace::STATE_POWERED as i128),
        (
            "TRACEMGR_STATE_BACKEND_SHIFT",
            trace::STATE_BACKEND_SHIFT as i128,
        ),
        (
            "TRACEMGR_STATE_BACKEND_MASK",
            trace::STATE_BACKEND_MASK as i128,
        ),
        ("TRACEMGR_BACKEND_MODEL", trace::BACKEND_MODEL as i128),
        ("TRACEMGR_BACKEND_ETE_TRBE", trace::BACKEND_ETE_TRBE as i128),
        (
            "TRACEMGR_STATE_RESERVED_MASK",
            trace::STATE_RESERVED_MASK as i128,
        ),
        ("TRACEMGR_SUCCESS", smccc::SUCCESS as i128),
        (
            "TRACEMGR_NOT_SUPPORTED",
            hyp::Error::NotSupported.code() as i128,
        ),
        (
            "TRACEMGR_INVALID_PARAMETER",
            hyp::Error::InvalidParameter.code() as i128,
        ),
        ("TRACEMGR_DENIED", hyp::Error::Denied.code() as i128),
        ("TRACEMGR_TARGET_OFF", hyp::Error::TargetOff.code() as i128),
        (
            "TRACEMGR_HARDWARE_FAULT",
            hyp::Error::HardwareFault.code() as i128,
        ),
    ]
}

/// A C integer literal: optional `-`, decimal or `0x` hex digits, and an
/// integer suffix (`U`, `L`, `UL`, `LU`, `LL`, `ULL`, `LLU`, any case).
fn parse_literal(s: &str) -> Option<i128> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let digits_end = if s.starts_with("0x") || s.starts_with("0X") {
        2 + s[2..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(s.len() - 2)
    } else {
        s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len())
    };
    let (digits, suffix) = s.split_at(digits_end);
    let suffix = suffix.to_ascii_uppercase();
    if !["", "U", "L", "UL", "LU", "LL", "ULL", "LLU"].contains(&suffix.as_str()) {
        return None;
    }
    let v = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        if hex.is_empty() {
            return None;
        }
        i128::from_str_radix(hex, 16).ok()?
    } else {
        if digits.is_empty() {
            return None;
        }
        digits.parse::<i128>().ok()?
    };
    if v > u64::MAX as i128 {
        return None;
    }
    Some(if neg { -v } else { v })
}

/// The header's defines, in order, or a list of what is wrong with it.
/// The include guard (the name of the first `#ifndef`, defined without a
/// value) is the one define that is not a constant.
fn parse_header(header: &str) -> Result<Vec<(String, i128)>, Vec<String>> {
    let mut errors = Vec::new();
    let mut defines: Vec<(String, i128)> = Vec::new();
    let mut guard: Option<String> = None;
    let mut guard_defined = false;
    for (n, line) in header.lines().enumerate() {
        let n = n + 1;
        let Some(directive) = line.trim_start().strip_prefix('#') else {
            continue;
        };
        if line.trim_end().ends_with('\\') {
            errors.push(format!("line {n}: continued directive: {line}"));
            continue;
        }
        let mut words = directive.split_whitespace();
        let keyword = words.next().unwrap_or("");
        match keyword {
            "ifndef" => {
                if guard.is_none() {
                    guard = words.next().map(str::to_owned);
                }
            }
            "define" => {}
            "ifdef" | "else" | "endif" | "include" => continue,
            other => {
                errors.push(format!("line {n}: unexpected directive #{other}: {line}"));
                continue;
            }
        }
        if keyword != "define" {
            continue;
        }
        let rest = directive.trim_start()["define".len()..].trim();
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let (name, value) = rest.split_at(name_end);
        if value.starts_with('(') {
            errors.push(format!("line {n}: function-like macro {name}: {line}"));
            continue;
        }
        let value = value.trim();
        if value.is_empty() {
            if guard.as_deref() == Some(name) && !guard_defined {
                guard_defined = true;
            } else {
                errors.push(format!("line {n}: define without a value: {line}"));
            }
            continue;
        }
        if !name.starts_with("TRACEMGR_") {
            errors.push(format!("line {n}: {name} is not TRACEMGR_*"));
            continue;
        }
        let literal = value
            .strip_prefix('(')
            .and_then(|v| v.strip_suffix(')'))
            .map(str::trim);
        let Some(v) = literal.and_then(parse_literal) else {
            errors.push(format!(
                "line {n}: {name}: value is not a parenthesised integer literal: {value}"
            ));
            continue;
        };
        if defines.iter().any(|(d, _)| d == name) {
            errors.push(format!("line {n}: {name} defined twice"));
            continue;
        }
        defines.push((name.to_owned(), v));
    }
    if !guard_defined {
        errors.push("no include guard (#ifndef X / #define X)".to_owned());
    }
    if errors.is_empty() {
        Ok(defines)
    } else {
        Err(errors)
    }
}

/// Everything that differs between the header and the table.
fn check(header: &str, table: &[(&str, i128)]) -> Vec<String> {
    let defines = match parse_header(header) {
        Ok(d) => d,
        Err(e) => return e,
    };
    let mut errors = Vec::new();
    for (i, (name, _)) in table.iter().enumerate() {
        if table[..i].iter().any(|(n, _)| n == name) {
            errors.push(format!("{name} is in the table twice"));
        }
    }
    for (name, v) in &defines {
        match table.iter().find(|(n, _)| n == name) {
            None => errors.push(format!(
                "{name} ({v:#x}) is in the header, not in the table"
            )),
            Some((_, rust)) if rust != v => errors.push(format!(
                "{name}: header says {v} ({v:#x}), Rust says {rust} ({rust:#x})"
            )),
            Some(_) => {}
        }
    }
    for (name, _) in table {
        if !defines.iter().any(|(d, _)| d == name) {
            errors.push(format!("{name} is in the table, not in the header"));
        }
    }
    errors
}

#[test]
fn every_define_matches_the_rust_abi() {
    let errors = check(HEADER, &table());
    assert!(
        errors.is_empty(),
        "include/tracemgr.h disagrees with the Rust ABI:\n  {}",
        errors.join("\n  ")
    );
    assert_eq!(parse_header(HEADER).unwrap().len(), table().len());
}

#[test]
fn the_checker_catches_every_kind_of_mismatch() {
    let t = table();
    // A define the table lacks.
    let extra = HEADER.replace(
        "#endif /* TRACEMGR_H */",
        "#define TRACEMGR_NEW (1U)\n#endif /* TRACEMGR_H */",
    );
    assert!(check(&extra, &t)
        .iter()
        .any(|e| e.contains("TRACEMGR_NEW") && e.contains("not in the table")));
    // A table entry the header lacks.
    let missing = HEADER.replace("#define TRACEMGR_DENIED (-4L)\n", "");
    assert_ne!(missing, HEADER);
    assert!(check(&missing, &t)
        .iter()
        .any(|e| e.contains("TRACEMGR_DENIED") && e.contains("not in the header")));
    // A wrong value.
    let wrong = HEADER.replace("(0xc6000011U)", "(0xc6000013U)");
    assert_ne!(wrong, HEADER);
    assert!(check(&wrong, &t)
        .iter()
        .any(|e| e.starts_with("TRACEMGR_TRACE_DISABLE:")));
    // Values that are not plain literals, duplicates, other macros.
    for bad in [
        "#define TRACEMGR_X (1 << 3)",
        "#define TRACEMGR_X 8",
        "#define TRACEMGR_X (8) /* eight */",
        "#define TRACEMGR_X(a) (a)",
        "#define TRACEMGR_X",
        "#define OTHER (1)",
        "#define TRACEMGR_PING (0xc6000002U)",
        "#undef TRACEMGR_PING",
        "#define TRACEMGR_X \\",
    ] {
        let h = HEADER.replace(
            "#endif /* TRACEMGR_H */",
            &format!("{bad}\n#endif /* TRACEMGR_H */"),
        );
        assert!(!check(&h, &t).is_empty(), "{bad}");
    }
    // A table entry twice.
    let mut dup = t.clone();
    dup.push(t[0]);
    assert!(check(HEADER, &dup).iter().any(|e| e.contains("twice")));
}

#[test]
fn literal_parser() {
    assert_eq!(parse_literal("0xe733f408U"), Some(0xe733_f408));
    assert_eq!(parse_literal("0X10ull"), Some(16));
    assert_eq!(parse_literal("-1L"), Some(-1));
    assert_eq!(parse_literal("24"), Some(24));
    assert_eq!(
        parse_literal("0xffffffffffffffffULL"),
        Some(u64::MAX as i128)
    );
    for bad in [
        "",
        "0x",
        "U",
        "1UU",
        "1.0",
        "0x1g",
        "1 << 2",
        "--1",
        "0x10000000000000000",
    ] {
        assert_eq!(parse_literal(bad), None, "{bad}");
    }
}

// --- compiling the header -------------------------------------------------

fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("c_header-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `cc` with `args`; panics (never skips) when there is no `cc`, and
/// when it fails, with its diagnostics.
fn cc(args: &[&std::ffi::OsStr]) {
    let out = match Command::new("cc").args(args).output() {
        Ok(out) => out,
        Err(e) => panic!(
            "cannot run `cc` ({e}): the C header tests need a C compiler \
             (gcc or clang) installed as `cc` on PATH"
        ),
    };
    assert!(
        out.status.success(),
        "cc {:?} failed:\n{}{}",
        args,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const STRICT: [&str; 6] = [
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-Wconversion",
];

/// A C literal for a table value, compared in C without conversions.
fn c_literal(v: i128) -> String {
    if v < 0 {
        format!("({v}LL)")
    } else {
        format!("{v}ULL")
    }
}

/// C source including the header and asserting, at compile time, every
/// value of the table plus a few types.
fn static_asserts() -> String {
    let mut c = String::from("#include <tracemgr.h>\n\n");
    for (name, v) in table() {
        c += &format!("_Static_assert({name} == {}, \"{name}\");\n", c_literal(v));
    }
    c += r#"
_Static_assert(TRACEMGR_TRACE_ENABLE == 0xC6000010u, "TRACE_ENABLE");
_Static_assert(TRACEMGR_TRACE_DISABLE == 0xC6000011u, "TRACE_DISABLE");
_Static_assert(TRACEMGR_TRACE_STATUS == 0xC6000012u, "TRACE_STATUS");
_Static_assert(TRACEMGR_TRACE_READ == 0xC6000013u, "TRACE_READ");
_Static_assert(TRACEMGR_TRACE_STATS == 0xC6000014u, "TRACE_STATS");
_Static_assert(TRACEMGR_TRACE_IDREGS == 0xC6000015u, "TRACE_IDREGS");
_Static_assert(TRACEMGR_TRACE_ID_BASE + 3 * TRACEMGR_TRACE_ID_STRIDE == 0x16u, "cpu3's trace ID");
_Static_assert(TRACEMGR_UID_0 == 0xe733f408u, "UID w0");
_Static_assert(TRACEMGR_CONFIG_ALL == (TRACEMGR_CONFIG_EL0 | TRACEMGR_CONFIG_EL1 |
    TRACEMGR_CONFIG_TIMESTAMPS | TRACEMGR_CONFIG_CYCLES | TRACEMGR_CONFIG_CONTEXT_ID |
    TRACEMGR_CONFIG_ADDR_FILTER | TRACEMGR_CONFIG_WRAP), "CONFIG_ALL");
_Static_assert(TRACEMGR_NOT_SUPPORTED < 0 && TRACEMGR_TARGET_OFF == -5, "errors are negative");
_Static_assert(sizeof(tracemgr_u64) == 8, "tracemgr_u64");
_Static_assert(sizeof(TRACEMGR_CONFIG_ALL) == 8, "config bits are 64-bit");
_Static_assert(sizeof(TRACEMGR_TRACE_ENABLE) == 4, "function IDs are 32-bit");
_Static_assert(TRACEMGR_ABI_VERSION_VALUE ==
    ((TRACEMGR_ABI_MAJOR << 16) | TRACEMGR_ABI_MINOR), "ABI_VERSION");
_Static_assert((TRACEMGR_STATE_MODE_MASK | TRACEMGR_STATE_HW_MASK | TRACEMGR_STATE_POWERED |
    TRACEMGR_STATE_BACKEND_MASK | TRACEMGR_STATE_RESERVED_MASK) == ~0ULL, "state word covered");

int tracemgr_header_test(void);
int tracemgr_header_test(void)
{
	return tracemgr_state_consistent(0) + tracemgr_state_valid(0) +
	       tracemgr_state_powered(0) + (int)tracemgr_idregs_lo(0) +
	       (int)tracemgr_idregs_hi(0);
}
"#;
    c
}

#[test]
fn header_compiles_and_its_values_are_what_c_sees() {
    let dir = scratch("user");
    let src = dir.join("user.c");
    std::fs::write(&src, static_asserts()).unwrap();
    let inc = include_dir();
    let mut args: Vec<&std::ffi::OsStr> = STRICT.iter().map(|s| s.as_ref()).collect();
    args.extend(["-fsyntax-only".as_ref(), "-I".as_ref(), inc.as_os_str()]);
    args.push(src.as_os_str());
    cc(&args);
}

#[test]
fn header_compiles_in_the_kernel_configuration() {
    // A stand-in for the kernel's <linux/types.h>: only what the header uses.
    let dir = scratch("kernel");
    std::fs::create_dir_all(dir.join("linux")).unwrap();
    std::fs::write(
        dir.join("linux/types.h"),
        "#ifndef _LINUX_TYPES_H\n#define _LINUX_TYPES_H\n\
         typedef unsigned long long u64;\n#endif\n",
    )
    .unwrap();
    let src = dir.join("kernel.c");
    std::fs::write(&src, static_asserts()).unwrap();
    let inc = include_dir();
    let mut args: Vec<&std::ffi::OsStr> = STRICT.iter().map(|s| s.as_ref()).collect();
    args.extend([
        "-fsyntax-only".as_ref(),
        "-nostdinc".as_ref(),
        "-D__KERNEL__".as_ref(),
        "-I".as_ref(),
        dir.as_os_str(),
        "-I".as_ref(),
        inc.as_os_str(),
    ]);
    args.push(src.as_os_str());
    cc(&args);
}

#[test]
fn c_helpers_decode_state_words_like_rust() {
    // State words: every defined one, and malformed ones.
    let mut words: Vec<u64> = Vec::new();
    for mode in [Mode::Disabled, Mode::Enabled] {
        for hw in [Hardware::Stopped, Hardware::Tracing] {
            for powered in [false, true] {
                for backend in [Backend::Model, Backend::EteTrbe] {
                    words.push(trace::state_word(mode, hw, powered, backend));
                }
            }
        }
    }
    words.extend([
        1 << 17,
        1 << 23,
        1 << 32,
        1 << 63,
        0x02,
        0xff,
        0x0200,
        0xff00,
        0x0200_0000,
        0xff00_0000,
        u64::MAX,
    ]);
    let mut c = String::from(
        "#include <stdio.h>\n#include <tracemgr.h>\n\nint main(void)\n{\n\tint bad = 0;\n",
    );
    for w in &words {
        let w = *w;
        let parsed = trace::parse_state(w);
        let consistent = (trace::state_mode(w) == trace::MODE_ENABLED)
            == (trace::state_hw(w) == trace::HW_TRACING);
        let checks = [
            ("tracemgr_state_mode", trace::state_mode(w)),
            ("tracemgr_state_hw", trace::state_hw(w)),
            ("tracemgr_state_powered", trace::state_powered(w) as u64),
            ("tracemgr_state_backend", trace::state_backend(w)),
            ("tracemgr_state_valid", parsed.is_some() as u64),
            ("tracemgr_state_consistent", consistent as u64),
        ];
        for (f, expect) in checks {
            c += &format!(
                "\tif ((unsigned long long){f}({w:#x}ULL) != {expect}ULL) {{\n\
                 \t\tprintf(\"{f}({w:#x}) = %llu, Rust says {expect}\\n\", \
                 (unsigned long long){f}({w:#x}ULL));\n\t\tbad = 1;\n\t}}\n"
            );
        }
        if let Some((mode, hw, _, _)) = parsed {
            let status_consistent = trace::Status {
                mode,
                hardware: hw,
                powered: true,
                backend: Backend::Model,
                generation: 0,
                config: None,
            }
            .consistent();
            assert_eq!(status_consistent, consistent);
        }
    }
    // TRACE_IDREGS' halves, as the Rust codec packs them.
    let ids = trace::IdRegs {
        idr0: 0x2800_02a1,
        idr1: 0x4100_f403,
        idr2: 0x8000_1088,
        idr8: 0xffff_fffe,
        authstatus: 0xc,
        devarch: 0x4770_5a13,
        traceid: 0x14,
    };
    let r = ids.to_registers();
    for (f, x, expect) in [
        ("tracemgr_idregs_lo", r[1], ids.idr0),
        ("tracemgr_idregs_hi", r[1], ids.idr1),
        ("tracemgr_idregs_lo", r[2], ids.idr2),
        ("tracemgr_idregs_hi", r[2], ids.idr8),
        ("tracemgr_idregs_lo", r[3], ids.authstatus),
        ("tracemgr_idregs_hi", r[3], ids.devarch),
        ("tracemgr_idregs_lo", r[4], ids.traceid),
        ("tracemgr_idregs_hi", r[4], 0),
    ] {
        c += &format!(
            "\tif ({f}({x:#x}ULL) != {expect:#x}U) {{\n\
             \t\tprintf(\"{f}({x:#x}) = %#x, Rust says {expect:#x}\\n\", {f}({x:#x}ULL));\n\
             \t\tbad = 1;\n\t}}\n"
        );
    }
    c += "\treturn bad;\n}\n";
    let dir = scratch("run");
    let src = dir.join("run.c");
    let exe = dir.join("run");
    std::fs::write(&src, c).unwrap();
    let inc = include_dir();
    let mut args: Vec<&std::ffi::OsStr> = STRICT.iter().map(|s| s.as_ref()).collect();
    args.extend([
        "-I".as_ref(),
        inc.as_os_str(),
        "-o".as_ref(),
        exe.as_os_str(),
    ]);
    args.push(src.as_os_str());
    cc(&args);
    let out = Command::new(&exe)
        .output()
        .expect("run the compiled C test");
    assert!(
        out.status.success(),
        "the header's helpers disagree with Rust:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

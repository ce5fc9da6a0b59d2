//! The register layer's promise, checked on the source: the registers whose
//! write can break EL2's memory safety (HCR_EL2, VTCR_EL2, VTTBR_EL2,
//! TPIDR_EL2, VBAR_EL2) are written only through `arch`'s `unsafe fn`
//! writers. aarch64-cpu gives every register a safe `set`/`write`, so
//! outside `el2/src/arch/` no code may name aarch64-cpu or call a method on
//! one of those five register objects; their fields (`fields::HCR_EL2::VM`)
//! are fine.

use std::fs;
use std::path::{Path, PathBuf};

const GUARDED: [&str; 5] = ["HCR_EL2", "VTCR_EL2", "VTTBR_EL2", "TPIDR_EL2", "VBAR_EL2"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a line, without a `//` comment (doc comments included).
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// The uses of a guarded register as a register in `text`: `HCR_EL2.`
/// (a method call on the object) or `HCR_EL2 .` (formatting aside), where
/// the name is not part of a path like `fields::HCR_EL2::VM`.
fn offences(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = code(line);
        if code.contains("aarch64_cpu") {
            found.push(format!(
                "line {}: names aarch64_cpu: {}",
                n + 1,
                line.trim()
            ));
        }
        for reg in GUARDED {
            let mut rest = code;
            while let Some(i) = rest.find(reg) {
                let before = rest[..i].chars().next_back();
                let after = rest[i + reg.len()..].trim_start();
                let word_start = !before.is_some_and(|c| c.is_alphanumeric() || c == '_');
                if word_start && after.starts_with('.') {
                    found.push(format!(
                        "line {}: {reg} used as a register: {}",
                        n + 1,
                        line.trim()
                    ));
                }
                rest = &rest[i + reg.len()..];
            }
        }
    }
    found
}

#[test]
fn guarded_registers_are_written_only_through_arch() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let arch = src.join("arch");
    let mut bad = Vec::new();
    let mut scanned = 0;
    for file in files.iter().filter(|f| !f.starts_with(&arch)) {
        scanned += 1;
        for o in offences(&fs::read_to_string(file).unwrap()) {
            bad.push(format!(
                "{}: {o}",
                file.strip_prefix(&src).unwrap().display()
            ));
        }
    }
    assert!(
        scanned > 20,
        "only {scanned} files scanned under {}",
        src.display()
    );
    assert!(
        bad.is_empty(),
        "guarded registers bypass arch's unsafe writers:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_scan_finds_what_it_forbids() {
    assert_eq!(offences("    HCR_EL2.set(0);").len(), 1);
    assert_eq!(offences("let v = VTTBR_EL2 .get();").len(), 1);
    assert_eq!(offences("use aarch64_cpu::registers::TPIDR_EL2;").len(), 1);
    assert!(offences("VM::Enable.value // HCR_EL2.set(0) in a comment").is_empty());
    assert!(offences("use crate::arch::fields::HCR_EL2::*; ICH_HCR_EL2.get();").is_empty());
    assert!(offences("fields::HCR_EL2::VM::Enable.value").is_empty());
}

//! The property-test runner shared by `el2/tests/fuzz.rs` and
//! `guest-api/tests/fuzz.rs` (each includes this file with `#[path]`).
//! The including crate defines `SEED` (its fixed default seed).

// Each suite uses only some of the helpers.
#![allow(dead_code)]

use std::cell::Cell;
use std::fmt::Debug;
use std::io::Write;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngSeed, TestCaseResult, TestRunner};

/// Writes one line to stderr past the test harness's output capture, so
/// the counts appear in a plain `cargo test` run.
pub fn report(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Runs `test` on `cases` inputs drawn from `strategy`, then prints how
/// many inputs ran. Failures shrink to a minimal input before the panic.
/// The seed is the crate's `SEED` unless `PROPTEST_RNG_SEED` is set.
pub fn fuzz<S>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: Debug,
{
    let mut config = Config::with_cases(cases);
    // Nothing is written into the source tree; the seed is fixed instead.
    config.failure_persistence = None;
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(super::SEED);
    }
    let runs = Cell::new(0u64);
    let result = TestRunner::new(config).run(&strategy, |v| {
        runs.set(runs.get() + 1);
        test(v)
    });
    report(&format!(
        "fuzz: {name}: {cases} cases, {} inputs run",
        runs.get()
    ));
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// Counts the inputs that reached a branch, so a property can check that
/// its generator is not degenerate (that the interesting cases do occur).
#[derive(Default)]
pub struct Hits(Cell<u64>);

impl Hits {
    /// One more input got here.
    pub fn hit(&self) {
        self.0.set(self.0.get() + 1);
    }

    /// How many inputs got here.
    pub fn count(&self) -> u64 {
        self.0.get()
    }

    /// Asserts that at least `1/divisor` of `cases` inputs got here.
    pub fn at_least(&self, cases: u32, divisor: u32, what: &str) {
        let n = self.0.get();
        assert!(
            n >= u64::from(cases / divisor),
            "only {n} of {cases} inputs were {what}"
        );
    }
}

/// Prints the inputs per target of `counts` (target, property, cases) and
/// their total, prefixed with `krate`; `extra` ends the total line.
pub fn report_counts(krate: &str, counts: &[(&str, &str, u32)], extra: &str) {
    let mut targets: Vec<(&str, u64)> = Vec::new();
    for &(target, _, cases) in counts {
        match targets.iter_mut().find(|t| t.0 == target) {
            Some(t) => t.1 += u64::from(cases),
            None => targets.push((target, u64::from(cases))),
        }
    }
    let total: u64 = targets.iter().map(|t| t.1).sum();
    for (target, n) in &targets {
        report(&format!("fuzz counts: {krate}::{target}: {n} inputs"));
    }
    report(&format!(
        "fuzz counts: {krate} total: {total} inputs in {} properties{extra}",
        counts.len()
    ));
    assert!(counts.iter().all(|c| c.2 > 0));
}

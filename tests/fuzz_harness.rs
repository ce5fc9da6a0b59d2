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
///
/// The count is taken from the run itself: a run that passed must have
/// passed `test` on exactly `cases` inputs (inputs `test` rejects are
/// counted apart), or this panics, so a property never reports more inputs
/// than it checked.
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
    let passed = Cell::new(0u64);
    let result = TestRunner::new(config).run(&strategy, |v| {
        runs.set(runs.get() + 1);
        let r = test(v);
        if r.is_ok() {
            passed.set(passed.get() + 1);
        }
        r
    });
    report(&format!(
        "fuzz: {name}: {cases} cases, {} inputs run, {} passed",
        runs.get(),
        passed.get()
    ));
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    assert_eq!(
        passed.get(),
        u64::from(cases),
        "{name}: the run passed {} inputs, not the {cases} it claims",
        passed.get()
    );
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

// The harness itself: the count it reports is the count it ran, and a
// failing input fails the property.

#[test]
fn harness_counts_the_inputs_it_runs() {
    let calls = Cell::new(0u64);
    fuzz("harness self-test", 300, 0u32..1000, |_| {
        calls.set(calls.get() + 1);
        Ok(())
    });
    assert_eq!(calls.get(), 300);
}

#[test]
fn harness_counts_rejected_inputs_apart() {
    // A quarter of the inputs are rejected: the run goes on until 300
    // passed, and the harness's own check counts those, not every call.
    let (calls, passed) = (Cell::new(0u64), Cell::new(0u64));
    fuzz("harness self-test (rejects)", 300, 0u32..1000, |v| {
        calls.set(calls.get() + 1);
        proptest::prop_assume!(v % 4 != 0);
        passed.set(passed.get() + 1);
        Ok(())
    });
    assert_eq!(passed.get(), 300);
    assert!(calls.get() > 300, "{} calls", calls.get());
}

#[test]
fn harness_fails_a_property_that_fails() {
    let r = std::panic::catch_unwind(|| {
        fuzz("harness self-test (must fail)", 300, 0u32..1000, |v| {
            proptest::prop_assert!(v < 500);
            Ok(())
        })
    });
    let msg = r.expect_err("a property failing on half its inputs passed");
    let msg = msg
        .downcast_ref::<String>()
        .expect("the harness panics with a message");
    // Shrunk to the smallest failing input.
    assert!(msg.contains("harness self-test (must fail)"), "{msg}");
    assert!(msg.contains("500"), "{msg}");
}

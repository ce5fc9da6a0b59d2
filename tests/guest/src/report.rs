//! Check results: `guest: PASS <name>` / `guest: FAIL <name>: <why>` lines
//! and the exit status.

use core::fmt;

use crate::console::Text;

/// A failure message.
pub type Msg = Text<200>;

/// Formats a failure message.
pub fn msg(args: fmt::Arguments) -> Msg {
    Msg::format(args)
}

/// Returns `Err` with a formatted [`Msg`] from the enclosing function.
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::report::msg(format_args!($($arg)*)))
    };
}
pub(crate) use fail;

/// Counts the checks of a scenario.
#[derive(Debug, Default)]
pub struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    /// A report with no checks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Prints and counts one check's result.
    pub fn check(&mut self, name: &str, result: Result<(), Msg>) {
        match result {
            Ok(()) => {
                self.passed += 1;
                println!("guest: PASS {name}");
            }
            Err(why) => {
                self.failed += 1;
                println!("guest: FAIL {name}: {why}");
            }
        }
    }

    /// Prints the summary; the exit status.
    pub fn finish(self) -> u64 {
        let status = if self.failed == 0 {
            crate::status::PASS
        } else {
            crate::status::FAILED
        };
        println!(
            "guest: DONE {} passed, {} failed, exit status {status}",
            self.passed, self.failed
        );
        status
    }
}

/// The sub-checks of one check: each failure is printed as it is found;
/// the check fails if any did.
#[derive(Debug)]
pub struct Subchecks {
    name: &'static str,
    failures: u32,
    first: Option<Msg>,
}

impl Subchecks {
    /// Sub-checks of the check `name`.
    pub fn new(name: &'static str) -> Self {
        Subchecks {
            name,
            failures: 0,
            first: None,
        }
    }

    /// Records (and prints) a failed sub-check.
    pub fn fail(&mut self, args: fmt::Arguments) {
        let m = msg(args);
        println!("{}: {m}", self.name);
        self.failures += 1;
        self.first.get_or_insert(m);
    }

    /// Records a failure unless `ok`.
    pub fn expect(&mut self, ok: bool, args: fmt::Arguments) {
        if !ok {
            self.fail(args);
        }
    }

    /// Adds the result of a sub-check that produced its own message.
    pub fn add(&mut self, r: Result<(), Msg>) {
        if let Err(m) = r {
            self.fail(format_args!("{m}"));
        }
    }

    /// The check's result.
    pub fn result(self) -> Result<(), Msg> {
        match (self.failures, self.first) {
            (0, _) => Ok(()),
            (1, Some(m)) => Err(m),
            (n, first) => Err(msg(format_args!(
                "{n} problems; first: {}",
                first.unwrap_or_default()
            ))),
        }
    }
}

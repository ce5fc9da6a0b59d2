//! The console: a PL011 UART shared by every core, and the `log` backend.
//!
//! The console must work from any path, including an exception taken while
//! this core already holds it (a fault in the middle of a log line) and a
//! panic. So the lock knows its owner: the owning core re-entering it writes
//! without waiting, and a core that waits too long for another (which may
//! have died holding it) writes anyway. Lines may then interleave, but the
//! console never deadlocks.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

const NO_OWNER: usize = usize::MAX;

/// A lock that a core can re-enter and that gives up waiting after a bound.
#[derive(Debug)]
pub struct ConsoleLock {
    owner: AtomicUsize,
}

/// What `ConsoleLock::acquire` got.
#[derive(Debug, PartialEq, Eq)]
pub enum Acquired {
    /// The lock, to release afterwards.
    Owned,
    /// This core already held it (nested from an exception or panic).
    Nested,
    /// Another core held it for longer than the bound.
    Forced,
}

impl ConsoleLock {
    /// An unowned lock.
    pub const fn new() -> ConsoleLock {
        ConsoleLock {
            owner: AtomicUsize::new(NO_OWNER),
        }
    }

    /// Takes the lock for `core`, spinning at most `spins` times.
    pub fn acquire(&self, core: usize, spins: u32) -> Acquired {
        if self.owner.load(Ordering::Relaxed) == core {
            return Acquired::Nested;
        }
        for _ in 0..spins {
            if self
                .owner
                .compare_exchange_weak(NO_OWNER, core, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Acquired::Owned;
            }
            core::hint::spin_loop();
        }
        Acquired::Forced
    }

    /// Releases the lock if `how` says it was taken.
    pub fn release(&self, how: Acquired) {
        if how == Acquired::Owned {
            self.owner.store(NO_OWNER, Ordering::Release);
        }
    }
}

impl Default for ConsoleLock {
    fn default() -> Self {
        Self::new()
    }
}

/// Physical address of the PL011 in use. Starts at QEMU virt's UART so that
/// a bad device tree can still be reported; boot switches to the DTB's.
static UART_BASE: AtomicU64 = AtomicU64::new(0x0900_0000);
static LOCK: ConsoleLock = ConsoleLock::new();
/// About a second of spinning on TCG: long enough for any line, short
/// enough that a dead owner does not silence the others for long.
const SPIN_BOUND: u32 = 2_000_000;

/// Uses the PL011 at `base` from now on.
pub fn set_uart(base: u64) {
    UART_BASE.store(base, Ordering::Relaxed);
}

/// Writes to the PL011 without any lock; callers hold the console lock.
#[derive(Debug)]
struct Pl011;

#[cfg(target_os = "none")]
impl Pl011 {
    fn put(&self, b: u8) {
        let base = UART_BASE.load(Ordering::Relaxed) as usize;
        const DR: usize = 0x00;
        const FR: usize = 0x18;
        const TXFF: u32 = 1 << 5;
        let mut spins = 0u32;
        // SAFETY: `base` is the PL011's MMIO frame, identity mapped as
        // Device memory at EL2; DR and FR are 32-bit registers in it.
        unsafe {
            while core::ptr::read_volatile((base + FR) as *const u32) & TXFF != 0
                && spins < 1_000_000
            {
                spins += 1;
            }
            core::ptr::write_volatile((base + DR) as *mut u32, b as u32);
        }
    }
}

#[cfg(not(target_os = "none"))]
impl Pl011 {
    fn put(&self, b: u8) {
        extern crate std;
        use std::io::Write as _;
        let _ = std::io::stderr().write_all(&[b]);
    }
}

impl Write for Pl011 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(())
    }
}

fn this_core() -> usize {
    #[cfg(target_os = "none")]
    {
        crate::arch::core_index()
    }
    #[cfg(not(target_os = "none"))]
    {
        0
    }
}

/// Prints one whole line, prefixed with the core number.
pub fn line(args: fmt::Arguments<'_>) {
    let core = this_core();
    let how = LOCK.acquire(core, SPIN_BOUND);
    let _ = writeln!(Pl011, "el2[cpu{core}] {args}");
    LOCK.release(how);
}

/// `println!`-style printing of one line through the console.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => { $crate::console::line(format_args!($($arg)*)) };
}

/// The `log` backend: every record is one console line with the core number.
#[derive(Debug)]
pub struct Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            line(format_args!("{:<5} {}", record.level(), record.args()));
        }
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Installs the logger. Safe to call more than once (later calls do nothing).
pub fn init_log(level: log::LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_owner_reenters_without_waiting() {
        let l = ConsoleLock::new();
        assert_eq!(l.acquire(3, 10), Acquired::Owned);
        assert_eq!(l.acquire(3, 0), Acquired::Nested);
        l.release(Acquired::Nested);
        assert_eq!(l.acquire(1, 10), Acquired::Forced, "still owned by core 3");
        l.release(Acquired::Owned);
        assert_eq!(l.acquire(1, 10), Acquired::Owned);
    }

    #[test]
    fn a_dead_owner_does_not_block_others_forever() {
        let l = ConsoleLock::new();
        assert_eq!(l.acquire(0, 1), Acquired::Owned);
        // Core 0 never releases (it "died"); core 1 gets through after the bound.
        assert_eq!(l.acquire(1, 1000), Acquired::Forced);
    }

    #[test]
    fn excludes_other_cores() {
        let l = Arc::new(ConsoleLock::new());
        let inside = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|core| {
                let (l, inside) = (l.clone(), inside.clone());
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        let how = l.acquire(core, u32::MAX);
                        assert_eq!(how, Acquired::Owned);
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                        inside.fetch_sub(1, Ordering::SeqCst);
                        l.release(how);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}

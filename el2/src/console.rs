//! The console: a PL011 UART shared by every core, and the `log` backend.
//!
//! The console must work from any path, including an exception taken while
//! this core already holds it (a fault in the middle of a log line) and a
//! panic. So the lock knows its owner: the owning core re-entering it writes
//! without waiting, and a core that waits too long for another (which may
//! have died holding it) writes anyway. Lines may then interleave, but the
//! console never deadlocks.
//!
//! The guest never reaches this UART: it has an emulated one (`vuart`),
//! whose output comes here a whole line at a time ([`guest_output`]),
//! written under the same lock as EL2's lines, so the two never interleave
//! within a line.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

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

/// The physical PL011 in use (for the guest UART's receive side).
pub fn uart_base() -> u64 {
    UART_BASE.load(Ordering::Relaxed)
}

/// How long one byte may wait for room in the transmit FIFO, in polls of
/// FR: far longer than a byte takes at any baud rate. A UART that stays
/// full that long is stuck (a disabled one never drains), and then each
/// further byte waits only [`STUCK_WAIT`] until one goes through in time,
/// so a dead UART costs EL2 output, never more than a moment per line.
pub const TX_WAIT: u32 = 1_000_000;
/// The wait per byte once the UART was found stuck.
pub const STUCK_WAIT: u32 = 1_000;

/// The bound on the wait for one byte, given what the last wait found.
#[cfg(target_os = "none")]
fn tx_wait_bound(stuck: bool) -> u32 {
    if stuck {
        STUCK_WAIT
    } else {
        TX_WAIT
    }
}

/// Set when a byte's wait ran out; cleared by one that did not.
#[cfg(target_os = "none")]
static TX_STUCK: AtomicBool = AtomicBool::new(false);

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
        let bound = tx_wait_bound(TX_STUCK.load(Ordering::Relaxed));
        let mut spins = 0u32;
        // SAFETY: `base` is the PL011's MMIO frame, identity mapped as
        // Device memory at EL2; DR and FR are 32-bit registers in it.
        unsafe {
            while core::ptr::read_volatile((base + FR) as *const u32) & TXFF != 0 && spins < bound {
                spins += 1;
            }
            core::ptr::write_volatile((base + DR) as *mut u32, b as u32);
        }
        TX_STUCK.store(spins >= bound, Ordering::Relaxed);
    }
}

/// The physical receiver, for the guest UART's input. Only `hv::vuart`
/// reads it, under its own lock (never the console lock: receiving does not
/// touch the transmit side).
#[cfg(target_os = "none")]
pub mod rx {
    use super::UART_BASE;
    use core::sync::atomic::Ordering;

    const DR: usize = 0x00;
    const FR: usize = 0x18;
    const LCR_H: usize = 0x2c;
    const IMSC: usize = 0x38;
    const ICR: usize = 0x44;
    /// LCR_H.FEN: the 32-byte FIFOs, instead of one-byte holding registers.
    const FEN: u32 = 1 << 4;
    const RXFE: u32 = 1 << 4;
    /// IMSC.RXIM | IMSC.RTIM: receive and receive-timeout interrupts.
    const RX_INTERRUPTS: u32 = (1 << 4) | (1 << 6);

    fn reg(offset: usize) -> *mut u32 {
        (UART_BASE.load(Ordering::Relaxed) as usize + offset) as *mut u32
    }

    /// Turns the FIFOs on (so a burst of input is one interrupt, not one
    /// per byte) and unmasks the receive interrupts (clearing stale ones),
    /// so the UART's SPI tells EL2 of input.
    pub fn enable_interrupts() {
        // SAFETY: LCR_H, IMSC and ICR of the PL011's MMIO frame, identity
        // mapped as Device memory at EL2; setting FEN keeps the line format
        // and divisors (the write re-latches the same ones), and IMSC/ICR
        // change only which interrupts the UART raises.
        unsafe {
            let lcr_h = core::ptr::read_volatile(reg(LCR_H));
            core::ptr::write_volatile(reg(LCR_H), lcr_h | FEN);
            core::ptr::write_volatile(reg(ICR), 0x7ff);
            core::ptr::write_volatile(reg(IMSC), RX_INTERRUPTS);
        }
    }

    /// The next received byte, if one waits.
    pub fn byte() -> Option<u8> {
        // SAFETY: FR and DR of the PL011's MMIO frame (as above); reading
        // DR pops one byte of the receive FIFO, which only this function
        // consumes.
        unsafe {
            if core::ptr::read_volatile(reg(FR)) & RXFE != 0 {
                return None;
            }
            Some(core::ptr::read_volatile(reg(DR)) as u8)
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

/// Whether the last byte written ended a line (or nothing was written yet).
/// Only changed under the lock.
static AT_LINE_START: AtomicBool = AtomicBool::new(true);

/// Prints one whole line, prefixed with the core number. If the guest's
/// last output left a line open (a shell prompt), the EL2 line starts on
/// a new one, so it is never glued to guest text.
pub fn line(args: fmt::Arguments<'_>) {
    let core = this_core();
    let how = LOCK.acquire(core, SPIN_BOUND);
    if !AT_LINE_START.load(Ordering::Relaxed) {
        let _ = Pl011.write_str("\n");
    }
    let _ = writeln!(Pl011, "el2[cpu{core}] {args}");
    AT_LINE_START.store(true, Ordering::Relaxed);
    LOCK.release(how);
}

/// Writes a piece of the guest's output (a line, or what it sent before it
/// stopped transmitting) exactly as the guest sent it: no prefix, no
/// newline translation.
pub fn guest_output(bytes: &[u8]) {
    let how = LOCK.acquire(this_core(), SPIN_BOUND);
    for &b in bytes {
        Pl011.put(b);
    }
    if let Some(&last) = bytes.last() {
        AT_LINE_START.store(last == b'\n', Ordering::Relaxed);
    }
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

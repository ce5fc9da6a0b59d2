//! Line-oriented output on the PL011 UART, shared with the hypervisor: each
//! line is prefixed `guest[cpuN] ` and written whole under a spinlock.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::{arch, mmio, timer};

/// UARTDR: data register.
const UARTDR: usize = 0x00;
/// UARTFR: flag register.
const UARTFR: usize = 0x18;
/// UARTFR.TXFF: transmit FIFO full.
const TXFF: u32 = 1 << 5;

/// QEMU virt's PL011, used until the DTB has been read.
const DEFAULT_UART: usize = 0x0900_0000;

static UART: AtomicUsize = AtomicUsize::new(DEFAULT_UART);

const UNLOCKED: usize = usize::MAX;
/// The core holding the console, or [`UNLOCKED`].
static OWNER: AtomicUsize = AtomicUsize::new(UNLOCKED);

/// Switches to the UART found in the DTB.
pub fn set_base(base: usize) {
    UART.store(base, Ordering::Relaxed);
}

fn putc(b: u8) {
    let base = UART.load(Ordering::Relaxed);
    // Bounded: a stuck UART costs output, never progress.
    for _ in 0..1_000_000 {
        // SAFETY: UARTFR of the PL011 named by the DTB: a read-only register.
        if unsafe { mmio::read32(base + UARTFR) } & TXFF == 0 {
            break;
        }
        arch::relax();
    }
    // SAFETY: writing UARTDR only queues a byte for transmission.
    unsafe { mmio::write32(base + UARTDR, b as u32) };
}

/// A fixed-capacity text buffer; what does not fit is cut off.
#[derive(Debug)]
pub struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        Text {
            buf: [0; N],
            len: 0,
        }
    }

    /// The text (cut at a character boundary if it overflowed).
    pub fn as_str(&self) -> &str {
        match core::str::from_utf8(&self.buf[..self.len]) {
            Ok(s) => s,
            Err(e) => {
                // SAFETY: `valid_up_to` is the length of the valid UTF-8 prefix.
                unsafe { core::str::from_utf8_unchecked(&self.buf[..e.valid_up_to()]) }
            }
        }
    }

    /// The text formatted from `args`.
    pub fn format(args: fmt::Arguments) -> Self {
        let mut t = Self::new();
        let _ = t.write_fmt(args);
        t
    }
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Write for Text<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

impl<const N: usize> fmt::Display for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Takes the console lock; returns whether this call took it (and so must
/// release it). Re-entry on the same core (an exception while printing)
/// and a holder that never lets go (a core that died printing) are both
/// survived by printing anyway.
fn lock() -> bool {
    let me = arch::core_index();
    if OWNER.load(Ordering::Relaxed) == me {
        return false;
    }
    let deadline = timer::Deadline::after_ms(1000);
    loop {
        if OWNER
            .compare_exchange_weak(UNLOCKED, me, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return true;
        }
        if deadline.expired() {
            OWNER.store(me, Ordering::SeqCst);
            return true;
        }
        arch::relax();
    }
}

fn unlock() {
    OWNER.store(UNLOCKED, Ordering::Release);
}

/// Prints one line: `guest[cpuN] ` + the text + newline.
pub fn print_line(args: fmt::Arguments) {
    let mut line = Text::<320>::new();
    let _ = write!(line, "guest[cpu{}] ", arch::core_index());
    let _ = line.write_fmt(args);
    let took = lock();
    for &b in line.as_str().as_bytes() {
        putc(b);
    }
    putc(b'\n');
    if took {
        unlock();
    }
}

/// Prints one line in two parts, `first` and `rest`, with `between` run in
/// the middle, the console lock held throughout: for the console test,
/// whose `between` makes the hypervisor log a line while this one is half
/// written.
pub fn print_split(first: &str, between: impl FnOnce(), rest: &str) {
    let mut head = Text::<64>::new();
    let _ = write!(head, "guest[cpu{}] ", arch::core_index());
    let took = lock();
    for &b in head.as_str().as_bytes().iter().chain(first.as_bytes()) {
        putc(b);
    }
    between();
    for &b in rest.as_bytes() {
        putc(b);
    }
    putc(b'\n');
    if took {
        unlock();
    }
}

/// Prints one whole line on the console, prefixed with this core.
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::console::print_line(format_args!($($arg)*))
    };
}

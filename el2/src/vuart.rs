//! The guest's console: a PL011 (Arm PrimeCell UART, DDI 0183 r1p5) as the
//! guest sees it, emulated by EL2 over the physical UART that EL2 keeps for
//! its own log.
//!
//! The guest's accesses to the UART page trap (stage 2 does not map it) and
//! land here. Nothing in this module touches hardware: the glue
//! (`hv::vuart`) feeds it the guest's accesses and the bytes EL2 read from
//! the physical receiver, and carries out what it answers.
//!
//! - Transmit: the FIFO drains at once, so FR reports it empty and never
//!   busy, and the transmit interrupt condition (FIFO at or below its
//!   trigger level) always holds. Each byte goes into the writing vCPU's
//!   [`LineBuffer`]; a whole line, a full buffer, or the guest stopping
//!   transmission (masking TXIM, as Linux's `pl011_stop_tx` does after each
//!   burst, or disabling the UART or its transmitter) hands the buffer to
//!   EL2's console as one piece, so guest output never interleaves with EL2's
//!   lines mid-line and a shell prompt without a newline still appears.
//! - Receive: a FIFO of [`RX_FIFO`] entries (one with LCR_H.FEN clear, the
//!   PL011's holding register) filled by EL2. RXRIS is raised when the fill
//!   reaches the trigger level and lowered when reads take it below, or by
//!   ICR; RTRIS (receive timeout) is raised once EL2's fill ends with data
//!   left (no more is coming: the "32 bit periods" have passed) and lowered
//!   when the FIFO empties or by ICR. A byte that finds the FIFO full is lost
//!   and raises OE, as the TRM says.
//! - Neither direction depends on CR.UARTEN/TXE/RXE: QEMU's PL011 does not
//!   check them either, and guests written for it (Linux's earlycon before
//!   the driver runs, the bundled test guest) never set them. The interrupt
//!   line does: it is `(RIS & IMSC) != 0` while UARTEN is set.
//! - Registers the TRM calls read-only ignore writes; write-only ICR reads 0;
//!   reserved offsets and the test registers read 0 and ignore writes.
//!   Accesses of 1, 2 or 4 bytes at a register's own address work on its low
//!   bits (Linux's amba-pl011 driver uses 16-bit accesses for vendor_arm,
//!   earlycon 8-bit DR writes); any other size or offset reads 0 and is
//!   ignored. Nothing here can panic.

/// Register offsets (PL011 TRM, table 3-1).
pub mod reg {
    /// Data register: write transmits, read pops the receive FIFO.
    pub const DR: u64 = 0x000;
    /// Receive status (read) / error clear (write).
    pub const RSR_ECR: u64 = 0x004;
    /// Flag register (read-only).
    pub const FR: u64 = 0x018;
    /// IrDA low-power counter.
    pub const ILPR: u64 = 0x020;
    /// Integer baud rate divisor.
    pub const IBRD: u64 = 0x024;
    /// Fractional baud rate divisor.
    pub const FBRD: u64 = 0x028;
    /// Line control.
    pub const LCR_H: u64 = 0x02c;
    /// Control.
    pub const CR: u64 = 0x030;
    /// Interrupt FIFO level select.
    pub const IFLS: u64 = 0x034;
    /// Interrupt mask set/clear.
    pub const IMSC: u64 = 0x038;
    /// Raw interrupt status (read-only).
    pub const RIS: u64 = 0x03c;
    /// Masked interrupt status (read-only).
    pub const MIS: u64 = 0x040;
    /// Interrupt clear (write-only).
    pub const ICR: u64 = 0x044;
    /// DMA control.
    pub const DMACR: u64 = 0x048;
    /// UARTPeriphID0; ID1..3 follow at +4, +8, +0xc.
    pub const PERIPH_ID0: u64 = 0xfe0;
    /// UARTPCellID0; ID1..3 follow at +4, +8, +0xc.
    pub const CELL_ID0: u64 = 0xff0;
}

/// Flag register bits.
pub mod fr {
    /// Transmit FIFO empty.
    pub const TXFE: u32 = 1 << 7;
    /// Receive FIFO full.
    pub const RXFF: u32 = 1 << 6;
    /// Transmit FIFO full.
    pub const TXFF: u32 = 1 << 5;
    /// Receive FIFO empty.
    pub const RXFE: u32 = 1 << 4;
    /// Busy transmitting.
    pub const BUSY: u32 = 1 << 3;
}

/// Interrupt bits, the same in IMSC, RIS, MIS and ICR.
pub mod int {
    /// Overrun error.
    pub const OE: u32 = 1 << 10;
    /// Break error.
    pub const BE: u32 = 1 << 9;
    /// Parity error.
    pub const PE: u32 = 1 << 8;
    /// Framing error.
    pub const FE: u32 = 1 << 7;
    /// Receive timeout.
    pub const RT: u32 = 1 << 6;
    /// Transmit.
    pub const TX: u32 = 1 << 5;
    /// Receive.
    pub const RX: u32 = 1 << 4;
    /// Every interrupt bit (the modem ones, 3..0, are never raised here).
    pub const ALL: u32 = 0x7ff;
}

/// Control register bits.
pub mod cr {
    /// UART enable.
    pub const UARTEN: u32 = 1 << 0;
    /// Transmit enable.
    pub const TXE: u32 = 1 << 8;
    /// Receive enable.
    pub const RXE: u32 = 1 << 9;
}

/// LCR_H.FEN: FIFOs enabled (else 1-byte holding registers).
pub const LCR_H_FEN: u32 = 1 << 4;
/// Data register bit 11: the byte came after an overrun.
pub const DR_OE: u32 = 1 << 11;
/// RSR bit 3: overrun error.
pub const RSR_OE: u32 = 1 << 3;

/// Receive FIFO depth: the PL011 r1p5's 32 entries (the revision the
/// periph ID reports; Linux sizes its FIFO from it).
pub const RX_FIFO: usize = 32;

/// UARTPeriphID0..3: part 0x011, designer 0x41 (Arm), revision 3 (r1p5),
/// configuration 0. Linux's amba bus reads these when the device tree has
/// no `arm,primecell-periphid`, and amba-pl011 matches 0x00041011 under
/// the mask 0x000fffff.
pub const PERIPH_ID: [u8; 4] = [0x11, 0x10, 0x34, 0x00];
/// UARTPCellID0..3: the PrimeCell identification 0xb105f00d.
pub const CELL_ID: [u8; 4] = [0x0d, 0xf0, 0x05, 0xb1];

/// Reset values (TRM, table 3-1).
const CR_RESET: u32 = cr::RXE | cr::TXE;
const IFLS_RESET: u32 = 0x12;

/// What the transmit side of one access asks of the writing vCPU's line
/// buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tx {
    /// Nothing.
    None,
    /// Queue this byte.
    Byte(u8),
    /// The guest stopped transmitting: hand over what is buffered.
    Flush,
}

/// Byte `offset / 4` of an identification register block.
fn id_byte(id: &[u8; 4], offset: u64) -> u32 {
    id.get((offset / 4) as usize).copied().unwrap_or(0) as u32
}

/// The result of one guest access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// What a read returns (0 for writes).
    pub value: u32,
    /// What happens to transmission.
    pub tx: Tx,
}

impl Outcome {
    const fn read(value: u32) -> Outcome {
        Outcome {
            value,
            tx: Tx::None,
        }
    }
    const NOTHING: Outcome = Outcome::read(0);
}

/// The UART's registers and receive FIFO, shared by every vCPU.
#[derive(Clone, Debug)]
pub struct Pl011 {
    rx: [u16; RX_FIFO],
    rx_head: usize,
    rx_len: usize,
    /// The next received byte carries DR.OE (a byte before it was lost).
    overrun: bool,
    rsr: u32,
    ilpr: u32,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: u32,
    dmacr: u32,
    /// The latched raw interrupt bits: everything but TX, which is a level
    /// that always holds (see [`Pl011::ris`]).
    latched: u32,
    /// Bytes lost to a full receive FIFO.
    dropped: u64,
}

impl Default for Pl011 {
    fn default() -> Self {
        Self::new()
    }
}

impl Pl011 {
    /// The UART after reset.
    pub const fn new() -> Pl011 {
        Pl011 {
            rx: [0; RX_FIFO],
            rx_head: 0,
            rx_len: 0,
            overrun: false,
            rsr: 0,
            ilpr: 0,
            ibrd: 0,
            fbrd: 0,
            lcr_h: 0,
            cr: CR_RESET,
            ifls: IFLS_RESET,
            imsc: 0,
            dmacr: 0,
            latched: 0,
            dropped: 0,
        }
    }

    /// Entries the receive side holds now: the FIFO, or the 1-byte holding
    /// register while LCR_H.FEN is clear.
    fn rx_capacity(&self) -> usize {
        if self.lcr_h & LCR_H_FEN != 0 {
            RX_FIFO
        } else {
            1
        }
    }

    /// RXRIS's trigger level: IFLS.RXIFLSEL of the FIFO (1/8, 1/4, 1/2,
    /// 3/4, 7/8; the reserved codes act as 1/2, the reset value), or one
    /// byte without FIFOs.
    fn rx_trigger(&self) -> usize {
        if self.lcr_h & LCR_H_FEN == 0 {
            return 1;
        }
        let eighths = match (self.ifls >> 3) & 0b111 {
            0 => 1,
            1 => 2,
            3 => 6,
            4 => 7,
            _ => 4,
        };
        RX_FIFO * eighths / 8
    }

    /// How many received bytes wait.
    pub fn rx_len(&self) -> usize {
        self.rx_len
    }

    /// Room left in the receive FIFO.
    pub fn rx_room(&self) -> usize {
        self.rx_capacity().saturating_sub(self.rx_len)
    }

    /// Bytes lost because the receive FIFO was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// A byte from the line (EL2 read it from the physical receiver).
    /// Call [`Pl011::rx_idle`] after the last byte of a batch.
    pub fn receive(&mut self, byte: u8) {
        if self.rx_len >= self.rx_capacity() {
            // TRM: the data in the FIFO stays valid, the new byte is lost,
            // OE is raised.
            self.overrun = true;
            self.rsr |= RSR_OE;
            self.latched |= int::OE;
            self.dropped += 1;
            return;
        }
        let before = self.rx_len;
        let mut entry = byte as u16;
        if self.overrun {
            entry |= DR_OE as u16;
            self.overrun = false;
        }
        self.rx[(self.rx_head + self.rx_len) % RX_FIFO] = entry;
        self.rx_len += 1;
        let level = self.rx_trigger();
        if before < level && self.rx_len >= level {
            self.latched |= int::RX;
        }
    }

    /// No more bytes are coming for now: the receive timeout has elapsed
    /// for whatever is left in the FIFO.
    pub fn rx_idle(&mut self) {
        if self.rx_len > 0 {
            self.latched |= int::RT;
        }
    }

    fn pop(&mut self) -> u32 {
        if self.rx_len == 0 {
            return 0;
        }
        let entry = self.rx[self.rx_head] as u32;
        self.rx_head = (self.rx_head + 1) % RX_FIFO;
        self.rx_len -= 1;
        if self.rx_len < self.rx_trigger() {
            self.latched &= !int::RX;
        }
        if self.rx_len == 0 {
            self.latched &= !int::RT;
        }
        // RSR holds the status of the last byte read (the OE bit is
        // sticky until ECR is written).
        if entry & DR_OE != 0 {
            self.rsr |= RSR_OE;
        }
        entry
    }

    /// The raw interrupt status: the latched bits, and TX, whose condition
    /// (transmit FIFO at or below its trigger level) always holds because
    /// the FIFO drains at once.
    pub fn ris(&self) -> u32 {
        self.latched | int::TX
    }

    /// The interrupt line the UART drives: an unmasked raw interrupt while
    /// the UART is enabled.
    pub fn line(&self) -> bool {
        self.cr & cr::UARTEN != 0 && self.ris() & self.imsc != 0
    }

    fn flags(&self) -> u32 {
        let mut f = fr::TXFE;
        if self.rx_len == 0 {
            f |= fr::RXFE;
        }
        if self.rx_len >= self.rx_capacity() {
            f |= fr::RXFF;
        }
        f
    }

    fn read_register(&mut self, offset: u64) -> u32 {
        match offset {
            reg::DR => self.pop(),
            reg::RSR_ECR => self.rsr,
            reg::FR => self.flags(),
            reg::ILPR => self.ilpr,
            reg::IBRD => self.ibrd,
            reg::FBRD => self.fbrd,
            reg::LCR_H => self.lcr_h,
            reg::CR => self.cr,
            reg::IFLS => self.ifls,
            reg::IMSC => self.imsc,
            reg::RIS => self.ris(),
            reg::MIS => self.ris() & self.imsc,
            reg::DMACR => self.dmacr,
            o @ reg::PERIPH_ID0..=0xfec => id_byte(&PERIPH_ID, o - reg::PERIPH_ID0),
            o @ reg::CELL_ID0..=0xffc => id_byte(&CELL_ID, o - reg::CELL_ID0),
            // ICR is write-only; reserved and test registers read as zero.
            _ => 0,
        }
    }

    fn write_register(&mut self, offset: u64, v: u32) -> Tx {
        match offset {
            reg::DR => return Tx::Byte(v as u8),
            // Any write to ECR clears the error flags.
            reg::RSR_ECR => self.rsr = 0,
            reg::ILPR => self.ilpr = v & 0xff,
            reg::IBRD => self.ibrd = v & 0xffff,
            reg::FBRD => self.fbrd = v & 0x3f,
            reg::LCR_H => self.lcr_h = v & 0xff,
            reg::CR => {
                self.cr = v & 0xff87;
                if self.cr & cr::UARTEN == 0 || self.cr & cr::TXE == 0 {
                    return Tx::Flush;
                }
            }
            reg::IFLS => self.ifls = v & 0x3f,
            reg::IMSC => {
                self.imsc = v & int::ALL;
                if self.imsc & int::TX == 0 {
                    return Tx::Flush;
                }
            }
            reg::ICR => self.latched &= !(v & int::ALL),
            reg::DMACR => self.dmacr = v & 0x7,
            // FR, RIS, MIS and the ID registers are read-only; reserved and
            // test registers ignore writes.
            _ => {}
        }
        Tx::None
    }

    /// One guest access at `offset` in the UART's 4 KiB page, of `size`
    /// bytes; `write` is the value of a store, `None` for a load.
    pub fn access(&mut self, offset: u64, size: u8, write: Option<u32>) -> Outcome {
        if !matches!(size, 1 | 2 | 4) || !offset.is_multiple_of(4) || offset >= 0x1000 {
            return Outcome::NOTHING;
        }
        let mask = if size == 4 {
            u32::MAX
        } else {
            (1u32 << (8 * size as u32)) - 1
        };
        match write {
            Some(v) => Outcome {
                value: 0,
                tx: self.write_register(offset, v & mask),
            },
            None => Outcome::read(self.read_register(offset) & mask),
        }
    }
}

/// Capacity of a vCPU's line buffer: longer lines go out in pieces.
pub const LINE_CAPACITY: usize = 512;

/// One vCPU's transmitted bytes not yet handed to the console.
#[derive(Clone, Debug)]
pub struct LineBuffer {
    buf: [u8; LINE_CAPACITY],
    len: usize,
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl LineBuffer {
    /// An empty buffer.
    pub const fn new() -> LineBuffer {
        LineBuffer {
            buf: [0; LINE_CAPACITY],
            len: 0,
        }
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Is nothing waiting?
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Carries out an access's transmit side; `sink` gets each piece that
    /// is complete (a line with its newline, a full buffer, or what was
    /// waiting when the guest stopped transmitting), never an empty one.
    pub fn apply(&mut self, tx: Tx, sink: &mut dyn FnMut(&[u8])) {
        match tx {
            Tx::None => {}
            Tx::Byte(b) => {
                if let Some(slot) = self.buf.get_mut(self.len) {
                    *slot = b;
                    self.len += 1;
                }
                if b == b'\n' || self.len >= LINE_CAPACITY {
                    self.flush(sink);
                }
            }
            Tx::Flush => self.flush(sink),
        }
    }

    /// Hands what is waiting to `sink`.
    pub fn flush(&mut self, sink: &mut dyn FnMut(&[u8])) {
        if self.len > 0 {
            sink(self.buf.get(..self.len).unwrap_or_default());
            self.len = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(u: &mut Pl011, off: u64) -> u32 {
        u.access(off, 4, None).value
    }

    fn w(u: &mut Pl011, off: u64, v: u32) -> Tx {
        u.access(off, 4, Some(v)).tx
    }

    /// A guest that writes `text` through DR into `line`, collecting what
    /// the sink gets.
    fn send(u: &mut Pl011, line: &mut LineBuffer, text: &[u8], out: &mut Vec<Vec<u8>>) {
        for &b in text {
            let tx = u.access(reg::DR, 4, Some(b as u32)).tx;
            line.apply(tx, &mut |piece| out.push(piece.to_vec()));
        }
    }

    #[test]
    fn identification_registers_match_linux_amba_and_pl011() {
        let mut u = Pl011::new();
        let word = |u: &mut Pl011, base: u64| {
            (0..4).fold(0u32, |acc, i| acc | (r(u, base + 4 * i) & 0xff) << (8 * i))
        };
        let pid = word(&mut u, reg::PERIPH_ID0);
        assert_eq!(
            pid & 0x000f_ffff,
            0x0004_1011,
            "amba-pl011's id under its mask"
        );
        assert_eq!(pid >> 20 & 0xf, 3, "revision r1p5: 32-byte FIFOs");
        assert_eq!(word(&mut u, reg::CELL_ID0), 0xb105_f00d);
        // Read-only: writes change nothing.
        w(&mut u, reg::PERIPH_ID0, 0);
        w(&mut u, reg::CELL_ID0 + 0xc, 0);
        assert_eq!(word(&mut u, reg::PERIPH_ID0), pid);
        assert_eq!(word(&mut u, reg::CELL_ID0), 0xb105_f00d);
    }

    #[test]
    fn reset_values_and_register_widths() {
        let mut u = Pl011::new();
        assert_eq!(r(&mut u, reg::CR), 0x300, "TXE | RXE, disabled");
        assert_eq!(r(&mut u, reg::IFLS), 0x12);
        assert_eq!(r(&mut u, reg::FR), fr::TXFE | fr::RXFE);
        for (off, v, kept) in [
            (reg::ILPR, 0xffff_ffff, 0xff),
            (reg::IBRD, 0xffff_ffff, 0xffff),
            (reg::FBRD, 0xffff_ffff, 0x3f),
            (reg::LCR_H, 0xffff_ffff, 0xff),
            (reg::CR, 0xffff_ffff, 0xff87),
            (reg::IFLS, 0xffff_ffff, 0x3f),
            (reg::IMSC, 0xffff_ffff, 0x7ff),
            (reg::DMACR, 0xffff_ffff, 0x7),
        ] {
            w(&mut u, off, v);
            assert_eq!(r(&mut u, off), kept, "register {off:#x}");
        }
    }

    #[test]
    fn read_only_registers_ignore_writes_and_icr_reads_zero() {
        let mut u = Pl011::new();
        let (fr0, ris0) = (r(&mut u, reg::FR), r(&mut u, reg::RIS));
        for off in [reg::FR, reg::RIS, reg::MIS] {
            assert_eq!(w(&mut u, off, 0xffff), Tx::None);
        }
        assert_eq!(r(&mut u, reg::FR), fr0);
        assert_eq!(r(&mut u, reg::RIS), ris0);
        assert_eq!(r(&mut u, reg::MIS), 0, "nothing unmasked");
        assert_eq!(r(&mut u, reg::ICR), 0, "write-only");
        // Reserved offsets and the test registers: zero, writes ignored.
        for off in [
            0x008, 0x00c, 0x010, 0x014, 0x01c, 0x04c, 0x080, 0x084, 0xfdc,
        ] {
            assert_eq!(w(&mut u, off, 0xffff), Tx::None);
            assert_eq!(r(&mut u, off), 0, "offset {off:#x}");
        }
    }

    #[test]
    fn transmit_is_always_ready_and_raises_tx() {
        let mut u = Pl011::new();
        let f = r(&mut u, reg::FR);
        assert_eq!(f & (fr::TXFF | fr::BUSY), 0);
        assert_ne!(f & fr::TXFE, 0);
        assert_eq!(
            w(&mut u, reg::DR, 0x141),
            Tx::Byte(0x41),
            "only the low byte"
        );
        assert_eq!(
            r(&mut u, reg::FR) & (fr::TXFF | fr::BUSY),
            0,
            "drained at once"
        );
        assert_ne!(r(&mut u, reg::RIS) & int::TX, 0);
        // Clearing it cannot keep it clear: the FIFO is still empty.
        w(&mut u, reg::ICR, int::TX);
        assert_ne!(r(&mut u, reg::RIS) & int::TX, 0);
    }

    #[test]
    fn lines_go_out_whole() {
        let mut u = Pl011::new();
        let mut line = LineBuffer::new();
        let mut out = Vec::new();
        send(&mut u, &mut line, b"guest[cpu0] hel", &mut out);
        assert!(out.is_empty(), "no newline yet");
        send(&mut u, &mut line, b"lo\nnext", &mut out);
        assert_eq!(out, vec![b"guest[cpu0] hello\n".to_vec()]);
        assert_eq!(line.len(), 4);
    }

    #[test]
    fn a_full_buffer_goes_out() {
        let mut u = Pl011::new();
        let mut line = LineBuffer::new();
        let mut out = Vec::new();
        let long = vec![b'x'; LINE_CAPACITY + 10];
        send(&mut u, &mut line, &long, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), LINE_CAPACITY);
        assert_eq!(line.len(), 10);
    }

    #[test]
    fn stopping_transmission_flushes_a_prompt() {
        let mut u = Pl011::new();
        let mut out = Vec::new();
        // Linux's pl011_stop_tx: IMSC written without TXIM.
        let mut line = LineBuffer::new();
        send(&mut u, &mut line, b"~ # ", &mut out);
        assert!(out.is_empty());
        let tx = u.access(reg::IMSC, 2, Some(int::RX | int::RT)).tx;
        line.apply(tx, &mut |p| out.push(p.to_vec()));
        assert_eq!(out, vec![b"~ # ".to_vec()]);
        // Keeping TXIM set is not a stop.
        send(&mut u, &mut line, b"ab", &mut out);
        let tx = u.access(reg::IMSC, 4, Some(int::TX | int::RX)).tx;
        assert_eq!(tx, Tx::None);
        // Disabling the UART, or only its transmitter, is.
        w(&mut u, reg::CR, cr::UARTEN | cr::TXE | cr::RXE);
        assert_eq!(w(&mut u, reg::CR, cr::UARTEN | cr::TXE), Tx::None);
        assert_eq!(w(&mut u, reg::CR, cr::UARTEN | cr::RXE), Tx::Flush);
        assert_eq!(w(&mut u, reg::CR, 0), Tx::Flush);
        line.apply(Tx::Flush, &mut |p| out.push(p.to_vec()));
        assert_eq!(out.last().unwrap(), b"ab");
        // An empty buffer hands nothing over.
        let n = out.len();
        line.apply(Tx::Flush, &mut |p| out.push(p.to_vec()));
        assert_eq!(out.len(), n);
    }

    #[test]
    fn earlycon_byte_writes_and_driver_halfword_accesses() {
        let mut u = Pl011::new();
        assert_eq!(u.access(reg::DR, 1, Some(b'e' as u32)).tx, Tx::Byte(b'e'));
        u.access(reg::IBRD, 2, Some(0x1_000d));
        assert_eq!(r(&mut u, reg::IBRD), 0xd, "a 16-bit store keeps 16 bits");
        assert_eq!(u.access(reg::FR, 2, None).value, fr::TXFE | fr::RXFE);
        assert_eq!(u.access(reg::PERIPH_ID0 + 8, 1, None).value, 0x34);
    }

    #[test]
    fn odd_sizes_and_offsets_never_panic_and_do_nothing() {
        let mut u = Pl011::new();
        u.receive(b'z');
        for size in 0..=16u8 {
            for off in (0..0x1010u64).chain([u64::MAX, u64::MAX - 3, 1 << 40]) {
                let before = (r(&mut u, reg::CR), u.rx_len());
                let o = u.access(off, size, Some(0xffff_ffff));
                let rd = u.access(off, size, None);
                if matches!(size, 1 | 2 | 4) && off.is_multiple_of(4) && off < 0x1000 {
                    continue;
                }
                assert_eq!(o, Outcome::NOTHING, "write {off:#x}/{size}");
                assert_eq!(rd, Outcome::NOTHING, "read {off:#x}/{size}");
                assert_eq!((r(&mut u, reg::CR), u.rx_len()), before);
            }
        }
        // 8-byte accesses are not the PL011's: ignored, DR not popped.
        let mut u = Pl011::new();
        u.receive(b'q');
        assert_eq!(u.access(reg::DR, 8, None), Outcome::NOTHING);
        assert_eq!(u.access(reg::DR, 8, Some(1)), Outcome::NOTHING);
        assert_eq!(u.rx_len(), 1);
    }

    /// Linux's setup: FIFOs on, IFLS RX 1/2, UART on, RX and RT unmasked.
    fn linux_like() -> Pl011 {
        let mut u = Pl011::new();
        w(&mut u, reg::LCR_H, LCR_H_FEN | 0x60);
        w(&mut u, reg::IFLS, 0x12);
        w(&mut u, reg::CR, cr::UARTEN | cr::TXE | cr::RXE);
        w(&mut u, reg::IMSC, int::RX | int::RT);
        u
    }

    #[test]
    fn receive_fifo_flags_and_reads_pop_in_order() {
        let mut u = linux_like();
        assert_eq!(r(&mut u, reg::DR), 0, "empty FIFO reads 0");
        for b in b"hi\n" {
            u.receive(*b);
        }
        u.rx_idle();
        assert_eq!(r(&mut u, reg::FR) & (fr::RXFE | fr::RXFF), 0);
        assert_eq!(r(&mut u, reg::DR), b'h' as u32);
        assert_eq!(r(&mut u, reg::DR), b'i' as u32);
        assert_eq!(u.access(reg::DR, 2, None).value, b'\n' as u32);
        assert_ne!(r(&mut u, reg::FR) & fr::RXFE, 0);
        for i in 0..RX_FIFO {
            u.receive(i as u8);
        }
        assert_ne!(r(&mut u, reg::FR) & fr::RXFF, 0);
        assert_eq!(u.rx_room(), 0);
    }

    #[test]
    fn overrun_loses_the_new_byte_and_raises_oe() {
        let mut u = linux_like();
        for i in 0..RX_FIFO + 2 {
            u.receive(i as u8);
        }
        assert_eq!(u.dropped(), 2);
        assert_ne!(r(&mut u, reg::RIS) & int::OE, 0);
        assert_ne!(r(&mut u, reg::RSR_ECR) & RSR_OE, 0);
        w(&mut u, reg::RSR_ECR, 0);
        assert_eq!(r(&mut u, reg::RSR_ECR), 0, "ECR clears");
        for i in 0..RX_FIFO {
            assert_eq!(r(&mut u, reg::DR), i as u32, "the FIFO's data stays valid");
        }
        u.receive(0x55);
        assert_eq!(r(&mut u, reg::DR), DR_OE | 0x55, "the next byte carries OE");
    }

    #[test]
    fn rx_interrupt_at_the_trigger_level_rt_for_the_rest() {
        let mut u = linux_like();
        // 1/2 of 32: RXRIS at the 16th byte.
        for i in 0..15 {
            u.receive(i);
        }
        assert_eq!(r(&mut u, reg::RIS) & int::RX, 0);
        assert!(!u.line(), "below the level, no timeout yet");
        u.receive(15);
        assert_ne!(r(&mut u, reg::RIS) & int::RX, 0);
        assert!(u.line());
        // Reading below the level lowers RX.
        r(&mut u, reg::DR);
        assert_eq!(r(&mut u, reg::RIS) & int::RX, 0);
        assert!(!u.line());
        // The fill is over: the timeout is raised for what is left, and
        // lowered once the FIFO is empty.
        u.rx_idle();
        assert_eq!(r(&mut u, reg::MIS), int::RT);
        assert!(u.line());
        while r(&mut u, reg::FR) & fr::RXFE == 0 {
            r(&mut u, reg::DR);
        }
        assert_eq!(r(&mut u, reg::MIS), 0);
        assert!(!u.line());
    }

    #[test]
    fn icr_clears_latched_interrupts_until_the_next_event() {
        let mut u = linux_like();
        u.receive(1);
        u.rx_idle();
        assert!(u.line());
        w(&mut u, reg::ICR, int::RT | int::RX);
        assert!(!u.line(), "cleared although the byte is still there");
        assert_eq!(u.rx_len(), 1);
        u.receive(2);
        u.rx_idle();
        assert!(u.line(), "a new fill raises the timeout again");
    }

    #[test]
    fn without_fifos_one_byte_is_the_level_and_the_capacity() {
        let mut u = linux_like();
        w(&mut u, reg::LCR_H, 0x60);
        u.receive(b'a');
        assert_ne!(r(&mut u, reg::RIS) & int::RX, 0);
        assert_ne!(r(&mut u, reg::FR) & fr::RXFF, 0);
        u.receive(b'b');
        assert_eq!(u.dropped(), 1);
        assert_eq!(r(&mut u, reg::DR), b'a' as u32);
        assert_eq!(r(&mut u, reg::RIS) & int::RX, 0);
    }

    #[test]
    fn trigger_levels_follow_ifls() {
        for (sel, level) in [(0, 4), (1, 8), (2, 16), (3, 24), (4, 28), (7, 16)] {
            let mut u = linux_like();
            w(&mut u, reg::IFLS, sel << 3);
            for i in 0..level - 1 {
                u.receive(i as u8);
            }
            assert_eq!(r(&mut u, reg::RIS) & int::RX, 0, "RXIFLSEL {sel}");
            u.receive(0);
            assert_ne!(r(&mut u, reg::RIS) & int::RX, 0, "RXIFLSEL {sel}");
        }
    }

    #[test]
    fn the_line_needs_uarten_and_an_unmasked_interrupt() {
        let mut u = Pl011::new();
        w(&mut u, reg::IMSC, int::TX);
        assert!(!u.line(), "UARTEN clear at reset");
        w(&mut u, reg::CR, cr::UARTEN | cr::TXE);
        assert!(u.line(), "TX always pending once unmasked");
        assert_eq!(r(&mut u, reg::MIS), int::TX);
        w(&mut u, reg::IMSC, 0);
        assert!(!u.line());
        u.receive(b'x');
        u.rx_idle();
        assert!(!u.line(), "RX and RT masked");
        w(&mut u, reg::IMSC, int::RT);
        assert!(u.line());
        w(&mut u, reg::CR, 0);
        assert!(!u.line(), "disabled UART drives no interrupt");
    }
}

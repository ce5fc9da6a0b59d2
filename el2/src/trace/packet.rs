//! An encoder for the ETE instruction-trace packets the QEMU model emits.
//!
//! Only the packets the model needs, each in the one form it uses, encoded
//! as the ETE architecture specification (Arm IHI 0064, "Trace packets"; the
//! formats ETE shares with ETMv4) defines them:
//!
//! | packet | header | payload |
//! |---|---|---|
//! | A-Sync | `0x00` x 11 | `0x80` |
//! | Trace Info | `0x01` | PLCTL `0x01` (INFO section only), INFO `0x00` (no cycle counting, no conditional trace) |
//! | Trace On | `0x04` | none |
//! | Timestamp | `0x02` | TS in 7-bit groups, least significant first, bit 7 = more follow; the ninth byte carries 8 bits |
//! | Context | `0x81` | info byte EL [1:0], SF 4, NS 5, V 6, C 7; then VMID (4 bytes with TRCIDR2.VMIDSIZE = 32 bits) if V; then CONTEXTID (4 bytes) if C |
//! | Exception | `0x06` | one byte: E0 bit 0, TYPE[4:0] [5:1], E1 bit 6, C bit 7 = 0; E1:E0 = 0b01: the preferred return address follows |
//! | Long address, 64-bit, IS0 | `0x9d` | A[8:2] in [6:0], A[15:9] in [6:0], then A[23:16] .. A[63:56] |
//! | Atom, format 1 | `0xf6` (N) or `0xf7` (E): `0b1111011x`, bit 0 = E | none |
//!
//! A timestamp packet replaces only the low bits it carries; the model's
//! timestamps never decrease, so the minimal encoding of the new value
//! always covers every bit that changed.
//!
//! The encodings are checked byte for byte against hand-derived values
//! here, and decoded by OpenCSD's `trc_pkt_lister` in the runner's tests.

/// Somewhere packets go: the model's unit FIFO, or a test vector.
pub trait Sink {
    /// Appends one byte.
    fn put(&mut self, b: u8);
}

/// A fixed-capacity byte buffer (no heap at EL2). Bytes beyond the capacity
/// are dropped and counted, never written out of bounds.
#[derive(Clone, Copy, Debug)]
pub struct Bytes<const N: usize> {
    buf: [u8; N],
    len: usize,
    dropped: usize,
}

impl<const N: usize> Bytes<N> {
    /// Empty.
    pub const fn new() -> Self {
        Bytes {
            buf: [0; N],
            len: 0,
            dropped: 0,
        }
    }

    /// The bytes so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// How many bytes did not fit.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room left.
    pub fn room(&self) -> usize {
        N - self.len
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.len = 0;
        self.dropped = 0;
    }
}

impl<const N: usize> Default for Bytes<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Sink for Bytes<N> {
    fn put(&mut self, b: u8) {
        if self.len < N {
            self.buf[self.len] = b;
            self.len += 1;
        } else {
            self.dropped += 1;
        }
    }
}

#[cfg(test)]
impl Sink for std::vec::Vec<u8> {
    fn put(&mut self, b: u8) {
        self.push(b)
    }
}

/// Length of an A-Sync packet.
pub const ASYNC_LEN: usize = 12;

/// ETE exception types (the TYPE field of the exception packet) the model
/// reports for what traps to EL2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExceptionType {
    /// SVC, HVC or SMC: "Call".
    Call = 0x2,
    /// A trapped instruction (system register, WFx...): "Trap".
    Trap = 0x3,
    /// SError.
    SystemError = 0x4,
    /// A breakpoint or software step exception: "Inst debug".
    InstDebug = 0x6,
    /// A watchpoint exception: "Data debug".
    DataDebug = 0x7,
    /// Instruction abort.
    InstFault = 0xb,
    /// Data abort.
    DataFault = 0xc,
    /// IRQ.
    Irq = 0xe,
    /// FIQ.
    Fiq = 0xf,
}

/// The PE context a context packet describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Context {
    /// Exception level, 0..=3.
    pub el: u8,
    /// AArch64 (SF).
    pub aarch64: bool,
    /// Non-secure (NS).
    pub non_secure: bool,
    /// VMID, if traced (4 bytes: VMIDSIZE = 32 bits).
    pub vmid: Option<u32>,
    /// CONTEXTIDR_EL1, if traced (4 bytes: CIDSIZE = 32 bits).
    pub context_id: Option<u32>,
}

/// Alignment synchronisation: eleven zero bytes, then 0x80.
pub fn a_sync(out: &mut impl Sink) {
    for _ in 0..ASYNC_LEN - 1 {
        out.put(0x00);
    }
    out.put(0x80);
}

/// Trace Info with an INFO section of 0: no cycle counting, no conditional
/// or load/store trace.
pub fn trace_info(out: &mut impl Sink) {
    out.put(0x01);
    out.put(0x01);
    out.put(0x00);
}

/// Trace On: a discontinuity, trace (re)starts.
pub fn trace_on(out: &mut impl Sink) {
    out.put(0x04);
}

/// Timestamp, no cycle count, in the fewest bytes that hold `ts`.
pub fn timestamp(out: &mut impl Sink, ts: u64) {
    out.put(0x02);
    let mut v = ts;
    for _ in 0..8 {
        let low = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.put(low);
            return;
        }
        out.put(low | 0x80);
    }
    // Ninth byte: the remaining 8 bits, no continuation bit.
    out.put(v as u8);
}

/// Context packet with its payload.
pub fn context(out: &mut impl Sink, c: &Context) {
    out.put(0x81);
    let mut info = c.el & 0b11;
    if c.aarch64 {
        info |= 1 << 4;
    }
    if c.non_secure {
        info |= 1 << 5;
    }
    if c.vmid.is_some() {
        info |= 1 << 6;
    }
    if c.context_id.is_some() {
        info |= 1 << 7;
    }
    out.put(info);
    if let Some(v) = c.vmid {
        for b in v.to_le_bytes() {
            out.put(b);
        }
    }
    if let Some(v) = c.context_id {
        for b in v.to_le_bytes() {
            out.put(b);
        }
    }
}

/// Exception packet; an address packet with the preferred return address
/// must follow (E1:E0 = 0b01).
pub fn exception(out: &mut impl Sink, t: ExceptionType) {
    out.put(0x06);
    out.put((((t as u8) & 0x1f) << 1) | 1);
}

/// Long address, 64-bit, instruction set 0 (A64). Bits [1:0] are not
/// traced (A64 instructions are word aligned).
pub fn address(out: &mut impl Sink, addr: u64) {
    out.put(0x9d);
    out.put(((addr >> 2) & 0x7f) as u8);
    out.put(((addr >> 9) & 0x7f) as u8);
    for shift in (16..64).step_by(8) {
        out.put((addr >> shift) as u8);
    }
}

/// One atom in format 1: E (`taken`: the P0 instruction branched, or is
/// unconditional) or N (a conditional branch fell through).
pub fn atom(out: &mut impl Sink, taken: bool) {
    out.put(0xf6 | u8::from(taken));
}

/// Bytes of an exception packet with its return address.
pub const EXCEPTION_LEN: usize = 2 + 9;

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut v = Vec::new();
        f(&mut v);
        v
    }

    #[test]
    fn packet_a_sync_is_eleven_zeros_then_0x80() {
        let v = enc(a_sync);
        assert_eq!(v.len(), ASYNC_LEN);
        assert!(v[..11].iter().all(|&b| b == 0));
        assert_eq!(v[11], 0x80);
    }

    #[test]
    fn packet_trace_info_and_trace_on() {
        assert_eq!(enc(trace_info), [0x01, 0x01, 0x00]);
        assert_eq!(enc(trace_on), [0x04]);
    }

    #[test]
    fn packet_timestamp_seven_bit_groups() {
        // 0x123456 = 0b1_0010001_1010001_1010110: groups 0x56, 0x68, 0x48.
        assert_eq!(enc(|o| timestamp(o, 0x123456)), [0x02, 0xd6, 0xe8, 0x48]);
        assert_eq!(enc(|o| timestamp(o, 0)), [0x02, 0x00]);
        assert_eq!(enc(|o| timestamp(o, 0x7f)), [0x02, 0x7f]);
        assert_eq!(enc(|o| timestamp(o, 0x80)), [0x02, 0x80, 0x01]);
        // 64 bits: eight 7-bit groups (56 bits) and a full ninth byte.
        assert_eq!(
            enc(|o| timestamp(o, u64::MAX)),
            [0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            enc(|o| timestamp(o, 1 << 63)),
            [0x02, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]
        );
    }

    #[test]
    fn packet_context_fields() {
        let c = Context {
            el: 1,
            aarch64: true,
            non_secure: true,
            vmid: Some(5),
            context_id: Some(0x42),
        };
        assert_eq!(
            enc(|o| context(o, &c)),
            [0x81, 0xf1, 0x05, 0, 0, 0, 0x42, 0, 0, 0]
        );
        let bare = Context {
            el: 0,
            aarch64: true,
            non_secure: true,
            ..Context::default()
        };
        assert_eq!(enc(|o| context(o, &bare)), [0x81, 0x30]);
        let cid_only = Context {
            el: 1,
            aarch64: true,
            non_secure: true,
            vmid: None,
            context_id: Some(0xdead_beef),
        };
        assert_eq!(
            enc(|o| context(o, &cid_only)),
            [0x81, 0xb1, 0xef, 0xbe, 0xad, 0xde]
        );
    }

    #[test]
    fn packet_exception_types() {
        assert_eq!(enc(|o| exception(o, ExceptionType::Call)), [0x06, 0x05]);
        assert_eq!(enc(|o| exception(o, ExceptionType::Trap)), [0x06, 0x07]);
        assert_eq!(enc(|o| exception(o, ExceptionType::Irq)), [0x06, 0x1d]);
        assert_eq!(
            enc(|o| exception(o, ExceptionType::DataFault)),
            [0x06, 0x19]
        );
    }

    #[test]
    fn packet_long_address_64_is0() {
        // 0x4420_1234: A[8:2] = 0x0d, A[15:9] = 0x09, A[23:16] = 0x20,
        // A[31:24] = 0x44.
        assert_eq!(
            enc(|o| address(o, 0x4420_1234)),
            [0x9d, 0x0d, 0x09, 0x20, 0x44, 0, 0, 0, 0]
        );
        assert_eq!(
            enc(|o| address(o, 0xffff_0000_0000_fffc)),
            [0x9d, 0x7f, 0x7f, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff]
        );
        assert_eq!(enc(|o| address(o, 0x44201234)).len() + 2, EXCEPTION_LEN);
    }

    #[test]
    fn packet_atom_format_1() {
        assert_eq!(enc(|o| atom(o, true)), [0xf7]);
        assert_eq!(enc(|o| atom(o, false)), [0xf6]);
    }

    #[test]
    fn packet_bytes_drops_what_does_not_fit() {
        let mut b = Bytes::<4>::new();
        address(&mut b, 0x1000);
        assert_eq!(b.as_slice(), [0x9d, 0x00, 0x08, 0x00]);
        assert_eq!(b.dropped(), 5);
        assert_eq!(b.room(), 0);
        b.clear();
        assert!(b.is_empty());
    }
}

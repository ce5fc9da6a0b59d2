//! Trace data out of EL2's buffers into guest memory: TRACE_READ's checks
//! and its offset protocol, as plain functions the host tests cover; the
//! copy itself (`hv::tracing`) only moves the chunks `plan` returns.

use guest_api::hyp::Error;
use guest_api::trace::{ReadResult, READ_ALIGN, READ_MAX};

use crate::platform::Range;

/// Checks TRACE_READ's guest buffer: non-empty, at most `READ_MAX` bytes,
/// `READ_ALIGN`-aligned, and inside one region of the guest's RAM (which
/// the hypervisor checked at boot never overlaps its own memory). Anything
/// else is INVALID_PARAMETER, before anything is copied.
pub fn check_guest_buffer(ipa: u64, size: u64, guest_ram: &[Range]) -> Result<(), Error> {
    if size == 0 || size > READ_MAX || !ipa.is_multiple_of(READ_ALIGN) {
        return Err(Error::InvalidParameter);
    }
    let last = ipa.checked_add(size - 1).ok_or(Error::InvalidParameter)?;
    if guest_ram
        .iter()
        .any(|r| r.size != 0 && r.contains(ipa) && r.contains(last))
    {
        Ok(())
    } else {
        Err(Error::InvalidParameter)
    }
}

/// A core's trace buffer as its owner sees it after a drain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferView {
    /// The buffer.
    pub buffer: Range,
    /// TRBPTR: where the next byte would go.
    pub ptr: u64,
    /// The pointer wrapped at least once (wrap or circular mode): the
    /// whole buffer holds data and the oldest byte is at `ptr`.
    pub wrapped: bool,
}

impl BufferView {
    /// Bytes of trace data held.
    pub fn len(&self) -> u64 {
        if self.wrapped {
            self.buffer.size
        } else {
            self.ptr
                .saturating_sub(self.buffer.base)
                .min(self.buffer.size)
        }
    }

    /// Nothing captured.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Offset `off` of the data (oldest byte = 0) as an offset into the
    /// buffer.
    fn at(&self, off: u64) -> u64 {
        if self.wrapped {
            let start = self.ptr.saturating_sub(self.buffer.base) % self.buffer.size;
            (start + off) % self.buffer.size
        } else {
            off
        }
    }
}

/// One contiguous piece of a read: `len` bytes from `from` (an offset into
/// the buffer) to `to` (an offset into the guest's buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Chunk {
    /// Offset into the trace buffer.
    pub from: u64,
    /// Offset into the guest's buffer.
    pub to: u64,
    /// Bytes.
    pub len: u64,
}

/// What a TRACE_READ of `size` bytes from `offset` copies (at most two
/// chunks: a wrapped buffer's end, then its start) and answers. An offset
/// past the data is INVALID_PARAMETER; at the end, nothing is copied.
pub fn plan(view: &BufferView, offset: u64, size: u64) -> Result<([Chunk; 2], ReadResult), Error> {
    let len = view.len();
    if offset > len {
        return Err(Error::InvalidParameter);
    }
    let n = size.min(len - offset);
    let mut chunks = [Chunk::default(); 2];
    if n != 0 {
        let from = view.at(offset);
        let first = n.min(view.buffer.size - from);
        chunks[0] = Chunk {
            from,
            to: 0,
            len: first,
        };
        if first < n {
            chunks[1] = Chunk {
                from: 0,
                to: first,
                len: n - first,
            };
        }
    }
    Ok((
        chunks,
        ReadResult {
            copied: n,
            next: offset + n,
            remaining: len - offset - n,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: [Range; 1] = [Range::new(0x4400_0000, 0x3c00_0000)];
    const BUF: Range = Range::new(0x4010_0000, 0x1_0000);

    #[test]
    fn trace_read_buffer_checks() {
        let ok = |ipa, size| check_guest_buffer(ipa, size, &RAM);
        assert_eq!(ok(0x4800_0000, 4096), Ok(()));
        assert_eq!(ok(0x4400_0000, READ_MAX), Ok(()));
        assert_eq!(ok(0x7fff_fff8, 8), Ok(()), "last 8 bytes of RAM");
        let bad = Err(Error::InvalidParameter);
        assert_eq!(ok(0x4800_0000, 0), bad, "empty");
        assert_eq!(ok(0x4800_0000, READ_MAX + 1), bad, "absurd size");
        assert_eq!(ok(0x4800_0000, u64::MAX), bad, "absurd size");
        assert_eq!(ok(0x4800_0004, 64), bad, "misaligned");
        assert_eq!(ok(0x4008_0000, 64), bad, "hypervisor memory");
        assert_eq!(ok(0x43ff_fff8, 64), bad, "straddles the hypervisor");
        assert_eq!(ok(0x7fff_fff8, 16), bad, "runs past RAM");
        assert_eq!(ok(0x0900_0000, 8), bad, "MMIO");
        assert_eq!(ok(u64::MAX - 7, 8), bad, "top of the address space");
        assert_eq!(ok(0xffff_ffff_ffff_f000, 0x2000), bad, "wraps");
        assert_eq!(check_guest_buffer(0x4800_0000, 8, &[]), bad, "no RAM");
    }

    #[test]
    fn trace_read_offsets_walk_the_data_once() {
        let v = BufferView {
            buffer: BUF,
            ptr: BUF.base + 1000,
            wrapped: false,
        };
        assert_eq!(v.len(), 1000);
        let mut off = 0;
        let mut total = 0;
        loop {
            let (c, r) = plan(&v, off, 256).unwrap();
            assert_eq!(c[0].from, off);
            assert_eq!(c[0].len, r.copied);
            assert_eq!(c[1].len, 0);
            total += r.copied;
            off = r.next;
            assert_eq!(r.remaining, 1000 - off);
            if r.remaining == 0 {
                break;
            }
        }
        assert_eq!(total, 1000);
        let (_, end) = plan(&v, 1000, 64).unwrap();
        assert_eq!(end.copied, 0);
        assert_eq!(plan(&v, 1001, 64), Err(Error::InvalidParameter));
        assert_eq!(plan(&v, u64::MAX, 64), Err(Error::InvalidParameter));
    }

    #[test]
    fn trace_read_of_a_wrapped_buffer_starts_at_the_oldest_byte() {
        let v = BufferView {
            buffer: BUF,
            ptr: BUF.base + 0x100,
            wrapped: true,
        };
        assert_eq!(v.len(), BUF.size);
        let (c, r) = plan(&v, 0, BUF.size).unwrap();
        assert_eq!(
            c,
            [
                Chunk {
                    from: 0x100,
                    to: 0,
                    len: BUF.size - 0x100
                },
                Chunk {
                    from: 0,
                    to: BUF.size - 0x100,
                    len: 0x100
                }
            ]
        );
        assert_eq!(r.remaining, 0);
        let (c, _) = plan(&v, BUF.size - 0x100 + 8, 8).unwrap();
        assert_eq!(
            c[0],
            Chunk {
                from: 8,
                to: 0,
                len: 8
            }
        );
    }

    #[test]
    fn trace_read_of_an_empty_or_full_fill_buffer() {
        let empty = BufferView {
            buffer: BUF,
            ptr: BUF.base,
            wrapped: false,
        };
        assert!(empty.is_empty());
        assert_eq!(plan(&empty, 0, 8).unwrap().1.copied, 0);
        let full = BufferView {
            ptr: BUF.base + BUF.size,
            ..empty
        };
        assert_eq!(full.len(), BUF.size);
        // A garbage pointer (after a power loss) never reads outside.
        let bad = BufferView {
            ptr: 0xdead_0000_0000_0000,
            ..empty
        };
        assert!(bad.len() <= BUF.size);
    }
}

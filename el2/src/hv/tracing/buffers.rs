//! EL2's trace buffers: one per core, each followed by a guard page, in the
//! hypervisor's own memory (never mapped for the guest). The model backend
//! writes them through [`store_trace`]; TRACE_READ copies out of them.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::arch;
use crate::dtb::{Range, MAX_CPUS};

/// Size of each core's trace buffer, owned by EL2.
pub const BUFFER_SIZE: usize = 64 << 10;
/// The guard page after each core's buffer (so also between two cores'
/// buffers, and after the last one): it holds nothing and nothing reads
/// it. A TRBE with erratum 2224489/2253138 may write up to 64 bytes past
/// LIMIT; they land here instead of in the next core's buffer or in EL2's
/// own data.
pub const GUARD_SIZE: usize = 4096;

#[repr(C, align(4096))]
struct Slot {
    data: [u8; BUFFER_SIZE],
    guard: [u8; GUARD_SIZE],
}

/// The trace buffers. Rust never holds a reference into them: the trace
/// hardware (or the model, through [`store_trace`]) of each core writes its
/// own slot by address, and TRACE_READ copies from it by address, both on
/// the owning core.
#[repr(C, align(4096))]
struct Buffers(UnsafeCell<[Slot; MAX_CPUS]>);

// SAFETY: the cell is only ever reached through raw pointers derived from
// its address (`buffer`), each core's slot only by that core (its trace
// unit's writes, `store_trace` from its model, `copy_to_guest` from its
// TRACE_READ), so no two cores touch the same bytes.
unsafe impl Sync for Buffers {}

/// The trace buffers: the hypervisor's memory, never mapped for the guest.
static BUFFERS: Buffers = Buffers(UnsafeCell::new(
    [const {
        Slot {
            data: [0; BUFFER_SIZE],
            guard: [0; GUARD_SIZE],
        }
    }; MAX_CPUS],
));

/// Cores whose guard page has caught a write, one bit each (logged once).
static GUARD_HIT: AtomicU32 = AtomicU32::new(0);

/// Stores trace bytes into EL2's trace buffers and their guard pages, and
/// nowhere else: the model's writer. Bytes outside every core's slot are
/// dropped; bytes in a guard page are logged once per core, since only a
/// part with the write-out-of-range erratum (or the model behaving like
/// one, `test.midr`) writes there.
pub fn store_trace(addr: u64, bytes: &[u8]) {
    let start = buffer(0).base;
    let slot = (BUFFER_SIZE + GUARD_SIZE) as u64;
    let end = start + slot * MAX_CPUS as u64;
    let Some(last) = addr.checked_add(bytes.len() as u64) else {
        return;
    };
    if addr < start || last > end {
        return;
    }
    if (addr - start) % slot + bytes.len() as u64 > BUFFER_SIZE as u64 {
        let idx = ((addr - start) / slot) as usize;
        let bit = 1u32 << (idx & 31);
        if GUARD_HIT.fetch_or(bit, Ordering::Relaxed) & bit == 0 {
            log::warn!(
                "trace: a write past cpu{idx}'s buffer LIMIT ({:#x}+{}) landed in its guard page",
                addr,
                bytes.len()
            );
        }
    }
    // SAFETY: [addr, last) lies inside BUFFERS (checked above), which only
    // the trace hardware or model of the owning core writes, and this runs
    // on that core (the model belongs to it).
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len()) };
}

/// Copies `len` bytes of EL2's trace buffer at `from` to guest RAM at `to`.
///
/// # Safety
/// `[from, from + len)` is inside the calling core's trace buffer and
/// `[to, to + len)` inside the guest's RAM (checked by
/// `trace::data::check_guest_buffer`), which EL2 maps as Normal memory and
/// never uses itself.
pub unsafe fn copy_to_guest(from: u64, to: u64, len: u64) {
    // SAFETY: the caller's promise; the two ranges cannot overlap (the
    // guest's RAM never includes the hypervisor's).
    unsafe { core::ptr::copy_nonoverlapping(from as *const u8, to as *mut u8, len as usize) };
    arch::clean_dcache_to_poc(to, len);
}

/// The buffer of core `idx`.
pub fn buffer(idx: usize) -> Range {
    let slots = BUFFERS.0.get().cast::<Slot>();
    // Only an address is computed (`wrapping_add` needs no promise), and
    // nothing is read; a core index is always below MAX_CPUS.
    debug_assert!(idx < MAX_CPUS);
    let slot = slots.wrapping_add(idx);
    Range::new(slot as u64, BUFFER_SIZE as u64)
}

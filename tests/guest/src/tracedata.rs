//! `test=tracedata`: trace data from the hypervisor's buffers to the
//! console, for the runner to decode with OpenCSD.
//!
//! 1. The boot core enables trace on itself (EL1, timestamps, context ID),
//!    makes `CALLS` PING hypercalls to itself, and disables: the model
//!    traces each of those HVCs (and the disable's own) as an exception
//!    packet with its return address.
//! 2. With two or more cores, it enables core 1 remotely, lets it run, and
//!    disables it remotely: core 1's buffer holds what core 1 trapped.
//! 3. TRACE_STATS and TRACE_READ (remote for core 1, served by core 1) get
//!    the data out; each core's data is printed as
//!    `tracedata: cpuN OFFSET HEX...` lines between `tracedata: cpuN begin`
//!    and `tracedata: cpuN end LEN`, with the stats and the guest image's
//!    range, so the runner can check the exception addresses.
//! 4. Bad TRACE_READ arguments (hypervisor memory, misaligned, empty,
//!    absurd size, offset past the data) are INVALID_PARAMETER.
//! 5. Wrap mode: the boot core traces itself with `CONFIG_WRAP` until
//!    TRACE_STATS reports a wrap, makes `WRAP_TAIL` more calls and
//!    disables; the whole (full, wrapped) buffer is read out oldest first
//!    and printed as `wrap0`, for the runner to decode from its first sync
//!    point on.

use guest_api::trace::{self as abi, ReadResult, Stats};
use guest_api::trace::{CONFIG_CONTEXT_ID, CONFIG_EL1, CONFIG_TIMESTAMPS, CONFIG_WRAP};

use crate::calls;
use crate::report::{fail, Msg, Report};
use crate::trace_calls as tc;
use crate::{platform, suite};

/// HVCs the boot core makes while it traces itself.
pub const CALLS: u64 = 12;
const CONFIG: u64 = CONFIG_EL1 | CONFIG_TIMESTAMPS | CONFIG_CONTEXT_ID;
/// Calls made in wrap mode after the first wrap.
pub const WRAP_TAIL: u64 = 100;
/// Calls after which a buffer that has not wrapped is a failure.
const WRAP_LIMIT: u64 = 50_000;
/// TRACE_READ chunk: small, so the offset protocol takes several calls.
const CHUNK: usize = 64;

#[repr(C, align(64))]
struct Buf([u8; 64 << 10]);
/// Where the boot core reads trace data to.
struct Data(core::cell::UnsafeCell<Buf>);
// SAFETY: only the boot core touches DATA (this scenario's reads and dumps).
unsafe impl Sync for Data {}
static DATA: Data = Data(core::cell::UnsafeCell::new(Buf([0; 64 << 10])));

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

/// Runs the scenario; the exit status.
pub fn run() -> u64 {
    let mut report = Report::new();
    report.check("cpu-on", suite::cpu_on());
    report.check("tracedata", tracedata());
    report.finish()
}

fn ok(r: calls::Ret6, what: &str) -> Result<[u64; 6], Msg> {
    match r {
        Ok(r) if r[0] == 0 => Ok(r),
        Ok(r) => fail!("{what}: {}", tc::error_name(r[0] as i64)),
        Err(c) => fail!("{what}: exception {c:?}"),
    }
}

fn stats(mpidr: u64) -> Result<Stats, Msg> {
    let r = ok(
        calls::hyp6(abi::TRACE_STATS, [mpidr, 0, 0, 0]),
        "TRACE_STATS",
    )?;
    Stats::from_registers(r).map_err(|e| crate::report::msg(format_args!("{e:?}")))
}

/// Reads all of `mpidr`'s data into DATA; its length.
fn read_all(mpidr: u64) -> Result<usize, Msg> {
    // SAFETY: only the boot core runs this scenario's reads.
    let data = unsafe { &mut *DATA.0.get() };
    let mut off = 0u64;
    let mut calls_made = 0;
    loop {
        let ipa = data.0.as_ptr() as u64 + off;
        let room = (data.0.len() as u64 - off).min(CHUNK as u64);
        if room == 0 {
            fail!("more data than the guest's buffer");
        }
        let r = ok(
            calls::hyp6(abi::TRACE_READ, [mpidr, off, ipa, room]),
            "TRACE_READ",
        )?;
        let r =
            ReadResult::from_registers(r).map_err(|e| crate::report::msg(format_args!("{e:?}")))?;
        if r.next != off + r.copied || r.copied > room {
            fail!("TRACE_READ at {off}: {r:?}");
        }
        off = r.next;
        calls_made += 1;
        if r.remaining == 0 {
            break;
        }
        if r.copied == 0 {
            fail!("TRACE_READ made no progress at {off}");
        }
    }
    println!("tracedata: read {off} bytes in {calls_made} calls");
    Ok(off as usize)
}

fn dump(tag: &str, len: usize) {
    // SAFETY: only the boot core runs this scenario.
    let data = unsafe { &*DATA.0.get() };
    println!("tracedata: {tag} begin");
    for (i, line) in data.0[..len].chunks(32).enumerate() {
        let mut hex = [0u8; 64];
        for (j, b) in line.iter().enumerate() {
            const D: &[u8; 16] = b"0123456789abcdef";
            hex[2 * j] = D[(b >> 4) as usize];
            hex[2 * j + 1] = D[(b & 0xf) as usize];
        }
        let s = core::str::from_utf8(&hex[..2 * line.len()]).unwrap_or("");
        println!("tracedata: {tag} {:06x} {s}", 32 * i);
    }
    println!("tracedata: {tag} end {len}");
}

/// Prints `mpidr`'s TRACE_STATS, reads all its data with TRACE_READ and
/// prints it as `tracedata: <tag> ...` lines (begin, OFFSET HEX, end LEN).
pub(crate) fn capture(tag: &str, mpidr: u64) -> Result<(), Msg> {
    let s = stats(mpidr)?;
    println!(
        "tracedata: {tag} stats written={} wraps={} lost={} flags={:#x} available={}",
        s.written, s.wraps, s.lost, s.flags, s.available
    );
    let len = read_all(mpidr)?;
    if len as u64 != s.available {
        fail!("{tag}: read {len} bytes, TRACE_STATS said {}", s.available);
    }
    if len == 0 {
        fail!("{tag}: no trace data");
    }
    dump(tag, len);
    Ok(())
}

fn bad_reads(mpidr: u64) -> Result<(), Msg> {
    let buf = DATA.0.get() as u64;
    let cases: [(&str, u64, u64, u64); 6] = [
        ("hypervisor memory", 0, platform::HYPERVISOR_IMAGE, 64),
        ("misaligned", 0, buf + 4, 64),
        ("empty", 0, buf, 0),
        ("absurd size", 0, buf, u64::MAX),
        ("past the end of RAM", 0, !7u64, 64),
        ("offset past the data", 1 << 40, buf, 64),
    ];
    for (what, off, ipa, size) in cases {
        match calls::hyp6(abi::TRACE_READ, [mpidr, off, ipa, size]) {
            Ok(r) if r[0] as i64 == -3 => {}
            other => fail!("TRACE_READ {what}: {other:?}, want INVALID_PARAMETER"),
        }
    }
    match calls::hyp6(abi::TRACE_READ, [0xdead_beef, 0, buf, 64]) {
        Ok(r) if r[0] as i64 == -3 => Ok(()),
        other => fail!("TRACE_READ of no core: {other:?}"),
    }
}

fn tracedata() -> Result<(), Msg> {
    let plat = platform::get();
    let me = plat.mpidr[crate::arch::core_index()];
    let start = &raw const __image_start as u64;
    let end = &raw const __image_end as u64;
    println!("tracedata: image {start:#x} {end:#x} calls {CALLS} config {CONFIG:#x}");

    ok(tc::enable(me, CONFIG, 0, 0), "TRACE_ENABLE self")?;
    for _ in 0..CALLS {
        ok(calls::hyp6(guest_api::hyp::PING, [me, 0, 0, 0]), "PING")?;
    }
    ok(tc::disable(me), "TRACE_DISABLE self")?;
    capture("cpu0", me)?;

    if plat.ncpus > 1 {
        let other = plat.mpidr[1];
        ok(tc::enable(other, CONFIG, 0, 0), "TRACE_ENABLE cpu1")?;
        // Core 1 idles in the guest meanwhile; its traps are traced.
        crate::timer::delay_us(20_000);
        let live = stats(other)?;
        ok(tc::disable(other), "TRACE_DISABLE cpu1")?;
        let after = stats(other)?;
        if after.available < live.available {
            fail!("cpu1 lost data on disable: {live:?} then {after:?}");
        }
        capture("cpu1", other)?;
    }
    bad_reads(me)?;
    wrap(me)
}

fn ping(me: u64) -> Result<(), Msg> {
    ok(calls::hyp6(guest_api::hyp::PING, [me, 0, 0, 0]), "PING").map(|_| ())
}

/// Step 5: wrap mode on this core.
fn wrap(me: u64) -> Result<(), Msg> {
    ok(
        tc::enable(me, CONFIG | CONFIG_WRAP, 0, 0),
        "TRACE_ENABLE wrap",
    )?;
    let mut calls_made = 0;
    loop {
        for _ in 0..256 {
            ping(me)?;
        }
        calls_made += 256;
        let s = stats(me)?;
        if s.wraps > 0 {
            // Wrap mode never fills or stops (STATS_INSTRUCTIONS only says
            // which model source produced the data).
            if s.flags & !abi::STATS_INSTRUCTIONS != 0 || s.lost != 0 {
                fail!("wrap mode: {s:?}");
            }
            break;
        }
        if calls_made >= WRAP_LIMIT {
            fail!("no wrap after {calls_made} calls: {s:?}");
        }
    }
    for _ in 0..WRAP_TAIL {
        ping(me)?;
    }
    ok(tc::disable(me), "TRACE_DISABLE wrap")?;
    println!("tracedata: wrapped after about {calls_made} calls, then {WRAP_TAIL} more");
    capture("wrap0", me)
}

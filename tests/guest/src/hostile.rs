//! `test=hostile`: a guest that tries what a guest must not be able to do,
//! and checks after each attempt that the hypervisor refused it as
//! documented and carries on. Checks, in order:
//!
//! - `sysreg-walk` (every core): every trace-unit register encoding
//!   (the whole op0 = 2, op1 = 1 space: 2048 encodings, a superset of the
//!   hypervisor's TRC* table), the trace-buffer registers
//!   (S3_0_C9_C11_0..7), TRFCR_EL1 and TRFCR_EL2, each read (MRS) and
//!   written (MSR): every access must be UNDEFINED (ESR_EL1.EC 0). The
//!   instructions are generated here, into a buffer of `mrs`/`msr; ret`
//!   stubs, since an `asm!` encoding must be a constant.
//! - `os-lock` (every core): OSLAR_EL1 writes (with junk in the other
//!   bits) change only the guest's lock, which OSLSR_EL1 reads back; the
//!   ETMv4 TRCOSLAR/TRCOSLSR encodings are UNDEFINED and change nothing;
//!   OSDLR_EL1 is RAZ/WI; TRACE_ENABLE and TRACE_DISABLE of the core work
//!   whatever the lock says, with a coherent status.
//! - `hypmem` (boot core): reads, writes, a load pair and instruction
//!   fetches at addresses in the hypervisor's memory get a synchronous
//!   external abort (data: EC 0x25, instruction: EC 0x21; FSC 0x10, FAR =
//!   the address) and nothing else.
//! - `gic-hostile` (boot core): writes that try to disable, regroup,
//!   reprioritise or put to sleep the hypervisor's SGI 15 and maintenance
//!   PPI 25 (this core's redistributor and another core's), to disable or
//!   regroup the distributor, halfword and misaligned accesses and a load
//!   pair on GIC registers. Each is ignored or virtual, as
//!   `el2/src/gic_mmio.rs` documents (a load pair, which has no syndrome,
//!   gets an abort; a misaligned access to Device memory may also fault in
//!   the guest's own stage 1); after each one, PING and TRACE_STATUS of
//!   every other core (both travel by SGI 15) must still work.
//! - `hostile-args` (boot core): CPU_ON of an off core with entry points
//!   outside the guest's RAM, in the hypervisor, misaligned or absurd, and
//!   with target MPIDRs carrying bits that must be zero: INVALID_ADDRESS /
//!   INVALID_PARAMETERS, and the core stays off; CPU_SUSPEND with an
//!   invalid power_state or a power-down entry point that is not the
//!   guest's: INVALID_PARAMETERS / INVALID_ADDRESS before anything
//!   happens; AFFINITY_INFO with bad MPIDRs and levels; trace calls with
//!   reserved config bits, bad filters, bad targets and junk in x0[63:32]
//!   or the function ID's reserved bits: INVALID_PARAMETER or
//!   NOT_SUPPORTED, with the status (generation and config) of the traced
//!   cores unchanged after each.
//! - `alive`: PING every core, a remote enable/status/disable round and
//!   timer interrupts.

use core::arch::asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use guest_api::trace::{self as abi, Status};
use guest_api::{hyp, psci, smccc};

use crate::arch;
use crate::calls;
use crate::fuzz::{raw_call, AFFINITY_MASK};
use crate::report::{fail, Msg, Report, Subchecks};
use crate::smp::{self, Cmd};
use crate::trace_calls::{self as tc, Expect};
use crate::trap::{self, Caught};
use crate::{gic, hypmem, irq, isolation, platform, suite};

/// Bound of every wait for another core.
const WAIT_MS: u64 = 30_000;

/// ESR_EL1.EC values.
const EC_UNKNOWN: u64 = 0x00;
const EC_IABT_SAME_EL: u64 = 0x21;
const EC_DABT_SAME_EL: u64 = 0x25;
/// FSC: synchronous external abort; alignment fault.
const FSC_EXTERNAL: u64 = 0x10;
const FSC_ALIGNMENT: u64 = 0x21;

// ---------------------------------------------------------------------
// sysreg-walk

/// (op0, op1, CRn, CRm, op2) of every register walked.
type Enc = (u32, u32, u32, u32, u32);

/// Registers walked: op0 = 2, op1 = 1 (all), the TRB* block, TRFCR_EL1/2.
const WALKED: usize = 16 * 16 * 8 + 8 + 2;
/// Two stubs (MRS, MSR) of two instructions each per register.
const STUB_WORDS: usize = WALKED * 4;

/// The `i`-th walked register.
fn walked(i: usize) -> Enc {
    let i32 = i as u32;
    if i < 2048 {
        (2, 1, i32 >> 7, (i32 >> 3) & 0xf, i32 & 7)
    } else if i < 2056 {
        (3, 0, 9, 11, i32 - 2048)
    } else if i == 2056 {
        (3, 0, 1, 2, 1) // TRFCR_EL1
    } else {
        (3, 4, 1, 2, 1) // TRFCR_EL2
    }
}

/// `MRS x0, <reg>` (`write` false) or `MSR <reg>, xzr`.
fn sysreg_insn(e: Enc, write: bool) -> u32 {
    let (op0, op1, crn, crm, op2) = e;
    let base: u32 = if write { 0xD510_0000 } else { 0xD530_0000 };
    let rt = if write { 31 } else { 0 };
    base | ((op0 & 1) << 19) | (op1 << 16) | (crn << 12) | (crm << 8) | (op2 << 5) | rt
}

const RET: u32 = 0xD65F_03C0;

#[repr(C, align(4096))]
struct Stubs(UnsafeCell<[u32; STUB_WORDS]>);

// SAFETY: the boot core writes the stubs once, before it posts the command
// that lets any other core run them; afterwards they are only executed.
unsafe impl Sync for Stubs {}

static STUBS: Stubs = Stubs(UnsafeCell::new([0; STUB_WORDS]));
static STUBS_READY: AtomicBool = AtomicBool::new(false);

/// Writes the stubs and makes them visible to instruction fetch (to the
/// point of unification, inner shareable: every core).
fn build_stubs() {
    let base = STUBS.0.get() as *mut u32;
    for i in 0..WALKED {
        for (k, write) in [(0, false), (1, true)] {
            let at = (i * 2 + k) * 2;
            // SAFETY: `at + 1 < STUB_WORDS`; nobody executes the stubs
            // before STUBS_READY is set below.
            unsafe {
                base.add(at).write_volatile(sysreg_insn(walked(i), write));
                base.add(at + 1).write_volatile(RET);
            }
        }
    }
    let ctr: u64;
    // SAFETY: reads CTR_EL0, which has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nostack)) };
    let dline = 4usize << ((ctr >> 16) & 0xf);
    let iline = 4usize << (ctr & 0xf);
    let start = base as usize;
    let end = start + STUB_WORDS * 4;
    let mut a = start;
    while a < end {
        // SAFETY: cleans a line of the stub buffer, which is mapped.
        unsafe { asm!("dc cvau, {}", in(reg) a, options(nostack)) };
        a += dline;
    }
    // SAFETY: a barrier.
    unsafe { asm!("dsb ish", options(nostack)) };
    let mut a = start;
    while a < end {
        // SAFETY: invalidates a line of instruction cache by address.
        unsafe { asm!("ic ivau, {}", in(reg) a, options(nostack)) };
        a += iline;
    }
    // SAFETY: barriers.
    unsafe { asm!("dsb ish", "isb", options(nostack)) };
    STUBS_READY.store(true, Ordering::Release);
}

/// Runs stub `n` (register `n / 2`, MSR if odd) under a catch.
fn run_stub(n: usize) -> Option<Caught> {
    let addr = STUBS.0.get() as usize + n * 8;
    trap::catching(|| {
        // SAFETY: the stub is one MRS into x0 or one MSR of xzr to a trace
        // register, then RET: the access is expected to be UNDEFINED (the
        // armed catch steps over it to the RET); should it be let through,
        // a read has no side effect and a write of 0 can only stop trace,
        // which the check then reports.
        unsafe {
            asm!(
                "isb",
                "blr {f}",
                f = in(reg) addr,
                lateout("x0") _,
                lateout("x30") _,
                options(nostack)
            )
        };
    })
    .1
}

fn sysreg_walk(s: &mut Subchecks) -> usize {
    let mut undefined = 0;
    let mut shown = 0;
    for n in 0..WALKED * 2 {
        let (op0, op1, crn, crm, op2) = walked(n / 2);
        let what = if n % 2 == 0 { "MRS" } else { "MSR" };
        match run_stub(n) {
            Some(c) if c.ec() == EC_UNKNOWN => undefined += 1,
            r => {
                if shown < 8 {
                    let got = match r {
                        Some(c) => crate::report::msg(format_args!("{c}")),
                        None => crate::report::msg(format_args!("no exception")),
                    };
                    s.fail(format_args!(
                        "{what} S{op0}_{op1}_C{crn}_C{crm}_{op2}: {got}, want UNDEFINED"
                    ));
                }
                shown += 1;
            }
        }
    }
    if shown > 8 {
        s.fail(format_args!("{shown} accesses in all were not UNDEFINED"));
    }
    undefined
}

// ---------------------------------------------------------------------
// os-lock

/// OSLSR_EL1: OSLM = 0b10 (bit 3), OSLK bit 1.
const OSLSR_OSLM: u64 = 1 << 3;
const OSLSR_OSLK: u64 = 1 << 1;

fn trcoslar(v: u64) -> Option<Caught> {
    trap::catching(|| {
        // SAFETY: the ETMv4 TRCOSLAR encoding, UNDEFINED on ETE and kept
        // from the guest: the catch steps over it.
        unsafe { asm!("msr S2_1_C1_C0_4, {}", in(reg) v, options(nostack)) };
    })
    .1
}

fn trcoslsr() -> Option<Caught> {
    trap::catching(|| {
        let v: u64;
        // SAFETY: reads the ETMv4 TRCOSLSR encoding, kept from the guest:
        // the catch steps over it.
        unsafe { asm!("mrs {}, S2_1_C1_C1_4", out(reg) v, options(nostack)) };
        v
    })
    .1
}

fn osdlr(v: u64) -> (u64, Option<Caught>) {
    trap::catching(|| {
        let r: u64;
        // SAFETY: OSDLR_EL1, the OS double lock, which the hypervisor
        // emulates as RAZ/WI: the write must not lock anything.
        unsafe {
            asm!("msr S2_0_C1_C3_4, {v}", "mrs {r}, S2_0_C1_C3_4", v = in(reg) v, r = out(reg) r, options(nostack))
        };
        r
    })
}

fn expect_oslsr(s: &mut Subchecks, locked: bool, when: &core::fmt::Arguments) {
    let want = OSLSR_OSLM | if locked { OSLSR_OSLK } else { 0 };
    match isolation::oslsr() {
        Ok(v) if v == want => {}
        Ok(v) => s.fail(format_args!("{when}: OSLSR_EL1 = {v:#x}, want {want:#x}")),
        Err(c) => s.fail(format_args!("{when}: MRS OSLSR_EL1 raised {c}")),
    }
}

fn self_status(s: &mut Subchecks, when: &core::fmt::Arguments, want: Expect) {
    let me = platform::get().mpidr[arch::core_index()];
    match tc::status_of(me) {
        Ok(st) => {
            if let Err(m) = tc::check(&st, &want) {
                s.fail(format_args!("{when}: {m}"));
            }
        }
        Err(e) => s.fail(format_args!("{when}: TRACE_STATUS(self): {e}")),
    }
}

fn os_lock(s: &mut Subchecks) {
    let me = platform::get().mpidr[arch::core_index()];
    let cfg = abi::CONFIG_EL0 | abi::CONFIG_EL1 | abi::CONFIG_CONTEXT_ID;
    // OSLAR_EL1.OSLK is bit 0; every other bit is ignored.
    for v in [1u64, 0, 0xffff_ffff_ffff_fffe, u64::MAX, 2, 1] {
        if let Err(c) = isolation::oslar(v) {
            s.fail(format_args!("MSR OSLAR_EL1, {v:#x} raised {c}"));
        }
        let locked = v & 1 != 0;
        expect_oslsr(s, locked, &format_args!("after OSLAR_EL1 = {v:#x}"));
        // The trace unit is the hypervisor's, lock or no lock.
        let g = match tc::enable(me, cfg, 0, 0) {
            Ok(r) if r[0] == 0 => r[1],
            r => {
                s.fail(format_args!(
                    "OSLAR_EL1 = {v:#x}: TRACE_ENABLE(self): {r:?}"
                ));
                continue;
            }
        };
        self_status(
            s,
            &format_args!("OSLAR_EL1 = {v:#x}, enabled"),
            Expect::enabled(Some(g), (cfg, 0, 0)),
        );
        for w in [0u64, 1] {
            match trcoslar(w) {
                Some(c) if c.ec() == EC_UNKNOWN => {}
                r => s.fail(format_args!("MSR TRCOSLAR, #{w}: {r:?}, want UNDEFINED")),
            }
        }
        match trcoslsr() {
            Some(c) if c.ec() == EC_UNKNOWN => {}
            r => s.fail(format_args!("MRS TRCOSLSR: {r:?}, want UNDEFINED")),
        }
        match osdlr(1) {
            (0, None) => {}
            r => s.fail(format_args!("OSDLR_EL1 = 1: read {r:?}, want 0 (RAZ/WI)")),
        }
        expect_oslsr(
            s,
            locked,
            &format_args!("after TRCOSLAR/OSDLR writes, OSLAR_EL1 = {v:#x}"),
        );
        self_status(
            s,
            &format_args!("after TRCOSLAR/OSDLR writes, OSLAR_EL1 = {v:#x}"),
            Expect::enabled(Some(g), (cfg, 0, 0)),
        );
        match tc::disable(me) {
            Ok(r) if r[0] == 0 && r[1] == g + 1 => {}
            r => s.fail(format_args!(
                "OSLAR_EL1 = {v:#x}: TRACE_DISABLE(self): {r:?}"
            )),
        }
        self_status(
            s,
            &format_args!("OSLAR_EL1 = {v:#x}, disabled"),
            Expect::disabled(Some(g + 1)),
        );
    }
    // Leave it as Linux does after boot: unlocked.
    let _ = isolation::oslar(0);
}

/// Walks, then the OS lock: this core's part.
pub fn local() -> Result<(), Msg> {
    let mut s = Subchecks::new("sysreg-walk");
    if !STUBS_READY.load(Ordering::Acquire) {
        fail!("the stubs are not built");
    }
    let undefined = sysreg_walk(&mut s);
    os_lock(&mut s);
    println!(
        "sysreg-walk: cpu{}: {undefined} of {} accesses to {WALKED} trace registers UNDEFINED; OS lock virtual",
        arch::core_index(),
        WALKED * 2
    );
    s.result()
}

fn sysreg_walk_all() -> Result<(), Msg> {
    let mut s = Subchecks::new("sysreg-walk");
    build_stubs();
    suite::on_all_cores(&mut s, Cmd::Hostile, 0, WAIT_MS * 4, local);
    println!(
        "guest: sysreg-walk registers={WALKED} accesses-per-core={} cores={}",
        WALKED * 2,
        smp::online_mask().iter().filter(|&&o| o).count()
    );
    s.result()
}

// ---------------------------------------------------------------------
// hypmem

/// Addresses in the hypervisor's memory (and one in the gap between it
/// and the guest's RAM).
const HYP_ADDRS: [u64; 7] = [
    0x4000_0000,
    0x4008_0000,
    0x4009_0010,
    0x4020_0000,
    0x4030_0008,
    0x403f_fff8,
    0x4300_0000,
];

fn load(addr: u64) -> Option<Caught> {
    trap::catching(|| {
        let v: u64;
        // SAFETY: must abort (the catch skips it): the address is the
        // hypervisor's, never mapped for the guest.
        unsafe { asm!("mov {v}, xzr", "ldr {v}, [{a}]", v = out(reg) v, a = in(reg) addr, options(nostack)) };
        v
    })
    .1
}

fn store(addr: u64) -> Option<Caught> {
    trap::catching(|| {
        // SAFETY: as for `load`; should it land, the failure is reported.
        unsafe { asm!("str xzr, [{a}]", a = in(reg) addr, options(nostack)) };
    })
    .1
}

fn load_pair(addr: u64) -> Option<Caught> {
    trap::catching(|| {
        // SAFETY: as for `load`; a pair has no syndrome for EL2 to decode.
        unsafe {
            asm!("ldp {a0}, {a1}, [{a}]", a = in(reg) addr, a0 = out(reg) _, a1 = out(reg) _, options(nostack))
        };
    })
    .1
}

fn fetch(addr: u64) -> Option<Caught> {
    trap::catching_fetch(|| {
        // SAFETY: branches into the hypervisor's memory with the return
        // address in x30: the fetch must abort, and the catch resumes at
        // x30. Should it run, whatever is there runs at EL1 as the guest,
        // which is the failure being tested for.
        unsafe {
            asm!(
                "adr x30, 1f",
                "br {a}",
                "1:",
                a = in(reg) addr,
                lateout("x30") _,
                options(nostack)
            )
        };
    })
    .1
}

fn hypmem() -> Result<(), Msg> {
    let mut s = Subchecks::new("hypmem");
    let mut aborts = 0;
    for addr in HYP_ADDRS {
        for (write, what, r) in [
            (false, "read", load(addr)),
            (true, "write", store(addr)),
            (false, "load pair", load_pair(addr)),
        ] {
            match r {
                Some(c) => match hypmem::check_abort(addr, write, c) {
                    Ok(()) => aborts += 1,
                    Err(m) => s.fail(format_args!("{what} of {addr:#x}: {m}")),
                },
                None => s.fail(format_args!("{what} of {addr:#x} did not fault")),
            }
        }
        match fetch(addr) {
            Some(c)
                if c.ec() == EC_IABT_SAME_EL && c.iss() & 0x3f == FSC_EXTERNAL && c.far == addr =>
            {
                aborts += 1
            }
            Some(c) => s.fail(format_args!(
                "fetch from {addr:#x}: {c}, want EC 0x21, IFSC 0x10, FAR {addr:#x}"
            )),
            None => s.fail(format_args!("fetch from {addr:#x} did not fault")),
        }
        s.add(alive_remote(&format_args!("after the probes of {addr:#x}")));
    }
    println!(
        "guest: hypmem addresses={} aborts={aborts} (read, write, load pair, fetch each)",
        HYP_ADDRS.len()
    );
    s.result()
}

// ---------------------------------------------------------------------
// gic-hostile

fn r32(addr: usize) -> Result<u32, Caught> {
    let (v, c) = trap::catching(|| {
        let v: u32;
        // SAFETY: a GIC register the hypervisor emulates; a catch is armed.
        unsafe { asm!("ldr {v:w}, [{a}]", v = out(reg) v, a = in(reg) addr, options(nostack)) };
        v
    });
    c.map_or(Ok(v), Err)
}

fn w32(addr: usize, v: u32) -> Result<(), Caught> {
    let ((), c) = trap::catching(|| {
        // SAFETY: a hostile write to a GIC register the hypervisor filters;
        // what the guest itself relies on is restored by the caller.
        unsafe { asm!("str {v:w}, [{a}]", v = in(reg) v, a = in(reg) addr, options(nostack)) };
    });
    c.map_or(Ok(()), Err)
}

/// PING and TRACE_STATUS of every other core: both travel by SGI 15.
fn alive_remote(when: &core::fmt::Arguments) -> Result<(), Msg> {
    let p = platform::get();
    let me = arch::core_index();
    for i in (0..p.ncpus).filter(|&i| i != me && smp::online(i)) {
        match calls::ping(p.mpidr[i]) {
            Ok(r) if r[0] == 0 && r[1] == i as u64 => {}
            r => fail!("{when}: PING(cpu{i}): {r:?}"),
        }
        match tc::status_of(p.mpidr[i]) {
            Ok(st) if tc::coherent(&st) => {}
            Ok(st) => fail!("{when}: TRACE_STATUS(cpu{i}): incoherent {}", tc::Show(&st)),
            Err(e) => fail!("{when}: TRACE_STATUS(cpu{i}): {e}"),
        }
    }
    Ok(())
}

fn expect_read(s: &mut Subchecks, what: &str, addr: usize, mask: u32, want: u32) {
    match r32(addr) {
        Ok(v) if v & mask == want => {}
        Ok(v) => s.fail(format_args!(
            "{what}: read {v:#x} (mask {mask:#x}), want {want:#x}"
        )),
        Err(c) => s.fail(format_args!("{what}: read raised {c}")),
    }
}

fn write_ok(s: &mut Subchecks, what: &str, addr: usize, v: u32) {
    if let Err(c) = w32(addr, v) {
        s.fail(format_args!("{what}: write {v:#x} raised {c}"));
    }
}

fn gic_hostile() -> Result<(), Msg> {
    let mut s = Subchecks::new("gic-hostile");
    let p = platform::get();
    let me = arch::core_index();
    let gicd = p.gicd;
    let sgi = |core: usize| gic::rd_base(core) + 0x1_0000;
    let bits = (1u32 << 15) | (1 << 25);
    let mut steps = 0;
    let mut step = |s: &mut Subchecks, what: &str| {
        steps += 1;
        s.add(alive_remote(&format_args!("after {what}")));
    };

    // This core's SGI frame: disable, clear pending/active, regroup,
    // reprioritise SGI 15 and PPI 25, reconfigure PPI 25.
    let isenabler = sgi(me) + 0x100;
    let saved_enable = r32(isenabler).unwrap_or(0);
    write_ok(&mut s, "GICR_ICENABLER0", sgi(me) + 0x180, bits);
    expect_read(&mut s, "GICR_ISENABLER0 after", isenabler, 1 << 25, 0);
    step(&mut s, "GICR_ICENABLER0 = SGI 15 | PPI 25");
    write_ok(&mut s, "GICR_ICPENDR0", sgi(me) + 0x280, bits);
    write_ok(&mut s, "GICR_ICACTIVER0", sgi(me) + 0x380, bits);
    write_ok(&mut s, "GICR_ISACTIVER0", sgi(me) + 0x300, 1 << 25);
    step(
        &mut s,
        "GICR_ICPENDR0/ICACTIVER0/ISACTIVER0 of SGI 15 and PPI 25",
    );
    write_ok(&mut s, "GICR_IGROUPR0", sgi(me) + 0x80, 0);
    expect_read(&mut s, "GICR_IGROUPR0", sgi(me) + 0x80, u32::MAX, u32::MAX);
    write_ok(&mut s, "GICR_IGRPMODR0", sgi(me) + 0xd00, u32::MAX);
    step(&mut s, "GICR_IGROUPR0 = 0, IGRPMODR0 = ~0");
    let prio15 = sgi(me) + 0x400 + 12;
    let saved_prio = r32(prio15).unwrap_or(0);
    // IPRIORITYR6 holds PPIs 24..27: only PPI 25's byte is hostile (PPI
    // 27 is this guest's own timer).
    let prio25 = sgi(me) + 0x400 + 24;
    let saved_prio25 = r32(prio25).unwrap_or(0);
    write_ok(&mut s, "GICR_IPRIORITYR3", prio15, 0xffff_ffff);
    write_ok(&mut s, "GICR_IPRIORITYR6", prio25, saved_prio25 | 0xff00);
    expect_read(&mut s, "GICR_IPRIORITYR6 PPI 25 byte", prio25, 0xff00, 0);
    step(&mut s, "GICR_IPRIORITYR of SGI 15 and PPI 25 = 0xff");
    write_ok(&mut s, "GICR_IPRIORITYR3", prio15, saved_prio);
    write_ok(&mut s, "GICR_IPRIORITYR6", prio25, saved_prio25);
    let icfgr1 = sgi(me) + 0xc04;
    let saved_cfg = r32(icfgr1).unwrap_or(0);
    write_ok(&mut s, "GICR_ICFGR1", icfgr1, saved_cfg ^ (0b11 << 18));
    expect_read(
        &mut s,
        "GICR_ICFGR1 PPI 25 field",
        icfgr1,
        0b11 << 18,
        saved_cfg & (0b11 << 18),
    );
    write_ok(&mut s, "GICR_ICFGR1", icfgr1, saved_cfg);
    step(&mut s, "GICR_ICFGR1 of PPI 25");
    write_ok(&mut s, "GICR_WAKER", gic::rd_base(me) + 0x14, 0b10);
    expect_read(
        &mut s,
        "GICR_WAKER asleep",
        gic::rd_base(me) + 0x14,
        0b110,
        0b110,
    );
    step(&mut s, "GICR_WAKER.ProcessorSleep = 1");
    write_ok(&mut s, "GICR_WAKER", gic::rd_base(me) + 0x14, 0);
    write_ok(&mut s, "GICR_CTLR", gic::rd_base(me), 1);
    expect_read(&mut s, "GICR_CTLR.EnableLPIs", gic::rd_base(me), 1, 0);
    write_ok(&mut s, "GICR_PROPBASER", gic::rd_base(me) + 0x70, u32::MAX);
    step(&mut s, "GICR_CTLR.EnableLPIs = 1, GICR_PROPBASER");
    write_ok(&mut s, "GICR_ISENABLER0", isenabler, saved_enable);

    // Another core's SGI frame.
    if let Some(j) = (0..p.ncpus).find(|&j| j != me && smp::online(j)) {
        let saved = r32(sgi(j) + 0x100).unwrap_or(0);
        write_ok(
            &mut s,
            "other core's GICR_ICENABLER0",
            sgi(j) + 0x180,
            !(1u32 << 27),
        );
        write_ok(&mut s, "other core's GICR_IGROUPR0", sgi(j) + 0x80, 0);
        write_ok(
            &mut s,
            "other core's GICR_WAKER",
            gic::rd_base(j) + 0x14,
            0b10,
        );
        step(
            &mut s,
            "another core's SGI frame: SGIs disabled, regrouped, asleep",
        );
        write_ok(&mut s, "other core's GICR_WAKER", gic::rd_base(j) + 0x14, 0);
        write_ok(
            &mut s,
            "other core's GICR_ISENABLER0",
            sgi(j) + 0x100,
            saved,
        );
    }

    // The distributor: disable, regroup, SGIR, halfword, misaligned, pair.
    let ctlr = r32(gicd).unwrap_or(0);
    write_ok(&mut s, "GICD_CTLR", gicd, 0);
    expect_read(&mut s, "GICD_CTLR after 0", gicd, 0x53, 0x50);
    step(&mut s, "GICD_CTLR = 0");
    write_ok(&mut s, "GICD_CTLR", gicd, ctlr);
    for k in 0..4 {
        write_ok(&mut s, "GICD_IGROUPR", gicd + 0x80 + 4 * k, 0);
        expect_read(
            &mut s,
            "GICD_IGROUPR",
            gicd + 0x80 + 4 * k,
            u32::MAX,
            u32::MAX,
        );
    }
    write_ok(&mut s, "GICD_SGIR", gicd + 0xf00, (1 << 24) | 15);
    write_ok(&mut s, "GICD_ICENABLER0", gicd + 0x180, u32::MAX);
    step(&mut s, "GICD_IGROUPR = 0, GICD_SGIR, GICD_ICENABLER0");

    let half = trap::catching(|| {
        // SAFETY: a halfword store to GICD_CTLR, a size the GIC does not
        // support: RAZ/WI in the hypervisor's emulation.
        unsafe { asm!("strh wzr, [{a}]", a = in(reg) gicd, options(nostack)) };
    })
    .1;
    if let Some(c) = half {
        s.fail(format_args!("STRH GICD_CTLR raised {c}"));
    }
    expect_read(&mut s, "GICD_CTLR after STRH", gicd, 0x3, ctlr & 0x3);
    let mis = trap::catching(|| {
        let v: u32;
        // SAFETY: a misaligned word load in the distributor: an alignment
        // fault in the guest's own stage 1 (Device memory), or RAZ.
        unsafe {
            asm!("mov {v:w}, #1", "ldr {v:w}, [{a}]", v = out(reg) v, a = in(reg) gicd + 2, options(nostack))
        };
        v
    });
    match mis {
        (0, None) => {}
        (_, Some(c)) if c.ec() == EC_DABT_SAME_EL && c.iss() & 0x3f == FSC_ALIGNMENT => {}
        r => s.fail(format_args!(
            "misaligned LDR of GICD+2: {r:?}, want RAZ or an alignment fault"
        )),
    }
    match load_pair(gicd as u64) {
        Some(c) if c.ec() == EC_DABT_SAME_EL && c.iss() & 0x3f == FSC_EXTERNAL => {}
        r => s.fail(format_args!(
            "LDP of GICD_CTLR: {r:?}, want a synchronous external abort"
        )),
    }
    step(&mut s, "STRH, misaligned LDR and LDP on the distributor");
    println!("guest: gic-hostile steps={steps}");
    s.result()
}

// ---------------------------------------------------------------------
// hostile-args

fn psci_code(fid: u32, a1: u64, a2: u64, a3: u64) -> Result<i64, Caught> {
    raw_call(
        platform::get().psci_conduit == calls::Conduit::Hvc,
        false,
        [fid as u64, a1, a2, a3, 0, 0],
    )
    .map(|r| r[0] as i64)
}

fn expect_psci(
    s: &mut Subchecks,
    what: core::fmt::Arguments,
    got: Result<i64, Caught>,
    want: &[i64],
) -> bool {
    match got {
        Ok(v) if want.contains(&v) => true,
        Ok(v) => {
            s.fail(format_args!("{what}: {v}, want one of {want:?}"));
            false
        }
        Err(c) => {
            s.fail(format_args!("{what}: {c}"));
            false
        }
    }
}

/// The statuses of the watched cores must not change.
fn unchanged(s: &mut Subchecks, what: core::fmt::Arguments, watched: &[(usize, Status)]) {
    let p = platform::get();
    for (i, before) in watched {
        match tc::status_of(p.mpidr[*i]) {
            Ok(now) if now == *before => {}
            Ok(now) => s.fail(format_args!(
                "after {what}: cpu{i} changed: {} (was {})",
                tc::Show(&now),
                tc::Show(before)
            )),
            Err(e) => s.fail(format_args!("after {what}: TRACE_STATUS(cpu{i}): {e}")),
        }
    }
}

fn hostile_args() -> Result<(), Msg> {
    let mut s = Subchecks::new("hostile-args");
    let p = platform::get();
    let me = arch::core_index();
    let my = p.mpidr[me];
    let (ram, ram_size) = p.ram;
    let entry = arch::secondary_entry();
    let bad_entries: [(&str, u64); 9] = [
        ("0", 0),
        ("the hypervisor's image", 0x4008_0000),
        ("the hypervisor's RAM", 0x4020_0000),
        ("just below the guest's RAM", ram - 4),
        ("just beyond the guest's RAM", ram + ram_size),
        ("misaligned by 2", entry + 2),
        ("misaligned by 1", entry + 1),
        ("MMIO", 0x0900_0000),
        ("absurd", 0xffff_ffff_ffff_fff0),
    ];
    let mut refused = 0u32;

    // Trace on this core and on a remote one, with known configs: every
    // refused call below must leave them exactly as they are.
    let remote = (0..p.ncpus).rev().find(|&j| j != me && smp::online(j));
    let (lo, hi) = (0x4420_0000u64, 0x4430_0000u64);
    let cfg_me = abi::CONFIG_EL1 | abi::CONFIG_CYCLES | abi::CONFIG_ADDR_FILTER;
    let mut watched: [(usize, Status); 2] = [(me, zero_status()), (me, zero_status())];
    let mut nwatched = 0;
    for (i, cfg) in [
        (Some(me), cfg_me),
        (remote, abi::CONFIG_EL0 | abi::CONFIG_TIMESTAMPS),
    ] {
        let Some(i) = i else { continue };
        match tc::enable(p.mpidr[i], cfg, lo, hi) {
            Ok(r) if r[0] == 0 => {}
            r => fail!("TRACE_ENABLE(cpu{i}): {r:?}"),
        }
        match tc::status_of(p.mpidr[i]) {
            Ok(st) => {
                watched[nwatched] = (i, st);
                nwatched += 1;
            }
            Err(e) => fail!("TRACE_STATUS(cpu{i}): {e}"),
        }
    }
    let watched = &watched[..nwatched];

    // Trace calls with hostile arguments.
    let invalid = hyp::Error::InvalidParameter.code();
    let filt = abi::CONFIG_EL1 | abi::CONFIG_ADDR_FILTER;
    let mut configs: [(u64, u64, u64); 64 + 9] = [(0, 0, 0); 73];
    for (b, c) in configs.iter_mut().enumerate().take(64).skip(6) {
        *c = if (1u64 << b) & abi::CONFIG_ALL == 0 {
            // A reserved bit.
            (abi::CONFIG_EL1 | 1 << b, 0, 0)
        } else {
            // A defined bit, but no exception level to trace.
            (1 << b, 0, 0)
        };
    }
    configs[0] = (0, 0, 0);
    configs[1] = (abi::CONFIG_TIMESTAMPS | abi::CONFIG_CYCLES, 0, 0);
    configs[2] = (u64::MAX, lo, hi);
    configs[3] = (filt, lo + 2, hi);
    configs[4] = (filt, lo, hi + 1);
    configs[5] = (filt, hi, lo);
    let extra: [(u64, u64, u64); 9] = [
        (filt, lo, lo),
        (filt, 0, abi::FILTER_END_MAX + 4),
        (filt, abi::FILTER_END_MAX, abi::FILTER_END_MAX + 8),
        (filt, 0, !3),
        (filt, u64::MAX - 3, 0),
        (filt, 1, 2),
        (filt, lo, lo + 1),
        (
            filt | abi::CONFIG_EL0,
            abi::FILTER_END_MAX - 4,
            abi::FILTER_END_MAX + 4,
        ),
        (filt, 3, 0x1000),
    ];
    configs[64..].copy_from_slice(&extra);
    for (i, _) in watched {
        for &(w, a, b) in configs.iter() {
            let ok = expect_psci(
                &mut s,
                format_args!("TRACE_ENABLE(cpu{i}, {w:#x}, {a:#x}, {b:#x})"),
                tc::enable(p.mpidr[*i], w, a, b).map(|r| r[0] as i64),
                &[invalid],
            );
            refused += ok as u32;
        }
        unchanged(
            &mut s,
            format_args!("TRACE_ENABLE with bad configs to cpu{i}"),
            watched,
        );
    }
    let bad_targets: [u64; 10] = [
        my | 1 << 31,
        my | 1 << 30,
        my | 1 << 24,
        my | 1 << 40,
        my | 1 << 63,
        0xff00,
        0xff_0000,
        0xff_0000_0000,
        u64::MAX,
        my ^ AFFINITY_MASK,
    ];
    let good = abi::CONFIG_EL1;
    for t in bad_targets {
        for (name, r) in [
            ("TRACE_ENABLE", tc::enable(t, good, 0, 0)),
            ("TRACE_DISABLE", tc::disable(t)),
            ("TRACE_STATUS", tc::status(t)),
            ("TRACE_STATS", calls::hyp6(abi::TRACE_STATS, [t, 0, 0, 0])),
            ("TRACE_IDREGS", calls::hyp6(abi::TRACE_IDREGS, [t, 0, 0, 0])),
            ("PING", calls::hyp6(hyp::PING, [t, 0, 0, 0])),
        ] {
            refused += expect_psci(
                &mut s,
                format_args!("{name}(MPIDR {t:#x})"),
                r.map(|r| r[0] as i64),
                &[invalid],
            ) as u32;
        }
        unchanged(&mut s, format_args!("calls to MPIDR {t:#x}"), watched);
    }
    // TRACE_READ into memory that is not the guest's, or a bad buffer.
    let stub = STUBS.0.get() as u64;
    let bufs: [(u64, u64); 9] = [
        (0x4000_0000, 0x1000),
        (0x4008_0000, 64),
        (0x403f_f000, 0x1000),
        (ram - 0x1000, 0x2000),
        (ram + ram_size - 0x1000, 0x2000),
        (stub, 0),
        (stub + 1, 64),
        (stub, abi::READ_MAX + 8),
        (!0xfff, 0x2000),
    ];
    for (i, _) in watched {
        for (ipa, size) in bufs {
            for t in [p.mpidr[*i], p.mpidr[*i] | 1 << 31] {
                refused += expect_psci(
                    &mut s,
                    format_args!("TRACE_READ(MPIDR {t:#x}, 0, {ipa:#x}, {size:#x})"),
                    calls::hyp6(abi::TRACE_READ, [t, 0, ipa, size]).map(|r| r[0] as i64),
                    &[invalid],
                ) as u32;
            }
        }
        unchanged(
            &mut s,
            format_args!("TRACE_READ with bad buffers (cpu{i})"),
            watched,
        );
    }

    // Junk in x0[63:32] or in the function ID's reserved bits [23:16].
    for (i, _) in watched {
        for fid in [abi::TRACE_ENABLE, abi::TRACE_DISABLE] {
            for x0 in [
                fid as u64 | 1 << 32,
                fid as u64 | 0xffff_ffff << 32,
                (fid | 1 << 16) as u64,
                (fid | 0xff << 16) as u64,
                (fid & !(1 << 30)) as u64,
                (fid & !(1 << 31)) as u64,
            ] {
                let r = raw_call(true, false, [x0, p.mpidr[*i], good, 0, 0, 0]);
                refused += expect_psci(
                    &mut s,
                    format_args!("x0 = {x0:#x} (cpu{i})"),
                    r.map(|r| r[0] as i64),
                    &[smccc::NOT_SUPPORTED],
                ) as u32;
            }
        }
        unchanged(
            &mut s,
            format_args!("function IDs with reserved bits (cpu{i})"),
            watched,
        );
    }

    // AFFINITY_INFO with bad MPIDRs and levels.
    for t in bad_targets {
        for fid in [psci::AFFINITY_INFO_64, psci::AFFINITY_INFO_32] {
            if fid == psci::AFFINITY_INFO_32 && t as u32 as u64 == my {
                continue; // the 32-bit form only sees the low half
            }
            refused += expect_psci(
                &mut s,
                format_args!("AFFINITY_INFO({fid:#x}, {t:#x}, 0)"),
                psci_code(fid, t, 0, 0),
                &[psci::ret::INVALID_PARAMETERS],
            ) as u32;
        }
    }
    for level in [1u64, 2, 3, 4, 0xff, 0xffff_ffff] {
        expect_psci(
            &mut s,
            format_args!("AFFINITY_INFO(self, level {level:#x})"),
            psci_code(psci::AFFINITY_INFO_64, my, level, 0),
            &[psci::affinity::ON, psci::ret::INVALID_PARAMETERS],
        );
    }

    // CPU_SUSPEND refused before anything happens.
    for ps in [
        0x0002_0000u64,
        0x8000_0000,
        0x4000_0000,
        0x0400_0000,
        0xffff_ffff,
    ] {
        refused += expect_psci(
            &mut s,
            format_args!("CPU_SUSPEND(power_state {ps:#x})"),
            psci_code(psci::CPU_SUSPEND_64, ps, entry, 0),
            &[psci::ret::INVALID_PARAMETERS],
        ) as u32;
    }
    for (what, e) in bad_entries {
        for fid in [psci::CPU_SUSPEND_64, psci::CPU_SUSPEND_32] {
            refused += expect_psci(
                &mut s,
                format_args!("CPU_SUSPEND({fid:#x}, power-down, entry {what} {e:#x})"),
                psci_code(fid, 0x0001_0000, e, 0),
                &[psci::ret::INVALID_ADDRESS],
            ) as u32;
        }
    }
    unchanged(&mut s, format_args!("the refused CPU_SUSPENDs"), watched);

    // CPU_ON of a core that is off, with bad entries and bad targets.
    if let Some(j) = (0..p.ncpus)
        .rev()
        .find(|&j| j != me && smp::online(j) && Some(j) != remote)
        .or(remote)
    {
        let was_watched = Some(j) == remote;
        let mj = p.mpidr[j];
        let seq = smp::post(j, Cmd::Off, 0);
        if let Err(m) = suite::wait_off(j, seq) {
            s.fail(format_args!("{m}"));
            return s.result();
        }
        let still_off = |s: &mut Subchecks, what: core::fmt::Arguments| {
            expect_psci(
                s,
                format_args!("AFFINITY_INFO(cpu{j}) after {what}"),
                psci_code(psci::AFFINITY_INFO_64, mj, 0, 0),
                &[psci::affinity::OFF],
            );
        };
        for (what, e) in bad_entries {
            for fid in [psci::CPU_ON_64, psci::CPU_ON_32] {
                refused += expect_psci(
                    &mut s,
                    format_args!("CPU_ON({fid:#x}, cpu{j}, entry {what} {e:#x})"),
                    psci_code(fid, mj, e, j as u64),
                    &[psci::ret::INVALID_ADDRESS],
                ) as u32;
                still_off(&mut s, format_args!("CPU_ON with entry {e:#x}"));
            }
        }
        let starts = smp::starts(j);
        let failures = smp::init_failures(j);
        for t in [
            mj | 1 << 31,
            mj | 1 << 30,
            mj | 1 << 24,
            mj | 1 << 40,
            mj | 1 << 63,
            u64::MAX,
        ] {
            let ok = expect_psci(
                &mut s,
                format_args!("CPU_ON(MPIDR {t:#x}, good entry)"),
                psci_code(psci::CPU_ON_64, t, entry, j as u64),
                &[psci::ret::INVALID_PARAMETERS],
            );
            refused += ok as u32;
            if !ok && smp::starts(j) == starts {
                // It was let through: wait for the core, put it off again.
                let _ = suite::wait_started(j, starts, failures);
                let seq = smp::post(j, Cmd::Off, 0);
                let _ = suite::wait_off(j, seq);
            }
            still_off(&mut s, format_args!("CPU_ON(MPIDR {t:#x})"));
        }
        // TARGET_OFF: the off core, asked with good arguments.
        expect_psci(
            &mut s,
            format_args!("TRACE_STATUS(cpu{j}) while off"),
            tc::status(mj).map(|r| r[0] as i64),
            &[hyp::Error::TargetOff.code()],
        );
        let starts = smp::starts(j);
        let failures = smp::init_failures(j);
        match calls::cpu_on(mj, entry, j as u64) {
            Ok(0) => s.add(suite::wait_started(j, starts, failures)),
            r => s.fail(format_args!("CPU_ON(cpu{j}) with good arguments: {r:?}")),
        }
        let w: &[(usize, Status)] = if was_watched { &watched[..1] } else { watched };
        unchanged(&mut s, format_args!("the refused CPU_ONs"), w);
    }
    println!("guest: hostile-args refused={refused}");
    for (i, _) in watched {
        let _ = tc::disable(p.mpidr[*i]);
    }
    s.result()
}

fn zero_status() -> Status {
    Status {
        mode: abi::Mode::Disabled,
        hardware: abi::Hardware::Stopped,
        powered: true,
        backend: abi::Backend::Model,
        generation: 0,
        config: None,
    }
}

fn alive() -> Result<(), Msg> {
    let mut s = Subchecks::new("alive");
    s.add(suite::ping_all());
    s.add(alive_remote(&format_args!("at the end")));
    let p = platform::get();
    for i in 0..p.ncpus {
        let m = p.mpidr[i];
        match tc::enable(m, abi::CONFIG_EL1, 0, 0) {
            Ok(r) if r[0] == 0 => {}
            r => s.fail(format_args!("TRACE_ENABLE(cpu{i}): {r:?}")),
        }
        match tc::disable(m) {
            Ok(r) if r[0] == 0 => {}
            r => s.fail(format_args!("TRACE_DISABLE(cpu{i}): {r:?}")),
        }
        match tc::status_of(m) {
            Ok(st) if tc::coherent(&st) && st.mode == abi::Mode::Disabled => {}
            r => s.fail(format_args!("TRACE_STATUS(cpu{i}): {r:?}")),
        }
    }
    s.add(irq::take_timer_irqs(2));
    s.result()
}

/// Runs the scenario; the exit status.
pub fn run() -> u64 {
    let mut report = Report::new();
    report.check("cpu-on", suite::cpu_on());
    report.check("sysreg-walk", sysreg_walk_all());
    report.check("hypmem", hypmem());
    report.check("gic-hostile", gic_hostile());
    report.check("hostile-args", hostile_args());
    report.check("alive", alive());
    report.finish()
}

//! `test=fuzz [seed=N] [calls=N]`: the ABI fuzz.
//!
//! Every online core issues its share of `calls` SMCCC calls (HVC and SMC
//! at random) with function IDs and arguments drawn from a seeded
//! generator (`seed`, printed; each core's stream is `seed` mixed with its
//! index). The generator is biased so that every owner and range is hit:
//!
//! | class    | share | what                                                             |
//! |----------|-------|------------------------------------------------------------------|
//! | `random` | 20 %  | any 32-bit function ID (and sometimes junk in x0[63:32])         |
//! | `arch`   | 10 %  | owner 0: SMCCC_VERSION, SMCCC_ARCH_FEATURES, unknown arch IDs     |
//! | `psci`   | 20 %  | owner 4: VERSION, FEATURES, AFFINITY_INFO, MIGRATE_INFO_TYPE, CPU_ON of a core that is on, unknown IDs |
//! | `hyp`    | 20 %  | owner 6: CALL_COUNT, CALL_UID, REVISION, ABI_VERSION, FEATURES, PING, unknown 0x8600_xxxx / 0xC600_xxxx |
//! | `trace`  | 25 %  | TRACE_ENABLE/DISABLE/STATUS/STATS with random targets and configs; TRACE_READ only with buffers outside the guest's RAM |
//! | `imm`    | 5 %   | `hvc #1` / `smc #1`: a non-zero immediate                         |
//!
//! Calls that would stop or suspend a core or the machine (CPU_SUSPEND,
//! CPU_OFF, SYSTEM_OFF, SYSTEM_RESET(2), MIGRATE, CPU_FREEZE,
//! CPU_DEFAULT_SUSPEND, SYSTEM_SUSPEND, MEM_PROTECT) are never made: any
//! generated ID in those slots of owner 4 is moved to an unused number.
//! CPU_ON is made only while every core is on, so it must answer
//! ALREADY_ON (or refuse its arguments).
//!
//! Every answer is checked against what `guest_api` documents for the
//! call ([`expected`]): an unknown ID gets NOT_SUPPORTED (-1) exactly, a
//! known one a code of its documented result set, and a successful answer
//! its documented registers. Firmware answers that the hypervisor relays
//! (PSCI VERSION, FEATURES, MIGRATE_INFO_TYPE) must equal what the boot
//! core got for the same question before the fuzz. Core 0 prints:
//!
//! ```text
//! guest: abi-fuzz seed=<n> calls=<n> hvc=<n> smc=<n> random=<n> arch=<n> psci=<n> hyp=<n> trace=<n> imm=<n> undocumented=<n>
//! ```
//!
//! `fuzz-after` then checks every core's TRACE_STATUS (mode == hardware)
//! and that the ordinary calls still work.

use core::arch::asm;
use core::fmt::Write;
use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

use guest_api::trace::{self as abi, Status};
use guest_api::{hyp, psci, smccc};

use crate::arch::{self, MAX_CPUS};
use crate::console::Text;
use crate::report::{fail, Msg, Report, Subchecks};
use crate::smp::{self, Cmd};
use crate::trace_calls as tc;
use crate::trap::{self, Caught};
use crate::{platform, suite};

/// Calls in all (over every core) unless the bootargs say `calls=N`.
pub const DEFAULT_CALLS: u32 = 100_000;
/// The seed unless the bootargs say `seed=N`.
pub const DEFAULT_SEED: u64 = 0x5eed_0000_ad0e_2026;
/// Bound of the wait for the other cores.
const WAIT_MS: u64 = 200_000;
/// Failure details each core prints (the counters count them all).
const DETAILS_PER_CORE: u64 = 6;
/// MPIDR bits that name a core (Aff3..Aff0); PSCI requires the others 0.
pub const AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// Classes of generated calls.
const CLASSES: [&str; 6] = ["random", "arch", "psci", "hyp", "trace", "imm"];
const RANDOM: usize = 0;
const ARCH: usize = 1;
const PSCI: usize = 2;
const HYP: usize = 3;
const TRACE: usize = 4;
const IMM: usize = 5;

/// One core's counters.
#[derive(Debug)]
struct Counters {
    calls: AtomicU64,
    hvc: AtomicU64,
    smc: AtomicU64,
    class: [AtomicU64; CLASSES.len()],
    undocumented: AtomicU64,
}

impl Counters {
    const fn new() -> Counters {
        Counters {
            calls: AtomicU64::new(0),
            hvc: AtomicU64::new(0),
            smc: AtomicU64::new(0),
            class: [const { AtomicU64::new(0) }; CLASSES.len()],
            undocumented: AtomicU64::new(0),
        }
    }
}

static COUNTERS: [Counters; MAX_CPUS] = [const { Counters::new() }; MAX_CPUS];
static SEED: AtomicU64 = AtomicU64::new(0);

/// PSCI calls whose answers come from firmware: the boot core's answers
/// before the fuzz, which every later answer must equal.
const FIRMWARE_IDS: [u32; 13] = {
    let mut ids = [smccc::SMCCC_VERSION; 13];
    let mut i = 0;
    while i < psci::FUNCTION_IDS.len() {
        ids[i] = psci::FUNCTION_IDS[i];
        i += 1;
    }
    ids
};
/// PSCI_FEATURES(FIRMWARE_IDS[i]) as the boot core got it.
static REF_FEATURES: [AtomicI64; FIRMWARE_IDS.len()] =
    [const { AtomicI64::new(0) }; FIRMWARE_IDS.len()];
static REF_VERSION: AtomicI64 = AtomicI64::new(0);
static REF_MIGRATE: AtomicI64 = AtomicI64::new(0);
static PER_CORE: AtomicU32 = AtomicU32::new(0);

/// Owner-4 function numbers that would stop, suspend or reset something.
const DESTRUCTIVE_PSCI: [u16; 10] = [0x1, 0x2, 0x5, 0x8, 0x9, 0xB, 0xC, 0xE, 0x12, 0x13];

/// xorshift64* generator.
#[derive(Clone, Copy, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// A generator for core `index` of a run seeded with `seed`.
    pub fn for_core(seed: u64, index: usize) -> Rng {
        let s = seed ^ (index as u64 + 1).wrapping_mul(0xd1b5_4a32_d192_ed03);
        Rng(if s == 0 { 1 } else { s })
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        (self.next() >> 16) % n
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// An SMCCC call with x0..x5 in and out, through `hvc #imm` or `smc #imm`
/// (`imm` 0 or 1); x6..x17 may be clobbered (SMCCC 1.2 allows results up
/// to x17).
pub fn raw_call(hvc: bool, imm1: bool, x: [u64; 6]) -> Result<[u64; 6], Caught> {
    let (r, caught) = trap::catching(|| {
        let (r0, r1, r2, r3, r4, r5): (u64, u64, u64, u64, u64, u64);
        macro_rules! call {
            ($insn:literal) => {
                // SAFETY: an SMCCC call: x0..x5 carry the function ID and
                // arguments and come back with results; x6..x17 may be
                // clobbered; everything else is preserved. Destructive
                // PSCI calls are filtered out by the caller.
                unsafe {
                    asm!(
                        $insn,
                        inlateout("x0") x[0] => r0,
                        inlateout("x1") x[1] => r1,
                        inlateout("x2") x[2] => r2,
                        inlateout("x3") x[3] => r3,
                        inlateout("x4") x[4] => r4,
                        inlateout("x5") x[5] => r5,
                        lateout("x6") _, lateout("x7") _, lateout("x8") _, lateout("x9") _,
                        lateout("x10") _, lateout("x11") _, lateout("x12") _, lateout("x13") _,
                        lateout("x14") _, lateout("x15") _, lateout("x16") _, lateout("x17") _,
                        options(nostack)
                    )
                }
            };
        }
        match (hvc, imm1) {
            (true, false) => call!("hvc #0"),
            (true, true) => call!("hvc #1"),
            (false, false) => call!("smc #0"),
            (false, true) => call!("smc #1"),
        }
        [r0, r1, r2, r3, r4, r5]
    });
    caught.map_or(Ok(r), Err)
}

/// The core index named by a target MPIDR, as the ABI defines it: the
/// affinity fields of a core of the guest, every other bit zero.
pub fn target_index(mpidr: u64) -> Option<usize> {
    if mpidr & !AFFINITY_MASK != 0 {
        return None;
    }
    platform::get().index_of(mpidr)
}

/// Is `entry` a valid entry point: in the guest's RAM and 4-byte aligned?
pub fn valid_entry(entry: u64) -> bool {
    let (base, size) = platform::get().ram;
    entry.is_multiple_of(4) && entry >= base && entry - base < size
}

/// Could (ipa, size) be a buffer TRACE_READ accepts (in the guest's RAM)?
/// Conservative: any overlap with the RAM counts.
fn valid_buffer(ipa: u64, size: u64) -> bool {
    let (base, ram) = platform::get().ram;
    ipa < base + ram && ipa.saturating_add(size) > base
}

fn is_destructive(id: u32) -> bool {
    (id >> 24) & 0x3f == 4 && DESTRUCTIVE_PSCI.contains(&(id as u16))
}

fn firmware_ref(function: u32) -> Option<i64> {
    FIRMWARE_IDS
        .iter()
        .position(|&f| f == function)
        .map(|i| REF_FEATURES[i].load(Ordering::Relaxed))
}

/// Why an answer is not one the ABI documents for the call in `x`.
pub fn expected(x: [u64; 6], r: [u64; 6]) -> Result<(), Msg> {
    let code = r[0] as i64;
    let want = |w: i64, what: &str| -> Result<(), Msg> {
        if code == w {
            Ok(())
        } else {
            fail!("{what}: x0 = {code}, want {w}")
        }
    };
    if let Some(call) = psci::Call::decode([x[0], x[1], x[2], x[3]]) {
        return match call {
            psci::Call::Version => want(REF_VERSION.load(Ordering::Relaxed), "PSCI_VERSION"),
            psci::Call::MigrateInfoType => {
                want(REF_MIGRATE.load(Ordering::Relaxed), "MIGRATE_INFO_TYPE")
            }
            psci::Call::Features { function } => match firmware_ref(function) {
                Some(w) => want(w, "PSCI_FEATURES(known)"),
                None => want(psci::ret::NOT_SUPPORTED, "PSCI_FEATURES(unknown)"),
            },
            psci::Call::CpuOn { target, entry, .. } => match target_index(target) {
                None => want(psci::ret::INVALID_PARAMETERS, "CPU_ON(bad target)"),
                Some(_) if !valid_entry(entry) => {
                    want(psci::ret::INVALID_ADDRESS, "CPU_ON(bad entry)")
                }
                Some(_) => want(psci::ret::ALREADY_ON, "CPU_ON(core that is on)"),
            },
            psci::Call::AffinityInfo {
                target,
                lowest_level,
            } => match target_index(target) {
                None => want(psci::ret::INVALID_PARAMETERS, "AFFINITY_INFO(bad target)"),
                Some(_) if lowest_level == 0 => want(psci::affinity::ON, "AFFINITY_INFO(on)"),
                // Above level 0 firmware may refuse the level; else the
                // cluster of a core that is on is on.
                Some(_) if code == psci::ret::INVALID_PARAMETERS => Ok(()),
                Some(_) => want(psci::affinity::ON, "AFFINITY_INFO(level > 0)"),
            },
            _ => fail!("a destructive PSCI call was generated"),
        };
    }
    match x[0] as u32 {
        smccc::SMCCC_VERSION => return want(smccc::VERSION_1_2 as i64, "SMCCC_VERSION"),
        smccc::SMCCC_ARCH_FEATURES => {
            return if x[1] as u32 == smccc::SMCCC_VERSION {
                want(0, "SMCCC_ARCH_FEATURES(VERSION)")
            } else {
                want(smccc::NOT_SUPPORTED, "SMCCC_ARCH_FEATURES(other)")
            };
        }
        _ => {}
    }
    let invalid = hyp::Error::InvalidParameter.code();
    let Some(call) = hyp::Call::decode(x) else {
        return want(smccc::NOT_SUPPORTED, "unknown function ID");
    };
    match call {
        hyp::Call::CallCount => want(hyp::CALLS.len() as i64, "CALL_COUNT"),
        hyp::Call::CallUid => {
            let w = hyp::UID.to_registers();
            if (0..4).all(|i| r[i] as u32 == w[i] && r[i] >> 32 == 0) {
                Ok(())
            } else {
                fail!("CALL_UID: {:#x} {:#x} {:#x} {:#x}", r[0], r[1], r[2], r[3])
            }
        }
        hyp::Call::Revision => {
            want(hyp::REVISION_MAJOR as i64, "REVISION")?;
            if r[1] != hyp::REVISION_MINOR {
                fail!("REVISION: minor {}", r[1]);
            }
            Ok(())
        }
        hyp::Call::AbiVersion => want(hyp::ABI_VERSION_VALUE as i64, "ABI_VERSION"),
        hyp::Call::Features { function } => want(
            if hyp::CALLS.contains(&function) {
                0
            } else {
                smccc::NOT_SUPPORTED
            },
            "FEATURES",
        ),
        hyp::Call::Ping { target } => match target_index(target) {
            None => want(invalid, "PING(bad target)"),
            Some(i) => {
                want(0, "PING")?;
                if r[1] != i as u64 || r[2] != platform::get().mpidr[i] {
                    fail!("PING(cpu{i}): x1 = {}, x2 = {:#x}", r[1], r[2]);
                }
                Ok(())
            }
        },
        hyp::Call::TraceEnable { target, config } => match (config, target_index(target)) {
            (Err(_), _) => want(invalid, "TRACE_ENABLE(bad config)"),
            (Ok(_), None) => want(invalid, "TRACE_ENABLE(bad target)"),
            (Ok(_), Some(_)) => {
                want(0, "TRACE_ENABLE")?;
                if r[1] == 0 {
                    fail!("TRACE_ENABLE: generation 0 after a commit");
                }
                Ok(())
            }
        },
        // The generator never offers a valid buffer (see `generate`), and
        // a bad buffer is refused before the target is looked at.
        hyp::Call::TraceRead { .. } => want(invalid, "TRACE_READ(bad buffer)"),
        hyp::Call::TraceStats { target } => match target_index(target) {
            None => want(invalid, "TRACE_STATS(bad target)"),
            Some(_) => want(0, "TRACE_STATS"),
        },
        hyp::Call::TraceIdRegs { target } => match target_index(target) {
            None => want(invalid, "TRACE_IDREGS(bad target)"),
            Some(i) => {
                want(0, "TRACE_IDREGS")?;
                if r[4] != abi::trace_id(i) {
                    fail!("TRACE_IDREGS(cpu{i}): trace ID {:#x}", r[4]);
                }
                Ok(())
            }
        },
        hyp::Call::TraceDisable { target } => match target_index(target) {
            None => want(invalid, "TRACE_DISABLE(bad target)"),
            Some(_) => want(0, "TRACE_DISABLE"),
        },
        hyp::Call::TraceStatus { target } => match target_index(target) {
            None => want(invalid, "TRACE_STATUS(bad target)"),
            Some(_) => {
                want(0, "TRACE_STATUS")?;
                match Status::from_registers(r) {
                    Ok(s) if tc::coherent(&s) && s.powered => Ok(()),
                    Ok(s) => fail!("TRACE_STATUS: incoherent: {}", tc::Show(&s)),
                    Err(_) => fail!(
                        "TRACE_STATUS: malformed: {:#x} {:#x} {:#x} {:#x} {:#x}",
                        r[1],
                        r[2],
                        r[3],
                        r[4],
                        r[5]
                    ),
                }
            }
        },
    }
}

/// A target MPIDR: mostly a core's, sometimes with bits that must be zero,
/// sometimes nothing at all.
pub fn random_target(rng: &mut Rng) -> u64 {
    let p = platform::get();
    let core = p.mpidr[rng.below(p.ncpus as u64) as usize];
    match rng.below(10) {
        0..6 => core,
        6 => core | rng.pick(&[1 << 31, 1 << 30, 1 << 24, 1 << 40, 1 << 63]),
        7 => rng.pick(&[0xff, 0xff00, 0xff_0000, 0xff_0000_0000, 0x100]),
        8 => u64::MAX,
        _ => rng.next(),
    }
}

/// A config word with its filter: valid, with unknown bits, without an
/// exception level, or with a bad filter.
fn random_config(rng: &mut Rng) -> (u64, u64, u64) {
    let mut word = rng.next() & abi::CONFIG_ALL;
    if word & (abi::CONFIG_EL0 | abi::CONFIG_EL1) == 0 && rng.below(4) != 0 {
        word |= abi::CONFIG_EL1;
    }
    let (mut start, mut end) = (rng.next(), rng.next());
    match rng.below(8) {
        0..4 => {
            start = rng.below(abi::FILTER_END_MAX / 2) & !3;
            end = start + (rng.below(0x1000) + 1) * 4;
        }
        4 => word |= 1 << (6 + rng.below(58)),
        5 => {
            start = rng.below(abi::FILTER_END_MAX) | 1;
            end = start + 3;
        }
        6 => {
            start = abi::FILTER_END_MAX - 4;
            end = abi::FILTER_END_MAX + rng.pick(&[0, 4, 1 << 20]);
        }
        _ => core::mem::swap(&mut start, &mut end),
    }
    (word, start, end)
}

fn random_entry(rng: &mut Rng) -> u64 {
    let (base, size) = platform::get().ram;
    match rng.below(8) {
        0..2 => arch::secondary_entry(),
        2 => arch::secondary_entry() + rng.pick(&[1, 2, 3]),
        3 => 0x4000_0000 + (rng.below(0x40_0000) & !3),
        4 => base + size + (rng.below(0x1000) & !3),
        5 => rng.pick(&[0, !3, 1 << 48, 0x0900_0000]),
        _ => rng.next(),
    }
}

/// Generates one call: (class, HVC?, x0..x5).
fn generate(rng: &mut Rng) -> (usize, bool, [u64; 6]) {
    let mut x = [0u64; 6];
    for v in x.iter_mut().skip(1) {
        *v = rng.next();
    }
    let hvc = rng.next() & 1 == 0;
    let roll = rng.below(100);
    let class = match roll {
        0..20 => RANDOM,
        20..30 => ARCH,
        30..50 => PSCI,
        50..70 => HYP,
        70..95 => TRACE,
        _ => IMM,
    };
    let id: u64 = match class {
        RANDOM | IMM => {
            let id = rng.next() as u32 as u64;
            if rng.below(4) == 0 {
                id | (rng.next() << 32)
            } else {
                id
            }
        }
        ARCH => match rng.below(4) {
            0 => smccc::SMCCC_VERSION as u64,
            1 => {
                let any = rng.next();
                x[1] = rng.pick(&[
                    smccc::SMCCC_VERSION as u64,
                    smccc::SMCCC_ARCH_FEATURES as u64,
                    0x8000_8000,
                    0x8000_7fff,
                    0x8000_3fff,
                    any,
                ]);
                smccc::SMCCC_ARCH_FEATURES as u64
            }
            2 => 0x8000_0000 | rng.below(0x1_0000),
            _ => 0xC000_0000 | rng.below(0x20),
        },
        PSCI => match rng.below(8) {
            0 => psci::VERSION as u64,
            1 => {
                x[1] = if rng.below(2) == 0 {
                    rng.pick(&FIRMWARE_IDS) as u64
                } else {
                    rng.next()
                };
                psci::FEATURES as u64
            }
            2 | 3 => {
                x[1] = random_target(rng);
                if rng.below(2) == 0 {
                    x[2] = 0;
                }
                rng.pick(&[psci::AFFINITY_INFO_32, psci::AFFINITY_INFO_64]) as u64
            }
            4 => psci::MIGRATE_INFO_TYPE as u64,
            5 | 6 => {
                x[1] = random_target(rng);
                x[2] = random_entry(rng);
                rng.pick(&[psci::CPU_ON_32, psci::CPU_ON_64]) as u64
            }
            _ => rng.pick(&[0x8400_0000u64, 0xC400_0000]) | rng.below(0x40),
        },
        HYP => match rng.below(8) {
            0 => rng.pick(&[hyp::CALL_COUNT, hyp::CALL_UID, hyp::REVISION]) as u64,
            1 => hyp::ABI_VERSION as u64,
            2 => {
                x[1] = if rng.below(2) == 0 {
                    rng.pick(&hyp::CALLS) as u64
                } else {
                    rng.next()
                };
                hyp::FEATURES as u64
            }
            3 | 4 => {
                x[1] = random_target(rng);
                hyp::PING as u64
            }
            5 => 0x8600_0000 | rng.below(0x1_0000),
            6 => 0xC600_0000 | rng.below(0x40),
            _ => 0xC600_0000 | rng.below(0x1_0000),
        },
        _ => {
            x[1] = random_target(rng);
            let (word, start, end) = random_config(rng);
            x[2] = word;
            x[3] = start;
            x[4] = end;
            let id = rng.pick(&[
                abi::TRACE_ENABLE,
                abi::TRACE_DISABLE,
                abi::TRACE_STATUS,
                abi::TRACE_STATUS,
                abi::TRACE_READ,
                abi::TRACE_STATS,
                abi::TRACE_IDREGS,
            ]) as u64;
            match rng.below(32) {
                0 => id | (1 << 32),
                1 => id | (1 << 16),
                _ => id,
            }
        }
    };
    x[0] = id;
    if is_destructive(id as u32) {
        // Move it to an owner-4 number nobody defines.
        x[0] = (id & !0xffff) | 0x7f;
    }
    if x[0] == abi::TRACE_READ as u64 && valid_buffer(x[3], x[4]) {
        // A valid TRACE_READ would write the guest's own memory: give it
        // the hypervisor's instead, which must be refused.
        x[3] = rng.pick(&[0x4000_0000, 0x4008_0000, 0x403f_f000]);
    }
    (class, hvc, x)
}

fn report(st: &Counters, n: u64, class: usize, hvc: bool, x: [u64; 6], why: core::fmt::Arguments) {
    let bad = st.undocumented.fetch_add(1, Ordering::Relaxed);
    if bad < DETAILS_PER_CORE {
        println!(
            "abi-fuzz: call {n} ({}, {}): x0..x5 = {:#x} {:#x} {:#x} {:#x} {:#x} {:#x}: {why}",
            CLASSES[class],
            if hvc { "hvc" } else { "smc" },
            x[0],
            x[1],
            x[2],
            x[3],
            x[4],
            x[5]
        );
    }
}

/// This core's share of the fuzz.
pub fn local(calls: u32) -> Result<(), Msg> {
    let me = arch::core_index();
    let st = &COUNTERS[me];
    let mut rng = Rng::for_core(SEED.load(Ordering::Relaxed), me);
    for n in 0..calls as u64 {
        let (class, hvc, x) = generate(&mut rng);
        let imm = class == IMM;
        let r = raw_call(hvc, imm, x);
        st.calls.fetch_add(1, Ordering::Relaxed);
        st.class[class].fetch_add(1, Ordering::Relaxed);
        if hvc {
            st.hvc.fetch_add(1, Ordering::Relaxed);
        } else {
            st.smc.fetch_add(1, Ordering::Relaxed);
        }
        match r {
            Err(c) => report(st, n, class, hvc, x, format_args!("raised {c}")),
            Ok(r) if imm => {
                if r[0] as i64 != smccc::NOT_SUPPORTED {
                    report(
                        st,
                        n,
                        class,
                        hvc,
                        x,
                        format_args!("non-zero immediate: x0 = {}, want -1", r[0] as i64),
                    );
                }
            }
            Ok(r) => {
                if let Err(m) = expected(x, r) {
                    report(st, n, class, hvc, x, format_args!("{m}"));
                }
            }
        }
    }
    let bad = st.undocumented.load(Ordering::Relaxed);
    let mut line = Text::<200>::new();
    for (i, name) in CLASSES.iter().enumerate() {
        let _ = write!(line, " {name}={}", st.class[i].load(Ordering::Relaxed));
    }
    println!(
        "abi-fuzz: cpu{me}: calls={} hvc={} smc={}{line} undocumented={bad}",
        st.calls.load(Ordering::Relaxed),
        st.hvc.load(Ordering::Relaxed),
        st.smc.load(Ordering::Relaxed),
    );
    if bad != 0 {
        fail!("{bad} undocumented answer(s)");
    }
    Ok(())
}

/// The secondary's part: [`local`] with the share the boot core set.
pub fn secondary() -> Result<(), Msg> {
    local(PER_CORE.load(Ordering::Relaxed))
}

/// Asks firmware-relayed questions once, for the oracle.
fn references() -> Result<(), Msg> {
    let ask = |fid: u32, a1: u64| -> Result<i64, Msg> {
        match raw_call(false, false, [fid as u64, a1, 0, 0, 0, 0]) {
            Ok(r) => Ok(r[0] as i64),
            Err(c) => fail!("{fid:#x}({a1:#x}) raised {c}"),
        }
    };
    REF_VERSION.store(ask(psci::VERSION, 0)?, Ordering::Relaxed);
    REF_MIGRATE.store(ask(psci::MIGRATE_INFO_TYPE, 0)?, Ordering::Relaxed);
    for (i, &f) in FIRMWARE_IDS.iter().enumerate() {
        REF_FEATURES[i].store(ask(psci::FEATURES, f as u64)?, Ordering::Relaxed);
    }
    let v = REF_VERSION.load(Ordering::Relaxed);
    if v >> 16 < 1 || v >> 32 != 0 {
        fail!("PSCI_VERSION {v:#x}: want 1.0 or later");
    }
    if firmware_ref(smccc::SMCCC_VERSION) != Some(0) {
        fail!("PSCI_FEATURES(SMCCC_VERSION) is not 0");
    }
    println!(
        "abi-fuzz: firmware answers: PSCI_VERSION {v:#x}, MIGRATE_INFO_TYPE {}",
        REF_MIGRATE.load(Ordering::Relaxed)
    );
    Ok(())
}

fn abi_fuzz(seed: u64, calls: u32) -> Result<(), Msg> {
    let mut s = Subchecks::new("abi-fuzz");
    references()?;
    let p = platform::get();
    let online = smp::online_mask();
    let cores = online[..p.ncpus].iter().filter(|&&o| o).count();
    if cores != p.ncpus {
        fail!("only {cores} of {} cores online", p.ncpus);
    }
    let per_core = calls.div_ceil(cores as u32);
    SEED.store(seed, Ordering::Relaxed);
    PER_CORE.store(per_core, Ordering::Relaxed);
    println!("abi-fuzz: seed={seed:#x}: {cores} core(s) x {per_core} calls");
    suite::on_all_cores(&mut s, Cmd::Fuzz, 0, WAIT_MS, || local(per_core));
    let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let sum = |f: &dyn Fn(&Counters) -> u64| COUNTERS[..p.ncpus].iter().map(f).sum::<u64>();
    let mut line = Text::<200>::new();
    for (i, name) in CLASSES.iter().enumerate() {
        let _ = write!(line, " {name}={}", sum(&|c| l(&c.class[i])));
    }
    println!(
        "guest: abi-fuzz seed={seed} calls={} hvc={} smc={}{line} undocumented={}",
        sum(&|c| l(&c.calls)),
        sum(&|c| l(&c.hvc)),
        sum(&|c| l(&c.smc)),
        sum(&|c| l(&c.undocumented)),
    );
    s.result()
}

/// After the fuzz: every core's status coherent, and the ordinary calls
/// (hypervisor service, PING and a full enable/status/disable round on
/// every core) still answer as documented.
fn fuzz_after() -> Result<(), Msg> {
    let mut s = Subchecks::new("fuzz-after");
    let p = platform::get();
    for i in 0..p.ncpus {
        match tc::status_of(p.mpidr[i]) {
            Ok(st) => {
                println!("fuzz-after: cpu{i}: {}", tc::Show(&st));
                s.expect(
                    tc::coherent(&st) && st.powered,
                    format_args!("cpu{i}: incoherent status {}", tc::Show(&st)),
                );
            }
            Err(e) => s.fail(format_args!("TRACE_STATUS(cpu{i}): {e}")),
        }
    }
    match crate::calls::hyp(hyp::ABI_VERSION, 0) {
        Ok(r) if r[0] == hyp::ABI_VERSION_VALUE => {}
        r => s.fail(format_args!("ABI_VERSION: {r:?}")),
    }
    s.add(suite::ping_all());
    let cfg = abi::CONFIG_EL1 | abi::CONFIG_TIMESTAMPS;
    for i in 0..p.ncpus {
        let m = p.mpidr[i];
        let g = match tc::enable(m, cfg, 0, 0) {
            Ok(r) if r[0] == 0 => r[1],
            r => {
                s.fail(format_args!("TRACE_ENABLE(cpu{i}): {r:?}"));
                continue;
            }
        };
        if let Err(e) = tc::status_of(m)
            .map_err(|e| crate::report::msg(format_args!("{e}")))
            .and_then(|st| tc::check(&st, &tc::Expect::enabled(Some(g), (cfg, 0, 0))))
        {
            s.fail(format_args!("cpu{i} after TRACE_ENABLE: {e}"));
        }
        match tc::disable(m) {
            Ok(r) if r[0] == 0 && r[1] == g + 1 => {}
            r => s.fail(format_args!(
                "TRACE_DISABLE(cpu{i}): {r:?}, want generation {}",
                g + 1
            )),
        }
        if let Err(e) = tc::status_of(m)
            .map_err(|e| crate::report::msg(format_args!("{e}")))
            .and_then(|st| tc::check(&st, &tc::Expect::disabled(Some(g + 1))))
        {
            s.fail(format_args!("cpu{i} after TRACE_DISABLE: {e}"));
        }
    }
    s.result()
}

/// Runs the scenario; the exit status.
pub fn run(seed: u64, calls: u32) -> u64 {
    let mut report = Report::new();
    println!("fuzz: seed={seed} ({seed:#x}) calls={calls}");
    report.check("cpu-on", suite::cpu_on());
    report.check("abi-fuzz", abi_fuzz(seed, calls));
    report.check("fuzz-after", fuzz_after());
    report.finish()
}
